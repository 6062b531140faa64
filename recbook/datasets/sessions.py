"""The shop's sequential world: what a shopper does *next*, with an exact next-item oracle.

The shop (:mod:`recbook.datasets.shop`) says which items a user likes, not in which order they buy
them. Real baskets have order: a shopper browses with an intent (a category, a need) that
drifts; a purchase calls for its complement (headphones, then a charger); consumables
(grocery, beauty, pet food) are bought again. This module builds that order *on top of* a
shop :class:`~recbook.datasets.base.Dataset` (its users, items and latent truth), deterministic
from a seed, vectorised across users.

The generative story, step ``t`` of user ``u`` with history ``h = (i_1, ..., i_{t-1})``:

* a hidden intent ``c_t``: ``c_1 ~ pi_u`` (the user's category preferences from the shop);
  afterwards it stays with probability ``stay`` and is otherwise redrawn from ``pi_u``;
* the next item is a mixture of three sources whose weights depend on the history only:
  ``complement`` (weight ``complement_rate`` when the previous item has complement links) draws
  one of the previous item's complements; ``repeat`` (weight ``repeat_rate * min(1, m)``, with
  ``m`` the recency-decayed count of consumables bought) re-buys a past consumable, recent ones
  more likely; ``intent`` (the rest) draws an item of category ``c_t`` by the user's taste
  (the shop's latent factors and item popularity).

Because the intent is a hidden Markov chain with at most a dozen states, the exact
probability of the next item given the history is a forward filter away:
:meth:`SessionWorld.next_item_probabilities` is the Bayes-optimal next-item predictor, the
oracle row of every table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from recbook import checks
from recbook.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from recbook.datasets.base import Dataset
from recbook.datasets.movielens import load_movielens
from recbook.datasets.online_retail import load_online_retail
from recbook.datasets.shop import START_TIMESTAMP, load_shop

CONSUMABLE_CATEGORIES = ("grocery", "beauty", "pets")
# category -> the category of what tends to be bought right after one of its products
# (a device, then an accessory; a dress, then a necklace; a cookbook, then the ingredients)
COMPLEMENT_CATEGORIES: dict[str, str] = {
    "electronics": "electronics",
    "clothing": "jewelry",
    "jewelry": "clothing",
    "sports": "clothing",
    "books": "grocery",
    "home": "garden",
    "garden": "home",
    "beauty": "beauty",
    "pets": "pets",
    "toys": "books",
    "automotive": "electronics",
}
PUBLIC = ("movielens-100k", "online-retail")
SOURCES = ("intent", "complement", "repeat")


@dataclass
class SessionWorld:
    """The truth of the sequential shop: enough to sample sequences and to score any history.

    ``item_choice[u, j]`` is the probability that user ``u`` picks item ``j`` once the intent
    is ``j``'s category (each category's row block sums to 1); ``complement_items`` (``-1``
    padded) and ``complement_weights`` give each item's complements.
    """

    categories: tuple[str, ...]
    item_category: np.ndarray
    consumable: np.ndarray
    complement_items: np.ndarray
    complement_weights: np.ndarray
    intent_prior: np.ndarray
    item_choice: np.ndarray
    stay: float
    complement_rate: float
    repeat_rate: float
    repeat_decay: float

    @property
    def n_users(self) -> int:
        return self.intent_prior.shape[0]

    @property
    def n_items(self) -> int:
        return len(self.item_category)

    # --- shared pieces of sampling and scoring ---------------------------------------------

    def _pad(self, histories: Any) -> tuple[np.ndarray, np.ndarray]:
        """Histories (list of id arrays, or one 2-D array) -> right-padded (-1) matrix, lengths."""
        if isinstance(histories, np.ndarray) and histories.ndim == 2:
            histories = list(histories)
        seqs = [
            checks.ids(np.asarray(h).reshape(-1), self.n_items, f"history {b}")
            for b, h in enumerate(histories)
        ]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        out = np.full((len(seqs), max(1, int(lengths.max(initial=0)))), -1, dtype=np.int64)
        for b, s in enumerate(seqs):
            out[b, : len(s)] = s
        return out, lengths

    def _decayed(self, hist: np.ndarray, upto: np.ndarray) -> np.ndarray:
        """Repeat weight of each past position ``r < upto``: decay^(upto-1-r) for consumables."""
        r = np.arange(hist.shape[1])[None, :]
        live = (r < upto[:, None]) & (hist >= 0)
        age = np.where(live, upto[:, None] - 1 - r, 0)
        return np.where(live & self.consumable[hist.clip(min=0)], self.repeat_decay**age, 0.0)

    def _weights(self, prev: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, ...]:
        """Mixture weights (complement, repeat, intent) given the previous item (-1: none)."""
        has_comp = (prev >= 0) & (self.complement_items[prev.clip(min=0), 0] >= 0)
        w_comp = np.where(has_comp, self.complement_rate, 0.0)
        w_rep = self.repeat_rate * np.minimum(1.0, mass)
        return w_comp, w_rep, 1.0 - w_comp - w_rep

    def _intent_predictive(self, users: np.ndarray, hist: np.ndarray, lengths: np.ndarray):
        """P(intent at the step after each history), by the forward filter over the history."""
        prior = self.intent_prior[users]
        post = prior.copy()
        for s in range(hist.shape[1]):
            live = s < lengths
            if not live.any():
                break
            item = hist[:, s].clip(min=0)
            pred = prior if s == 0 else self.stay * post + (1 - self.stay) * prior
            prev = hist[:, s - 1] if s > 0 else np.full(len(users), -1)
            dec = self._decayed(hist, np.full(len(users), s))
            mass = dec.sum(axis=1)
            w_comp, w_rep, w_int = self._weights(prev, mass)
            p_comp = (
                (self.complement_items[prev.clip(min=0)] == item[:, None])
                * self.complement_weights[prev.clip(min=0)]
            ).sum(axis=1)
            p_rep = np.divide(
                (dec * (hist == item[:, None])).sum(axis=1),
                mass,
                out=np.zeros(len(users)),
                where=mass > 0,
            )
            lik = np.zeros_like(pred)
            lik[:] = (w_comp * p_comp + w_rep * p_rep)[:, None]
            cat = self.item_category[item]
            lik[np.arange(len(users)), cat] += w_int * self.item_choice[users, item]
            new = pred * lik
            new /= new.sum(axis=1, keepdims=True)
            post = np.where(live[:, None], new, post)
        empty = lengths == 0
        out = self.stay * post + (1 - self.stay) * prior
        return np.where(empty[:, None], prior, out)

    # --- the oracle ----------------------------------------------------------------------

    def next_item_probabilities(self, users: Any, histories: Any) -> np.ndarray:
        """Exact P(next item | history) for each (user, history): a (len(users), n_items) array.

        ``histories`` is a list of item-id arrays in time order (or a 2-D array, one row per
        user); an empty history gives the first-step distribution.
        """
        users = checks.ids(np.asarray(users).reshape(-1), self.n_users, "users")
        hist, lengths = self._pad(histories)
        if len(hist) != len(users):
            raise ValueError(f"{len(users)} users but {len(hist)} histories")
        b = np.arange(len(users))
        intent = self._intent_predictive(users, hist, lengths)
        prev = np.where(lengths > 0, hist[b, (lengths - 1).clip(min=0)], -1)
        dec = self._decayed(hist, lengths)
        mass = dec.sum(axis=1)
        w_comp, w_rep, w_int = self._weights(prev, mass)
        probs = (w_int[:, None] * intent[:, self.item_category]) * self.item_choice[users]
        comp_idx = self.complement_items[prev.clip(min=0)]
        comp_w = self.complement_weights[prev.clip(min=0)] * w_comp[:, None]
        ok = comp_idx >= 0
        np.add.at(
            probs, (np.broadcast_to(b[:, None], comp_idx.shape)[ok], comp_idx[ok]), comp_w[ok]
        )
        rep_w = np.divide(dec, mass[:, None], out=np.zeros_like(dec), where=mass[:, None] > 0)
        rep_w *= w_rep[:, None]
        ok = rep_w > 0
        np.add.at(probs, (np.broadcast_to(b[:, None], hist.shape)[ok], hist[ok]), rep_w[ok])
        return probs

    def next_item_probability(self, user: int, history: Any) -> np.ndarray:
        """Exact P(next item | history) of one user: an (n_items,) array that sums to 1."""
        return self.next_item_probabilities([user], [np.asarray(history).reshape(-1)])[0]

    # --- sampling ------------------------------------------------------------------------

    def simulate(
        self, users: Any, lengths: Any, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample one sequence per entry of ``users`` (users may repeat) with the given lengths.

        Returns ``(items, intents, sources)``, each ``(len(users), max(lengths))`` and ``-1``
        past each sequence's end; ``sources`` indexes :data:`SOURCES`.
        """
        users = checks.ids(np.asarray(users).reshape(-1), self.n_users, "users")
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if lengths.shape != users.shape or (lengths < 0).any():
            raise ValueError("lengths must be one non-negative length per user")
        rng = np.random.default_rng(checks.seed(seed))
        n, t_max, n_cat = len(users), int(lengths.max(initial=0)), len(self.categories)
        items = np.full((n, max(t_max, 1)), -1, dtype=np.int64)
        intents, sources = items.copy(), items.copy()
        uniq, inv = np.unique(users, return_inverse=True)
        # per-user cumulative choice within each category block, offset so one searchsorted
        # over the flattened array draws every row's item at once
        order = np.argsort(self.item_category, kind="stable")
        cat_sorted = self.item_category[order]
        within = self.item_choice[uniq][:, order]
        cum = np.zeros_like(within)
        for c in range(n_cat):
            block = cat_sorted == c
            if block.any():
                cs = np.cumsum(within[:, block], axis=1)
                cum[:, block] = c + cs / cs[:, -1:]
        flat = (cum + (np.arange(len(uniq)) * n_cat)[:, None]).ravel()
        prior_cum = np.cumsum(self.intent_prior[uniq], axis=1)
        prior_cum /= prior_cum[:, -1:]
        intent = np.zeros(n, dtype=np.int64)
        rows = np.arange(n)
        for s in range(t_max):
            live = s < lengths
            redraw = (rng.random(n) >= self.stay) | (s == 0)
            drawn = (rng.random(n)[:, None] > prior_cum[inv]).sum(axis=1).clip(max=n_cat - 1)
            intent = np.where(redraw, drawn, intent)
            prev = items[:, s - 1] if s > 0 else np.full(n, -1)
            dec = self._decayed(items, np.full(n, s))
            mass = dec.sum(axis=1)
            w_comp, w_rep, _ = self._weights(prev, mass)
            u = rng.random(n)
            src = np.where(u < w_comp, 1, np.where(u < w_comp + w_rep, 2, 0))
            key = inv * n_cat + intent + (1.0 - rng.random(n))
            pos = np.searchsorted(flat, key) - inv * self.n_items
            choice = order[pos.clip(0, self.n_items - 1)]
            cw = np.cumsum(self.complement_weights[prev.clip(min=0)], axis=1)
            k = (rng.random(n)[:, None] * cw[:, -1:] > cw).sum(axis=1).clip(max=cw.shape[1] - 1)
            comp_pick = self.complement_items[prev.clip(min=0), k]
            choice = np.where(src == 1, comp_pick, choice)
            rw = np.cumsum(dec, axis=1)
            r = (rng.random(n)[:, None] * rw[:, -1:] > rw).sum(axis=1).clip(max=items.shape[1] - 1)
            choice = np.where(src == 2, items[rows, r], choice)
            items[:, s] = np.where(live, choice, -1)
            intents[:, s] = np.where(live, intent, -1)
            sources[:, s] = np.where(live, src, -1)
        return items, intents, sources


def world_from_shop(
    shop: Dataset,
    *,
    seed: int = 0,
    stay: float = 0.8,
    complement_rate: float = 0.35,
    repeat_rate: float = 0.3,
    repeat_decay: float = 0.8,
    taste: float = 1.0,
    n_complements: int = 3,
    linked_fraction: float = 0.6,
) -> SessionWorld:
    """The :class:`SessionWorld` of a shop: intents from the users' category preferences, item
    choice from the latent factors and popularity, complement links between categories.

    A random ``linked_fraction`` of the items in a category of :data:`COMPLEMENT_CATEGORIES`
    gets ``n_complements`` complements in the linked category, drawn by popularity, with
    weights halving from the first to the last.
    """
    checks.frame(shop.items, ("category", "popularity"), "shop.items")
    truth = shop.truth
    if truth is None or not hasattr(truth, "user_factors"):
        raise ValueError("world_from_shop needs the shop's truth: pass datasets.load('shop')")
    for name, v in {
        "stay": stay,
        "complement_rate": complement_rate,
        "repeat_rate": repeat_rate,
        "repeat_decay": repeat_decay,
    }.items():
        checks.fraction(v, name)
    if complement_rate + repeat_rate >= 1:
        raise ValueError("complement_rate + repeat_rate must be < 1 (the intent needs weight)")
    checks.number(taste, "taste", non_negative=True)
    checks.integer(n_complements, "n_complements", minimum=1)
    checks.fraction(linked_fraction, "linked_fraction")
    rng = np.random.default_rng(checks.seed(seed) + 7919)
    cats = tuple(shop.items["category"].cat.categories)
    n_cat = len(cats)
    item_cat = shop.items["category"].cat.codes.to_numpy().astype(np.int64)
    prior = getattr(truth, "category_probability", None)  # P(category | user) of the shop
    if prior is None:
        pref = truth.user_factors[:, :n_cat]
        prior = softmax(pref / pref.std(), axis=1)
    present = np.bincount(item_cat, minlength=n_cat) > 0
    prior = prior * present
    prior /= prior.sum(axis=1, keepdims=True)
    latent_u, latent_v = truth.user_factors[:, n_cat:], truth.item_factors[:, n_cat:]
    pop = shop.items["popularity"].to_numpy(dtype=float)
    logits = np.log(pop)[None, :] + taste * (latent_u @ latent_v.T + truth.item_bias[None, :])
    choice = np.exp(logits - logits.max(axis=1, keepdims=True))
    for c in range(n_cat):
        block = item_cat == c
        if block.any():
            choice[:, block] /= choice[:, block].sum(axis=1, keepdims=True)
    comp_items = np.full((len(item_cat), n_complements), -1, dtype=np.int64)
    comp_w = np.zeros((len(item_cat), n_complements))
    shares = 0.5 ** np.arange(n_complements)
    linked = rng.random(len(item_cat)) < linked_fraction
    for source, target in COMPLEMENT_CATEGORIES.items():
        if source not in cats or target not in cats:
            continue
        src = np.flatnonzero(linked & (item_cat == cats.index(source)))
        pool = np.flatnonzero(item_cat == cats.index(target))
        m = min(n_complements, len(pool) - 1)
        if len(src) == 0 or m < 1:
            continue
        for i in src:  # a few hundred items: each draws its own complements by popularity
            cand = pool[pool != i]
            p = pop[cand] / pop[cand].sum()
            comp_items[i, :m] = rng.choice(cand, size=m, replace=False, p=p)
            comp_w[i, :m] = shares[:m] / shares[:m].sum()
    return SessionWorld(
        categories=cats,
        item_category=item_cat,
        consumable=np.isin(np.array(cats)[item_cat], CONSUMABLE_CATEGORIES),
        complement_items=comp_items,
        complement_weights=comp_w,
        intent_prior=prior,
        item_choice=choice,
        stay=stay,
        complement_rate=complement_rate,
        repeat_rate=repeat_rate,
        repeat_decay=repeat_decay,
    )


def from_shop(
    shop: Dataset,
    *,
    seed: int = 0,
    min_length: int = 4,
    max_length: int = 30,
    **world_kwargs: Any,
) -> Dataset:
    """Sequences of purchases for every shop user, as a :class:`Dataset` named "shop-sessions".

    Each user's sequence length is their number of shop clicks and purchases, clipped to
    ``[min_length, max_length]``, so activity stays long-tailed. Events have the usual columns
    (user, item, timestamp, event="purchase", rating=NaN) plus the hidden truth (``intent``,
    ``source``, ``position``) for explanations; ``truth`` is the :class:`SessionWorld`.
    """
    min_length = checks.integer(min_length, "min_length", minimum=1)
    max_length = checks.integer(max_length, "max_length", minimum=min_length)
    world = world_from_shop(shop, seed=seed, **world_kwargs)
    counts = np.bincount(shop.positives()[USER].to_numpy(), minlength=shop.n_users)
    lengths = counts.clip(min_length, max_length)
    users = np.arange(shop.n_users)
    items, intents, sources = world.simulate(users, lengths, seed=seed)
    rng = np.random.default_rng(checks.seed(seed) + 104729)
    live = items >= 0
    gaps = rng.exponential(6 * 3600.0, size=items.shape).astype(np.int64) + 60
    start = shop.info.get("start_timestamp", START_TIMESTAMP)
    signup = shop.users["signup_day"].to_numpy() if "signup_day" in shop.users else 0
    ts = start + np.asarray(signup)[:, None] * 86_400 + np.cumsum(gaps, axis=1)
    u, pos = np.nonzero(live)
    events = pd.DataFrame(
        {
            USER: u,
            ITEM: items[u, pos],
            TIMESTAMP: ts[u, pos],
            EVENT: "purchase",
            RATING: np.nan,
            "position": pos,
            "intent": pd.Categorical.from_codes(intents[u, pos], categories=list(world.categories)),
            "source": pd.Categorical.from_codes(sources[u, pos], categories=list(SOURCES)),
        }
    )
    events = events.sort_values([TIMESTAMP, USER], kind="stable").reset_index(drop=True)
    items_table = shop.items.copy()
    items_table["consumable"] = world.consumable
    items_table["n_complements"] = (world.complement_items >= 0).sum(axis=1)
    return Dataset(
        name="shop-sessions",
        users=shop.users,
        items=items_table,
        events=events,
        truth=world,
        info={
            **shop.info,
            "sessions_seed": seed,
            "min_length": min_length,
            "max_length": max_length,
        },
    )


def from_public(dataset: Dataset, *, seed: int = 0) -> Dataset:
    """Order a public dataset's events into per-user sequences.

    MovieLens: by timestamp (ratings made in the same second are ordered by item id, as the
    loader sorts them). Online Retail: by invoice time; the lines of one invoice are a basket
    whose order the file does not keep, so they are shuffled with ``seed`` rather than left in
    item-id order, and an item repeated within one invoice counts once. No truth: no oracle.
    """
    ev = checks.frame(dataset.events, (USER, ITEM, TIMESTAMP), f"{dataset.name} events")
    rng = np.random.default_rng(checks.seed(seed))
    if "invoice" in ev:
        ev = ev.drop_duplicates([USER, "invoice", ITEM])
        tie = rng.random(len(ev))
        ev = ev.assign(_tie=tie).sort_values([USER, TIMESTAMP, "invoice", "_tie"], kind="stable")
        ev = ev.drop(columns="_tie")
    else:
        ev = ev.sort_values([USER, TIMESTAMP, ITEM], kind="stable")
    ev = ev.reset_index(drop=True)
    ev["position"] = ev.groupby(USER).cumcount().to_numpy()
    if RATING not in ev:
        ev[RATING] = np.nan
    return Dataset(
        name=f"{dataset.name}-sequences",
        users=dataset.users,
        items=dataset.items,
        events=ev,
        truth=None,
        info=dict(dataset.info),
    )


def load(
    name: str = "shop",
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    shop_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Dataset:
    """Behaviour sequences by dataset name: "shop" (the session world over
    ``load_shop(seed=seed, **shop_kwargs)``, ``kwargs`` going to :func:`from_shop`),
    "movielens-100k" or "online-retail" (read from ``path`` as ``datasets.load`` reads it:
    a local copy, or the verified download when ``path`` is None).

    ``path`` means the same as in ``recbook.datasets.load``: every name takes ``path=None``,
    and the shop, being generated, refuses any other value.
    """
    checks.one_of(name, ("shop", *PUBLIC), "sequence dataset")
    if name == "shop":
        if path is not None:
            raise ValueError(
                f"path={str(path)!r} given for the shop, but the shop is generated from a seed: "
                f"path= is for public data ({', '.join(PUBLIC)})"
            )
        shop = load_shop(seed=seed, **(shop_kwargs or {}))
        return from_shop(shop, seed=seed, **kwargs)
    checks.no_extra({**kwargs, **(shop_kwargs or {})}, f"sessions.load({name!r})")
    key = (name, None if path is None else os.fspath(path))
    if key not in _PUBLIC:  # a public file is read once; each seed only reorders its baskets
        _PUBLIC[key] = (
            load_movielens("100k", path=path)
            if name == "movielens-100k"
            else load_online_retail(path=path)
        )
    return from_public(_PUBLIC[key], seed=seed)


#: Public datasets already read, by (name, path): Online Retail's spreadsheet takes ~20 s to
#: parse, and a comparison over seeds would otherwise read it once per seed.
_PUBLIC: dict[tuple[str, str | None], Dataset] = {}

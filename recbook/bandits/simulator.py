"""Exploration vs exploitation on the shop: a slate simulator with exact regret, and policies.

Why a simulator: a public log only says what happened to the items that were shown. The shop
knows every shopper's true click probability ``p(u, i)`` for every item, so the expected reward
of *any* slate -- and of the best one -- is computed exactly, and regret needs no estimate.

**The simulator's click model** (a position-based model, PBM, built on the shop's truth): a
shopper ``u`` shown the slate ``(i_1, ..., i_k)`` examines position ``r`` with probability
``e_r`` (default ``1 / log2(r + 1)``, the DCG discount: 1, 0.63, 0.5, 0.43, 0.39, ...),
independently of the other positions (no cascade), and clicks an examined item with the shop's
``p(u, i)``. So ``P(click at r) = e_r p(u, i_r)``, the slate's expected reward is its expected
number of clicks ``sum_r e_r p(u, i_r)``, and (rearrangement inequality) the best slate is the
user's ``k`` most clickable items in decreasing order.

**Batched decisions.** Policies decide for a block of arrivals at once (``batch_size``, e.g.
1,000 shoppers) and learn from the block's clicks before the next block, as a production
system that retrains every few minutes does. It makes 100 k steps take seconds; the price is
that a policy cannot react inside a block.

Policies here keep counts per item (or per item and user segment) with *examination-weighted*
trials: a show at position ``r`` counts ``e_r`` trials, so ``clicks / trials`` estimates
``p`` without position bias (the examination curve is taken as known, as in PBM bandits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recbook import checks


def examination(k: int, kind: str = "log") -> np.ndarray:
    """Per-position examination probabilities ``e_1..e_k`` of the simulator's click model.

    ``"log"``: ``1/log2(r+1)`` (the DCG discount); ``"uniform"``: every position examined
    (no position bias); ``"inverse"``: ``1/r``.
    """
    k = checks.integer(k, "k (slate size)", minimum=1)
    checks.one_of(kind, ("log", "uniform", "inverse"), "examination kind")
    r = np.arange(1, k + 1, dtype=float)
    if kind == "log":
        return 1.0 / np.log2(r + 1.0)
    if kind == "inverse":
        return 1.0 / r
    return np.ones(k)


def check_slates(slates: Any, n_items: int, k: int, n_rows: int | None = None) -> np.ndarray:
    """``slates`` as an int64 (n, k) array of distinct item ids per row, or a clear error."""
    arr = np.asarray(slates)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(
            f"slates must be a 2-D (shoppers x k) array with k >= 1 items per slate, got shape "
            f"{arr.shape}; an empty slate shows nothing and cannot be scored"
        )
    if arr.shape[1] != k:
        raise ValueError(f"slates have {arr.shape[1]} positions but the simulator shows k={k}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{arr.shape[0]} slates for {n_rows} shoppers; give one slate each")
    flat = checks.ids(arr.ravel(), n_items, "slate items").reshape(arr.shape)
    if k > 1:
        s = np.sort(flat, axis=1)
        if (s[:, 1:] == s[:, :-1]).any():
            raise ValueError("a slate shows the same item twice; each position needs its own item")
    return flat


def top_slates(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` highest-scoring columns, best first (ties by column: jitter to break)."""
    s = np.asarray(scores, dtype=float)
    checks.integer(k, "k (slate size)", minimum=1, maximum=s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def random_slates(n: int, candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` slates of ``k`` distinct items drawn uniformly from ``candidates``, in random order.

    ``candidates`` is a 1-D array of item ids (the same pool for everyone) or a 2-D (n, M)
    array (one pool per shopper). A pool that lists an item twice still yields distinct items
    (the repeat is ignored), so every distinct item of a pool of ``M`` lands at each position
    with probability ``1/M`` -- the fact the off-policy estimators rely on.
    """
    c = np.asarray(candidates)
    if c.ndim not in (1, 2) or c.shape[-1] == 0:
        raise ValueError(
            f"candidates must be a non-empty 1-D pool or a 2-D (n, M) array, got shape {c.shape}"
        )
    pool = np.broadcast_to(c, (n, c.shape[-1])) if c.ndim == 1 else c
    checks.integer(k, "k (slate size)", minimum=1, maximum=pool.shape[1])
    order = np.argsort(pool, axis=1, kind="stable")
    ranked = np.take_along_axis(pool, order, axis=1)
    repeat = np.zeros(pool.shape, dtype=bool)
    np.put_along_axis(repeat, order[:, 1:], ranked[:, 1:] == ranked[:, :-1], axis=1)
    distinct = pool.shape[1] - repeat.sum(axis=1)
    if len(distinct) and distinct.min() < k:
        raise ValueError(
            f"candidates: a pool holds only {distinct.min()} distinct items, fewer than the "
            f"k={k} a slate needs; give every shopper at least k distinct candidates"
        )
    keys = rng.random(pool.shape)
    keys[repeat] = 2.0  # a repeated id is never drawn before every distinct one
    pick = np.argpartition(keys, k - 1, axis=1)[:, :k]
    # order the k drawn items by their keys: a uniformly random order of the positions
    pick = np.take_along_axis(pick, np.argsort(np.take_along_axis(keys, pick, axis=1)), axis=1)
    return np.take_along_axis(pool, pick, axis=1)


@dataclass
class Feedback:
    """What one block of arrivals produced: the slates, the clicks and the exact rewards."""

    users: np.ndarray  # (n,)
    slates: np.ndarray  # (n, k)
    clicks: np.ndarray  # (n, k) bool
    expected: np.ndarray  # (n,) expected clicks of the shown slate
    best: np.ndarray  # (n,) expected clicks of the user's best slate
    propensities: np.ndarray | None = None  # (n, k) P(item at position | user) under the policy
    fixed: np.ndarray | None = None  # (n,) expected clicks of the best single slate for everyone

    @property
    def regret(self) -> np.ndarray:
        return self.best - self.expected


class SlateEnvironment:
    """Shoppers arrive by activity, see a slate, click by the position-based model above."""

    def __init__(
        self,
        click_prob: np.ndarray,
        arrival: np.ndarray,
        k: int = 5,
        examination_probs: np.ndarray | None = None,
        seed: int = 0,
    ):
        p = checks.probabilities(click_prob, "click_prob")
        if p.ndim != 2:
            raise ValueError(f"click_prob must be (users x items), got shape {p.shape}")
        self.n_users, self.n_items = p.shape
        self.k = checks.integer(k, "k (slate size)", minimum=1)
        if self.k > self.n_items:
            raise ValueError(
                f"k={self.k} items per slate but the catalogue has {self.n_items}; lower k"
            )
        w = checks.finite_array(arrival, "arrival weights")
        if w.shape != (self.n_users,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"arrival must be {self.n_users} non-negative weights, not all 0")
        e = examination(self.k) if examination_probs is None else examination_probs
        e = checks.probabilities(e, "examination probabilities")
        if e.shape != (self.k,):
            raise ValueError(f"examination needs one probability per position ({self.k})")
        self.click_prob = p
        self.arrival = w / w.sum()
        cdf = self.arrival.cumsum()
        self._cdf = cdf / cdf[-1]
        self.examination = e
        self.rng = np.random.default_rng(checks.seed(seed))
        self.available = np.ones(self.n_items, dtype=bool)  # released items (all, here)
        self._set_best(p)

    def _set_best(self, p: np.ndarray) -> None:
        """Each shopper's best slate and the best single slate for everyone, among the
        available items of ``p`` (the click probabilities in force)."""
        e = self.examination
        ranked = np.where(self.available, p, -1.0)  # an unreleased item is never "best"
        order = np.argsort(-e, kind="stable")  # best items go to the most examined positions
        top = top_slates(ranked, self.k)
        self.best_slates = np.empty_like(top)
        self.best_slates[:, order] = top
        self.best_value = np.take_along_axis(p, self.best_slates, axis=1) @ e
        fixed = top_slates((self.arrival @ ranked)[None, :], self.k)[0]
        self.fixed_slate = np.empty_like(fixed)
        self.fixed_slate[order] = fixed
        self.fixed_value = p[:, self.fixed_slate] @ e

    def advance(self, step: int) -> None:
        """Move the clock to arrival ``step`` (a static shop does not change)."""

    @classmethod
    def from_shop(
        cls, ds: Any, k: int = 5, examination_probs: np.ndarray | None = None, seed: int = 0
    ) -> SlateEnvironment:
        """The environment of a shop ``Dataset``: true click probabilities from
        ``truth.click_probability``, arrival rates from each user's share of the logged events."""
        if getattr(ds, "truth", None) is None:
            raise ValueError(
                f"dataset {getattr(ds, 'name', ds)!r} has no truth: regret needs every user's "
                "true click probability, which only the synthetic shop knows"
            )
        users = np.repeat(np.arange(ds.n_users), ds.n_items)
        items = np.tile(np.arange(ds.n_items), ds.n_users)
        p = ds.truth.click_probability(users, items).reshape(ds.n_users, ds.n_items)
        activity = np.bincount(ds.events["user_id"].to_numpy(), minlength=ds.n_users)
        return cls(p, activity.astype(float), k, examination_probs, seed)

    def arrivals(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` shoppers drawn by activity (the same shopper may come back)."""
        rng = self.rng if rng is None else rng
        n = checks.integer(n, "n", minimum=1)
        # what rng.choice(n_users, n, p=arrival) draws, with its cumulative sum computed once
        return self._cdf.searchsorted(rng.random(n), side="right")

    def expected_reward(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Exact expected clicks of each shown slate, ``sum_r e_r p(u, i_r)``."""
        users = checks.ids(users, self.n_users, "users")
        slates = check_slates(slates, self.n_items, self.k, len(users))
        return self._value(self._probs(users, slates))

    def show(
        self,
        users: np.ndarray,
        slates: np.ndarray,
        rng: np.random.Generator | None = None,
        propensities: np.ndarray | None = None,
    ) -> Feedback:
        """Show the slates; draw clicks; return them with the exact and the best rewards."""
        rng = self.rng if rng is None else rng
        users = checks.ids(users, self.n_users, "users")
        slates = check_slates(slates, self.n_items, self.k, len(users))
        if not self.available.all() and not self.available[slates].all():
            raise ValueError(
                f"a slate shows item {slates[~self.available[slates]][0]} before its release; "
                "pick among env.available (simulate() passes it to the policy's restrict())"
            )
        clicks, expected = self._click(self._probs(users, slates), rng)
        if propensities is not None:
            propensities = check_propensities(propensities, slates.shape)
        return Feedback(
            users, slates, clicks, expected, self.best_value[users], propensities,
            self.fixed_value[users],
        )  # fmt: skip

    def policy_value(self, slates: np.ndarray) -> float:
        """Exact expected clicks per arrival of a deterministic slate per user (n_users, k)."""
        slates = check_slates(slates, self.n_items, self.k, self.n_users)
        users = np.arange(self.n_users)
        return float(self.arrival @ self._value(self._probs(users, slates)))

    def _probs(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """The click probabilities in force for each shown (user, item), (n, k)."""
        return self.click_prob[users[:, None], slates]

    def _value(self, p: np.ndarray) -> np.ndarray:
        """Expected clicks of slates whose items have click probabilities ``p`` (n, k)."""
        return p @ self.examination

    def _click(self, p: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Clicks drawn by the click model, and the expected clicks of each slate."""
        pe = p * self.examination
        return rng.random(pe.shape) < pe, pe.sum(axis=1)


class ChangingEnvironment(SlateEnvironment):
    """The simulator with a clock, the regime where exploration has something to find.

    Two things real shops do and the static simulator does not (both disclosed in notebook 08):

    * **new items released mid-run** (``release_step``, one per item; 0 = there from the
      start): a model trained on earlier logs knows nothing about them;
    * **tastes that drift** (``drift_to``): the click probabilities move linearly from
      ``click_prob`` at step 0 to ``drift_to`` at ``drift_steps`` and stay there -- shoppers'
      tastes change with seasons, trends and life events, so yesterday's estimates go stale.

    The world changes in steps of ``phase`` arrivals (and only between the policies' blocks):
    within a phase it is a static shop, so regret stays exact -- each shopper's best slate and
    the best single slate are recomputed among the released items at every phase.
    """

    def __init__(
        self,
        click_prob: np.ndarray,
        arrival: np.ndarray,
        k: int = 5,
        examination_probs: np.ndarray | None = None,
        seed: int = 0,
        *,
        release_step: np.ndarray | None = None,
        drift_to: np.ndarray | None = None,
        drift_steps: int = 1,
        phase: int = 1000,
    ):
        super().__init__(click_prob, arrival, k, examination_probs, seed)
        if release_step is None:
            release_step = np.zeros(self.n_items, dtype=np.int64)
        rel = np.asarray(release_step)
        if (
            rel.shape != (self.n_items,)
            or not np.issubdtype(rel.dtype, np.integer)
            or (rel < 0).any()
        ):
            raise ValueError(
                f"release_step must give each of the {self.n_items} items a step >= 0 (int)"
            )
        if (rel == 0).sum() < self.k:
            raise ValueError(
                f"only {(rel == 0).sum()} items are released at step 0, fewer than k={self.k}"
            )
        self.release_step = rel
        self.drift_to = None
        if drift_to is not None:
            self.drift_to = checks.probabilities(drift_to, "drift_to")
            if self.drift_to.shape != self.click_prob.shape:
                raise ValueError(f"drift_to must have click_prob's shape {self.click_prob.shape}")
        self.drift_steps = checks.integer(drift_steps, "drift_steps", minimum=1)
        self.phase = checks.integer(phase, "phase", minimum=1)
        self._phase, self._w = -1, 0.0
        self._cache: dict[int, tuple[np.ndarray, ...]] = {}
        self.advance(0)

    def advance(self, step: int) -> None:
        """Set the world of arrival ``step``: released items, drifted tastes, best slates
        (cached per phase, so later runs in the same environment do not recompute them)."""
        current = checks.integer(step, "step", minimum=0) // self.phase
        if current == self._phase:
            return
        self._phase = current
        t = current * self.phase
        self._w = 0.0 if self.drift_to is None else min(t / self.drift_steps, 1.0)
        if current not in self._cache:
            self.available = self.release_step <= t
            self._set_best(self.current_prob())
            self._cache[current] = (self.available, self.best_slates, self.best_value,
                                    self.fixed_slate, self.fixed_value)  # fmt: skip
        (self.available, self.best_slates, self.best_value, self.fixed_slate,
         self.fixed_value) = self._cache[current]  # fmt: skip

    def current_prob(self) -> np.ndarray:
        """The (users x items) click probabilities of the current phase (``click_prob`` is
        the start)."""
        if self.drift_to is None or self._w == 0:
            return self.click_prob
        return (1 - self._w) * self.click_prob + self._w * self.drift_to

    def _probs(self, users, slates):
        p = self.click_prob[users[:, None], slates]
        if self.drift_to is None or self._w == 0:
            return p
        return (1 - self._w) * p + self._w * self.drift_to[users[:, None], slates]


class CascadeEnvironment(SlateEnvironment):
    """The cascade click model (Craswell et al. 2008), for off-policy evaluation only: the
    shopper reads the slate top-down, clicks the first item that attracts them (with the
    shop's ``p(u, i)``) and stops. A position's click then depends on the items above it, so
    the position-wise estimators of :mod:`recbook.bandits.off_policy` lose their unbiasedness
    -- the case notebook 08 uses to show where they break. Expected clicks of a slate:
    ``1 - prod_r (1 - p(u, i_r))``; the examination curve is not used."""

    def __init__(self, click_prob, arrival, k=5, seed=0):
        super().__init__(click_prob, arrival, k, np.ones(k), seed)
        self.best_value = self._value(np.take_along_axis(self.click_prob, self.best_slates, 1))
        self.fixed_value = self._value(self.click_prob[:, self.fixed_slate])

    def _value(self, p):
        return 1.0 - np.prod(1.0 - p, axis=1)

    def _click(self, p, rng):
        attracted = rng.random(p.shape) < p
        first = np.where(attracted.any(axis=1), attracted.argmax(axis=1), -1)
        return np.arange(self.k)[None, :] == first[:, None], self._value(p)


def check_propensities(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Logging propensities: in (0, 1], the shape of the slates. A zero propensity means the
    logger could not have shown that item there, so no weight can correct for it."""
    p = checks.probabilities(values, "propensities")
    if p.shape != shape:
        raise ValueError(f"propensities have shape {p.shape}, the slates {shape}")
    if (p <= 0).any():
        raise ValueError(
            "a logged propensity is 0: the logging policy could not have shown that item at "
            "that position, so the log is inconsistent (or the propensity was not recorded)"
        )
    return p

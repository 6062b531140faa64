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
    array (one pool per shopper). Every item of a pool lands at each position with probability
    ``1/M`` -- the fact the off-policy estimators rely on.
    """
    c = np.asarray(candidates)
    pool = np.broadcast_to(c, (n, c.shape[-1])) if c.ndim == 1 else c
    checks.integer(k, "k (slate size)", minimum=1, maximum=pool.shape[1])
    pick = np.argpartition(rng.random(pool.shape), k - 1, axis=1)[:, :k]
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
        self.examination = e
        self.rng = np.random.default_rng(checks.seed(seed))
        order = np.argsort(-e, kind="stable")  # best items go to the most examined positions
        top = top_slates(p, self.k)
        self.best_slates = np.empty_like(top)
        self.best_slates[:, order] = top
        self.best_value = np.take_along_axis(p, self.best_slates, axis=1) @ e

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
        return rng.choice(self.n_users, size=checks.integer(n, "n", minimum=1), p=self.arrival)

    def expected_reward(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Exact expected clicks of each shown slate, ``sum_r e_r p(u, i_r)``."""
        users = checks.ids(users, self.n_users, "users")
        slates = check_slates(slates, self.n_items, self.k, len(users))
        return self.click_prob[users[:, None], slates] @ self.examination

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
        p = self.click_prob[users[:, None], slates] * self.examination
        clicks = rng.random(p.shape) < p
        if propensities is not None:
            propensities = check_propensities(propensities, slates.shape)
        return Feedback(users, slates, clicks, p.sum(axis=1), self.best_value[users], propensities)

    def policy_value(self, slates: np.ndarray) -> float:
        """Exact expected clicks per arrival of a deterministic slate per user (n_users, k)."""
        slates = check_slates(slates, self.n_items, self.k, self.n_users)
        users = np.arange(self.n_users)
        return float(self.arrival @ (self.click_prob[users[:, None], slates] @ self.examination))


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

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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbook import checks, mf
from recbook.columns import ITEM, LABEL, USER


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


# --------------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------------


class Policy:
    """Decides a slate for each shopper of a block (``select``), then learns (``update``)."""

    name = "policy"

    def select(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def update(self, feedback: Feedback) -> None:  # noqa: B027 (a fixed policy learns nothing)
        """Learn from a block's feedback; fixed policies ignore it."""


class FixedScores(Policy):
    """Greedy on a fixed score matrix (a trained model, or the truth for the oracle)."""

    def __init__(self, scores: np.ndarray, k: int, name: str = "greedy (fixed model)"):
        self.scores = checks.finite_array(scores, "scores")
        self.k, self.name = checks.integer(k, "k", minimum=1), name
        self.slates = top_slates(self.scores, self.k)

    def select(self, users, rng):
        return self.slates[users]


class CountPolicy(Policy):
    """Shared book-keeping of the per-item (or per-segment-and-item) policies."""

    def __init__(
        self,
        n_items: int,
        examination_probs: np.ndarray,
        segments: np.ndarray | None = None,
        name: str = "",
    ):
        self.n_items = checks.integer(n_items, "n_items", minimum=1)
        self.exam = checks.probabilities(examination_probs, "examination probabilities")
        self.k = len(self.exam)
        if self.k > self.n_items:
            raise ValueError(f"k={self.k} exceeds the catalogue ({self.n_items} items)")
        if segments is None:
            self.segments, n_seg = None, 1
        else:  # one segment id per user, 0..n_segments-1
            raw = np.asarray(segments)
            n_seg = int(raw.max()) + 1 if raw.size else 0
            self.segments = checks.ids(raw, max(n_seg, 1), "segments")
        self.trials = np.zeros((n_seg, self.n_items))
        self.clicks = np.zeros((n_seg, self.n_items))
        self.name = name or type(self).__name__

    def _seg(self, users: np.ndarray) -> np.ndarray:
        return (
            np.zeros(len(users), dtype=np.int64) if self.segments is None else self.segments[users]
        )

    def update(self, feedback: Feedback) -> None:
        seg = self._seg(feedback.users)
        flat = (seg[:, None] * self.n_items + feedback.slates).ravel()
        size = self.trials.size
        self.trials += np.bincount(
            flat, weights=np.broadcast_to(self.exam, feedback.slates.shape).ravel(), minlength=size
        ).reshape(self.trials.shape)
        self.clicks += np.bincount(
            flat, weights=feedback.clicks.ravel().astype(float), minlength=size
        ).reshape(self.clicks.shape)

    def _means(self, users: np.ndarray) -> np.ndarray:
        seg = self._seg(users)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.clicks / self.trials
        return np.nan_to_num(mean, nan=0.0)[seg]


class EpsilonGreedy(CountPolicy):
    """With probability ``epsilon`` a uniformly random slate, otherwise the best estimated one.

    Unseen items have estimate 0; ties are broken by a random jitter."""

    def __init__(self, n_items, examination_probs, epsilon: float = 0.1, segments=None, name=""):
        super().__init__(n_items, examination_probs, segments, name or f"ε-greedy (ε={epsilon})")
        self.epsilon = checks.fraction(epsilon, "epsilon")

    def select(self, users, rng):
        scores = self._means(users) + 1e-9 * rng.random((len(users), self.n_items))
        slates = top_slates(scores, self.k)
        explore = rng.random(len(users)) < self.epsilon
        if explore.any():
            slates[explore] = random_slates(explore.sum(), np.arange(self.n_items), self.k, rng)
        return slates


class UCB(CountPolicy):
    """UCB1 on examination-weighted counts: ``mean + c sqrt(2 ln t / trials)``; unseen first."""

    def __init__(self, n_items, examination_probs, c: float = 1.0, segments=None, name=""):
        super().__init__(n_items, examination_probs, segments, name or "UCB1")
        self.c = checks.number(c, "c", non_negative=True)

    def select(self, users, rng):
        seg = self._seg(users)
        t = np.maximum(self.trials.sum(axis=1, keepdims=True), 1.0)
        seen = self.trials > 0
        bonus = np.full(self.trials.shape, np.inf)  # unseen items first
        bonus[seen] = self.c * np.sqrt(
            2.0 * np.log(np.broadcast_to(t, seen.shape)[seen]) / self.trials[seen]
        )
        scores = self._means(users) + bonus[seg] + 1e-9 * rng.random((len(users), self.n_items))
        return top_slates(scores, self.k)


class Thompson(CountPolicy):
    """Beta-Bernoulli Thompson sampling: each shopper's slate is the top-k of one posterior draw
    per item, ``Beta(1 + clicks, 1 + max(trials - clicks, 0))`` (trials examination-weighted)."""

    def __init__(self, n_items, examination_probs, segments=None, name=""):
        default = "Thompson (per item)" if segments is None else "Thompson (per segment)"
        super().__init__(n_items, examination_probs, segments, name or default)

    def select(self, users, rng):
        seg = self._seg(users)
        a = 1.0 + self.clicks[seg]
        b = 1.0 + np.maximum(self.trials - self.clicks, 0.0)[seg]
        return top_slates(rng.beta(a, b), self.k)


class LinearThompson(Policy):
    """Linear Thompson sampling per item on fixed user features (e.g. learned embeddings).

    Item ``i`` has ``theta_i`` with ``E[click at r] = e_r x_u . theta_i``; the regression on
    ``z = e_r x_u`` is exact for the position-based model. Ridge posterior
    ``N(A_i^-1 b_i, v^2 A_i^-1)`` with ``A_i = lambda I + sum z z^T``; one draw per item per
    block (batched Thompson sampling), so a block costs one (users x d) @ (d x items) product.
    ``prior_mean`` (n_items, d) starts each item from a trained model's vector instead of 0.
    """

    def __init__(
        self,
        user_features: np.ndarray,
        n_items: int,
        examination_probs: np.ndarray,
        ridge: float = 1.0,
        noise: float = 0.5,
        prior_mean: np.ndarray | None = None,
        name: str = "linear Thompson (contextual)",
    ):
        self.x = checks.finite_array(user_features, "user_features")
        if self.x.ndim != 2:
            raise ValueError(f"user_features must be (users x d), got {self.x.shape}")
        self.n_items = checks.integer(n_items, "n_items", minimum=1)
        self.exam = checks.probabilities(examination_probs, "examination probabilities")
        self.k = len(self.exam)
        if self.k > self.n_items:
            raise ValueError(f"k={self.k} exceeds the catalogue ({self.n_items} items)")
        d = self.x.shape[1]
        self.ridge = checks.number(ridge, "ridge", positive=True)
        self.noise = checks.number(noise, "noise", non_negative=True)
        self.A = np.broadcast_to(self.ridge * np.eye(d), (self.n_items, d, d)).copy()
        self.b = np.zeros((self.n_items, d))
        if prior_mean is not None:  # a warm start: the prior N(prior_mean, v^2 / ridge I)
            theta0 = checks.finite_array(prior_mean, "prior_mean")
            if theta0.shape != (self.n_items, d):
                raise ValueError(f"prior_mean must be (n_items, d) = {(self.n_items, d)}")
            self.b = self.ridge * theta0
        self.name = name

    def sample_theta(self, rng: np.random.Generator) -> np.ndarray:
        """One posterior draw of every item's ``theta`` (n_items, d)."""
        chol = np.linalg.cholesky(self.A)
        mean = np.linalg.solve(self.A, self.b[..., None])[..., 0]
        z = rng.standard_normal(self.b.shape)
        # theta = mean + v L^-T z has covariance v^2 (L L^T)^-1 = v^2 A^-1
        step = np.linalg.solve(np.swapaxes(chol, 1, 2), z[..., None])[..., 0]
        return mean + self.noise * step

    def select(self, users, rng):
        return top_slates(self.x[users] @ self.sample_theta(rng).T, self.k)

    def update(self, feedback: Feedback) -> None:
        z = (self.x[feedback.users][:, None, :] * self.exam[None, :, None]).reshape(
            -1, self.x.shape[1]
        )
        items = feedback.slates.ravel()
        y = feedback.clicks.ravel().astype(float)
        onehot = sp.csr_matrix(
            (np.ones(len(items)), (items, np.arange(len(items)))),
            shape=(self.n_items, len(items)),
        )
        outer = (z[:, :, None] * z[:, None, :]).reshape(len(items), -1)
        self.A += (onehot @ outer).reshape(self.A.shape)
        self.b += onehot @ (z * y[:, None])


class EpsilonMixture(Policy):
    """A logging policy with exact propensities: with probability ``1 - epsilon`` the slate of a
    fixed score matrix, otherwise a uniform random slate from each user's ``candidates``.

    ``P(item i at position r | u) = (1 - eps) 1[greedy_r(u) = i] + eps 1[i in C_u] / M``.
    """

    def __init__(
        self, scores: np.ndarray, k: int, epsilon: float, candidates: np.ndarray | None = None
    ):
        scores = checks.finite_array(scores, "scores")
        self.k = checks.integer(k, "k", minimum=1, maximum=scores.shape[1])
        self.epsilon = checks.number(epsilon, "epsilon", non_negative=True)
        if self.epsilon > 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if candidates is None:
            candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        self.candidates = np.asarray(candidates)
        self.m = self.candidates.shape[1]
        if self.m < self.k:
            raise ValueError(f"{self.m} candidates per user cannot fill k={self.k} positions")
        masked = np.full_like(scores, -np.inf)
        rows = np.arange(scores.shape[0])[:, None]
        masked[rows, self.candidates] = scores[rows, self.candidates]
        self.greedy = top_slates(masked, self.k)
        self.in_pool = np.zeros(scores.shape, dtype=bool)
        self.in_pool[rows, self.candidates] = True
        self.name = f"ε-mixture (ε={epsilon}, {self.m} candidates)"

    def select(self, users, rng):
        slates = self.greedy[users].copy()
        explore = rng.random(len(users)) < self.epsilon
        if explore.any():
            slates[explore] = random_slates(
                explore.sum(), self.candidates[users[explore]], self.k, rng
            )
        return slates

    def value(self, env: SlateEnvironment) -> float:
        """Exact expected clicks per arrival of this stochastic policy in ``env``."""
        users = np.arange(env.n_users)
        p = env.click_prob
        greedy = p[users[:, None], self.greedy] @ env.examination
        pool = p[users[:, None], self.candidates].mean(axis=1) * env.examination.sum()
        return float(env.arrival @ ((1 - self.epsilon) * greedy + self.epsilon * pool))

    def propensity(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """``P(slates[t, r] at position r | users[t])`` under this policy (n, k)."""
        greedy = self.greedy[users] == slates
        pool = self.in_pool[users[:, None], slates]
        return (1 - self.epsilon) * greedy + self.epsilon * pool / self.m


# --------------------------------------------------------------------------------------------
# running a policy
# --------------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Per-step rewards of one run, and how often each item was shown."""

    name: str
    users: np.ndarray
    expected: np.ndarray
    best: np.ndarray
    exposure: np.ndarray  # shows per item
    seconds: float = 0.0
    logs: list[Feedback] = field(default_factory=list)

    @property
    def regret(self) -> np.ndarray:
        return self.best - self.expected

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)


def simulate(
    env: SlateEnvironment,
    policy: Policy,
    horizon: int,
    batch_size: int = 1000,
    seed: int = 0,
    keep_logs: bool = False,
    propensity: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Trajectory:
    """Run ``policy`` for ``horizon`` arrivals in blocks of ``batch_size``; deterministic in
    ``seed`` (arrivals, the policy's randomness and the clicks use one generator)."""
    horizon = checks.integer(horizon, "horizon", minimum=1)
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    rng = np.random.default_rng(checks.seed(seed))
    expected = np.empty(horizon)
    best = np.empty(horizon)
    arrived = np.empty(horizon, dtype=np.int64)
    exposure = np.zeros(env.n_items)
    logs: list[Feedback] = []
    start = time.perf_counter()
    for lo in range(0, horizon, batch_size):
        users = env.arrivals(min(batch_size, horizon - lo), rng)
        slates = policy.select(users, rng)
        props = propensity(users, slates) if propensity is not None else None
        fb = env.show(users, slates, rng, props)
        policy.update(fb)
        expected[lo : lo + len(users)] = fb.expected
        best[lo : lo + len(users)] = fb.best
        arrived[lo : lo + len(users)] = users
        exposure += np.bincount(fb.slates.ravel(), minlength=env.n_items)
        if keep_logs:
            logs.append(fb)
    seconds = time.perf_counter() - start
    return Trajectory(policy.name, arrived, expected, best, exposure, seconds, logs)


# --------------------------------------------------------------------------------------------
# what the loop does to the catalogue
# --------------------------------------------------------------------------------------------


def coverage(exposure: np.ndarray) -> float:
    """Share of the catalogue shown at least once."""
    e = checks.finite_array(exposure, "exposure")
    if e.ndim != 1 or e.size == 0 or (e < 0).any():
        raise ValueError("exposure must be a non-empty 1-D array of non-negative counts")
    return float((e > 0).mean())


def gini(exposure: np.ndarray) -> float:
    """Gini coefficient of exposure over items: 0 = every item shown equally, -> 1 = all on one."""
    e = np.sort(checks.finite_array(exposure, "exposure"))
    if e.ndim != 1 or e.size == 0 or (e < 0).any() or e.sum() <= 0:
        raise ValueError("exposure must be non-negative counts with a positive total")
    n = e.size
    return float((2 * np.arange(1, n + 1) - n - 1) @ e / (n * e.sum()))


# --------------------------------------------------------------------------------------------
# a click model trained on logs, and the loop that retrains it on its own recommendations
# --------------------------------------------------------------------------------------------


def fit_click_model(
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    n_users: int,
    n_items: int,
    rank: int = 16,
    iters: int = 10,
    seed: int = 0,
) -> mf.MFModel:
    """Biased MF (ALS, :func:`recbook.mf.fit_als`) of the click rate of each logged pair.

    Repeated impressions of a pair are averaged first (ALS takes one target per pair).
    ``labels`` are clicks (0/1) or examination-corrected clicks ``click / e_r``, whose mean is
    the click probability without position bias.
    """
    u = checks.ids(users, n_users, "users")
    i = checks.ids(items, n_items, "items")
    y = checks.finite_array(labels, "labels")
    if not (len(u) == len(i) == len(y)) or len(u) == 0:
        raise ValueError("users, items and labels must be non-empty and of the same length")
    log = pd.DataFrame({USER: u, ITEM: i, LABEL: y})
    pairs = log.groupby([USER, ITEM], as_index=False)[LABEL].mean()
    return mf.fit_als(
        pairs, n_users, n_items, rank=rank, iters=iters, seed=seed, progress=False,
        col_rating=LABEL,
    )  # fmt: skip


def embedding_features(model: mf.MFModel) -> tuple[np.ndarray, np.ndarray]:
    """Standardised user features ``[1, b_u, p_u]`` of a biased MF model, and each item's
    vector in that basis, so that ``features @ item_vectors.T`` equals the model's scores.

    Standardising puts every coordinate on the same scale, so one ridge penalty and one
    exploration noise fit all of them (the raw factors are ~0.1 and would be over-explored).
    """
    f = np.hstack([model.user_bias[:, None], model.user_factors])
    mean, sd = f.mean(axis=0), f.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    x = np.hstack([np.ones((len(f), 1)), (f - mean) / sd])
    q = np.hstack([np.ones((model.n_items, 1)), model.item_factors])  # b_u enters with weight 1
    theta = np.hstack([(model.global_mean + model.item_bias + q @ mean)[:, None], q * sd])
    return x, theta


def feedback_loop(
    env: SlateEnvironment,
    base_log: tuple[np.ndarray, np.ndarray, np.ndarray],
    epsilon: float,
    rounds: int,
    steps_per_round: int,
    cold_items: np.ndarray,
    batch_size: int = 1000,
    rank: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """Retrain a click model on everything logged so far, serve its top-k slates (with
    probability ``epsilon`` a uniformly random slate instead), log, repeat.

    ``epsilon = 0`` is the greedy loop of a system without exploration. Each round's row:
    coverage, Gini and cold-start share of the exposures served in the round; the true
    click-through per shown position of the round; and, for the model as retrained at the end
    of the round, the coverage of its greedy recommendations and their true click-through
    (the long run: what the system delivers once it stops exploring).
    """
    rounds = checks.integer(rounds, "rounds", minimum=1)
    cold = np.asarray(cold_items, dtype=bool)
    if cold.shape != (env.n_items,):
        raise ValueError(f"cold_items must be a boolean mask over the {env.n_items} items")
    users, items, labels = (np.asarray(a) for a in base_log)
    model = fit_click_model(users, items, labels, env.n_users, env.n_items, rank, seed=seed)
    rows = []
    for rnd in range(1, rounds + 1):
        scores = model.score_matrix()
        policy: Policy
        if epsilon > 0:
            policy = EpsilonMixture(scores, env.k, epsilon)
        else:
            policy = FixedScores(scores, env.k)
        run = simulate(env, policy, steps_per_round, batch_size, seed * 1000 + rnd, keep_logs=True)
        shown_u = np.concatenate([np.repeat(f.users, env.k) for f in run.logs])
        shown_i = np.concatenate([f.slates.ravel() for f in run.logs])
        corrected = np.concatenate([(f.clicks / env.examination).ravel() for f in run.logs])
        users = np.concatenate([users, shown_u])
        items = np.concatenate([items, shown_i])
        labels = np.concatenate([labels, corrected])
        model = fit_click_model(users, items, labels, env.n_users, env.n_items, rank, seed=seed)
        greedy = top_slates(model.score_matrix(), env.k)
        rec_exposure = np.bincount(greedy.ravel(), weights=np.repeat(env.arrival, env.k),
                                   minlength=env.n_items)  # fmt: skip
        rows.append(
            {
                "round": rnd,
                "coverage": coverage(run.exposure),
                "gini": gini(run.exposure),
                "cold-start share": float(run.exposure[cold].sum() / run.exposure.sum()),
                "ctr (served)": float(run.expected.mean() / env.k),
                "coverage (model's top-k)": coverage(rec_exposure),
                "ctr (model's top-k)": env.policy_value(greedy) / env.k,
            }
        )
    return pd.DataFrame(rows).set_index("round")

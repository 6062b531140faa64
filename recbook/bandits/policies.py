"""Slate policies for the simulator: fixed scores, count-based bandits (ε-greedy, UCB, Thompson),
linear Thompson sampling around a trained model, and an ε-mixture with exact propensities.

Each decides a slate for every shopper of a block (``select``) and then learns from the
block's feedback (``update``); see :mod:`recbook.bandits.simulator` for the click model and the
examination-weighted counts.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recbook import checks
from recbook.bandits.simulator import Feedback, SlateEnvironment, random_slates, top_slates

# --------------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------------


class Policy:
    """Decides a slate for each shopper of a block (``select``), then learns (``update``)."""

    name = "policy"
    available: np.ndarray | None = None  # released items; None = the whole catalogue

    def select(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def restrict(self, available: np.ndarray) -> None:
        """Pick only among ``available`` items from now on (items released mid-run)."""
        self.available = np.asarray(available, dtype=bool).copy()

    def _masked(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` with unreleased items at -inf, so no slate shows them."""
        if self.available is None or self.available.all():
            return scores
        return np.where(self.available, scores, -np.inf)

    def _pool(self, n_items: int) -> np.ndarray:
        """The item ids a random slate may draw from."""
        return np.arange(n_items) if self.available is None else np.flatnonzero(self.available)

    def update(self, feedback: Feedback) -> None:  # noqa: B027 (a fixed policy learns nothing)
        """Learn from a block's feedback; fixed policies ignore it."""


class FixedScores(Policy):
    """Greedy on a fixed score matrix (a trained model, or the truth for the oracle)."""

    def __init__(self, scores: np.ndarray, k: int, name: str = "greedy (fixed model)"):
        self.scores = checks.finite_array(scores, "scores")
        self.k, self.name = checks.integer(k, "k", minimum=1), name
        self.slates = top_slates(self.scores, self.k)

    def restrict(self, available):
        if self.available is not None and np.array_equal(self.available, available):
            return  # nothing released since: the slates stand
        super().restrict(available)
        self.slates = top_slates(self._masked(self.scores), self.k)

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
        slates = top_slates(self._masked(scores), self.k)
        explore = rng.random(len(users)) < self.epsilon
        if explore.any():
            slates[explore] = random_slates(explore.sum(), self._pool(self.n_items), self.k, rng)
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
        return top_slates(self._masked(scores), self.k)


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
        return top_slates(self._masked(rng.beta(a, b)), self.k)


class LinearThompson(Policy):
    """Linear Thompson sampling per item on fixed user features (e.g. learned embeddings).

    Item ``i`` has ``theta_i`` with ``E[click at r] = e_r x_u . theta_i``; the regression on
    ``z = e_r x_u`` is exact for the position-based model. Ridge posterior
    ``N(A_i^-1 b_i, v^2 A_i^-1)`` with ``A_i = lambda I + sum z z^T``; one draw per item per
    block (batched Thompson sampling), so a block costs one (users x d) @ (d x items) product.
    ``prior_mean`` (n_items, d) starts each item from a trained model's vector instead of 0;
    ``ridge`` may be one value per item (a weak prior for items nobody has seen).

    ``noise=0`` is the exploration-free twin (greedy on the posterior mean, still learning);
    ``epsilon > 0`` adds ε-greedy's random slates (linear ε-greedy). Scores are rounded to
    1e-10 before ranking: the solves' last bits depend on the BLAS kernel (OpenBLAS picks one
    by CPU), and without rounding a near-tie flipped by them sends the whole run elsewhere.
    """

    def __init__(
        self,
        user_features: np.ndarray,
        n_items: int,
        examination_probs: np.ndarray,
        ridge: float | np.ndarray = 1.0,
        noise: float = 0.5,
        prior_mean: np.ndarray | None = None,
        name: str = "linear Thompson (contextual)",
        epsilon: float = 0.0,
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
        lam = checks.finite_array(np.broadcast_to(ridge, (self.n_items,)), "ridge")
        if (lam <= 0).any():
            raise ValueError("ridge must be positive (one value, or one per item)")
        self.ridge = lam
        self.noise = checks.number(noise, "noise", non_negative=True)
        self.epsilon = checks.number(epsilon, "epsilon", non_negative=True)
        if self.epsilon > 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.A = lam[:, None, None] * np.eye(d)
        self.b = np.zeros((self.n_items, d))
        if prior_mean is not None:  # a warm start: the prior N(prior_mean, v^2 / ridge I)
            theta0 = checks.finite_array(prior_mean, "prior_mean")
            if theta0.shape != (self.n_items, d):
                raise ValueError(f"prior_mean must be (n_items, d) = {(self.n_items, d)}")
            self.b = self.ridge[:, None] * theta0
        self.name = name

    def sample_theta(self, rng: np.random.Generator) -> np.ndarray:
        """One posterior draw of every item's ``theta`` (n_items, d)."""
        chol = np.linalg.cholesky(self.A)
        mean = np.linalg.solve(self.A, self.b[..., None])[..., 0]
        z = rng.standard_normal(self.b.shape)
        # theta = mean + v L^-T z has covariance v^2 (L L^T)^-1 = v^2 A^-1
        step = np.linalg.solve(np.swapaxes(chol, 1, 2), z[..., None])[..., 0]
        return mean + self.noise * step

    def scores(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What the slates rank: one posterior draw per item (block), scored for ``users``."""
        return self.x[users] @ self.sample_theta(rng).T

    def select(self, users, rng):
        scores = np.round(self.scores(users, rng), 10)  # see the class docstring
        slates = top_slates(self._masked(scores), self.k)
        if self.epsilon > 0:
            explore = rng.random(len(users)) < self.epsilon
            if explore.any():
                slates[explore] = random_slates(
                    explore.sum(), self._pool(self.n_items), self.k, rng
                )
        return slates

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


class LinUCB(LinearThompson):
    """LinUCB (Li et al. 2010) on the same ridge regression: rank by the posterior mean plus
    ``alpha`` times each score's standard deviation ``sqrt(x^T A_i^-1 x)`` -- optimism instead
    of sampling. Deterministic given the data, so a whole block sees the same bonuses."""

    def __init__(self, user_features, n_items, examination_probs, ridge=1.0, alpha=0.1,
                 prior_mean=None, name="LinUCB"):  # fmt: skip
        super().__init__(user_features, n_items, examination_probs, ridge, 0.0, prior_mean, name)
        self.alpha = checks.number(alpha, "alpha", non_negative=True)

    def scores(self, users, rng):
        x = self.x[users]
        inv = np.linalg.inv(self.A)  # (items, d, d)
        mean = np.linalg.solve(self.A, self.b[..., None])[..., 0]
        d = x.shape[1]
        quad = ((inv.reshape(-1, d) @ x.T).reshape(self.n_items, d, -1) * x.T[None]).sum(axis=1)
        return x @ mean.T + self.alpha * np.sqrt(np.maximum(quad.T, 0.0))


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

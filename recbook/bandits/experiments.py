"""Running policies against the simulator: a run's regret and exposure, what the loop does to
the catalogue (coverage, Gini), and the feedback loop that retrains a click model on its own
recommendations (001 §2.4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recbook import checks, mf
from recbook.bandits.policies import EpsilonMixture, FixedScores, Policy
from recbook.bandits.simulator import Feedback, SlateEnvironment, top_slates
from recbook.columns import ITEM, RATING, USER

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
    fixed: np.ndarray | None = None  # expected clicks of the best single slate, per step

    @property
    def regret(self) -> np.ndarray:
        return self.best - self.expected

    @property
    def regret_vs_fixed(self) -> np.ndarray:
        """Regret against the best single slate for everyone: the yardstick of a policy that
        ignores who the shopper is."""
        if self.fixed is None:
            raise ValueError("this trajectory did not record the best single slate's value")
        return self.fixed - self.expected

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
    ``seed`` (arrivals, the policy's randomness and the clicks use one generator).

    Before each block the environment's clock moves (:meth:`SlateEnvironment.advance`; a
    :class:`ChangingEnvironment` releases items and drifts) and the policy learns which items
    it may show (``restrict``)."""
    horizon = checks.integer(horizon, "horizon", minimum=1)
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    rng = np.random.default_rng(checks.seed(seed))
    expected = np.empty(horizon)
    best = np.empty(horizon)
    fixed = np.empty(horizon)
    arrived = np.empty(horizon, dtype=np.int64)
    exposure = np.zeros(env.n_items)
    logs: list[Feedback] = []
    start = time.perf_counter()
    for lo in range(0, horizon, batch_size):
        env.advance(lo)
        if not env.available.all() or policy.available is not None:
            policy.restrict(env.available)
        users = env.arrivals(min(batch_size, horizon - lo), rng)
        slates = policy.select(users, rng)
        props = propensity(users, slates) if propensity is not None else None
        fb = env.show(users, slates, rng, props)
        policy.update(fb)
        expected[lo : lo + len(users)] = fb.expected
        best[lo : lo + len(users)] = fb.best
        fixed[lo : lo + len(users)] = fb.fixed
        arrived[lo : lo + len(users)] = users
        exposure += np.bincount(fb.slates.ravel(), minlength=env.n_items)
        if keep_logs:
            logs.append(fb)
    seconds = time.perf_counter() - start
    return Trajectory(policy.name, arrived, expected, best, exposure, seconds, logs, fixed)


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
    # the averaged label is the target ALS fits, so it goes in ALS's target column
    log = pd.DataFrame({USER: u, ITEM: i, RATING: y})
    pairs = log.groupby([USER, ITEM], as_index=False)[RATING].mean()
    return mf.fit_als(pairs, n_users, n_items, rank=rank, iters=iters, seed=seed, progress=False)


def embedding_features(model: mf.MFModel) -> tuple[np.ndarray, np.ndarray]:
    """Standardised user features ``[1, b_u, p_u]`` of a biased MF model, and each item's
    vector in that basis, so that ``features @ item_vectors.T`` equals the model's scores.

    Standardising puts every coordinate on the same scale, so one ridge penalty and one
    exploration noise fit all of them (the raw factors are ~0.1 and would be over-explored).

    The factors are first put in a canonical basis (the singular vectors of ``P Q^T``, signs
    fixed): MF is unchanged by rotating both factor matrices, and the basis ALS lands in
    depends on its SVD start, whose vectors differ between BLAS kernels (OpenBLAS picks one by
    CPU). Without this, the same seed gave another basis -- and another bandit run -- on
    another machine; the scores ``P Q^T`` agree to rounding, so the canonical basis does too.
    """
    p_f, q_f = canonical_factors(model.user_factors, model.item_factors)
    f = np.hstack([model.user_bias[:, None], p_f])
    mean, sd = f.mean(axis=0), f.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    x = np.hstack([np.ones((len(f), 1)), (f - mean) / sd])
    q = np.hstack([np.ones((model.n_items, 1)), q_f])  # b_u enters with weight 1
    theta = np.hstack([(model.global_mean + model.item_bias + q @ mean)[:, None], q * sd])
    return x, theta


def canonical_factors(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P', Q')`` with ``P' Q'^T = P Q^T`` in the basis of its singular vectors, each column
    scaled by the root of its singular value and signed so its largest item entry is
    positive: the same for every rotation of ``(P, Q)``."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape[1] == 0:
        return p, q
    up, rp = np.linalg.qr(p)
    uq, rq = np.linalg.qr(q)
    w, sv, vt = np.linalg.svd(rp @ rq.T)
    root = np.sqrt(sv)
    p2, q2 = (up @ w) * root, (uq @ vt.T) * root
    sign = np.sign(q2[np.abs(q2).argmax(axis=0), np.arange(q2.shape[1])])
    sign[sign == 0] = 1.0
    return p2 * sign, q2 * sign


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
                "cold-start share (model's top-k)": float(rec_exposure[cold].sum() / env.k),
                "ctr (model's top-k)": env.policy_value(greedy) / env.k,
            }
        )
    return pd.DataFrame(rows).set_index("round")

"""Off-policy evaluation: a new policy's click-through estimated from an old policy's logs.

Names and conventions follow Open Bandit Pipeline (OBP, Saito et al. 2021): a log is one row per
(round, position) with ``action``, ``position``, ``reward`` and ``pscore`` (the logging policy's
probability of that action at that position); ``evaluation_pscore`` is the new policy's
probability of the same (OBP's ``action_dist[i, action[i], position[i]]``). The policy value is
the expected reward per row -- the click-through per shown position -- as OBP's
``estimate_policy_value`` returns it.

Unbiasedness of the position-wise estimators needs the reward at a position to depend only on
the item there (true for the simulator's position-based click model) and every action the new
policy can take to have ``pscore > 0`` ("overlap"). Under a cascade (a shopper stops at the
first click) the reward at a position depends on the items above it, and position-wise IPS is
biased; slate estimators (OBP's RIPS, cascade-DR) are the reference there. Where the new
policy picks an action the logger never takes, nothing in the log speaks for it, and
:func:`check_overlap` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from recbook import checks, evaluation

ESTIMATORS = ("ips", "snips", "dr", "replay")


def _rows(reward: Any, pscore: Any, evaluation_pscore: Any) -> tuple[np.ndarray, ...]:
    r = checks.finite_array(reward, "reward")
    if r.ndim != 1 or r.size == 0:
        raise ValueError("reward must be a non-empty 1-D array (one row per round and position)")
    p = checks.probabilities(pscore, "pscore")
    checks.same_shape(r, p, "reward vs pscore")
    if (p <= 0).any():
        raise ValueError(
            "pscore has zeros: a logged action the logging policy could not take; importance "
            "weights are undefined -- fix the logged propensities"
        )
    pe = checks.probabilities(evaluation_pscore, "evaluation_pscore")
    checks.same_shape(r, pe, "reward vs evaluation_pscore")
    return r, p, pe


def importance_weights(pscore: Any, evaluation_pscore: Any) -> np.ndarray:
    """``w = pi_e(a | x, pos) / pi_b(a | x, pos)`` for each logged row."""
    _, p, pe = _rows(np.zeros(np.shape(pscore)), pscore, evaluation_pscore)
    return pe / p


def ips(reward: Any, pscore: Any, evaluation_pscore: Any) -> float:
    """Inverse propensity scoring: ``mean(w r)``. Unbiased under overlap; high variance."""
    r, p, pe = _rows(reward, pscore, evaluation_pscore)
    return float(np.mean(pe / p * r))


def snips(reward: Any, pscore: Any, evaluation_pscore: Any) -> float:
    """Self-normalised IPS: ``sum(w r) / sum(w)``; slightly biased, much less variance."""
    r, p, pe = _rows(reward, pscore, evaluation_pscore)
    w = pe / p
    if w.sum() <= 0:
        raise ValueError("the evaluation policy takes none of the logged actions: sum(w) = 0")
    return float(np.sum(w * r) / np.sum(w))


def dr(
    reward: Any,
    pscore: Any,
    evaluation_pscore: Any,
    estimated_rewards: Any,
    estimated_policy_rewards: Any,
) -> float:
    """Doubly robust: ``mean(q_pi(x) + w (r - q(x, a)))``.

    ``estimated_rewards``: a reward model's prediction for the logged action at its position
    (OBP's ``estimated_rewards_by_reg_model[i, action[i], position[i]]``);
    ``estimated_policy_rewards``: the same model averaged over the new policy's actions,
    ``sum_a pi_e(a | x, pos) q(x, a, pos)``. Unbiased if either the propensities or the model
    are right; the importance-weighted term only corrects the model's residual.
    """
    r, p, pe = _rows(reward, pscore, evaluation_pscore)
    q = checks.finite_array(estimated_rewards, "estimated_rewards")
    q_pi = checks.finite_array(estimated_policy_rewards, "estimated_policy_rewards")
    checks.same_shape(r, q, "reward vs estimated_rewards")
    checks.same_shape(r, q_pi, "reward vs estimated_policy_rewards")
    return float(np.mean(q_pi + pe / p * (r - q)))


def replay(reward: Any, matches: Any) -> float:
    """The naive estimate (OBP's ``ReplayMethod``): mean reward of the rows where a
    deterministic new policy would have taken the logged action -- propensities ignored.
    Unbiased only when the logger is uniformly random; otherwise it inherits the logger's
    choice of who gets which item."""
    r = checks.finite_array(reward, "reward")
    m = np.asarray(matches)
    if m.dtype != bool:
        raise TypeError("matches must be a boolean array (new policy's action == logged action)")
    checks.same_shape(r, m, "reward vs matches")
    if not m.any():
        raise ValueError("no logged row matches the new policy: replay has nothing to average")
    return float(r[m].mean())


def check_overlap(target_support: Any, what: str = "the new policy") -> None:
    """Refuse to estimate when the new policy puts mass where the logger has none.

    ``target_support`` is a boolean array: for each (context, position, action) the new policy
    can take, whether the logging policy's propensity there is > 0.
    """
    s = np.asarray(target_support, dtype=bool)
    if not s.all():
        raise ValueError(
            f"{what} takes actions the logging policy never takes "
            f"({(~s).mean():.1%} of its choices): no weighting can recover their reward from "
            "these logs -- log with exploration over those actions, or restrict the new policy"
        )


def bootstrap_rounds(
    parts: Mapping[str, Any],
    estimate: Callable[[Mapping[str, float]], Mapping[str, Mapping[str, float]]],
    *,
    n_boot: int = 200,
    seed: int = 0,
    unit: str = "logged arrivals",
) -> evaluation.Comparison:
    """A bootstrap over the logged rounds (arrivals) of one log, for estimates that are ratios
    of sums over rounds (IPS, SNIPS, DR and replay all are).

    ``parts`` holds per-round sums (one array per quantity, e.g. ``sum_r w r`` of each round);
    ``estimate(totals)`` turns their totals into ``{model: {metric: value}}``. Each draw
    resamples the rounds with replacement, so the positions of a slate stay together. Returns
    a bootstrap :class:`~recbook.evaluation.Comparison` whose intervals are signed (report
    ``estimate / truth - 1`` as it is: an interval on ``|error|`` hides the bias's sign)."""
    arrays = {k: checks.finite_array(v, f"parts[{k!r}]").ravel() for k, v in parts.items()}
    sizes = {len(v) for v in arrays.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError("parts must be non-empty arrays with one value per logged round each")
    n = sizes.pop()
    n_boot = checks.integer(n_boot, "n_boot", minimum=2)
    rng = np.random.default_rng(checks.seed(seed))
    point = estimate({k: float(v.sum()) for k, v in arrays.items()})
    stacked = np.stack(list(arrays.values()))
    rows = []
    for draw in range(n_boot):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        totals = dict(zip(arrays, stacked @ counts))
        for model, values in estimate(totals).items():
            for metric, value in values.items():
                rows.append({"seed": draw, "model": model, "metric": metric, "value": value})
    return evaluation.Comparison(
        pd.DataFrame(rows),
        unit=f"{unit} ({n_boot:,} bootstrap draws)",
        method="bootstrap",
        point=point,
        groups=n,
    )

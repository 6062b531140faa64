"""Privacy for recommenders: the article's "DP" loss, ε accounting, a membership-inference
audit and quasi-identifier checks (notebook 05).

Why each piece is here:

* :func:`article_dp_loss` is the loss of "search + recommendation fusion" §4.3, kept so the
  notebook can show by running it that it is a deterministic re-weighting, not a DP mechanism.
* :func:`check_budget` / :func:`noise_multiplier_for` validate and calibrate (ε, δ) for DP-SGD
  (which lives in :mod:`recbook.dp_sgd`); :func:`accountant_crosscheck` recomputes ε with
  Google's ``dp-accounting`` so the number Opacus prints is checked by a second implementation.
* :func:`loss_threshold_attack` is the membership-inference test of Yeom et al. (2018): what an
  attacker learns from a model's per-example losses, on a balanced member / non-member sample.
* :func:`quasi_identifier_report` and :func:`pseudonymise` show why removing names or hashing
  ids is not anonymisation.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from recbook import metrics

ACCOUNTANTS = ("rdp", "prv")


# ---------------------------------------------------------------------------------------------
# The article's loss
# ---------------------------------------------------------------------------------------------


def article_dp_loss(
    prob: torch.Tensor, target: torch.Tensor, epsilon: float, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy plus ``epsilon**2 * |f - y|**2``, exactly as "search + recommendation
    fusion" §4.3 writes it (``f`` a probability, ``y`` a label in [0, 1]).

    Nothing in it is random and nothing bounds one example's influence, so it is a weighted
    fit, not a differential-privacy mechanism; the notebook shows this by execution.
    """
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if prob.shape != target.shape:
        raise ValueError(f"prob and target differ in shape: {prob.shape} vs {target.shape}")
    if len(prob) and (prob.min() < 0 or prob.max() > 1):
        raise ValueError("prob must be probabilities in [0, 1]; apply torch.sigmoid to logits")
    if len(target) and (target.min() < 0 or target.max() > 1):
        raise ValueError("target must lie in [0, 1]; rescale ratings, e.g. (r - 1) / 4")
    bce = nn.functional.binary_cross_entropy(prob, target, reduction="none")
    loss = bce + epsilon**2 * (prob - target) ** 2
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def article_gradient_weight(prob: torch.Tensor, epsilon: float) -> torch.Tensor:
    """How much the §4.3 term scales each example's cross-entropy gradient (w.r.t. the logit).

    With ``f = sigmoid(z)``: d(BCE)/dz = f - y and the term adds 2 eps^2 (f - y) f (1 - f),
    so the total is ``(f - y) * (1 + 2 eps^2 f (1 - f))``: a deterministic weight in
    ``[1, 1 + eps^2 / 2]`` that depends only on the model's own output.
    """
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    return 1.0 + 2.0 * epsilon**2 * prob * (1.0 - prob)


# ---------------------------------------------------------------------------------------------
# Budget checks and accounting
# ---------------------------------------------------------------------------------------------


def default_delta(n: int) -> float:
    """δ for a dataset of ``n`` examples: ``n ** -1.1``, i.e. well below ``1/n``.

    A δ near ``1/n`` would allow a mechanism that publishes one whole random example, so δ must
    be clearly smaller than ``1/n``; the exponent 1.1 is a common, explicit choice.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the number of training examples), got {n!r}")
    return float(n) ** -1.1


def check_budget(epsilon: float, delta: float, n: int) -> None:
    """Raise ``ValueError`` unless ``epsilon > 0`` is finite and ``0 < delta < 1/n``."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (number of examples), got {n!r}")
    if not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(
            f"epsilon must be a finite number > 0, got {epsilon!r}; "
            "for a non-private model train without dp_sgd.make_private"
        )
    if not isinstance(delta, (int, float)) or not 0 < delta < 1 / n:
        raise ValueError(
            f"delta must satisfy 0 < delta < 1/n = {1 / n:.3g} for n = {n} examples, "
            f"got {delta!r}; use default_delta(n) = {default_delta(max(n, 2)):.3g}"
        )


def _check_mechanism(noise_multiplier: float, sample_rate: float, steps: int) -> None:
    if not math.isfinite(noise_multiplier) or noise_multiplier <= 0:
        raise ValueError(f"noise_multiplier must be > 0, got {noise_multiplier!r}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def epsilon_opacus(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """ε that Opacus's accountant (``"rdp"`` or ``"prv"``) gives for Poisson-sampled Gaussian
    steps — the same computation ``PrivacyEngine.get_epsilon`` runs on its history."""
    from opacus.accountants import create_accountant

    _check_mechanism(noise_multiplier, sample_rate, steps)
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    acc = create_accountant(mechanism=accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(acc.get_epsilon(delta=delta))


def epsilon_dp_accounting(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    method: str = "rdp",
) -> float:
    """ε from Google's ``dp-accounting`` (an independent implementation) for the same
    mechanism: ``steps`` compositions of a Poisson-sampled Gaussian. ``method``: "rdp" or "pld"."""
    import dp_accounting

    _check_mechanism(noise_multiplier, sample_rate, steps)
    if method == "rdp":
        acc = dp_accounting.rdp.RdpAccountant()
    elif method == "pld":
        acc = dp_accounting.pld.PLDAccountant()
    else:
        raise ValueError(f"method must be 'rdp' or 'pld', got {method!r}")
    event = dp_accounting.PoissonSampledDpEvent(
        float(sample_rate), dp_accounting.GaussianDpEvent(float(noise_multiplier))
    )
    acc.compose(event, int(steps))
    return float(acc.get_epsilon(delta))


def accountant_crosscheck(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> pd.DataFrame:
    """ε of one DP-SGD run from four accountants, paired by method: Opacus RDP vs dp-accounting
    RDP, Opacus PRV vs dp-accounting PLD (both numerical, near-exact). ``rel_diff`` is each
    row's difference from its pair's Opacus value."""
    rows = [
        ("RDP", "opacus", epsilon_opacus(noise_multiplier, sample_rate, steps, delta, "rdp")),
        (
            "RDP",
            "dp-accounting",
            epsilon_dp_accounting(noise_multiplier, sample_rate, steps, delta, "rdp"),
        ),
        ("PRV/PLD", "opacus", epsilon_opacus(noise_multiplier, sample_rate, steps, delta, "prv")),
        (
            "PRV/PLD",
            "dp-accounting",
            epsilon_dp_accounting(noise_multiplier, sample_rate, steps, delta, "pld"),
        ),
    ]
    frame = pd.DataFrame(rows, columns=["method", "library", "epsilon"])
    reference = frame[frame["library"] == "opacus"].set_index("method")["epsilon"]
    frame["rel_diff"] = frame["epsilon"] / frame["method"].map(reference) - 1.0
    return frame


def noise_multiplier_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """The Gaussian noise multiplier σ that spends exactly (ε, δ) in ``steps`` Poisson-sampled
    steps (Opacus's binary search, to within 1 % of ε)."""
    from opacus.accountants.utils import get_noise_multiplier

    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    _check_mechanism(1.0, sample_rate, steps)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=int(steps),
                accountant=accountant,
            )
        )


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """(ε, δ) for a group of ``k`` examples (e.g. one user's k ratings) under example-level
    (ε, δ)-DP: ``(k ε, k e^{(k-1) ε} δ)`` (Dwork & Roth 2014, Thm 2.2 and its δ extension).
    The δ part grows so fast that the bound is vacuous beyond a few examples at ε ≥ 1."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    exponent = (k - 1) * epsilon + math.log(k) + math.log(delta) if delta > 0 else -math.inf
    return k * epsilon, math.exp(min(exponent, 700.0))


def max_attack_auc(epsilon: float, delta: float = 0.0) -> float:
    """The largest membership-inference AUC any attack can reach against an (ε, δ)-DP model.

    (ε, δ)-DP confines every test's ROC curve to ``TPR <= min(1, e^ε FPR + δ,
    1 - e^{-ε} (1 - δ - FPR))`` (Kairouz et al. 2015); this integrates that envelope."""
    if epsilon == float("inf"):
        return 1.0
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    fpr = np.linspace(0.0, 1.0, 200_001)
    tpr = np.minimum.reduce(
        [
            np.ones_like(fpr),
            math.exp(epsilon) * fpr + delta,
            1.0 - math.exp(-epsilon) * (1.0 - delta - fpr),
        ]
    )
    return float(np.trapezoid(np.clip(tpr, 0.0, 1.0), fpr))


# ---------------------------------------------------------------------------------------------
# Membership inference (Yeom et al. 2018)
# ---------------------------------------------------------------------------------------------


def membership_sample(
    members: pd.DataFrame, non_members: pd.DataFrame, n: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equal-size random samples of training rows (members) and held-out rows the model never
    saw (non-members), so that AUC 0.5 is chance and a model that memorises nothing scores it.

    ``n`` defaults to the smaller of the two; rows are drawn without replacement."""
    if members.empty or non_members.empty:
        raise ValueError("membership_sample needs non-empty member and non-member tables")
    largest = min(len(members), len(non_members))
    n = largest if n is None else n
    if not 1 <= n <= largest:
        raise ValueError(f"n must be in 1..{largest} (the smaller table's size), got {n}")
    rng = np.random.default_rng(seed)
    pick_m = rng.choice(len(members), n, replace=False)
    pick_n = rng.choice(len(non_members), n, replace=False)
    return (
        members.iloc[np.sort(pick_m)].reset_index(drop=True),
        non_members.iloc[np.sort(pick_n)].reset_index(drop=True),
    )


@dataclass
class AttackResult:
    """A loss-threshold attack's outcome: ``auc`` over all thresholds, and Yeom et al.'s
    membership ``advantage`` (TPR - FPR) at their threshold, the mean training loss."""

    auc: float
    advantage: float
    threshold: float
    n_members: int
    n_non_members: int


def loss_threshold_attack(member_losses, non_member_losses) -> AttackResult:
    """Guess "member" when an example's loss is low (Yeom et al. 2018, "Privacy risk in machine
    learning"). The score is ``-loss``; AUC 0.5 means the losses reveal nothing."""
    m = np.asarray(member_losses, dtype=float).ravel()
    o = np.asarray(non_member_losses, dtype=float).ravel()
    if m.size == 0 or o.size == 0:
        raise ValueError("loss_threshold_attack needs losses for members and for non-members")
    if not (np.isfinite(m).all() and np.isfinite(o).all()):
        raise ValueError("losses must be finite; check the model's predictions for NaN/inf")
    labels = np.r_[np.ones(m.size), np.zeros(o.size)]
    auc = metrics.auc(labels, -np.r_[m, o])
    threshold = float(m.mean())
    advantage = float((m <= threshold).mean() - (o <= threshold).mean())
    return AttackResult(auc, advantage, threshold, int(m.size), int(o.size))


@torch.no_grad()
def rating_losses(
    model: nn.Module,
    df: pd.DataFrame,
    *,
    transform=None,
    device: torch.device | str = "cpu",
    col_user: str = "user_id",
    col_item: str = "item_id",
    col_rating: str = "rating",
) -> np.ndarray:
    """Per-example squared error of a ``model(user, item)`` rating model on ``df`` — the loss
    the attacker observes. ``transform`` maps raw outputs to ratings (e.g. a sigmoid model's
    ``1 + 4 sigmoid(z)``)."""
    missing = [c for c in (col_user, col_item, col_rating) if c not in df.columns]
    if missing:
        raise KeyError(f"rating_losses: df lacks column(s) {missing}")
    model.eval()
    users = torch.tensor(df[col_user].to_numpy(dtype=np.int64), device=device)
    items = torch.tensor(df[col_item].to_numpy(dtype=np.int64), device=device)
    out = model(users, items)
    pred = transform(out) if transform is not None else out
    pred = pred.float().cpu().numpy()
    return (pred - df[col_rating].to_numpy(dtype=float)) ** 2


# ---------------------------------------------------------------------------------------------
# De-identification: quasi-identifiers and pseudonyms
# ---------------------------------------------------------------------------------------------


def quasi_identifier_report(
    table: pd.DataFrame, column_sets: Iterable[Sequence[str]]
) -> pd.DataFrame:
    """For each set of columns: how many records share each value combination.

    ``unique_share`` is the fraction of records alone in their group (re-identifiable by anyone
    who knows those attributes); ``k_anonymity`` is the smallest group size."""
    rows = []
    for columns in column_sets:
        columns = list(columns)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise KeyError(f"quasi_identifier_report: no column(s) {missing} in the table")
        if table[columns].isna().any().any():
            raise ValueError(f"columns {columns} contain missing values; fill or drop them first")
        sizes = table.groupby(columns, observed=True).size()
        per_record = table.groupby(columns, observed=True)[columns[0]].transform("size")
        rows.append(
            {
                "quasi_identifiers": " + ".join(columns),
                "records": len(table),
                "groups": len(sizes),
                "unique_share": float((per_record == 1).mean()),
                "k_anonymity": int(sizes.min()),
                "median_group": float(per_record.median()),
            }
        )
    return pd.DataFrame(rows).set_index("quasi_identifiers")


def pseudonymise(ids, salt: str = "") -> np.ndarray:
    """SHA-256 pseudonyms of ids (hex). The same id always gets the same pseudonym — that is
    what makes it useful for joins, and also what lets anyone link or reverse it."""
    return np.array(
        [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in np.asarray(ids).ravel()]
    )


def reverse_pseudonyms(pseudonyms, candidate_ids, salt: str = "") -> np.ndarray:
    """Undo :func:`pseudonymise` by hashing every candidate id (a dictionary attack); returns
    the recovered id for each pseudonym, or -1 where no candidate matched."""
    table = dict(zip(pseudonymise(candidate_ids, salt), np.asarray(candidate_ids).ravel()))
    return np.array([table.get(p, -1) for p in np.asarray(pseudonyms).ravel()])

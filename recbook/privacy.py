"""Privacy for recommenders: the article's "DP" loss and de-identification (notebook 05), and
the one import point for the privacy tools split by concept.

Why each piece is here:

* :func:`article_dp_loss` is the loss of "search + recommendation fusion" §4.3, kept so the
  notebook can show by running it — and by auditing it (:mod:`recbook.audit`) — that it is a
  deterministic re-weighting, not a DP mechanism.
* :func:`quasi_identifier_report` and :func:`pseudonymise` show why removing names or hashing
  ids is not anonymisation.
* Accounting (ε, δ, σ calibration, the privacy statement) lives in :mod:`recbook.accounting`,
  membership inference and the one-run ε audit in :mod:`recbook.audit`; their public names are
  re-exported here so ``privacy.noise_multiplier_for`` and friends keep working.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from recbook import checks
from recbook.accounting import (
    ACCOUNTANTS,
    PrivacyStatement,
    accountant_crosscheck,
    check_budget,
    default_delta,
    epsilon_dp_accounting,
    epsilon_opacus,
    group_privacy,
    noise_multiplier_for,
)
from recbook.audit import (
    AttackResult,
    OneRunAudit,
    loss_threshold_attack,
    max_attack_auc,
    membership_sample,
    one_run_audit,
    rating_canaries,
    rating_losses,
)

__all__ = [
    "ACCOUNTANTS",
    "AttackResult",
    "OneRunAudit",
    "PrivacyStatement",
    "accountant_crosscheck",
    "article_dp_loss",
    "article_gradient_weight",
    "check_budget",
    "default_delta",
    "epsilon_dp_accounting",
    "epsilon_opacus",
    "group_privacy",
    "loss_threshold_attack",
    "max_attack_auc",
    "membership_sample",
    "noise_multiplier_for",
    "one_run_audit",
    "pseudonymise",
    "quasi_identifier_report",
    "rating_canaries",
    "rating_losses",
    "reverse_pseudonyms",
]


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
    epsilon = checks.epsilon(epsilon, allow_zero=True)
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
    epsilon = checks.epsilon(epsilon, allow_zero=True)
    return 1.0 + 2.0 * epsilon**2 * prob * (1.0 - prob)


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

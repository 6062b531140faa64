"""The loss that "search + recommendation fusion" §4.3 calls differentially private, kept so
notebook 05 can show by running it (and by auditing it, :mod:`recbook.privacy.audit`) that it
is a deterministic re-weighting of the cross-entropy, not a DP mechanism.
"""

from __future__ import annotations

import torch
from torch import nn

from recbook import checks


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

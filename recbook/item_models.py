"""Item-item models with a closed form or a short random walk: EDLAE, DLAE and RP3β.

They sit beside EASE (:mod:`recbook.baselines`) because they are the item models known to beat
it on top-k tables at the same cost (one items x items solve or product, no training loop):

- DLAE and EDLAE (Steck 2020, "Autoencoders that don't overfit towards the identity",
  NeurIPS): a linear autoencoder trained with dropout ``p`` on its input has, in expectation,
  the extra penalty ``Λ = p/(1-p)·diag(XᵀX)`` -- a penalty that grows with an item's popularity.
  DLAE adds ``λ·I`` and solves without constraint; EDLAE (full emphasis on the dropped-out
  entries) is the same problem with ``diag(B) = 0``, i.e. EASE with the penalty ``Λ + λ·I``.
- RP3β (Christoffel et al. 2015, "Blockbusters and wallflowers"; Paudel et al. 2017, "Updatable,
  accurate, diverse, and scalable recommendations for interactive applications", ACM TiiS):
  the 3-step walk user -> item -> user -> item, each step uniform over the neighbours, with the
  arrival probability of item ``j`` divided by ``popularity_j^β`` to lift the long tail.

Every ``*_weights`` function returns the dense items x items matrix ``B``; scores are ``X·B``.
Memory is checked up front with :func:`recbook.checks.memory`, like EASE's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbook import baselines, checks


def _matrix(x: sp.spmatrix) -> sp.csr_matrix:
    if not sp.issparse(x) or x.ndim != 2:
        raise TypeError(f"x must be a sparse (users x items) matrix, got {type(x).__name__}")
    if x.nnz == 0:
        raise ValueError("x holds no interactions: an item model learns nothing from them")
    return sp.csr_matrix(x, dtype=np.float64)


def _dropout(p: float) -> float:
    p = checks.number(p, "p")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p (the dropout probability) must lie in [0, 1), got {p}")
    return p


def _penalty(l2: float) -> float:
    l2 = checks.number(l2, "l2")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}; use 0 for no extra ridge penalty")
    return l2


def _gram(x: sp.csr_matrix, p: float, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """XᵀX and the dropout-plus-ridge penalty's diagonal ``p/(1-p)·diag(XᵀX) + l2``."""
    gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
    penalty = p / (1.0 - p) * np.diag(gram) + l2
    if np.any(penalty <= 0):
        raise ValueError(
            "the penalty p/(1-p)·diag(XᵀX) + l2 is zero for some item (an item nobody chose, "
            "or p = l2 = 0): give l2 > 0"
        )
    return gram, penalty


def _checked_gram(
    x: sp.spmatrix, p: float, l2: float, max_bytes: float | None, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """XᵀX and the diagonal of Λ, after the checks (hyper-parameters, input, and memory: about
    four items² float64 matrices)."""
    p, l2 = _dropout(p), _penalty(l2)
    x = _matrix(x)
    n_items = x.shape[1]
    checks.memory(
        4 * 8 * n_items**2,
        max_bytes,
        f"{model} on {n_items:,} items",
        "keep the most frequent items only (the cost is items squared)",
    )
    return _gram(x, p, l2)


def edlae_weights(
    x: sp.spmatrix, p: float = 0.25, l2: float = 10.0, *, max_bytes: float | None = None
) -> np.ndarray:
    """EDLAE's B (Steck 2020, full emphasis on dropped entries, diag(B) = 0): ``P = (XᵀX + Λ)⁻¹``,
    ``B = I - P·diag(1/diag(P))`` with ``Λ = p/(1-p)·diag(XᵀX) + l2·I``. With ``p = 0`` it is
    EASE with penalty ``l2``. Memory: about four dense items x items float64 matrices."""
    gram, penalty = _checked_gram(x, p, l2, max_bytes, "EDLAE")
    gram[np.diag_indices_from(gram)] += penalty
    return baselines.zero_diagonal_solution(gram)


def dlae_weights(
    x: sp.spmatrix, p: float = 0.25, l2: float = 10.0, *, max_bytes: float | None = None
) -> np.ndarray:
    """DLAE's B (Steck 2020, dropout without the diagonal constraint): the solution of the
    normal equations ``(XᵀX + Λ)·B = XᵀX``, ``Λ = p/(1-p)·diag(XᵀX) + l2·I``. The dropout
    penalty alone keeps B away from the identity. Memory: about four items² float64 matrices."""
    gram, penalty = _checked_gram(x, p, l2, max_bytes, "DLAE")
    lhs = gram.copy()
    lhs[np.diag_indices_from(lhs)] += penalty
    return np.linalg.solve(lhs, gram)


def rp3_weights(
    x: sp.spmatrix,
    beta: float = 0.5,
    alpha: float = 1.0,
    neighbours: int | None = None,
    normalise: bool = False,
    *,
    max_bytes: float | None = None,
) -> np.ndarray:
    """RP3β's B: ``W = P_iu·P_ui`` (item -> user -> item transition probabilities, each step's
    probabilities raised to ``alpha``), column ``j`` divided by ``popularity_j^beta``; then, if
    ``neighbours`` is given, each row keeps only its ``neighbours`` largest entries, and if
    ``normalise`` each row is rescaled to sum to 1. ``beta = 0``, ``alpha = 1`` is the plain P3
    walk (Cooper et al. 2014). Memory: about three dense items x items float64 matrices."""
    beta, alpha = checks.number(beta, "beta"), checks.number(alpha, "alpha", positive=True)
    if beta < 0:
        raise ValueError(f"beta must be >= 0 (0: no popularity penalty), got {beta}")
    x = _matrix(x)
    n_items = x.shape[1]
    if neighbours is not None:
        neighbours = checks.integer(neighbours, "neighbours", minimum=1)
    checks.memory(
        3 * 8 * n_items**2,
        max_bytes,
        f"RP3beta on {n_items:,} items",
        "keep the most frequent items only, or prune with neighbours=",
    )
    x.data[:] = 1.0
    user_deg = np.asarray(x.sum(axis=1)).ravel()
    item_deg = np.asarray(x.sum(axis=0)).ravel()
    inv_u = np.divide(1.0, user_deg, out=np.zeros_like(user_deg), where=user_deg > 0)
    inv_i = np.divide(1.0, item_deg, out=np.zeros_like(item_deg), where=item_deg > 0)
    p_ui = sp.diags(inv_u) @ x  # user -> item
    p_iu = sp.diags(inv_i) @ x.T.tocsr()  # item -> user
    if alpha != 1.0:
        p_ui.data **= alpha
        p_iu.data **= alpha
    w = np.asarray((p_iu @ p_ui).todense(), dtype=np.float64)
    pop = np.divide(1.0, item_deg**beta, out=np.zeros_like(item_deg), where=item_deg > 0)
    w *= pop[None, :]
    if neighbours is not None and neighbours < n_items:
        drop = np.argpartition(-w, neighbours, axis=1)[:, neighbours:]
        np.put_along_axis(w, drop, 0.0, axis=1)
    if normalise:
        sums = w.sum(axis=1, keepdims=True)
        w = np.divide(w, sums, out=np.zeros_like(w), where=sums > 0)
    return w


_WEIGHTS = {"edlae": edlae_weights, "dlae": dlae_weights, "rp3": rp3_weights}


def scores(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    model: str = "edlae",
    *,
    max_bytes: float | None = None,
    **hyper: float,
) -> np.ndarray:
    """Dense (users x items) scores ``X·B`` of ``model`` ("edlae", "dlae" or "rp3") from the
    binary interactions in ``train``; ``hyper`` goes to its ``*_weights`` function (choose it on
    validation, :func:`recbook.evaluation.tune`). Memory is checked before anything is built."""
    if model not in _WEIGHTS:
        raise ValueError(f"model must be one of {sorted(_WEIGHTS)}, got {model!r}")
    return baselines.item_item_scores(
        train, n_users, n_items, lambda x: _WEIGHTS[model](x, max_bytes=max_bytes, **hyper),
        model, max_bytes=max_bytes,
    )  # fmt: skip

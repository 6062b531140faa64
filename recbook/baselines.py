"""The simple rankers every top-k table needs beside a model: popularity and EASE.

A model earns its place only by beating these on the same split. Popularity is the floor any
personalised model must clear; EASE (Steck 2019, "Embarrassingly Shallow Autoencoders") is a
closed-form item-item ridge regression that is famously hard to beat on implicit feedback, so a
table without it flatters every model above it. Rating baselines (global mean, user + item
biases) live in :mod:`recbook.mf` (``global_mean_model``, ``fit_biases``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbook import checks, evaluation
from recbook.columns import ITEM


def interaction_matrix(train: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary (users x items) CSR matrix of the (user_id, item_id) pairs in ``train`` (repeats
    count once)."""
    u, i = checks.id_columns(train, n_users, n_items, "train")
    x = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_users, n_items))
    x.data[:] = 1.0
    return x


def popularity_scores(train: pd.DataFrame, n_users: int, n_items: int) -> np.ndarray:
    """Every user gets each item's interaction count in ``train`` as its score."""
    checks.frame(train, (ITEM,), "train")
    items = checks.ids(train[ITEM].to_numpy(), n_items, f"train[{ITEM!r}]")
    checks.integer(n_users, "n_users", minimum=1)
    counts = np.bincount(items, minlength=n_items).astype(float)
    return np.broadcast_to(counts, (n_users, n_items)).copy()


def ease_weights(
    x: sp.spmatrix, l2: float = 200.0, *, max_bytes: float | None = None
) -> np.ndarray:
    """EASE's item-item matrix B: argmin ||X - XB||² + l2·||B||² with diag(B) = 0, in closed form
    (B = I - P·diag(1/diag(P)), P = (XᵀX + l2·I)⁻¹). Memory: about four dense items x items
    float64 matrices (Gram, inverse, B and a temporary), checked before any is built."""
    l2 = checks.number(l2, "l2", positive=True)
    if not sp.issparse(x) or x.ndim != 2:
        raise TypeError(f"x must be a sparse (users x items) matrix, got {type(x).__name__}")
    if x.nnz == 0:
        raise ValueError("x holds no interactions: EASE learns nothing from an empty train")
    n_items = x.shape[1]
    checks.memory(
        4 * 8 * n_items**2,
        max_bytes,
        f"EASE on {n_items:,} items",
        "keep the most frequent items only (EASE's cost is items squared)",
    )
    gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    return zero_diagonal_solution(gram)


def zero_diagonal_solution(penalised_gram: np.ndarray) -> np.ndarray:
    """The closed form shared by EASE and EDLAE: B = I - P·diag(1/diag(P)) with
    P = (XᵀX + Λ)⁻¹, the ridge solution whose diagonal is constrained to zero."""
    p = np.linalg.inv(penalised_gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def ease_scores(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    l2: float = 200.0,
    *,
    max_bytes: float | None = None,
) -> np.ndarray:
    """Dense (users x items) EASE scores X·B from the binary interactions in ``train``.

    ``l2`` should be chosen on a validation split (:func:`recbook.evaluation.tune`); values of a
    few hundred suit catalogues of a few thousand items (Steck 2019 used 200–1000). Memory (the
    dense scores plus the items x items matrices) is checked against ``max_bytes`` (default
    ``checks.MEMORY_LIMIT``) before anything is built."""
    return item_item_scores(
        train, n_users, n_items, lambda x: ease_weights(x, l2, max_bytes=max_bytes), "EASE",
        max_bytes=max_bytes,
    )  # fmt: skip


def item_item_scores(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    weights: Callable[[sp.spmatrix], np.ndarray],
    model: str,
    *,
    max_bytes: float | None = None,
) -> np.ndarray:
    """Dense (users x items) scores X·B of an item-item model whose ``weights(X)`` gives B
    (EASE here, EDLAE/DLAE/RP3β in :mod:`recbook.item_models`), memory checked first."""
    checks.non_empty(checks.frame(train, (), "train"), "train")
    n_users = checks.integer(n_users, "n_users", minimum=1)
    n_items = checks.integer(n_items, "n_items", minimum=1)
    checks.memory(
        8 * n_users * n_items + 4 * 8 * n_items**2,
        max_bytes,
        f"{model} scores for {n_users:,} users x {n_items:,} items",
        f"score users in batches with the {model} weights, or keep the most frequent items only",
    )
    x = interaction_matrix(train, n_users, n_items)
    return np.asarray(x @ weights(x))


#: EASE penalties tried on validation: from light (dense, small catalogues) to heavy.
EASE_GRID = (20.0, 100.0, 500.0, 2500.0)


def tuned_ease(
    fit_part: pd.DataFrame,
    validation: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    k: int = 10,
    grid: Sequence[float] = EASE_GRID,
    seed: int = 0,
    desc: str = "EASE penalty",
) -> tuple[float, pd.Series]:
    """EASE's penalty chosen by full-catalogue NDCG@k on ``validation`` (never on test), with
    EASE fitted on ``fit_part``: the one tuning procedure every notebook gives its EASE row.
    Returns the chosen ``l2`` and the validation NDCG of every value tried (a table's "configs
    tried" is ``len(grid)``). Refit with :func:`ease_scores` on all the training data."""
    return evaluation.tune(
        lambda l2: evaluation.full_catalogue_metrics(
            ease_scores(fit_part, n_users, n_items, l2=l2), fit_part, validation, k=k, seed=seed
        )["ndcg"],
        grid,
        desc=desc,
    )

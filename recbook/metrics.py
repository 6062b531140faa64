"""Rating and ranking metrics, vectorised over a (users x items) score matrix.

Conventions (stated once, used everywhere):

* ranking metrics take ``scores`` and a boolean ``relevance`` matrix of the same shape, one row
  per user; relevance is binary; users with no relevant item are excluded from the mean;
* the top-k list is the k highest scores of a row (exclude already-seen items first with
  :func:`exclude_seen`); ties at the cut are broken deterministically but arbitrarily;
* NDCG uses the log2 discount ``1 / log2(rank + 1)`` and the ideal DCG of ``min(k, n_relevant)``
  hits; MAP@k averages precision at each hit and divides by ``min(k, n_relevant)``;
* ``auc`` is the Mann-Whitney statistic with tied scores counted as one half;
  :func:`mean_user_auc` is the same within each user, averaged (GAUC): it ignores how active a
  user is, which a global AUC rewards even in a model that knows nothing about items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _pair(y_true, y_pred, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError(f"{name}: empty input; there is nothing to evaluate")
    if np.isnan(t).any() or np.isnan(p).any():
        raise ValueError(f"{name}: input contains NaN; drop or impute missing values first")
    return t, p


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(t - p)))


def auc(labels, scores) -> float:
    """Area under the ROC curve (probability a positive outranks a negative)."""
    y, s = _pair(labels, scores, "auc")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("auc: labels must be 0/1 (or booleans)")
    n_pos = y.sum()
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc: needs both positive and negative labels")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def user_aucs(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> pd.DataFrame:
    """AUC within each user (columns ``auc``, ``n`` rows), for users that have both a positive
    and a negative row; the others have no AUC by definition. Ties count one half."""
    y = np.asarray(labels, dtype=float).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    u = np.asarray(users).ravel()
    if not len(y) == len(s) == len(u):
        raise ValueError(f"labels, scores, users differ in length: {len(y)}, {len(s)}, {len(u)}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 (or booleans)")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    frame = pd.DataFrame({"u": u, "y": y, "s": s})
    frame["rank"] = frame.groupby("u")["s"].rank(method="average")
    per = frame.groupby("u").agg(n=("y", "size"), pos=("y", "sum"))
    per["rank_pos"] = frame[frame["y"] == 1].groupby("u")["rank"].sum()
    per = per[(per["pos"] > 0) & (per["pos"] < per["n"])]
    neg = per["n"] - per["pos"]
    per["auc"] = (per["rank_pos"] - per["pos"] * (per["pos"] + 1) / 2) / (per["pos"] * neg)
    return per[["auc", "n"]].rename_axis("user_id")


def mean_user_auc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Per-user AUC (:func:`user_aucs`) averaged with each user weighted by its rows."""
    per = user_aucs(labels, scores, users)
    if per.empty:
        raise ValueError("no user has both a positive and a negative row: per-user AUC undefined")
    return float(np.average(per["auc"], weights=per["n"]))


def log_loss(labels, probs, eps: float = 1e-7) -> float:
    """Binary cross-entropy; probabilities must lie in [0, 1] (they are kept ``eps`` from the
    ends only so that a confident mistake costs a large finite loss, as in scikit-learn)."""
    y, p = _pair(labels, probs, "log_loss")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("log_loss: probabilities must lie in [0, 1]; apply a sigmoid first")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# --- ranking -------------------------------------------------------------------------------


def _check_ranking(scores, relevance, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    r = np.asarray(relevance)
    if s.ndim != 2 or s.shape != r.shape:
        raise ValueError(
            f"scores and relevance must be 2-D arrays of one shape (users x items); "
            f"got {s.shape} and {r.shape}"
        )
    if r.dtype != bool:
        if not np.isin(r, (0, 1)).all():
            raise ValueError("relevance must be boolean (or 0/1): binary relevance only")
        r = r.astype(bool)
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > s.shape[1]:
        raise ValueError(f"k={k} exceeds the number of candidate items ({s.shape[1]})")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; use -inf to exclude an item")
    keep = r.any(axis=1)
    if not keep.any():
        raise ValueError("no user has a relevant item: the truth is empty")
    return s[keep], r[keep]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores of each row, best first."""
    s = np.asarray(scores, dtype=float)
    if not isinstance(k, (int, np.integer)) or k <= 0 or k > s.shape[-1]:
        raise ValueError(f"k must be in 1..{s.shape[-1]}, got {k!r}")
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _hits(scores, relevance, k: int) -> tuple[np.ndarray, np.ndarray]:
    s, r = _check_ranking(scores, relevance, k)
    hits = np.take_along_axis(r, top_k(s, k), axis=1)
    return hits, r.sum(axis=1)


def precision_at_k(scores, relevance, k: int) -> float:
    """Share of the top-k that is relevant, averaged over users with a relevant item."""
    hits, _ = _hits(scores, relevance, k)
    return float(hits.sum(axis=1).mean() / k)


def recall_at_k(scores, relevance, k: int) -> float:
    """Share of each user's relevant items found in the top-k."""
    hits, n_rel = _hits(scores, relevance, k)
    return float((hits.sum(axis=1) / n_rel).mean())


def hit_rate_at_k(scores, relevance, k: int) -> float:
    """Share of users with at least one relevant item in the top-k."""
    hits, _ = _hits(scores, relevance, k)
    return float(hits.any(axis=1).mean())


def ndcg_at_k(scores, relevance, k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance and a log2 discount."""
    hits, n_rel = _hits(scores, relevance, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discount
    idcg = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    return float((dcg / idcg).mean())


def map_at_k(scores, relevance, k: int) -> float:
    """Mean average precision at k (divides by ``min(k, n_relevant)``)."""
    hits, n_rel = _hits(scores, relevance, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return float(((precision * hits).sum(axis=1) / np.minimum(n_rel, k)).mean())


def ranking_report(scores, relevance, ks: tuple[int, ...] = (10,)) -> pd.DataFrame:
    """All ranking metrics at each k, as one table (rows: k)."""
    rows = {
        k: {
            "precision": precision_at_k(scores, relevance, k),
            "recall": recall_at_k(scores, relevance, k),
            "hit_rate": hit_rate_at_k(scores, relevance, k),
            "ndcg": ndcg_at_k(scores, relevance, k),
            "map": map_at_k(scores, relevance, k),
        }
        for k in ks
    }
    return pd.DataFrame(rows).T.rename_axis("k")


# --- from DataFrames -----------------------------------------------------------------------


def _pairs(df: pd.DataFrame, n_users: int, n_items: int, col_user: str, col_item: str):
    missing = [c for c in (col_user, col_item) if c not in df.columns]
    if missing:
        raise KeyError(f"DataFrame lacks column(s) {missing}; it has {list(df.columns)}")
    u = df[col_user].to_numpy()
    i = df[col_item].to_numpy()
    if len(u) and (u.min() < 0 or u.max() >= n_users or i.min() < 0 or i.max() >= n_items):
        raise ValueError(
            f"ids out of range: users must be in 0..{n_users - 1}, items in 0..{n_items - 1}"
        )
    return u, i


def relevance_matrix(
    df: pd.DataFrame,
    n_users: int,
    n_items: int,
    col_user: str = "user_id",
    col_item: str = "item_id",
) -> np.ndarray:
    """Boolean (users x items) matrix, True where the pair appears in ``df``."""
    u, i = _pairs(df, n_users, n_items, col_user, col_item)
    rel = np.zeros((n_users, n_items), dtype=bool)
    rel[u, i] = True
    return rel


def exclude_seen(
    scores: np.ndarray, seen: pd.DataFrame, col_user: str = "user_id", col_item: str = "item_id"
) -> np.ndarray:
    """A copy of ``scores`` with -inf at every (user, item) pair in ``seen`` (e.g. training
    interactions), so top-k lists only recommend new items."""
    out = np.array(scores, dtype=float, copy=True)
    u, i = _pairs(seen, out.shape[0], out.shape[1], col_user, col_item)
    out[u, i] = -np.inf
    return out


def popularity_scores(
    train: pd.DataFrame, n_users: int, n_items: int, col_item: str = "item_id"
) -> np.ndarray:
    """The popularity baseline: every user gets each item's interaction count as its score."""
    if col_item not in train.columns:
        raise KeyError(f"DataFrame lacks column {col_item!r}")
    counts = np.bincount(train[col_item].to_numpy(), minlength=n_items).astype(float)
    return np.broadcast_to(counts, (n_users, n_items)).copy()

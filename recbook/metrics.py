"""Rating and ranking metrics, vectorised over a (users x items) score matrix.

Conventions (stated once, used everywhere):

* ranking metrics take ``scores`` and a boolean ``relevance`` matrix of the same shape, one row
  per user; relevance is binary; users with no relevant item are excluded from the mean;
* the top-k list is the k highest scores of a row (exclude already-seen items first with
  :func:`exclude_seen`, which scores them -inf). **Ties are broken uniformly at random** with a
  seeded generator (``seed=``), so a model can never gain from ties: a constant scorer gets the
  chance rate in expectation, wherever the relevant item sits in the row. An item scored -inf
  is excluded: it is never a hit, even when k reaches into the excluded items;
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

from recbook import checks


def _pair(y_true, y_pred, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    checks.same_shape(t, p, f"{name}: y_true vs y_pred")
    if t.size == 0:
        raise ValueError(f"{name}: empty input; there is nothing to evaluate")
    t = checks.finite_array(t, f"{name}: y_true").ravel()
    p = checks.finite_array(p, f"{name}: y_pred").ravel()
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
    checks.binary_labels(y, "auc: labels")
    n_pos = y.sum()
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc: needs both positive and negative labels")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def user_aucs(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> pd.DataFrame:
    """AUC within each user (columns ``auc``, ``n`` rows), for users that have both a positive
    and a negative row; the others have no AUC by definition. Ties count one half."""
    y = checks.binary_labels(np.asarray(labels).ravel(), "user_aucs: labels")
    s = checks.finite_array(np.asarray(scores).ravel(), "user_aucs: scores")
    u = np.asarray(users).ravel()
    if not len(y) == len(s) == len(u):
        raise ValueError(f"labels, scores, users differ in length: {len(y)}, {len(s)}, {len(u)}")
    checks.complete(pd.DataFrame({"users": u}), ("users",), "user_aucs")  # groupby drops NaN
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
    checks.binary_labels(y, "log_loss: labels")
    checks.probabilities(p, "log_loss: probabilities (apply a sigmoid first)")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# --- ranking -------------------------------------------------------------------------------


#: Score cells handled at once by the ranking metrics: users are processed in batches of about
#: this many cells (16 MB as float64), so the peak stays a small multiple of one batch, not of
#: the whole (users x items) matrix. Batching changes no result: rows are independent and the
#: tie-break generator is consumed row by row in the same order.
BATCH_CELLS = 2**21


def _batches(n_rows: int, n_cols: int) -> list[slice]:
    step = max(1, BATCH_CELLS // max(n_cols, 1))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def _scores(scores) -> np.ndarray:
    """``scores`` as an array without a full-size copy when it is floating already (float32
    stays float32; each batch is widened to float64 on its own)."""
    s = np.asarray(scores)
    return s if s.dtype.kind == "f" else np.asarray(s, dtype=float)


def _no_nan(s: np.ndarray) -> None:
    if any(np.isnan(s[b]).any() for b in _batches(len(s), s.shape[1])):
        raise ValueError("scores contain NaN; use -inf to exclude an item")


def _check_ranking(scores, relevance, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores, relevance, rows of users with a relevant item)``, checked, without copies."""
    s = _scores(scores)
    r = np.asarray(relevance)
    if s.ndim != 2 or s.shape != r.shape:
        raise ValueError(
            f"scores and relevance must be 2-D arrays of one shape (users x items); "
            f"got {s.shape} and {r.shape}"
        )
    if r.dtype != bool:
        r = checks.binary_labels(r, "relevance (binary relevance only)").astype(bool)
    checks.integer(k, "k", minimum=1, maximum=s.shape[1])
    _no_nan(s)
    keep = np.flatnonzero(r.any(axis=1))
    if len(keep) == 0:
        raise ValueError("no user has a relevant item: the truth is empty")
    return s, r, keep


def top_k(scores: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of the k highest scores of each row, best first; ties broken uniformly at random.

    A row with a tie (at the cut or inside the top k) has its columns shuffled by a seeded
    generator before selection, so every tied item is equally likely to be picked and ordered
    first -- a scorer cannot profit from where an item sits in the row. Rows without ties skip the
    shuffle (same result, less work). A 1-D ``scores`` is one row and gives a 1-D result.
    Rows are processed in batches (:data:`BATCH_CELLS`).
    """
    s = _scores(scores)
    if s.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D (one user) or 2-D (users x items), got {s.shape}")
    one_row = s.ndim == 1
    s = s[None, :] if one_row else s
    checks.integer(k, "k", minimum=1, maximum=s.shape[1])
    _no_nan(s)
    rng = np.random.default_rng(checks.seed(seed))
    best = np.empty((len(s), k), dtype=np.intp)
    for b in _batches(len(s), s.shape[1]):
        best[b] = _top_rows(np.asarray(s[b], dtype=float), k, rng)
    return best[0] if one_row else best


def _top_rows(s: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`top_k` of a float64 block of rows, drawing tie-breaks from ``rng`` row by row."""
    best = _sorted_top(s, k)
    top_vals = np.take_along_axis(s, best, axis=1)
    kth = top_vals[:, -1]
    tied = ((s >= kth[:, None]).sum(axis=1) > k) | (top_vals[:, 1:] == top_vals[:, :-1]).any(axis=1)
    if tied.any():  # only rows with a tie pay for the shuffle
        rows = s[tied]
        perm = rng.permuted(np.broadcast_to(np.arange(s.shape[1]), rows.shape), axis=1)
        picked = _sorted_top(np.take_along_axis(rows, perm, axis=1), k)
        best[tied] = np.take_along_axis(perm, picked, axis=1)
    return best


def _sorted_top(s: np.ndarray, k: int) -> np.ndarray:
    """Positions of each row's k largest values, best first (ties by position: callers shuffle)."""
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _hits(scores, relevance, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hits in the top k and relevant counts of each user with a relevant item, in batches."""
    s, r, keep = _check_ranking(scores, relevance, k)
    rng = np.random.default_rng(checks.seed(seed))
    hits = np.empty((len(keep), k), dtype=bool)
    n_rel = np.empty(len(keep), dtype=np.int64)
    for b in _batches(len(keep), s.shape[1]):
        rows = keep[b]
        sb, rb = np.asarray(s[rows], dtype=float), r[rows]
        top = _top_rows(sb, k, rng)
        hits[b] = np.take_along_axis(rb, top, axis=1) & np.isfinite(
            np.take_along_axis(sb, top, axis=1)
        )
        n_rel[b] = rb.sum(axis=1)
    return hits, n_rel


def _per_user(hits: np.ndarray, n_rel: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each metric for each user (rows of ``hits``); the aggregate metrics are their means."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return {
        "precision": hits.sum(axis=1) / k,
        "recall": hits.sum(axis=1) / n_rel,
        "hit_rate": hits.any(axis=1).astype(float),
        "ndcg": (hits @ discount) / idcg,
        "map": (precision * hits).sum(axis=1) / np.minimum(n_rel, k),
    }


def _metric(name: str, scores, relevance, k: int, seed: int) -> float:
    hits, n_rel = _hits(scores, relevance, k, seed)
    return float(_per_user(hits, n_rel, k)[name].mean())


def precision_at_k(scores, relevance, k: int, seed: int = 0) -> float:
    """Share of the top-k that is relevant, averaged over users with a relevant item."""
    return _metric("precision", scores, relevance, k, seed)


def recall_at_k(scores, relevance, k: int, seed: int = 0) -> float:
    """Share of each user's relevant items found in the top-k."""
    return _metric("recall", scores, relevance, k, seed)


def hit_rate_at_k(scores, relevance, k: int, seed: int = 0) -> float:
    """Share of users with at least one relevant item in the top-k."""
    return _metric("hit_rate", scores, relevance, k, seed)


def ndcg_at_k(scores, relevance, k: int, seed: int = 0) -> float:
    """Normalised discounted cumulative gain with binary relevance and a log2 discount."""
    return _metric("ndcg", scores, relevance, k, seed)


def map_at_k(scores, relevance, k: int, seed: int = 0) -> float:
    """Mean average precision at k (divides by ``min(k, n_relevant)``)."""
    return _metric("map", scores, relevance, k, seed)


def per_user_metrics(scores, relevance, k: int = 10, seed: int = 0) -> pd.DataFrame:
    """Every ranking metric at ``k`` for each user with a relevant item (index: the user's row),
    one tie-break for all: the unit for intervals over users and paired per-user differences."""
    hits, n_rel = _hits(scores, relevance, k, seed)
    users = np.flatnonzero(np.asarray(relevance).any(axis=1))
    return pd.DataFrame(_per_user(hits, n_rel, k), index=pd.Index(users, name="user"))


def ranking_report(scores, relevance, ks: tuple[int, ...] = (10,), seed: int = 0) -> pd.DataFrame:
    """All ranking metrics at each k, as one table (rows: k); one tie-break for all of them."""
    ks = tuple(checks.at_least_one(ks, "ranking_report: ks", "for example ks=(10,)").tolist())
    rows = {k: per_user_metrics(scores, relevance, k, seed).mean().to_dict() for k in ks}
    return pd.DataFrame(rows).T.rename_axis("k")


# --- from DataFrames -----------------------------------------------------------------------


def _pairs(df: pd.DataFrame, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    return checks.id_columns(df, n_users, n_items, "interactions")


def relevance_matrix(df: pd.DataFrame, n_users: int, n_items: int) -> np.ndarray:
    """Boolean (users x items) matrix, True where the (user_id, item_id) pair appears in ``df``."""
    u, i = _pairs(df, n_users, n_items)
    rel = np.zeros((n_users, n_items), dtype=bool)
    rel[u, i] = True
    return rel


def exclude_seen(scores: np.ndarray, seen: pd.DataFrame) -> np.ndarray:
    """A copy of ``scores`` with -inf at every (user_id, item_id) pair in ``seen`` (e.g. training
    interactions), so top-k lists only recommend new items."""
    out = np.array(scores, dtype=float, copy=True)
    if out.ndim != 2:
        raise ValueError(f"scores must be a 2-D (users x items) array, got shape {out.shape}")
    u, i = _pairs(seen, out.shape[0], out.shape[1])
    out[u, i] = -np.inf
    return out

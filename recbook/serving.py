"""Real-time serving of a sequence model: fold a new event in with one forward pass, and find
the top-k items by inner product, exactly or with a faiss nearest-neighbour index.

Why an index: the model's score of item ``j`` is ``<[state, 1], [e_j, b_j]>``, so a request
is a maximum-inner-product search over the catalogue. Exact search reads every item vector
(linear in the catalogue); HNSW graphs and IVF cells read a small part of it and trade a
little recall for latency. :func:`recall_at_k` measures that trade against exact search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recbook import checks

KINDS = ("exact", "hnsw", "ivf")


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("recbook.serving needs faiss-cpu: pip install 'faiss-cpu>=1.15'") from exc
    return faiss


def _matrix(values: Any, what: str, dim: int | None = None) -> np.ndarray:
    arr = np.ascontiguousarray(checks.finite_array(values, what), dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (rows x dim), got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{what} has dimension {arr.shape[1]}, the index has {dim}")
    return arr


@dataclass
class ItemIndex:
    """Top-k items by inner product with a query vector.

    ``kind="exact"``: one matrix-vector product and a partial sort (numpy, no faiss).
    The faiss kinds search the inner product as an L2 search on augmented vectors.
    ``"hnsw"``: faiss ``IndexHNSWFlat`` (graph with ``hnsw_m`` links per node, built with
    ``ef_construction``, searched with ``ef_search``). ``"ivf"``: faiss ``IndexIVFFlat`` with
    ``nlist`` k-means cells (default ~sqrt(n)), ``nprobe`` of them searched.
    """

    vectors: np.ndarray
    kind: str = "exact"
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 64
    nlist: int | None = None
    nprobe: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        checks.one_of(self.kind, KINDS, "index kind")
        self.vectors = _matrix(self.vectors, "item vectors")
        n, d = self.vectors.shape
        self.index = None
        if self.kind == "exact":
            return
        faiss = _faiss()
        # inner product is not a distance, and graphs and k-means cells built on it find the
        # big-norm items and miss the rest; one extra coordinate sqrt(M^2 - |x|^2) turns the
        # search into an exact L2 nearest-neighbour one (Bachrach et al. 2014)
        norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self._max_sq = float(norms.max())
        extra = np.sqrt(np.maximum(self._max_sq - norms, 0.0))[:, None]
        augmented = np.ascontiguousarray(np.hstack([self.vectors, extra]), dtype=np.float32)
        if self.kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(d + 1, checks.integer(self.hnsw_m, "hnsw_m", 2))
            self.index.hnsw.efConstruction = checks.integer(
                self.ef_construction, "ef_construction", 1
            )
            self.index.add(augmented)
        else:
            # ~sqrt(n) cells, and at least 39 training points per cell (faiss's minimum)
            nlist = self.nlist or max(1, min(int(np.sqrt(n)), n // 39))
            nlist = checks.integer(nlist, "nlist", 1, n)
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d + 1), d + 1, nlist)
            self.index.cp.seed = checks.seed(self.seed)
            self.index.train(augmented)
            self.index.add(augmented)
        self.set_search(ef_search=self.ef_search, nprobe=self.nprobe)

    def set_search(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change the search-time knob (HNSW ``ef_search``, IVF ``nprobe``) without rebuilding."""
        if ef_search is not None:
            self.ef_search = checks.integer(ef_search, "ef_search", 1)
            if self.kind == "hnsw":
                self.index.hnsw.efSearch = self.ef_search
        if nprobe is not None:
            self.nprobe = checks.integer(nprobe, "nprobe", 1)
            if self.kind == "ivf":
                self.index.nprobe = min(self.nprobe, self.index.nlist)

    @property
    def n_items(self) -> int:
        return self.vectors.shape[0]

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n_queries, k)``, best first; every id is a real item.

        An IVF index searches only ``nprobe`` of its cells; when they hold fewer than ``k``
        items faiss pads with id -1 (which numpy would read as the last item), so that is
        refused with the numbers needed to raise ``nprobe`` (or lower ``k``)."""
        q = _matrix(np.atleast_2d(queries), "queries", self.vectors.shape[1])
        k = checks.integer(k, "k", 1, self.n_items)
        if self.kind == "exact":
            scores = q @ self.vectors.T
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-top, axis=1, kind="stable")
            return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)
        q_aug = np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), np.float32)]))
        dist, ids = self.index.search(q_aug, k)
        unfilled = (ids < 0).any(axis=1)
        if unfilled.any():
            fewest = int((ids >= 0).sum(axis=1).min())
            knob = (
                f"nprobe={self.nprobe} of nlist={self.index.nlist} cells; raise nprobe with "
                "set_search(nprobe=...)"
                if self.kind == "ivf"
                else f"ef_search={self.ef_search}; raise it with set_search(ef_search=...)"
            )
            raise ValueError(
                f"{self.kind} search found fewer than k={k} items for {int(unfilled.sum())} of "
                f"{len(q)} queries (as few as {fewest}) with {knob}, or lower k"
            )
        # |q - x'|^2 = |q|^2 + M^2 - 2 q.x  ->  the inner product back
        scores = (np.einsum("ij,ij->i", q, q)[:, None] + self._max_sq - dist) / 2
        return scores.astype(np.float32), ids


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k ids that the index also returned (order ignored)."""
    found, exact = np.asarray(found), np.asarray(exact)
    checks.same_shape(found, exact, "recall_at_k(found, exact)")
    if found.ndim != 2 or found.size == 0:
        raise ValueError(f"found/exact must be non-empty (queries x k) arrays, got {found.shape}")
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum(axis=1)
    return float((hits / exact.shape[1]).mean())


def latency_ms(call: Callable[[int], Any], n: int, warmup: int = 10) -> np.ndarray:
    """Wall time in ms of ``call(i)`` for ``i`` in ``range(n)``, one request at a time."""
    checks.integer(n, "n", 1)
    for i in range(min(warmup, n)):
        call(i)
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def grow_catalogue(base: Any, n: int, groups: Any = None, seed: int = 0) -> np.ndarray:
    """A catalogue of ``n`` item vectors that keeps the structure of ``base`` (e.g. learned
    item vectors): the base rows first, then new items drawn from a Gaussian with the mean and
    covariance of their group's base rows (``groups``: one label per base row, e.g. the
    category; default one group). New items are distinct products of the same kinds, not
    near-copies, and stay in the subspace the base spans -- what a scaled-up shop looks like
    to an index (copies plus tiny noise would make top-k a lottery among near-ties)."""
    base = _matrix(base, "base vectors")
    n = checks.integer(n, "n", 1)
    labels = np.zeros(len(base), dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape != (len(base),):
        raise ValueError(
            f"groups must hold one label per base row ({len(base)}), got {labels.shape}"
        )
    rng = np.random.default_rng(checks.seed(seed))
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    keep = min(n, len(base))
    out[:keep] = base[:keep]
    if n == keep:
        return out
    kinds, inverse = np.unique(labels, return_inverse=True)
    which = inverse[rng.integers(0, len(base), size=n - keep)]  # groups in base proportions
    for g in range(len(kinds)):
        rows = base[inverse == g].astype(np.float64)
        idx = np.flatnonzero(which == g) + keep
        if len(idx) == 0:
            continue
        cov = np.cov(rows, rowvar=False) if len(rows) > 1 else np.zeros((base.shape[1],) * 2)
        out[idx] = rng.multivariate_normal(
            rows.mean(axis=0), np.atleast_2d(cov), size=len(idx), method="eigh"
        )
    return out


def recommend(
    model: Any,
    history: Sequence[int],
    k: int = 10,
    *,
    index: ItemIndex | None = None,
    exclude: Sequence[int] = (),
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(item ids, scores)`` for one shopper after ``history`` (time order).

    Fold-in: the history goes through the trained :class:`~recbook.sequences.SequenceModel`
    once (no retraining), so a click just made changes the next list. ``index`` searches its
    vectors (they must be ``model.item_vectors()``) instead of scoring every item; items in
    ``exclude`` are never returned. An empty history needs ``fallback`` scores (e.g.
    popularity), since the model has nothing to attend to.
    """
    from recbook.sequences import user_states

    k = checks.integer(k, "k", minimum=1, maximum=model.n_items)
    excluded = np.unique(
        checks.ids(np.asarray(exclude, dtype=np.int64).reshape(-1), model.n_items, "exclude")
    )
    if len(excluded) > model.n_items - k:
        raise ValueError(f"excluding {len(excluded)} items leaves fewer than k={k} to recommend")
    if len(history) == 0:
        if fallback is None:
            raise ValueError(
                "empty history: pass fallback= scores (e.g. popularity) for a shopper with no "
                "events yet; the sequence model needs at least one"
            )
        scores = checks.finite_array(fallback, "fallback").astype(float).copy()
        if scores.shape != (model.n_items,):
            raise ValueError(f"fallback must have shape ({model.n_items},), got {scores.shape}")
        scores[excluded] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return top, scores[top]
    state = user_states(model, [history])
    query = np.concatenate([state.cpu().numpy(), np.ones((1, 1), np.float32)], axis=1)
    if index is None:
        index = ItemIndex(model.item_vectors().detach().cpu().numpy())
    if index.n_items != model.n_items:
        raise ValueError(f"index holds {index.n_items} items, the model {model.n_items}")
    scores, ids = index.search(query, min(model.n_items, k + len(excluded)))
    keep = ~np.isin(ids[0], excluded)  # search returns real ids only
    return ids[0][keep][:k], scores[0][keep][:k]

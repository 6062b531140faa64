"""Next-item baselines that need no training, and their tuning on the validation item.

Why: a sequential model is only worth its training if it beats what simple counting already
knows. On next-item tasks with re-buys, the shopper's own recent items and a first-order
Markov chain blended with repeats are hard to beat, and session-based nearest neighbours
(SKNN) often match neural models (Ludewig & Jannach 2018, "Evaluation of session-based
recommendation algorithms"; Dacrema et al. 2019, "Are we really making much progress?").

Every scorer takes histories (lists of item-id arrays in time order) and returns a dense
``(len(histories), n_items)`` score matrix, built with sparse matrices rather than loops over
users. :func:`tune` picks a scorer's settings on the validation item, never on test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recbook import checks, metrics


def _closed_unit(value: Any, what: str, zero: bool = False) -> float:
    """A number in (0, 1] (or [0, 1] with ``zero``)."""
    v = checks.number(value, what)
    if not (0 <= v <= 1 if zero else 0 < v <= 1):
        raise ValueError(f"{what} must lie in {'[0' if zero else '(0'}, 1], got {v}")
    return v


def _flat(histories: Sequence[Any], n_items: int, what: str) -> tuple[np.ndarray, ...]:
    """Concatenated items, their row, and their age (0 = the row's latest event)."""
    arrays = [np.asarray(h).reshape(-1) for h in histories]
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    items = checks.ids(np.concatenate(arrays) if arrays else np.zeros(0, np.int64), n_items, what)
    rows = np.repeat(np.arange(len(arrays)), lengths)
    ends = np.cumsum(lengths)
    age = np.repeat(ends, lengths) - 1 - np.arange(len(items))
    return items, rows, age, lengths


def history_counts(histories: Sequence[Any], n_items: int, decay: float = 1.0) -> sparse.csr_matrix:
    """Sparse ``(B, n_items)`` counts of each history's items, the latest weighted 1 and each
    step back by ``decay`` (``decay=1``: plain counts; small: the latest items dominate)."""
    decay = _closed_unit(decay, "decay")
    items, rows, age, _ = _flat(histories, n_items, "histories")
    w = decay**age if decay < 1 else np.ones(len(items))
    return sparse.csr_matrix((w, (rows, items)), shape=(len(histories), n_items))


def popularity(sequences: Sequence[Any], n_items: int) -> np.ndarray:
    """How often each item occurs in the training sequences."""
    items, *_ = _flat(sequences, n_items, "training sequences")
    return np.bincount(items, minlength=n_items).astype(float)


def personal_scores(
    histories: Sequence[Any], n_items: int, pop: Any, decay: float = 0.8
) -> np.ndarray:
    """Repeat-aware personal frequency / recency: the shopper's own items first, ranked by
    recency-decayed counts (``decay=1``: frequency only), then everything else by popularity."""
    pop = checks.finite_array(pop, "pop")
    own = history_counts(histories, n_items, decay).toarray()
    return np.where(own > 0, 1.0 + own, 0.0) + 0.5 * pop[None, :] / (pop.max() or 1.0)


def transitions(sequences: Sequence[Any], n_items: int) -> sparse.csr_matrix:
    """Sparse ``(n_items, n_items)`` counts of item ``i`` followed directly by item ``j``."""
    items, rows, _, lengths = _flat(sequences, n_items, "training sequences")
    follows = np.ones(len(items), dtype=bool)
    follows[np.cumsum(lengths)[lengths > 0] - 1] = False  # a row's last item has no successor
    src = items[follows]
    dst = items[np.flatnonzero(follows) + 1]
    return sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n_items, n_items))


def markov_repeat_scores(
    counts: sparse.csr_matrix,
    histories: Sequence[Any],
    pop: Any,
    blend: float = 0.3,
    decay: float = 0.8,
    smoothing: float = 0.1,
) -> np.ndarray:
    """First-order Markov chain blended with decayed repeats (two knobs):
    ``(1 - blend) * P(next | last item) + blend * the history's decayed item shares``.

    ``counts`` are the training :func:`transitions`; P(next | last) is smoothed towards
    popularity with ``smoothing`` pseudo-transitions; ``blend=0`` is the plain chain."""
    blend = _closed_unit(blend, "blend", zero=True)
    pop = checks.finite_array(pop, "pop")
    n_items = counts.shape[0]
    items, rows, age, lengths = _flat(histories, n_items, "histories")
    if (lengths == 0).any():
        raise ValueError(
            f"history {int(np.argmax(lengths == 0))} is empty: the Markov chain needs a last "
            "item; score new visitors with popularity"
        )
    last = items[np.cumsum(lengths) - 1]
    s = checks.number(smoothing, "smoothing", non_negative=True)
    chain = counts[last].toarray()
    chain = (chain + s * pop / pop.sum()) / (chain.sum(axis=1, keepdims=True) + s)
    own = history_counts(histories, n_items, decay).toarray()
    own /= own.sum(axis=1, keepdims=True)
    return (1 - blend) * chain + blend * own


def sknn_scores(
    train: Sequence[Any],
    histories: Sequence[Any],
    n_items: int,
    pop: Any,
    k: int = 100,
    decay: float = 0.8,
    self_rows: Any = None,
) -> np.ndarray:
    """Session-based item-kNN (V-SKNN, Ludewig & Jannach 2018): the ``k`` training sequences
    most similar to the history (cosine, the history's items weighted by recency ``decay``)
    vote for their items with their similarity. ``self_rows[b]`` is the training row of
    history ``b``'s own user (excluded as a neighbour; -1: none). Ties fall to popularity."""
    k = checks.integer(k, "k", minimum=1)
    pop = checks.finite_array(pop, "pop")
    neigh = history_counts(train, n_items, 1.0)
    neigh.data[:] = 1.0  # a neighbour is the set of its items
    query = history_counts(histories, n_items, decay)
    norms = np.sqrt(np.asarray(neigh.sum(axis=1)).ravel()).clip(min=1.0)
    sim = (query @ neigh.T).toarray() / norms[None, :]
    if self_rows is not None:
        own = np.asarray(self_rows, dtype=np.int64).reshape(-1)
        if len(own) != len(sim):
            raise ValueError(f"self_rows has {len(own)} entries for {len(sim)} histories")
        ok = own >= 0
        sim[np.flatnonzero(ok), own[ok]] = 0.0
    k = min(k, sim.shape[1])
    if k < sim.shape[1]:
        cut = np.partition(sim, -k, axis=1)[:, -k][:, None]
        sim = np.where(sim >= cut, sim, 0.0)
    scores = sparse.csr_matrix(sim) @ neigh
    scores = np.asarray(scores.todense()) if sparse.issparse(scores) else np.asarray(scores)
    return scores + 1e-9 * pop[None, :] / (pop.max() or 1.0)


def tune(
    score: Callable[..., np.ndarray],
    grid: Sequence[Mapping[str, Any]],
    val_target: Any,
    k: int = 10,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.Series]:
    """The settings of ``grid`` whose validation NDCG@k is highest: ``score(**settings)`` must
    score the *validation* histories (training only), ``val_target`` their held-out items.
    Returns the best settings and every config's score (the "configs tried")."""
    configs = [dict(c) for c in grid]
    if not configs:
        raise ValueError("tune: empty grid; give at least one settings dict")
    target = np.asarray(val_target).reshape(-1)
    results = []
    for c in configs:
        s = score(**c)
        if s.ndim != 2 or s.shape[0] != len(target):
            raise ValueError(f"score({c}) has shape {s.shape} for {len(target)} targets")
        target = checks.ids(target, s.shape[1], "val_target")
        relevant = np.zeros(s.shape, dtype=bool)
        relevant[np.arange(len(target)), target] = True
        results.append(metrics.ndcg_at_k(s, relevant, k, seed=seed))
    table = pd.Series(
        results, index=[", ".join(f"{a}={v}" for a, v in c.items()) or "-" for c in configs]
    )
    return configs[int(np.argmax(results))], table.rename("validation NDCG")

"""Peak memory of the tied-score ranking path: NDCG@10 on a (users x items) float32 matrix.

    python benchmarks/memory.py                       # 100k x 1,000 (about a minute)
    python benchmarks/memory.py --users 10000         # a quick subset

Every row of the score matrix holds ties (scores rounded to two decimals), so every user takes
the tie-break path of :func:`recbook.metrics.top_k` (a seeded shuffle of the row). Each setting
runs in a fresh child process: the peak is the highest resident set size (RSS) seen while
``metrics.ndcg_at_k`` runs, sampled every millisecond and cross-checked with the kernel's
``ru_maxrss``, minus the RSS just before the call (scores and relevance already built). The
issue-24 target: the increase stays within 2x the score matrix. "one batch" sets
``metrics.BATCH_CELLS`` to the whole matrix, which is about what the unbatched code did.
Results go to ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "memory.json"
K = 10


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def child(users: int, items: int, batch_cells: int | None, seed: int) -> dict:
    """Measure one setting in this process; returns the row as a dict."""
    from recbook import metrics

    rng = np.random.default_rng(seed)
    scores = rng.random((users, items), dtype=np.float32)
    np.round(scores, 2, out=scores)  # ~100 distinct values per row: ties everywhere
    relevance = np.zeros((users, items), dtype=bool)
    relevance[np.arange(users), rng.integers(0, items, users)] = True
    if batch_cells is not None:
        metrics.BATCH_CELLS = batch_cells
    before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    baseline = _rss_bytes()
    peak, done = [baseline], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    start = time.perf_counter()
    ndcg = metrics.ndcg_at_k(scores, relevance, K, seed=seed)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if after_max > before_max:  # the kernel saw a new peak during the call
        peak[0] = max(peak[0], after_max)
    increase = peak[0] - baseline
    return {
        "users": users,
        "items": items,
        "batch_cells": metrics.BATCH_CELLS,
        "matrix_mb": round(scores.nbytes / 2**20, 1),
        "baseline_rss_mb": round(baseline / 2**20, 1),
        "peak_increase_mb": round(increase / 2**20, 1),
        "increase_over_matrix": round(increase / scores.nbytes, 2),
        "ndcg_at_10": ndcg,
        "wall_s": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # one measurement, printed as JSON for the parent
        cells = None if args.child == 0 else args.child
        print(json.dumps(child(args.users, args.items, cells, args.seed)))
        return []
    rows = []
    for label, cells in (("batched", 0), ("one batch", args.users * args.items)):
        command = [sys.executable, __file__, "--users", str(args.users), "--items",
                   str(args.items), "--seed", str(args.seed), "--child", str(cells)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["setting"] = label
        rows.append(row)
        print(
            f"{label:>9}: {args.users:,} x {args.items:,} float32 ({row['matrix_mb']} MB), "
            f"peak RSS increase {row['peak_increase_mb']} MB = {row['increase_over_matrix']}x "
            f"the matrix, NDCG@{K} {row['ndcg_at_10']:.6f}, {row['wall_s']} s"
        )
    if len({r["ndcg_at_10"] for r in rows}) != 1:
        raise SystemExit("batched and one-batch NDCG differ: batching changed a result")
    from recbook.book import results

    for r in rows:  # the keys every results file carries (recbook.book.results.ROW_KEYS)
        r.update(model=f"ndcg_at_k ({r['setting']})", dataset="tied float32 scores",
                 split="-", fit_s=r["wall_s"], peer=False)  # fmt: skip
    notes = (
        f"peak RSS increase over the RSS before metrics.ndcg_at_k(k={K}); every row tied; "
        "target (issue 24): increase <= 2x the score matrix"
    )
    results.write(args.out, "memory", rows, notes=notes)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()

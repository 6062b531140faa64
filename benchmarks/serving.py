"""Serving cost of a top-10 request: exact search vs faiss HNSW and IVF, by catalogue size.

    python benchmarks/serving.py                      # 1k .. 1M items, 64-d (a few minutes)
    python benchmarks/serving.py --sizes 1000 100000  # a quick subset

Item vectors: the shop's true item factors (20-d) mapped to ``--dim`` dimensions by a fixed
random projection and grown to the catalogue size with new items drawn per category from the
shop's own item distribution (``serving.grow_catalogue``), so a large catalogue keeps a real
one's structure; queries are the mapped user factors.
One request = one query vector, batch 1, one search thread (``--threads``, a serving worker
per core); latency is wall time per request, p50 and p99 over ``--requests`` requests, and
recall@10 is measured against exact search on the same queries. Results go to
``benchmarks/results/serving.json`` (rows ``{catalogue_size, index, p50_ms, p99_ms,
recall_at_10, ...}``) with the machine it ran on (``recbook.book.results.write``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "serving.json"
K = 10


def vectors(n_items: int, dim: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from recbook import datasets, serving

    shop = datasets.load("shop", seed=seed)
    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(shop.truth.item_factors.shape[1], dim)) / np.sqrt(dim)
    items = shop.truth.item_factors @ proj
    users = shop.truth.user_factors[rng.integers(0, shop.n_users, n_queries)] @ proj
    groups = shop.items["category"].cat.codes.to_numpy()
    catalogue = serving.grow_catalogue(items, n_items, groups=groups, seed=seed)
    return catalogue, users.astype(np.float32)


def measure(index, queries: np.ndarray, exact_ids: np.ndarray) -> dict:
    from recbook import serving

    ms = serving.latency_ms(lambda i: index.search(queries[i : i + 1], K), len(queries))
    _, found = index.search(queries, K)
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "recall_at_10": serving.recall_at_k(found, exact_ids),
    }


def _write(rows: list[dict], args: argparse.Namespace, faiss_version: str) -> None:
    """Write what is measured so far (a long run that is stopped keeps its finished sizes)."""
    from recbook.book import results

    for r in rows:  # the keys every results file carries (recbook.book.results.ROW_KEYS)
        r.update(model=r["index"], dataset=f"shop item factors grown, {args.dim}-d", split="-",
                 fit_s=r["build_s"], peer=False)  # fmt: skip
    notes = (
        f"top-{K}, batch 1, {args.threads} search thread(s), {args.requests} requests; "
        f"faiss {faiss_version}; HNSW M={args.hnsw_m}, efConstruction={args.ef_construction}; "
        f"indexes built with {args.build_threads} threads"
    )
    results.write(args.out, "serving", rows, notes=notes)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="search threads (faiss, BLAS)")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count())
    parser.add_argument("--ef-search", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--hnsw-m", type=int, default=16, help="HNSW links per node")
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import faiss
    from threadpoolctl import threadpool_limits

    from recbook import serving

    rows = []
    for n in args.sizes:
        items, queries = vectors(n, args.dim, args.requests, args.seed)
        exact = serving.ItemIndex(items)
        with threadpool_limits(args.threads):
            _, exact_ids = exact.search(queries, K)
            rows.append({"catalogue_size": n, "index": "exact", "build_s": 0.0,
                         **measure(exact, queries, exact_ids)})  # fmt: skip
        for kind, knobs, key in (("ivf", args.nprobe, "nprobe"),
                                 ("hnsw", args.ef_search, "ef_search")):  # fmt: skip
            faiss.omp_set_num_threads(args.build_threads)
            t0 = time.perf_counter()
            index = serving.ItemIndex(
                items, kind=kind, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction
            )
            build = time.perf_counter() - t0
            faiss.omp_set_num_threads(args.threads)
            for knob in knobs:
                index.set_search(**{key: knob})
                with threadpool_limits(args.threads):
                    row = measure(index, queries, exact_ids)
                name = f"{kind} {key}={knob}"
                rows.append({"catalogue_size": n, "index": name, "build_s": build, **row})
            _write(rows, args, faiss.__version__)
        for r in rows[-(1 + len(args.ef_search) + len(args.nprobe)) :]:
            print(
                f"{r['catalogue_size']:>9,d}  {r['index']:<18s} p50 {r['p50_ms']:7.3f} ms  "
                f"p99 {r['p99_ms']:7.3f} ms  recall@10 {r['recall_at_10']:.3f}  "
                f"build {r['build_s']:6.1f} s",
                flush=True,
            )
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()

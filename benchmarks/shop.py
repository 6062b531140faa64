"""Benchmark: how long the shop takes to generate at the issue's size (goal <= 10 s on 2 cores).

python benchmarks/shop.py                 # 100k users x 10k items x 2M events
python benchmarks/shop.py --scale 0.1     # smaller
"""

from __future__ import annotations

import argparse
import time

from recbook.datasets import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for seed in range(args.repeat):
        start = time.perf_counter()
        shop = load("shop", n_users=args.users, n_items=args.items, n_events=args.events, seed=seed)
        times.append(time.perf_counter() - start)
    print(shop)
    print(
        f"ratings {len(shop.ratings())}  rmse_floor {shop.truth.rmse_floor:.4f}  "
        f"auc_floor {shop.truth.auc_floor:.4f}"
    )
    print(
        f"generate best {min(times):.2f} s  mean {sum(times) / len(times):.2f} s "
        f"over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()

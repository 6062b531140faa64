"""Benchmark: how long the shop takes to generate at workshop scale and beyond
(goal <= 10 s on 2 cores for 100k users x 10k items x 2M events).

python benchmarks/shop.py                 # 100k users x 10k items x 2M events
python benchmarks/shop.py --users 3000 --items 1000 --events 200000   # the notebooks' size
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recbook import metrics
from recbook.datasets import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wall, cpu = [], []
    for seed in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        shop = load("shop", n_users=args.users, n_items=args.items, n_events=args.events, seed=seed)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    ratings = shop.ratings()
    per_user = np.bincount(ratings.user_id, minlength=shop.n_users)
    ev = shop.events
    clicked = (ev.event != "view").to_numpy()
    click_auc = metrics.auc(clicked, shop.truth.click_probability(ev.user_id, ev.item_id))
    print(shop)
    print(
        f"ratings {len(ratings)} (mean {ratings.rating.mean():.2f}); per user: median "
        f"{np.median(per_user):.0f}, p10 {np.percentile(per_user, 10):.0f}, p90 "
        f"{np.percentile(per_user, 90):.0f}, share < 5 {np.mean(per_user < 5):.2f}"
    )
    print(f"click AUC of truth.click_probability on all impressions {click_auc:.4f}")
    print(
        f"generate best {min(wall):.2f} s  mean {sum(wall) / len(wall):.2f} s wall, "
        f"mean {sum(cpu) / len(cpu):.2f} s CPU over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()

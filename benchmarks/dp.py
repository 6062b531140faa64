"""Benchmark: what DP-SGD costs in time against non-private training (notebook 05's goal <= 2x).

    python benchmarks/dp.py                   # notebook 05's defaults: shop, BiasedMF, eps = 8
    python benchmarks/dp.py --repeats 9 --batch-size 4096 --device cuda
    python benchmarks/dp.py --dataset movielens-100k --path ml-100k.zip --curve 0.5 1 2 4 8
    python benchmarks/dp.py --out benchmarks/results/dp.json   # also write the rows as JSON

Trains notebook 05's BiasedMF on the same split, for the same epochs and expected batch size:
without privacy (``TensorBatches``), with DP-SGD through Opacus's ``PrivacyEngine`` (ghost
clipping), and with DP-SGD through ``recbook.privacy.clipping``'s one-backward embedding clipping —
the latter seeded (reproducible demo) and in secure mode (OS randomness re-seeded every step,
floating-point-safe noise: what a private model uses), at the example and at the user level. Runs
are interleaved; it prints the median training-loop seconds, the ratio to the non-private run, the ε
each DP run spent and its test RMSE. ``--curve`` adds test RMSE vs ε (secure mode, example and user
level). ``--out`` writes every row with the machine and its load (``recbook.book.results``). The
private models' offset is a noisy mean paid from the budget (``privacy.private_mean``, ε = 0.05 of
each budget), never the exact training mean.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import torch
from torch import nn

from recbook import datasets, metrics, models_torch, privacy, runtime, splits, training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="shop")
    parser.add_argument("--path", default=None, help="local copy of the public data")
    parser.add_argument("--curve", type=float, nargs="*", default=[], help="ε values")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument(
        "--users-per-step",
        type=int,
        default=150,
        help="user level: expected users per step, q = this / n users (notebook 05's setting)",
    )
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="write the rows as JSON here (benchmarks/results/dp.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = runtime.device(args.device)

    # notebook 05's split: 80/20, then 10 % of train for validation (unused here)
    ds = datasets.load(args.dataset, **({"path": args.path} if args.path else {}))
    train_rows, test_rows = splits.random_split(ds.ratings(), test_size=0.2, seed=0)
    fit_rows, _ = splits.random_split(train_rows, test_size=0.1, seed=1)
    fit_t = [
        torch.tensor(fit_rows["user_id"].to_numpy()),
        torch.tensor(fit_rows["item_id"].to_numpy()),
        torch.tensor(fit_rows["rating"].to_numpy(), dtype=torch.float32),
    ]
    delta = privacy.default_delta(len(fit_rows))
    n_users = int(fit_rows["user_id"].nunique())
    delta_user = privacy.default_delta(n_users)
    mean_eps, scale = 0.05, {"low": 1.0, "high": 5.0}
    offsets = {
        "exact": float(fit_rows["rating"].mean()),  # the non-private model only
        "example": privacy.private_mean(fit_rows["rating"], epsilon=mean_eps, seed=0, **scale),
        "user": privacy.private_mean(
            fit_rows["rating"], epsilon=mean_eps, groups=fit_rows["user_id"], seed=0, **scale
        ),
    }
    test_u = torch.tensor(test_rows["user_id"].to_numpy(), device=dev)
    test_i = torch.tensor(test_rows["item_id"].to_numpy(), device=dev)
    trained: dict[str, tuple[nn.Module, privacy.DPTraining | None]] = {}

    def new_model(offset: str = "exact") -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = models_torch.BiasedMF(ds.n_users, ds.n_items, args.dim, global_mean=offsets[offset])
        model.to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        return model, torch.optim.Adam(params, lr=0.005, weight_decay=1e-3)

    def non_private() -> training.History:
        model, opt = new_model()
        batches = training.TensorBatches(*fit_t, batch_size=args.batch_size, seed=0)
        history = training.fit(
            model,
            batches,
            nn.MSELoss(),
            optimizer=opt,
            epochs=args.epochs,
            device=dev,
            progress=False,
        )
        trained["non-private"] = (model, None)
        return history

    def private(
        name: str, clipper: str, secure: bool, unit: str = "example", epsilon: float | None = None
    ):
        def run() -> training.History:
            model, opt = new_model(unit)
            setup = privacy.make_private(
                model,
                opt,
                privacy.tensor_loader(*fit_t, batch_size=args.batch_size, seed=0),
                nn.MSELoss(),
                target_epsilon=(args.epsilon if epsilon is None else epsilon) - mean_eps,
                delta=delta if unit == "example" else delta_user,
                epochs=args.epochs,
                max_grad_norm=1.0,
                clipper=clipper,
                secure_mode=secure,
                seed=None if secure else 0,
                privacy_unit=unit,
                # q from the public number of users, never from rows (one user moves those)
                sample_rate=None if unit == "example" else min(1.0, args.users_per_step / n_users),
            )
            history = setup.fit(device=dev, progress=False)
            trained[name] = (model, setup)
            return history

        return run

    runs = {
        "non-private": non_private,
        "DP-SGD opacus, seeded": private("DP-SGD opacus, seeded", "opacus", False),
        "DP-SGD embedding_rows, seeded": private(
            "DP-SGD embedding_rows, seeded", "embedding_rows", False
        ),
        "DP-SGD embedding_rows, secure": private(
            "DP-SGD embedding_rows, secure", "embedding_rows", True
        ),
        "DP-SGD user level, secure": private(
            "DP-SGD user level, secure", "embedding_rows", True, "user"
        ),
    }

    def test_rmse(model: nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            pred = model(test_u, test_i).clamp(1, 5).cpu().numpy()
        return metrics.rmse(test_rows["rating"].to_numpy(), pred)

    def total_epsilon(setup: privacy.DPTraining | None) -> float:
        return setup.epsilon() + mean_eps if setup else np.inf

    table = training.compare_timings(runs, reference="non-private", repeats=args.repeats)
    for name, (model, setup) in trained.items():
        table.loc[name, "test RMSE"] = test_rmse(model)
        table.loc[name, "epsilon"] = total_epsilon(setup)
    print(
        f"{ds.name}: {len(fit_rows)} training ratings, BiasedMF dim {args.dim}, batch "
        f"{args.batch_size}, {args.epochs} epochs, device {dev}, {args.threads} torch thread(s), "
        f"{args.repeats} interleaved repeats"
    )
    print(table.round(3).to_string())
    rows = [
        {
            "model": name,
            "dataset": ds.name,
            "split": "random 80/20, 90 % of train fitted",
            "fit_s": float(row["median s"]),
            "peer": False,
            "min_s": float(row["min s"]),
            "max_s": float(row["max s"]),
            "ratio_to_non_private": float(row["ratio"]),
            "test_rmse": float(row["test RMSE"]),
            "epsilon": float(row["epsilon"]) if np.isfinite(row["epsilon"]) else None,
        }
        for name, row in table.iterrows()
    ]
    if args.curve:
        curve_rows = []
        for eps in args.curve:
            for unit in ("example", "user"):
                name = f"{unit} level, eps={eps:g}"
                private(name, "embedding_rows", True, unit, eps)()
                model, setup = trained[name]
                curve_rows.append(
                    {"epsilon": total_epsilon(setup), "unit": unit, "test RMSE": test_rmse(model)}
                )
        curve = pd.DataFrame(curve_rows).pivot(index="epsilon", columns="unit", values="test RMSE")
        print(f"test RMSE vs total epsilon (secure mode; non-private {table.iloc[0, -2]:.3f}):")
        print(curve.round(4).to_string())
        rows += [
            {"model": f"DP-SGD {r['unit']} level, secure (curve)", "dataset": ds.name,
             "split": rows[0]["split"], "fit_s": None, "peer": False,
             "test_rmse": r["test RMSE"], "epsilon": r["epsilon"]}
            for r in curve_rows
        ]  # fmt: skip
    if args.out:
        from recbook.book import results

        notes = (
            f"BiasedMF dim {args.dim}, batch {args.batch_size}, {args.epochs} epochs, device "
            f"{dev}, {args.threads} torch thread(s), median of {args.repeats} interleaved repeats "
            "(training loop only); fit_s is the median; ratio_to_non_private is the goal's measure"
        )
        print("wrote", results.write(args.out, "dp", rows, notes=notes, argv=sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

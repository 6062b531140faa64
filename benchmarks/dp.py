"""Benchmark: what DP-SGD costs in time against non-private training (notebook 05's goal <= 2x).

    python benchmarks/dp.py                   # notebook 05's defaults: shop, BiasedMF, eps = 8
    python benchmarks/dp.py --repeats 9 --batch-size 4096 --device cuda

Trains notebook 05's BiasedMF on the same split three ways, for the same epochs and expected
batch size: without privacy (``TensorBatches``), with DP-SGD through Opacus's ``PrivacyEngine``
(ghost clipping), and with DP-SGD through ``recbook.dp_sgd``'s one-backward embedding clipping.
Runs are interleaved; it prints the median training-loop seconds, the ratio to the non-private
run, the ε each DP run spent and its test RMSE.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import recbook.dp_sgd as dp_sgd  # noqa: E402
from recbook import datasets, metrics, models_torch, privacy, runtime, splits, training  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="shop")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = runtime.device(args.device)

    # notebook 05's split: 80/20, then 10 % of train for validation (unused here)
    ds = datasets.load(args.dataset)
    train_rows, test_rows = splits.random_split(ds.ratings(), test_size=0.2, seed=0)
    fit_rows, _ = splits.random_split(train_rows, test_size=0.1, seed=1)
    fit_t = [
        torch.tensor(fit_rows["user_id"].to_numpy()),
        torch.tensor(fit_rows["item_id"].to_numpy()),
        torch.tensor(fit_rows["rating"].to_numpy(), dtype=torch.float32),
    ]
    mean_rating, delta = float(fit_rows["rating"].mean()), privacy.default_delta(len(fit_rows))
    test_u = torch.tensor(test_rows["user_id"].to_numpy(), device=dev)
    test_i = torch.tensor(test_rows["item_id"].to_numpy(), device=dev)
    trained: dict[str, tuple[nn.Module, dp_sgd.DPTraining | None]] = {}

    def new_model() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = models_torch.BiasedMF(ds.n_users, ds.n_items, args.dim, global_mean=mean_rating)
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

    def private(clipper: str):
        def run() -> training.History:
            model, opt = new_model()
            setup = dp_sgd.make_private(
                model,
                opt,
                dp_sgd.tensor_loader(*fit_t, batch_size=args.batch_size, seed=0),
                nn.MSELoss(),
                target_epsilon=args.epsilon,
                delta=delta,
                epochs=args.epochs,
                max_grad_norm=1.0,
                clipper=clipper,
            )
            history = training.fit(
                setup.module,
                setup.loader,
                setup.criterion,
                optimizer=setup.optimizer,
                epochs=args.epochs,
                device=dev,
                progress=False,
            )
            trained[f"DP-SGD ({clipper})"] = (model, setup)
            return history

        return run

    runs = {
        "non-private": non_private,
        "DP-SGD (opacus)": private("opacus"),
        "DP-SGD (embedding_rows)": private("embedding_rows"),
    }
    table = training.compare_timings(runs, reference="non-private", repeats=args.repeats)
    for name, (model, setup) in trained.items():
        model.eval()
        with torch.no_grad():
            pred = model(test_u, test_i).clamp(1, 5).cpu().numpy()
        table.loc[name, "test RMSE"] = metrics.rmse(test_rows["rating"].to_numpy(), pred)
        table.loc[name, "epsilon"] = setup.epsilon() if setup else np.inf
    print(
        f"{ds.name}: {len(fit_rows)} training ratings, BiasedMF dim {args.dim}, batch "
        f"{args.batch_size}, {args.epochs} epochs, device {dev}, {args.threads} torch thread(s), "
        f"{args.repeats} interleaved repeats"
    )
    print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

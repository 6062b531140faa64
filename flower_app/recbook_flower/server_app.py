"""ServerApp: Flower's FedAvg over every SuperNode (in Flower's DP wrapper when ``dp`` is on),
with federated evaluation each round.

When the run config names a ``result-dir``, it writes there the per-round RMSE, the privacy
statement and which recbook it ran with (``recbook.federated.local_federation.RESULT_FILE``)
and the final shared tensors (``WEIGHTS_FILE``), so a caller can compare runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

import recbook
from recbook.federated import init_model, shared_state
from recbook.federated.flower import to_arrays
from recbook.federated.local_federation import RESULT_FILE, WEIGHTS_FILE
from recbook_flower.strategy import build_strategy, privacy
from recbook_flower.task import TaskConfig, model_fn

FINISHED = "recbook FedAvg finished"  # the ServerApp's last line (flwr run exits 0 on a crash)
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = TaskConfig.from_run_config(context.run_config)
    strategy = build_strategy(cfg)
    report = privacy(cfg)
    if report:
        print(report["statement"], flush=True)
    initial = shared_state(init_model(model_fn(cfg), cfg.seed))
    start = time.perf_counter()
    result = strategy.start(
        grid=grid,
        initial_arrays=to_arrays(initial),
        num_rounds=cfg.num_rounds,
        train_config=ConfigRecord({}),
    )
    rmse = {
        int(r): math.sqrt(float(m["mse"]))
        for r, m in sorted(result.evaluate_metrics_clientapp.items())
    }
    print(f"{FINISHED}: test RMSE by round {rmse}", flush=True)
    if not cfg.result_dir:
        return
    out = Path(cfg.result_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / WEIGHTS_FILE, **{n: np.array(a.numpy()) for n, a in result.arrays.items()})
    summary = {
        "rmse": rmse, "seconds": time.perf_counter() - start, "nodes": cfg.num_partitions,
        "privacy": report,
        "recbook": {"version": recbook.__version__, "file": recbook.__file__},
    }  # fmt: skip
    (out / RESULT_FILE).write_text(json.dumps(summary), encoding="utf-8")

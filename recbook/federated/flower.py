"""FedAvg on Flower, the way Flower apps are run: a ServerApp and a ClientApp that read
everything from their ``Context``, packaged in ``flower_app/`` and launched with ``flwr run``.

* Each SuperNode is one client. It loads **only its own partition**, chosen by
  ``context.node_config["partition-id"]`` (the rank of its region/occupation/... value), and
  keeps its user rows in ``context.state`` between rounds; replies carry the shared (item-side)
  tensors and ``num-examples``. Nothing is a closure over other clients' data.
* The ServerApp runs Flower's own ``FedAvg`` strategy with federated evaluation and writes the
  per-round RMSE and the final shared tensors to ``result-dir`` (a run-config value), so a
  caller can compare runs.
* **DP with Flower's own wrappers** (run-config ``dp``): ``"server-clipping"`` wraps FedAvg in
  ``DifferentialPrivacyServerSideFixedClipping`` (the server clips each update and adds the
  noise: a trusted server, central DP); ``"client-clipping"`` in
  ``DifferentialPrivacyClientSideFixedClipping`` with Flower's ``fixedclipping_mod`` on the
  ClientApp (clients clip; the server still sees each clipped update and adds the noise);
  ``"server-adaptive"`` in ``DifferentialPrivacyServerSideAdaptiveClipping`` (Andrew et al.
  2021: the clip norm follows a target quantile of the update norms, learnt from a noisy count
  that is accounted in ε, see :func:`adaptive_noise`).
  Updates are averaged with equal weights (the noise std ``z C / m`` assumes it), every
  SuperNode takes part in every round, so ε comes from recbook's accountant without
  amplification by sampling (:func:`flower_privacy`). Flower draws the noise from numpy's
  global generator; the ServerApp re-seeds it from the OS before every aggregation.
  Flower's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``) is not offered: in flwr 1.41
  it runs only in the legacy workflow (``LegacyContext``, ``flwr.server.strategy``,
  ``FitIns``/``FitRes`` messages), not with the Message-API strategies this app uses.
* :class:`LocalFederation` starts Flower's own processes on the loopback interface: a
  ``flower-superlink --simulation`` (the simulation engine), or a ``flower-superlink`` plus
  one ``flower-supernode`` per partition (the deployment engine), and submits the app with
  ``flwr run``. Every process it starts is stopped when it exits.

Everything here is public Flower API (``flwr.app``, ``flwr.clientapp``, ``flwr.serverapp`` and
the command-line tools); insecure mode is for a local try-out on 127.0.0.1 only - a real
deployment uses TLS certificates and SuperNode authentication.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recbook.federated.state import State

APP_DIR = Path(__file__).resolve().parents[2] / "flower_app"
DP_MODES = ("off", "server-clipping", "client-clipping", "server-adaptive")
UNIT_WEIGHT = "unit-weight"  # FedAvg's weighting key under DP: every update counts the same
RESULT_FILE = "flower_result.json"
WEIGHTS_FILE = "flower_weights.npz"


# ----------------------------------------------------------------------------- messages


def to_arrays(state: State):
    """Named torch tensors as a Flower ``ArrayRecord``."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({n: Array(t.detach().cpu().numpy()) for n, t in state.items()})


def arrays_to_state(record) -> State:
    """A Flower ``ArrayRecord`` back to named torch tensors."""
    return {n: torch.from_numpy(np.array(a.numpy())) for n, a in record.items()}


def flower_message_bytes(state: State) -> int:
    """Bytes of a state as a Flower ``ArrayRecord`` (what travels in a message)."""
    return int(to_arrays(state).count_bytes())


# ----------------------------------------------------------------------------- the task


@functools.lru_cache(maxsize=4)
def _load(dataset: str, data_path: str, test_size: float, seed: int):
    from recbook import datasets, splits

    kwargs = {"path": data_path} if data_path else {}
    ds = datasets.load(dataset, **kwargs)
    train, test = splits.per_user_split(ds.ratings(), test_size=test_size, seed=seed)
    return ds, train, test


def task_from_config(run_config) -> dict:
    """The run-config values of ``flower_app/pyproject.toml`` as typed settings (DP settings
    checked here, before any round runs)."""
    from recbook import checks

    c = dict(run_config)
    dp = {
        "dp": checks.one_of(str(c.get("dp", "off")), DP_MODES, "run-config dp"),
        "dp_clip": checks.number(float(c.get("dp-clip", 0.5)), "dp-clip", positive=True),
        "dp_noise_multiplier": checks.number(
            float(c.get("dp-noise-multiplier", 1.0)), "dp-noise-multiplier", non_negative=True
        ),
        "dp_delta": checks.number(float(c.get("dp-delta", 0.0)), "dp-delta", non_negative=True),
        # adaptive clipping (Andrew et al. 2021): dp-clip is the initial norm
        "dp_target_quantile": checks.number(
            float(c.get("dp-target-quantile", 0.5)), "dp-target-quantile", non_negative=True
        ),
        "dp_clip_lr": checks.number(float(c.get("dp-clip-lr", 0.2)), "dp-clip-lr", positive=True),
        "dp_count_std": checks.number(
            float(c.get("dp-count-std", 0.0)), "dp-count-std", non_negative=True
        ),
    }
    if dp["dp_target_quantile"] > 1:
        raise ValueError(f"dp-target-quantile must be in [0, 1], got {dp['dp_target_quantile']}")
    return dp | {
        "dataset": str(c["dataset"]),
        "data_path": str(c.get("data-path", "")),
        "partition_column": str(c["partition-column"]),
        "test_size": float(c["test-size"]),
        "seed": int(c["seed"]),
        "dim": int(c["dim"]),
        "rounds": int(c["num-rounds"]),
        "local_epochs": int(c["local-epochs"]),
        "batch_size": int(c["batch-size"]),
        "lr": float(c["lr"]),
        "l2": float(c["l2"]),
        "result_dir": str(c.get("result-dir", "")),
    }


def load_partition(task: dict, partition_id: int):
    """What SuperNode ``partition_id`` holds: its own users' train/test ratings only.

    The public dataset file stands in for each node's local database: the node derives the
    same per-user split as the notebook and keeps the rows of its own users, nothing else.
    """
    from recbook.federated.clients import partition

    ds, train, test = _load(task["dataset"], task["data_path"], task["test_size"], task["seed"])
    label, client = partition(train, test, ds.users, task["partition_column"], partition_id)
    return label, client


def model_fn(task: dict):
    """The shared model: biased MF with the public rating midpoint as ``mu``."""
    from recbook.federated.state import public_mean
    from recbook.models_torch import BiasedMF

    ds, _, _ = _load(task["dataset"], task["data_path"], task["test_size"], task["seed"])
    n_users, n_items = ds.n_users, ds.n_items  # the catalogue sizes are public
    return lambda: BiasedMF(n_users, n_items, task["dim"], global_mean=public_mean())


def adaptive_noise(z: float, n_nodes: int, count_std: float = 0.0) -> tuple[float, float, float]:
    """(std of the clipped-count noise, noise multiplier of the updates, effective noise
    multiplier for the accountant) of Flower's adaptive-clipping wrappers told ``z``.

    Flower splits ``z`` as Andrew et al. (2021, Thm. 1) do: updates get
    ``z_u = (z^-2 - (2 s)^-2)^-1/2`` and the count of clipped updates N(0, s^2), ``s =
    count_std`` or ``n_nodes / 20``. The ``2 s`` is for centred bits (b - 1/2, sensitivity
    1/2); Flower counts plain bits, whose sum moves by 1 when a client joins or leaves, so the
    two releases together are a Gaussian mechanism with ``z_eff = (z_u^-2 + s^-2)^-1/2``,
    smaller than ``z``: recbook accounts ``z_eff``, not Flower's nominal ``z``.
    """
    if z == 0:
        return count_std, 0.0, 0.0
    s = count_std or n_nodes / 20
    if z >= 2 * s:
        raise ValueError(
            f"adaptive clipping needs dp-noise-multiplier < 2 x dp-count-std = {2 * s:g} "
            f"(Flower's split of the noise; dp-count-std 0 means {n_nodes}/20): raise "
            "dp-count-std or lower the noise multiplier"
        )
    z_updates = (z**-2 - (2 * s) ** -2) ** -0.5
    return s, z_updates, (z_updates**-2 + s**-2) ** -0.5


def flower_privacy(task: dict, n_nodes: int) -> dict | None:
    """What the Flower run's DP guarantees, by recbook's accountant (None when ``dp`` is off).

    Every SuperNode trains in every round (``fraction_train=1``), so each round is a Gaussian
    mechanism on the average of ``n_nodes`` clipped updates with no amplification by sampling:
    ε = :func:`recbook.federated.dp.dp_epsilon` at sample rate 1 over the rounds, at δ =
    ``dp-delta`` (0: 1/(10 K)). The unit is a SuperNode's whole partition (all its users).
    """
    from recbook.federated.dp import DPConfig, dp_epsilon

    if task["dp"] == "off":
        return None
    delta = DPConfig(delta=task["dp_delta"] or None).delta_for(n_nodes)
    z, clip, rounds = task["dp_noise_multiplier"], task["dp_clip"], task["rounds"]
    z_acc, clip_text, extra = z, f"clip norm {clip:g}", {}
    if task["dp"] == "server-adaptive":
        count_std, z_updates, z_acc = adaptive_noise(z, n_nodes, task["dp_count_std"])
        clip_text = (
            f"adaptive clip norm from {clip:g} (target quantile {task['dp_target_quantile']:g}, "
            f"lr {task['dp_clip_lr']:g}, noisy clipped count std {count_std:g}); Flower's z "
            f"{z:g} gives updates z {z_updates:.3g}, accounted as z_eff {z_acc:.3g} (plain "
            "clipped-count bits: sensitivity 1)"
        )
        extra = {"count_std": count_std, "z_updates": z_updates, "z_effective": z_acc}
    eps = dp_epsilon(z_acc, 1.0, rounds, delta)
    if task["dp"] == "server-adaptive":
        trust = (
            "the server is trusted: it sees every update in the clear, clips it to a norm "
            "it adapts from a noisy count of clipped updates, adds noise"
        )
        wrapper = "DifferentialPrivacyServerSideAdaptiveClipping"
    elif task["dp"] == "server-clipping":
        trust = "the server is trusted: it sees every update in the clear, clips it, adds noise"
        wrapper = "DifferentialPrivacyServerSideFixedClipping"
    else:
        trust = (
            "clients clip (fixedclipping_mod); the server still sees every clipped update in "
            "the clear and adds the noise, so it is trusted (no secure aggregation here)"
        )
        wrapper = "DifferentialPrivacyClientSideFixedClipping + fixedclipping_mod"
    statement = "\n".join(
        [
            f"Flower DP-FedAvg ({wrapper}): ({eps:.3g}, {delta:.2g})-DP per SuperNode "
            f"({n_nodes} partitions) for the shared tensors the server publishes"
            + ("" if math.isfinite(eps) else " - no noise: NOT private, a clipping check"),
            f"  accountant: recbook RDP (dp-accounting), every node every round (q = 1, no "
            f"amplification), {rounds} rounds, noise multiplier {z:g}, {clip_text}, "
            f"equal weights, noise std z*C/{n_nodes} on the average",
            f"  trust: {trust}",
            "  not covered: the user rows kept on each node, the evaluation metrics nodes "
            "report, the choice of the "
            + ("initial clip norm and the adaptation settings" if extra else "clip norm"),
            "  randomness: Flower's noise from numpy's global generator, re-seeded from the OS "
            "before every aggregation (not a cryptographic generator within a round)",
        ]
    )
    return {
        "mode": task["dp"], "epsilon": eps, "delta": delta, "noise_multiplier": z,
        "clip_norm": clip, "rounds": rounds, "sample_rate": 1.0, "nodes": n_nodes,
        "statement": statement, **extra,
    }  # fmt: skip


def _dp_strategy(strategy, task: dict, n_nodes: int):
    """``strategy`` wrapped in Flower's DP wrapper for ``task["dp"]``, its noise drawn after
    re-seeding numpy's global generator (Flower's noise source) from the OS."""
    from flwr.serverapp.strategy import (
        DifferentialPrivacyClientSideFixedClipping,
        DifferentialPrivacyServerSideAdaptiveClipping,
        DifferentialPrivacyServerSideFixedClipping,
    )

    if task["dp"] == "off":
        return strategy
    base = {
        "server-clipping": DifferentialPrivacyServerSideFixedClipping,
        "client-clipping": DifferentialPrivacyClientSideFixedClipping,
        "server-adaptive": DifferentialPrivacyServerSideAdaptiveClipping,
    }[task["dp"]]

    class OsSeededNoise(base):
        def aggregate_train(self, server_round, replies):
            np.random.seed(None)  # fresh OS entropy: the round's noise is unpredictable
            return super().aggregate_train(server_round, replies)

    z = task["dp_noise_multiplier"]
    if task["dp"] == "server-adaptive":
        count_std = adaptive_noise(z, n_nodes, task["dp_count_std"])[0]
        return OsSeededNoise(
            strategy,
            z,
            n_nodes,
            initial_clipping_norm=task["dp_clip"],
            target_clipped_quantile=task["dp_target_quantile"],
            clip_norm_lr=task["dp_clip_lr"],
            clipped_count_stddev=count_std if z > 0 else None,
        )
    return OsSeededNoise(strategy, z, task["dp_clip"], n_nodes)


def _by_examples(records, _weighting_key: str):
    """Evaluation metrics averaged with weights ``num-examples`` (the pooled test MSE), also
    when DP averages the updates with equal weights."""
    from flwr.app import MetricRecord

    rows = [m for rec in records for m in rec.metric_records.values()]
    total = sum(float(m["num-examples"]) for m in rows)
    keys = [k for k in rows[0] if k != "num-examples"] if rows else []
    out = {
        k: sum(float(m[k]) * float(m["num-examples"]) for m in rows) / (total or 1.0) for k in keys
    }
    return MetricRecord(out | {"num-examples": total})


def _client_clipping(msg, context, call_next):
    """Flower's ``fixedclipping_mod`` on train messages when the run clips on the clients."""
    from flwr.clientapp.mod import fixedclipping_mod

    if task_from_config(context.run_config)["dp"] == "client-clipping":
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


# ----------------------------------------------------------------------------- the apps


def build_client_app():
    """The ``ClientApp``: local SGD on this node's partition (the same update as
    :func:`recbook.federated.fedavg.local_update`), user rows kept in ``context.state``."""
    from flwr.app import Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from recbook.federated.fedavg import local_update, squared_error
    from recbook.federated.state import (
        init_model,
        load_state,
        private_state,
        round_seed,
        shared_state,
    )

    app = ClientApp()

    def _setup(msg: Message, context: Context):
        task = task_from_config(context.run_config)
        pid = int(context.node_config["partition-id"])
        _, client = load_partition(task, pid)
        model = init_model(model_fn(task), task["seed"])
        if "private" in context.state:
            load_state(model, arrays_to_state(context.state["private"]))
        load_state(model, arrays_to_state(msg.content["arrays"]))
        return task, client, model

    @app.train(mods=[_client_clipping])
    def train(msg: Message, context: Context) -> Message:
        task, client, model = _setup(msg, context)
        cfg = msg.content["config"]
        n = local_update(
            model,
            client.train,
            epochs=task["local_epochs"],
            batch_size=task["batch_size"] if task["batch_size"] > 0 else None,
            lr=task["lr"],
            seed=round_seed(task["seed"], int(cfg["server-round"]), client.client_id),
            l2=task["l2"],
        )
        context.state["private"] = to_arrays(private_state(model))
        reply = RecordDict(
            {
                "arrays": to_arrays(shared_state(model)),
                "metrics": MetricRecord({"num-examples": n, UNIT_WEIGHT: 1}),
            }
        )
        return Message(content=reply, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        _, client, model = _setup(msg, context)
        sse, n = squared_error(model, client.test)
        metrics = MetricRecord({"num-examples": n, "mse": sse / n if n else 0.0, UNIT_WEIGHT: 1})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def build_server_app():
    """The ``ServerApp``: Flower's ``FedAvg`` over every connected SuperNode (wrapped in
    Flower's DP wrapper when ``dp`` is on), federated evaluation each round; per-round RMSE,
    final shared tensors and the privacy statement go to ``result-dir``."""
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    from recbook.federated.state import init_model, shared_state

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        task = task_from_config(context.run_config)
        n_nodes = int(context.run_config["num-partitions"])
        strategy = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=1.0,
            min_train_nodes=n_nodes,
            min_evaluate_nodes=n_nodes,
            min_available_nodes=n_nodes,
            weighted_by_key="num-examples" if task["dp"] == "off" else UNIT_WEIGHT,
            evaluate_metrics_aggr_fn=_by_examples,  # the test MSE pools every rating
        )
        strategy = _dp_strategy(strategy, task, n_nodes)
        privacy = flower_privacy(task, n_nodes)
        if privacy:
            print(privacy["statement"], flush=True)
        initial = shared_state(init_model(model_fn(task), task["seed"]))
        start = time.perf_counter()
        result = strategy.start(
            grid=grid,
            initial_arrays=to_arrays(initial),
            num_rounds=task["rounds"],
            train_config=ConfigRecord({}),
        )
        if task["result_dir"]:
            out = Path(task["result_dir"])
            out.mkdir(parents=True, exist_ok=True)
            final: ArrayRecord = result.arrays
            np.savez(out / WEIGHTS_FILE, **{n: np.array(a.numpy()) for n, a in final.items()})
            rmse = {
                int(r): math.sqrt(float(m["mse"]))
                for r, m in sorted(result.evaluate_metrics_clientapp.items())
            }
            if privacy and task["dp"] == "server-adaptive":
                privacy["final_clip_norm"] = float(strategy.clipping_norm)
            summary = {
                "rmse": rmse, "seconds": time.perf_counter() - start, "nodes": n_nodes,
                "privacy": privacy,
            }  # fmt: skip
            (out / RESULT_FILE).write_text(json.dumps(summary), encoding="utf-8")

    return app


# ----------------------------------------------------------------------------- launching


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_port(port: int, proc: subprocess.Popen, deadline: float, log: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited early:\n{log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"port {port} did not open in time; log:\n{log.read_text()[-2000:]}")


# flwr.simulation imports TensorFlow whenever it is installed (only to offer GPU memory
# growth): tens of seconds on a busy 2-core machine, longer than the 30 s a SuperLink waits for
# a new simulation process's first heartbeat. These PyTorch apps never use it, so the processes
# started here see a `tensorflow` that reports itself missing, which Flower handles.
_NO_TF = 'raise ModuleNotFoundError("tensorflow is hidden from this Flower run by recbook")\n'


def _bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


class LocalFederation:
    """Flower's own engines on 127.0.0.1, in insecure mode, for a bounded time.

    ``engine="simulation"``: one ``flower-superlink --simulation`` whose simulation runtime
    (Ray) hosts ``num_supernodes`` virtual SuperNodes. ``engine="deployment"``: a
    ``flower-superlink`` plus ``num_supernodes`` real ``flower-supernode`` processes, node
    ``k`` started with ``--node-config "partition-id=k num-partitions=N"``. Use as a context
    manager; :meth:`run` submits the app with ``flwr run`` and waits for its result.
    """

    def __init__(
        self, engine: str, num_supernodes: int, timeout: float = 120.0, keep: bool = False
    ) -> None:
        from recbook import checks

        self.engine = checks.one_of(engine, ("simulation", "deployment"), "engine")
        self.n = checks.integer(num_supernodes, "num_supernodes", minimum=1)
        self.timeout = checks.number(timeout, "timeout", positive=True)
        self.procs: list[subprocess.Popen] = []
        self.keep = keep  # keep the Flower home (logs) after closing, for debugging
        self.home = Path(tempfile.mkdtemp(prefix="recbook-flwr-"))
        bin_dir = str(Path(sys.executable).parent)  # Flower starts its helpers from PATH
        path = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
        shim = self.home / "no-tensorflow"
        (shim / "tensorflow").mkdir(parents=True)
        (shim / "tensorflow" / "__init__.py").write_text(_NO_TF, encoding="utf-8")
        pythonpath = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
        self.env = {
            **os.environ, "PATH": path, "PYTHONPATH": pythonpath, "FLWR_HOME": str(self.home),
            "FLWR_DISABLE_UPDATE_CHECK": "1",
        }  # fmt: skip
        self.env.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

    def _spawn(self, args: Sequence[str], name: str) -> tuple[subprocess.Popen, Path]:
        log = self.home / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                list(args), stdout=fh, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc, log

    def __enter__(self) -> LocalFederation:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        deadline = time.monotonic() + self.timeout
        link_port, *node_ports = _free_ports(1 + self.n)
        # one HTTP port serves the Fleet, Control and Runtime APIs (flwr >= 1.30)
        args = [
            _bin("flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
            "--host", "127.0.0.1", "--port", str(link_port),
        ]  # fmt: skip
        if self.engine == "simulation":
            args.append("--simulation")
        link, log = self._spawn(args, "superlink")
        _wait_port(link_port, link, deadline, log)
        if self.engine == "deployment":
            for k, port in enumerate(node_ports):
                node, nlog = self._spawn(
                    [
                        _bin("flower-supernode"),
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{link_port}",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--node-config",
                        f"partition-id={k} num-partitions={self.n}",
                    ],  # fmt: skip
                    f"supernode-{k}",
                )
                _wait_port(port, node, deadline, nlog)
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "local"\n\n[superlink.local]\n'
            f'address = "127.0.0.1:{link_port}"\ninsecure = true\n',
            encoding="utf-8",
        )

    def run(self, app_dir: str | Path = APP_DIR, **run_config) -> dict:
        """``flwr run app_dir local --stream`` with ``run_config`` overrides (keys with ``_``
        become ``-``); returns the ServerApp's result (per-round RMSE, final weights, time)."""
        out = self.home / "result"
        shutil.rmtree(out, ignore_errors=True)
        overrides = {**run_config, "result_dir": str(out), "num_partitions": self.n}
        pairs = " ".join(f"{k.replace('_', '-')}={_toml(v)}" for k, v in overrides.items())
        cmd = [_bin("flwr"), "run", str(app_dir), "local", "--stream", "--run-config", pairs]
        if self.engine == "simulation":
            cmd += ["--federation-config", f"num-supernodes={self.n}"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=self.env, capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(
                f"flwr run did not finish within {self.timeout:.0f} s (a busy machine needs "
                f"more; raise timeout). SuperLink log:\n{self.log('superlink')[-2000:]}"
            ) from err
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not (out / RESULT_FILE).exists():
            raise RuntimeError(
                f"flwr run failed (exit {proc.returncode}); output:\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-3000:]}\nSuperLink log:\n{self.log('superlink')[-3000:]}"
            )
        summary = json.loads((out / RESULT_FILE).read_text(encoding="utf-8"))
        with np.load(out / WEIGHTS_FILE) as npz:
            weights = {n: torch.from_numpy(npz[n]) for n in npz.files}
        history = pd.DataFrame(
            {"rmse": {int(r): v for r, v in summary["rmse"].items()}}
        ).rename_axis("round")
        return {"history": history, "weights": weights, "seconds": seconds,
                "privacy": summary.get("privacy"),
                "command": " ".join(cmd[:4] + ["--stream"])}  # fmt: skip

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _descendants(self) -> list[int]:
        """Processes started for this federation, found by the FLWR_HOME they inherited
        (Flower detaches its SuperExec and simulation processes into their own sessions)."""
        tag = f"FLWR_HOME={self.home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if tag in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def close(self) -> None:
        """Stop every process this federation started, then remove its Flower home."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if Path("/proc").is_dir():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = self._descendants()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
                if pids:
                    time.sleep(2)
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))

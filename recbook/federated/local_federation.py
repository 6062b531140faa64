"""Flower's own engines on this machine: start them, submit a Flower App, read its result.

:class:`LocalFederation` starts Flower's processes on the loopback interface - a
``flower-superlink --simulation`` (the simulation engine), or a ``flower-superlink`` plus one
``flower-supernode`` per partition (the deployment engine) - and submits the App with
``flwr run``. Every process it starts is stopped when it exits.

The App is a separate project (recbook's is ``flower_app/`` of the checkout, with its own
``pyproject.toml``); it imports recbook, recbook never imports it. So the App is found by
folder, not from where this module lies (an installed recbook has no checkout next to it):
``app_dir`` names it, and by default the first ``flower_app/`` holding a ``pyproject.toml`` in
the working directory or one of its parents (a notebook runs in ``notebooks/`` of the
checkout).

The App writes :data:`RESULT_FILE` and :data:`WEIGHTS_FILE` into its run-config ``result-dir``,
which :meth:`LocalFederation.run` sets and reads back.

Everything here is public Flower API (the command-line tools); insecure mode is for a local
try-out on 127.0.0.1 only - a real deployment uses TLS certificates and SuperNode
authentication.
"""

from __future__ import annotations

import contextlib
import json
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

from recbook import checks

APP_FOLDER = "flower_app"  # the App's folder name looked up by default (see find_app_dir)
RESULT_FILE = "flower_result.json"  # per-round RMSE, privacy statement, recbook's location
WEIGHTS_FILE = "flower_weights.npz"  # the final shared tensors
ENGINES = ("simulation", "deployment")


def find_app_dir(app_dir: str | Path | None = None, start: str | Path | None = None) -> Path:
    """The Flower App's folder: ``app_dir`` when given, else the first ``flower_app/`` with a
    ``pyproject.toml`` in ``start`` (default: the working directory) or one of its parents.
    Either way the folder must hold the App's ``pyproject.toml``."""
    if app_dir is not None:
        path = Path(app_dir).expanduser().resolve()
        if not (path / "pyproject.toml").is_file():
            raise FileNotFoundError(
                f"app_dir {path} holds no pyproject.toml: pass the Flower App's folder (the "
                f"one with its pyproject.toml, e.g. {APP_FOLDER}/ of the recbook checkout)"
            )
        return path
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / APP_FOLDER / "pyproject.toml").is_file():
            return folder / APP_FOLDER
    raise FileNotFoundError(
        f"no {APP_FOLDER}/pyproject.toml in {here} or any folder above it: pass "
        f"app_dir=<the Flower App's folder>, e.g. LocalFederation(..., app_dir="
        f'"path/to/recbook/{APP_FOLDER}"), or run from inside the recbook checkout'
    )


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
# growth), which on a busy machine can take longer than the 30 s a SuperLink waits for a new
# simulation process's first heartbeat. These PyTorch apps never use it, so the processes
# started here see a `tensorflow` that reports itself missing, which Flower handles.
_NO_TF = 'raise ModuleNotFoundError("tensorflow is hidden from this Flower run by recbook")\n'


def _bin(name: str) -> str:
    """Flower's command ``name`` next to this interpreter, else whatever PATH finds."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


class LocalFederation:
    """Flower's own engines on 127.0.0.1, in insecure mode, for a bounded time.

    ``engine="simulation"``: one ``flower-superlink --simulation`` whose simulation runtime
    (Ray) hosts ``num_supernodes`` virtual SuperNodes. ``engine="deployment"``: a
    ``flower-superlink`` plus ``num_supernodes`` real ``flower-supernode`` processes, node
    ``k`` started with ``--node-config "partition-id=k num-partitions=N"``. ``app_dir``: the
    Flower App's folder (default: see :func:`find_app_dir`). ``timeout`` bounds the start and
    each :meth:`run`. Use as a context manager; :meth:`run` submits the App with ``flwr run``
    and waits for its result.
    """

    def __init__(
        self,
        engine: str,
        num_supernodes: int,
        timeout: float = 120.0,
        keep: bool = False,
        app_dir: str | Path | None = None,
    ) -> None:
        self.engine = checks.one_of(engine, ENGINES, "engine")
        self.n = checks.integer(num_supernodes, "num_supernodes", minimum=1)
        self.timeout = checks.number(timeout, "timeout", positive=True)
        self.app_dir = find_app_dir(app_dir)
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
        # one HTTP port serves the Fleet, Control and Runtime APIs
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
                node_args = [
                    _bin("flower-supernode"), "--insecure",
                    "--superlink", f"127.0.0.1:{link_port}",
                    "--host", "127.0.0.1", "--port", str(port),
                    "--node-config", f"partition-id={k} num-partitions={self.n}",
                ]  # fmt: skip
                node, nlog = self._spawn(node_args, f"supernode-{k}")
                _wait_port(port, node, deadline, nlog)
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "local"\n\n[superlink.local]\n'
            f'address = "127.0.0.1:{link_port}"\ninsecure = true\n',
            encoding="utf-8",
        )

    def run(self, **run_config) -> dict:
        """``flwr run <app_dir> local --stream`` with ``run_config`` overrides (keys with ``_``
        become ``-``); returns the ServerApp's result: per-round RMSE (``history``), final
        shared tensors (``weights``), wall time, privacy statement and the recbook the App
        imported (``recbook``: its version and file)."""
        out = self.home / "result"
        shutil.rmtree(out, ignore_errors=True)
        overrides = {**run_config, "result_dir": str(out), "num_partitions": self.n}
        pairs = " ".join(f"{k.replace('_', '-')}={_toml(v)}" for k, v in overrides.items())
        cmd = [_bin("flwr"), "run", str(self.app_dir), "local", "--stream", "--run-config", pairs]
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
                "privacy": summary.get("privacy"), "recbook": summary.get("recbook"),
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

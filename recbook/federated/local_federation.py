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

Everything here is public Flower API (the command-line tools). By default every connection is
TLS with a certificate authority and a server certificate for 127.0.0.1 generated for the
run (in its Flower home, removed afterwards), so no other local user can submit an App to the
SuperLink; ``insecure=True`` gives Flower's plaintext mode. A real deployment adds SuperNode
authentication.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
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
#: Set in every process recbook starts for Flower: no Flower telemetry, no Ray usage statistics
#: (both are on by default and send data to Flower's and Ray's servers).
QUIET_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}
#: What a printed ``flwr run`` command sets for Flower's managed local SuperLink: no runtime
#: installation of the App's dependencies (``uv sync`` would look ``recbook`` up on PyPI; the App
#: runs with the recbook installed where ``flwr`` runs), plus :data:`QUIET_ENV`.
LOCAL_RUN_ENV = {"FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", **QUIET_ENV}


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


def _flower_env(home: Path) -> dict[str, str]:
    """The environment of Flower processes recbook starts: Flower's home ``home``, this
    interpreter's commands first on PATH, TensorFlow hidden, telemetry and usage stats off."""
    bin_dir = str(Path(sys.executable).parent)  # Flower starts its helpers from PATH
    path = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    shim = home / "no-tensorflow"
    (shim / "tensorflow").mkdir(parents=True, exist_ok=True)
    (shim / "tensorflow" / "__init__.py").write_text(_NO_TF, encoding="utf-8")
    pythonpath = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ, "PATH": path, "PYTHONPATH": pythonpath, "FLWR_HOME": str(home),
        "FLWR_DISABLE_UPDATE_CHECK": "1", **QUIET_ENV,
    }  # fmt: skip
    env.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    return env


def _tagged(home: Path) -> list[int]:
    """Processes whose environment names ``FLWR_HOME=home``: everything Flower started for
    that home (Flower detaches its SuperLink, SuperExec and simulation processes)."""
    tag = f"FLWR_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if tag in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _stop_tagged(home: Path) -> None:
    """Stop every process started for Flower home ``home`` (TERM, then KILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _tagged(home)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if pids:
            time.sleep(2)


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for 127.0.0.1 signed by it, valid one
    day, written to ``folder``: (CA certificate, server certificate, server key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)

    def builder(subject: str, issuer: x509.Name, key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )  # fmt: skip

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("recbook local CA", name("recbook local CA"), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        builder("127.0.0.1", ca.subject, key)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.crt", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    paths[2].write_bytes(pem)
    paths[2].chmod(0o600)
    return paths


def flwr_run_command(
    num_supernodes: int, run_config: dict | None = None, app: str = APP_FOLDER
) -> str:
    """The shell command that runs the App on Flower's local simulation engine, as a notebook
    prints it (run from the checkout's root).

    ``--federation-config num-supernodes=N`` is needed: Flower's simulation starts 2 nodes by
    default (since flwr 1.32) while the ServerApp waits for ``num-partitions`` of them;
    ``--stream`` waits for the run and shows its log; :data:`LOCAL_RUN_ENV` keeps Flower's
    managed local SuperLink from installing the App's dependencies and from reporting usage.
    ``run_config`` keys may use ``_`` for ``-``; ``num-partitions`` is set to ``num_supernodes``.
    """
    n = checks.integer(num_supernodes, "num_supernodes", minimum=1)
    overrides = {**(run_config or {}), "num_partitions": n}
    pairs = " ".join(f"{k.replace('_', '-')}={_toml(v)}" for k, v in overrides.items())
    env = " ".join(f"{k}={v}" for k, v in LOCAL_RUN_ENV.items())
    return (
        f"{env} flwr run {shlex.quote(app)} --stream --run-config {shlex.quote(pairs)} "
        f"--federation-config {shlex.quote(f'num-supernodes={n}')}"
    )


def run_flwr_command(command: str, timeout: float = 60.0, cwd: str | Path | None = None) -> dict:
    """Run a printed ``flwr run`` command (``NAME=value`` prefixes, then ``flwr ...``) as a
    user would, but in a throw-away Flower home with its own free local-SuperLink ports, and
    stop everything it started. Returns ``returncode``, ``output`` and ``seconds``; a run
    longer than ``timeout`` seconds raises TimeoutError."""
    checks.number(timeout, "timeout", positive=True)
    tokens = shlex.split(command)
    extra = {}
    while tokens and "=" in tokens[0] and tokens[0].split("=")[0].isidentifier():
        key, _, value = tokens.pop(0).partition("=")
        extra[key] = value
    if not tokens or tokens[0] != "flwr":
        raise ValueError(f"command must be 'NAME=value ... flwr ...', got {command!r}")
    home = Path(tempfile.mkdtemp(prefix="recbook-flwr-"))
    http_port, control_port = _free_ports(2)
    env = {
        **_flower_env(home), **extra, "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(http_port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control_port),
    }  # fmt: skip
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [_bin("flwr"), *tokens[1:]], env=env, cwd=cwd, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        out = (
            (err.stdout or b"").decode(errors="replace")
            if isinstance(err.stdout, bytes)
            else (err.stdout or "")
        )
        raise TimeoutError(
            f"{command!r} did not finish within {timeout:.0f} s (a busy machine needs more); "
            f"its output so far:\n{out[-2000:]}"
        ) from err
    finally:
        _stop_tagged(home)
        shutil.rmtree(home, ignore_errors=True)
    return {"returncode": proc.returncode, "output": proc.stdout + proc.stderr,
            "seconds": time.perf_counter() - start}  # fmt: skip


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


class LocalFederation:
    """Flower's own engines on 127.0.0.1, over TLS (``insecure=True``: plaintext), for a
    bounded time.

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
        insecure: bool = False,
    ) -> None:
        self.engine = checks.one_of(engine, ENGINES, "engine")
        self.n = checks.integer(num_supernodes, "num_supernodes", minimum=1)
        self.timeout = checks.number(timeout, "timeout", positive=True)
        self.app_dir = find_app_dir(app_dir)
        self.procs: list[subprocess.Popen] = []
        self.keep = keep  # keep the Flower home (logs) after closing, for debugging
        self.home = Path(tempfile.mkdtemp(prefix="recbook-flwr-"))
        self.env = _flower_env(self.home)
        self.insecure = bool(insecure)  # True: Flower's plaintext mode (loopback try-outs only)

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
        if self.insecure:
            link_tls, node_tls, conn_tls = ["--insecure"], ["--insecure"], "insecure = true\n"
        else:  # TLS with a certificate made for this run
            ca, cert, key = _tls_files(self.home / "tls")
            link_tls = ["--ssl-ca-certfile", str(ca), "--ssl-certfile", str(cert),
                        "--ssl-keyfile", str(key)]  # fmt: skip
            node_tls = ["--root-certificates", str(ca)]
            conn_tls = f"root-certificates = {json.dumps(str(ca))}\n"
        # one HTTP port serves the Fleet, Control and Runtime APIs
        args = [
            _bin("flower-superlink"), *link_tls, "--disable-runtime-dependency-installation",
            "--host", "127.0.0.1", "--port", str(link_port),
        ]  # fmt: skip
        if self.engine == "simulation":
            args.append("--simulation")
        link, log = self._spawn(args, "superlink")
        _wait_port(link_port, link, deadline, log)
        if self.engine == "deployment":
            for k, port in enumerate(node_ports):
                node_args = [
                    _bin("flower-supernode"), *node_tls,
                    "--superlink", f"127.0.0.1:{link_port}",
                    "--host", "127.0.0.1", "--port", str(port),
                    "--node-config", f"partition-id={k} num-partitions={self.n}",
                ]  # fmt: skip
                node, nlog = self._spawn(node_args, f"supernode-{k}")
                _wait_port(port, node, deadline, nlog)
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "local"\n\n[superlink.local]\n'
            f'address = "127.0.0.1:{link_port}"\n{conn_tls}',
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
        return _tagged(self.home)

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
        _stop_tagged(self.home)
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()

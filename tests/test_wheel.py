"""The wheel works without the repository: build it, unpack it, load public-data fixtures, and
run the Flower App against it.

Everything recbook needs at run time (the checksum registry included) must be inside the
package. The wheel is built with the environment's own setuptools (no network) and unpacked
into a scratch folder; a Python started in isolated mode (``-I``: no PYTHONPATH, no user site,
not the working directory) from another folder imports recbook from that folder only, so the
checkout cannot hide a file missing from the wheel.

The Flower test installs the wheel into a throwaway virtual environment and runs the App
(``flower_app/``, copied outside the checkout) on Flower's simulation engine from there: the
App and every process Flower starts must find recbook's code in the installed wheel.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "data" / "fixtures"
FLOWER_TIMEOUT = 300  # seconds for LocalFederation's start, and again for its run

PROBE = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
import recbook
from recbook import datasets
out = {"recbook": recbook.__file__, "data_dir": str(datasets.data_dir())}
with warnings.catch_warnings(record=True):
    warnings.simplefilter("always")
    ml = datasets.load_movielens("100k", path=sys.argv[2], split="u1")
    retail = datasets.load_online_retail(path=sys.argv[3])
out.update(ml=[ml.n_users, ml.n_items, len(ml.events), len(ml.test)], retail=len(retail.events))
out["shop"] = datasets.load("shop", n_users=20, n_items=30, n_events=400).n_users
out["registry"] = sorted(datasets.registry.entries())
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of what it is made of (so no stale ``build/`` folder in the
    checkout can add or hide a file)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "recbook", src / "recbook", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("recbook-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_the_registry(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "recbook/data/registry.txt" in names
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "recbook").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert modules - set(names) == set()  # every subpackage is found by pyproject
    assert not any(n.startswith(("data/", "tests/", "notebooks/")) for n in names)


@pytest.mark.slow
def test_unpacked_wheel_loads_fixtures_with_path(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PATH": "/usr/bin:/bin", "RECBOOK_DATA": str(tmp_path / "data"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(site), str(FIX / "ml-100k"),
         str(FIX / "online_retail_sample.xlsx")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["recbook"].startswith(str(site))  # the wheel's copy, not the checkout
    assert out["ml"][:2] == [8, 10] and out["ml"][2] > 0 and out["ml"][3] > 0
    assert out["retail"] > 0 and out["shop"] == 20
    assert {"ml-100k.zip", "ml-1m.zip", "online+retail.zip"} <= set(out["registry"])


# Run by the throwaway environment's Python from a folder outside the checkout that holds a
# copy of flower_app/, so LocalFederation finds the App by its default (the working directory).
FLOWER_PROBE = r"""
import json, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still stops Flower
import recbook
from recbook.federated import LocalFederation
from recbook.federated.local_federation import RESULT_FILE
with LocalFederation("simulation", 2, timeout=float(sys.argv[1])) as federation:
    result = federation.run(
        dataset="shop", shop_scale=0.1, partition_column="region", num_rounds=2,
        local_epochs=1, batch_size=64, dim=4,
    )
    written = (federation.home / "result" / RESULT_FILE).is_file()
print(json.dumps({
    "driver": recbook.__file__, "app": result["recbook"], "result_file": written,
    "rmse": result["history"]["rmse"].tolist(), "app_dir": str(federation.app_dir),
    "editable_hooks": [m for m in sys.modules if m.startswith("__editable__")],
}))
"""


def _console_scripts(dist: str, bin_dir: Path, python: Path) -> None:
    """``dist``'s commands in ``bin_dir``, run by ``python`` (Flower starts its helpers from
    PATH; the environment's own commands would run its Python, with the editable recbook)."""
    for ep in importlib.metadata.distribution(dist).entry_points:
        if ep.group == "console_scripts":
            script = bin_dir / ep.name
            script.write_text(
                f"#!{python}\nimport sys\nfrom {ep.module} import {ep.attr}\n"
                f"sys.exit({ep.attr}())\n",
                encoding="utf-8",
            )
            script.chmod(0o755)


def _stop_tagged(prefix: str) -> None:
    """Stop processes whose FLWR_HOME lies under ``prefix`` (Flower processes this test's
    federation started), if a timeout left any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(f"FLWR_HOME={prefix}".encode()) for v in env):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.slow
@pytest.mark.flower
def test_flower_app_runs_with_recbook_from_the_wheel(wheel, tmp_path):
    """The App, run with ``flwr run`` (simulation engine, 2 rounds, a tenth of the shop, 2
    partitions) from outside the checkout, imports recbook from the installed wheel.

    The throwaway environment gets the wheel (``--no-deps``) and, through a ``.pth`` file, this
    environment's site-packages for the heavy dependencies (flwr, torch, numpy, pandas ...). A
    path listed in a ``.pth`` file is only appended to ``sys.path``: the ``.pth`` files inside
    it - the editable install's import hook for the checkout - are not run, so the checkout's
    recbook is not importable there."""
    if not Path(sys.executable).with_name("flower-superlink").exists():
        pytest.skip("flower-superlink is not installed")
    venv, work = tmp_path / "venv", tmp_path / "work"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--no-compile", "-q", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "recbook_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _console_scripts("flwr", venv / "bin", python)
    shutil.copytree(
        ROOT / "flower_app", work / "flower_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    # the run's TMPDIR: Ray puts its sockets there (at most 107 bytes a path, so not under
    # tmp_path), LocalFederation its Flower home (how a timeout finds what to stop)
    scratch = Path(tempfile.mkdtemp(prefix="rbw-"))
    env = {
        k: v for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }  # fmt: skip
    env.update(
        PATH=os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"]), TMPDIR=str(scratch),
        HOME=str(tmp_path), RECBOOK_DATA=str(tmp_path / "data"),
    )  # fmt: skip
    proc = subprocess.Popen(
        [str(python), "-c", FLOWER_PROBE, str(FLOWER_TIMEOUT)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=2 * FLOWER_TIMEOUT + 180)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the probe's SIGTERM handler closes the federation
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"the Flower run did not end in time:\n{err[-3000:]}")
    finally:
        _stop_tagged(str(scratch))
        shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0 and "node timed out during startup" in err:
        pytest.skip("Ray's raylet did not register within its 30 s on this busy machine")
    assert proc.returncode == 0, err[-8000:]
    found = json.loads(out.strip().splitlines()[-1])
    venv = venv.resolve()
    assert Path(found["driver"]).is_relative_to(venv)  # the launcher's recbook: the wheel's
    assert Path(found["app"]["file"]).is_relative_to(venv)  # and the ServerApp's
    assert not Path(found["app"]["file"]).is_relative_to(ROOT)
    assert found["editable_hooks"] == []  # the checkout's import hook never ran
    assert Path(found["app_dir"]) == (work / "flower_app").resolve()
    assert found["result_file"] and len(found["rmse"]) == 2
    assert all(0 < r < 5 for r in found["rmse"])

"""The wheel works without the repository: build it, unpack it, load public-data fixtures.

A non-editable install used to fail every public-data load (the checksum registry lived in the
repository's ``data/``, outside the package). The wheel is built with the environment's own
setuptools (no network) and unpacked into a scratch folder; a Python started in isolated mode
(``-I``: no PYTHONPATH, no user site, not the working directory) from another folder imports
recbook from that folder only, so the checkout cannot hide a file missing from the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "data" / "fixtures"

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


def test_wheel_ships_the_registry(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "recbook/data/registry.txt" in names
    for module in ("__init__", "base", "registry", "movielens", "online_retail", "shop"):
        assert f"recbook/datasets/{module}.py" in names  # the subpackage is listed in pyproject
    assert not any(n.startswith(("data/", "tests/", "notebooks/")) for n in names)


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

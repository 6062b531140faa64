"""Every notebook that accepts public data runs on a copy in the official format, offline.

A reader whose download fails passes ``-p DATA_PATH=...``; this test does exactly that through
the runner (``python -m recbook run NB -p DATASET=... -p DATA_PATH=...``) for each notebook
whose ``parameters`` cell has ``DATA_PATH`` and names the dataset on its ``DATASET`` line (the
convention: ``DATASET = "shop"  # or "movielens-100k"``). MovieLens-100K comes from a
SYNTHETIC MovieLens-shaped set written in the official ml-100k layout (``benchmarks/mf.py``'s
writer: u.data, u1..u5 splits, u.item with genres, u.user with age, gender, occupation, zip),
large enough for the notebooks' splits; Online Retail from the committed workbook fixture.

Marked ``public_data`` and skipped unless ``RECBOOK_PUBLIC_DATA=1`` (several minutes):
``RECBOOK_PUBLIC_DATA=1 .venv/bin/python -m pytest tests/test_public_data_notebooks.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recbook import runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PUBLIC = ("movielens-100k", "online-retail")
TIMEOUT_S = 900  # per notebook

pytestmark = [
    pytest.mark.public_data,
    pytest.mark.skipif(
        os.environ.get("RECBOOK_PUBLIC_DATA") != "1",
        reason="runs notebooks on public-format data for minutes; set RECBOOK_PUBLIC_DATA=1",
    ),
]


def accepted_datasets(path: Path) -> list[str]:
    """The public datasets a notebook declares on the DATASET line of its parameters cell."""
    import nbformat

    params = runner.notebook_parameters(path)
    if "DATASET" not in params or "DATA_PATH" not in params:
        return []
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    line = next(ln for ln in cell.source.splitlines() if ln.startswith("DATASET"))
    if "only the shop" in line:
        return []
    return [name for name in PUBLIC if re.search(rf"[\"']{name}[\"']", line)]


CASES = [(nb, ds) for nb in NOTEBOOKS for ds in accepted_datasets(nb)]


def test_the_notebooks_that_take_public_data_are_found():
    names = {(nb.stem[:2], ds) for nb, ds in CASES}
    assert ("03", "movielens-100k") in names, names


@pytest.fixture(scope="session")
def public_copies(tmp_path_factory) -> dict[str, Path]:
    """Paths to give as DATA_PATH, per dataset."""
    spec = importlib.util.spec_from_file_location("bench_mf_writer", ROOT / "benchmarks" / "mf.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    df, _ = bench.synthetic_movielens(0, n_users=400, n_items=800, n_ratings=30_000)
    folder = bench.write_movielens_100k(df, str(tmp_path_factory.mktemp("public") / "ml-100k"))
    return {
        "movielens-100k": Path(folder),
        "online-retail": ROOT / "data" / "fixtures" / "online_retail_sample.xlsx",
    }


@pytest.mark.parametrize("notebook,dataset", CASES, ids=[f"{n.stem}-{d}" for n, d in CASES])
def test_notebook_runs_on_public_format_data(notebook, dataset, public_copies, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "recbook", "run", str(notebook),
        "-p", f"DATASET={dataset}", "-p", f"DATA_PATH={public_copies[dataset]}",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    summary_file = out / "summary.json"
    assert summary_file.exists(), done.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    row = summary["notebooks"][0]
    assert done.returncode == 0 and row["status"] == "ok", (
        f"{notebook.name} with DATASET={dataset}: {row.get('error')}\n{done.stderr[-3000:]}"
    )
    print(f"{notebook.stem} on {dataset}: {row['wall_s']:.0f} s")

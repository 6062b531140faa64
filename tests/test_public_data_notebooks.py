"""Every notebook that accepts public data runs on a copy in the official format, offline.

A reader whose download fails passes ``-p DATA_PATH=...``; this test does exactly that through
the runner (``python -m recbook run NB -p DATASET=... -p DATA_PATH=...``) for each notebook
whose ``parameters`` cell has ``DATA_PATH`` and names the dataset on its ``DATASET`` line (the
convention: ``DATASET = "shop"  # or "movielens-100k"``). MovieLens-100K comes from a
SYNTHETIC set (``benchmarks/ranking.py``'s: films chosen by taste and popularity, ratings
from the same affinity) written in the official ml-100k layout (``benchmarks/mf.py``'s writer:
u.data, u1..u5 splits, u.item with genres, u.user with age, gender, occupation, zip),
large enough for the notebooks' splits; Online Retail from a SYNTHETIC workbook with the UCI
sheet and columns (:func:`write_online_retail`).

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

from recbook.book import runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PUBLIC = ("movielens-100k", "online-retail")
TIMEOUT_S = 900  # per notebook

pytestmark = [
    pytest.mark.notebooks,
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
    sys.path.insert(0, str(ROOT / "benchmarks"))  # ranking.py uses mf.py's file writer
    spec = importlib.util.spec_from_file_location(
        "bench_ranking", ROOT / "benchmarks" / "ranking.py"
    )
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    # users choose films by taste and popularity (a popularity-only generator would make
    # popularity the best possible ranker and fail every "model beats popularity" check)
    df = bench.synthetic_interactions(0, n_users=400, n_items=800, n_interactions=30_000)
    import mf as mf_writer

    folder = mf_writer.write_movielens_100k(df, str(tmp_path_factory.mktemp("public") / "ml-100k"))
    retail = write_online_retail(tmp_path_factory.mktemp("public") / "synthetic_online_retail.xlsx")
    return {"movielens-100k": Path(folder), "online-retail": retail}


WORDS = (
    "red white blue pink vintage retro heart star candle holder mug bag lantern tin box "
    "cake stand doormat clock garland bunting card wrap jar light"
).split()


def write_online_retail(
    path: Path, n_customers: int = 300, n_products: int = 400, n_rows: int = 12_000, seed: int = 0
) -> Path:
    """A SYNTHETIC workbook with the UCI Online Retail sheet and columns: invoices of a few
    lines over one year, half of each customer's baskets from her favourite of four product
    groups and half from the whole shop, long-tailed product popularity, free-text
    descriptions, a few cancellations and rows without a customer (the cleaning drops them)."""
    import numpy as np
    import openpyxl
    import pandas as pd

    rng = np.random.default_rng(seed)
    codes = [f"{20000 + k}" for k in range(n_products)]
    titles = [" ".join(rng.choice(WORDS, 3, replace=False)).upper() for _ in codes]
    group = rng.integers(0, 4, n_products)
    taste = rng.integers(0, 4, n_customers)
    popularity = rng.lognormal(0.0, 1.5, n_products)  # a few best-sellers, a long tail
    start = pd.Timestamp("2010-12-01 08:00")
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Online Retail")
    ws.append(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
               "UnitPrice", "CustomerID", "Country"])  # fmt: skip
    rows, invoice = 0, 536365
    while rows < n_rows:
        customer = int(rng.integers(0, n_customers))
        when = (start + pd.Timedelta(minutes=int(rng.integers(0, 365 * 24 * 60)))).to_pydatetime()
        # half the baskets follow the customer's group, half the shop's best-sellers
        own = rng.random() < 0.5
        liked = np.flatnonzero(group == taste[customer]) if own else np.arange(n_products)
        weight = popularity[liked] / popularity[liked].sum()
        lines = rng.choice(liked, int(rng.integers(1, 8)), replace=False, p=weight)
        cancelled = rng.random() < 0.02
        no_customer = rng.random() < 0.03
        for item in lines:
            ws.append([
                f"C{invoice}" if cancelled else str(invoice), codes[item], titles[item],
                int(-1 if cancelled else rng.integers(1, 13)), when,
                float(round(rng.uniform(0.4, 9.0), 2)),
                None if no_customer else float(12346 + customer),
                "United Kingdom" if customer % 5 else "France",
            ])  # fmt: skip
            rows += 1
        invoice += 1
    wb.save(path)
    return path


@pytest.mark.parametrize("notebook,dataset", CASES, ids=[f"{n.stem}-{d}" for n, d in CASES])
def test_notebook_runs_on_public_format_data(notebook, dataset, public_copies, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "recbook", "run", str(notebook),
        "-p", f"DATASET={dataset}", "-p", f"DATA_PATH={public_copies[dataset]}",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "RECBOOK_DATA": str(tmp_path / "data")}  # parse caches stay in tmp
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    summary_file = out / "summary.json"
    assert summary_file.exists(), done.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    row = summary["notebooks"][0]
    assert done.returncode == 0 and row["status"] == "ok", (
        f"{notebook.name} with DATASET={dataset}: {row.get('error')}\n{done.stderr[-3000:]}"
    )
    print(f"{notebook.stem} on {dataset}: {row['wall_s']:.0f} s")

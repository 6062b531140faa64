"""UCI Online Retail (a UK gift shop's 2010-2011 invoices): workbook parser, explicit cleaning
rules and a parquet parse cache keyed by the workbook's sha256 (in ``$RECBOOK_CACHE`` or the
user cache folder, see :func:`recbook.checksums.cache_dir`)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from recbook import checks
from recbook.checksums import cache_dir, sha256_bytes, write_atomically
from recbook.columns import ITEM, RATING, TIMESTAMP, USER
from recbook.datasets.base import Dataset, catalogue, events_in_time_order, index_ids
from recbook.datasets.registry import Files, Spec, open_copy, record_verification

SPEC = Spec(
    "online-retail", "online+retail.zip", "", "Online Retail.xlsx",
    "load_online_retail(path=...)", "https://archive.ics.uci.edu/dataset/352/online+retail",
    "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
    "D. Chen. Online Retail [Dataset]. UCI Machine Learning Repository, 2015. "
    "doi:10.24432/C5BW33",
    main_suffix=".xlsx",
)  # fmt: skip
RETAIL_COLUMNS = (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
)  # fmt: skip
# Stock codes that are fees, postage, manual entries or vouchers rather than products.
NON_PRODUCT_CODES = (
    "POST", "DOT", "C2", "M", "D", "S", "B", "CRUK", "AMAZONFEE", "PADS", "BANK CHARGES",
)  # fmt: skip
NON_PRODUCT_PREFIXES = ("GIFT_",)  # gift vouchers: gift_0001_10 ... gift_0001_50
_RETAIL_PARSE_VERSION = 2  # in the cache's name and metadata: another parse's cache is ignored


def _excel_engine() -> str:
    """python-calamine (Rust) when installed: much faster than openpyxl on the full workbook,
    same values; openpyxl otherwise."""
    return "calamine" if importlib.util.find_spec("python_calamine") else "openpyxl"


def _read_retail_workbook(raw: bytes, what: str, engine: str | None = None) -> pd.DataFrame:
    """The 8 UCI columns with clean dtypes; ids kept as text (InvoiceNo 'C...' and StockCode
    '85123A' mix with numbers in the sheet)."""
    try:
        df = pd.read_excel(
            io.BytesIO(raw), sheet_name=0, engine=engine or _excel_engine(),
            dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "Country": str},
        )  # fmt: skip
    except Exception as exc:  # openpyxl raises many types for a bad workbook
        raise ValueError(f"could not read {what} as an Excel workbook: {exc}") from exc
    missing = [c for c in RETAIL_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} lacks the Online Retail column(s) {missing}; expected {list(RETAIL_COLUMNS)}"
        )
    df = df[list(RETAIL_COLUMNS)].copy()
    for col in ("InvoiceNo", "StockCode", "Country"):
        df[col] = df[col].str.strip()
    try:
        for col in ("Quantity", "UnitPrice", "CustomerID"):
            df[col] = pd.to_numeric(df[col]).astype("float64")
        df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: a column has values of the wrong type ({exc})") from exc
    return df.reset_index(drop=True)


def clean_online_retail(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the cleaning rules in order; return ``(kept rows, report)``.

    The report has one row per rule (``description``, ``dropped`` = rows this rule removed that
    no earlier rule removed, ``remaining``), so ``len(raw) - report.dropped.sum() ==
    len(kept)``. Exact duplicate rows are kept (the same line can be scanned twice).
    """
    code = raw["StockCode"].fillna("").str.upper()
    non_product = code.isin(NON_PRODUCT_CODES) | code.str.startswith(NON_PRODUCT_PREFIXES)
    rules = [
        ("cancellation", "InvoiceNo starts with 'C': a cancelled order",
         raw["InvoiceNo"].fillna("").str.upper().str.startswith("C")),
        ("missing_customer", "CustomerID is empty: the purchase has no user",
         raw["CustomerID"].isna()),
        ("non_positive_quantity", "Quantity <= 0 on a non-'C' invoice: stock adjustments",
         raw["Quantity"] <= 0),
        ("non_product_code",
         "StockCode is a fee/postage/manual/voucher code: " + ", ".join(NON_PRODUCT_CODES)
         + " (any case) or gift_*", non_product),
        ("non_positive_price", "UnitPrice <= 0: free items and write-offs",
         raw["UnitPrice"] <= 0),
        ("missing_field", "InvoiceNo, StockCode, Quantity, InvoiceDate or UnitPrice is empty",
         raw[["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice"]]
         .isna().any(axis=1)),
    ]  # fmt: skip
    keep = np.ones(len(raw), dtype=bool)
    rows = []
    for name, description, hit in rules:
        hit = np.asarray(pd.Series(hit).fillna(False), dtype=bool)
        rows.append((name, description, int((keep & hit).sum()), int((keep & ~hit).sum())))
        keep &= ~hit
    report = pd.DataFrame(rows, columns=["rule", "description", "dropped", "remaining"])
    return raw[keep].reset_index(drop=True), report.set_index("rule")


def _mode_by(df: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Most frequent ``value`` per ``key`` (ties: alphabetical first), NaN values ignored."""
    counts = df.dropna(subset=[value]).groupby([key, value]).size().reset_index(name="n")
    counts = counts.sort_values([key, "n", value], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates(key).set_index(key)[value]


def _retail_cache_path(source_sha256: str) -> Path:
    """In the derived-cache folder (``$RECBOOK_CACHE`` or the user cache), not beside the
    downloaded data: the data folder holds only what was downloaded or copied in."""
    return cache_dir() / f"online_retail_{source_sha256[:16]}_v{_RETAIL_PARSE_VERSION}.parquet"


def _read_retail_cache(cache: Path, source_sha256: str) -> pd.DataFrame | None:
    """The cached parse if it is a parquet file written for exactly this workbook (full
    sha256 and parse version in its metadata) with the 8 UCI columns; None otherwise.

    Parquet holds data only: reading it cannot run code, unlike a pickle. The metadata check
    catches a stale or mismatched cache, not a deliberate forgery (whoever can write the
    data folder can also replace the data itself)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(cache)
        meta = json.loads((table.schema.metadata or {}).get(b"recbook", b"{}"))
    except Exception as exc:  # pyarrow raises several types for a broken file
        reason = f"it cannot be read ({type(exc).__name__}: {exc})"
    else:
        wanted = {"source_sha256": source_sha256, "parse_version": _RETAIL_PARSE_VERSION}
        if meta != wanted:
            reason = f"its metadata {meta} is not {wanted}"
        elif table.column_names != list(RETAIL_COLUMNS):
            reason = f"its columns {table.column_names} are not {list(RETAIL_COLUMNS)}"
        else:
            return table.to_pandas()
    warnings.warn(
        f"ignoring the parse cache {cache}: {reason}; parsing the workbook again", stacklevel=4
    )
    return None


def _write_retail_cache(raw: pd.DataFrame, cache: Path, source_sha256: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(raw, preserve_index=False)
    meta = {"source_sha256": source_sha256, "parse_version": _RETAIL_PARSE_VERSION}
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"recbook": json.dumps(meta).encode()}
    )
    # a unique temporary name, then an atomic rename: a crash never leaves a half-written cache
    write_atomically(cache, lambda handle: pq.write_table(table, handle))


def _retail_raw(files: Files) -> pd.DataFrame:
    """The parsed workbook, cached as parquet keyed by the workbook's sha256: parsing the real
    workbook is slow (openpyxl above all), reading the parquet is fast."""
    name = SPEC.main
    workbook = files.read(name)  # hashed (and checked against the registry) as it is read
    source_sha256 = sha256_bytes(workbook)
    cache = _retail_cache_path(source_sha256)
    if cache.is_file():
        raw = _read_retail_cache(cache, source_sha256)
        if raw is not None:
            return raw
    engine = _excel_engine()
    print(
        f"online-retail: parsing the workbook with {engine} once (the full file: about "
        f"{'20 s' if engine == 'calamine' else '2-5 min'}); the result is cached at {cache}",
        file=sys.stderr,
    )
    raw = _read_retail_workbook(workbook, f"{files.local_file(name)}", engine)
    try:
        _write_retail_cache(raw, cache, source_sha256)
    except OSError as exc:
        warnings.warn(f"could not cache the parsed workbook at {cache}: {exc}", stacklevel=3)
    return raw


def load_online_retail(path: str | os.PathLike | None = None) -> Dataset:
    """UCI Online Retail (a UK gift shop, 2010-12-01 to 2011-12-09) as purchase events.

    Without ``path`` the official UCI zip is downloaded once into :func:`data_dir` and
    checked against ``data/registry.txt``; ``path`` takes the zip, the extracted folder or the
    ``.xlsx`` (the official ``Online Retail.xlsx`` has its own recorded sha256).

    Cleaning is explicit (see :func:`clean_online_retail`); ``info["cleaning"]`` counts the
    rows each rule drops. Events: ``user_id, item_id, rating (NaN), timestamp (InvoiceDate as
    unix s, the sheet's local time read as UTC), event="purchase", quantity, unit_price,
    invoice``. Users: ``raw_user_id`` (CustomerID), ``country`` (most frequent). Items:
    ``raw_item_id`` (StockCode), ``title`` (most frequent Description), ``unit_price``
    (median paid).
    """
    spec = SPEC
    files, info = open_copy(spec, path)
    raw = _retail_raw(files)
    ids = raw["CustomerID"].dropna()
    checks.exact_integers(ids.set_axis(ids.index + 2), f"{files.path}: CustomerID (sheet rows)")
    clean, report = clean_online_retail(raw)
    if clean.empty:
        raise ValueError(f"{files.path}: no rows left after cleaning:\n{report}")
    if (clean["Quantity"] != clean["Quantity"].round()).any():
        raise ValueError(f"{files.path}: Quantity has non-integer values")

    users = pd.DataFrame({"raw_user_id": np.unique(clean["CustomerID"]).astype("int64")})
    country = _mode_by(clean, "CustomerID", "Country")
    users["country"] = country.reindex(users["raw_user_id"].astype("float64")).to_numpy()
    items = pd.DataFrame({"raw_item_id": np.unique(clean["StockCode"])})
    title = _mode_by(clean, "StockCode", "Description")
    fallback = _mode_by(raw, "StockCode", "Description")  # rows dropped by cleaning
    items["title"] = (
        title.reindex(items["raw_item_id"])
        .fillna(fallback.reindex(items["raw_item_id"]))
        .fillna("")
        .to_numpy()
    )
    price = clean.groupby("StockCode")["UnitPrice"].median()
    items["unit_price"] = price.reindex(items["raw_item_id"]).to_numpy()
    users = catalogue(users, "raw_user_id", USER, "online-retail users")
    items = catalogue(items, "raw_item_id", ITEM, "online-retail items")

    seconds = (clean["InvoiceDate"] - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    user_ix, item_ix = pd.Index(users["raw_user_id"]), pd.Index(items["raw_item_id"])
    cols = {
        USER: index_ids(clean["CustomerID"].astype("int64"), user_ix, "CustomerID"),
        ITEM: index_ids(clean["StockCode"], item_ix, "StockCode"),
        RATING: np.full(len(clean), np.nan),
        TIMESTAMP: seconds.to_numpy(dtype="int64"),
        "quantity": clean["Quantity"].to_numpy(dtype="int64"),
        "unit_price": clean["UnitPrice"].to_numpy(dtype="float64"),
        "invoice": clean["InvoiceNo"].to_numpy(),
    }
    events = events_in_time_order(cols, event="purchase")
    countries = clean.groupby("CustomerID")["Country"].nunique()
    info.update(
        cleaning=report,
        n_raw_rows=len(raw),
        duplicate_rows_kept=int(clean.duplicated().sum()),
        items_without_description=int((items["title"] == "").sum()),
        users_with_several_countries=int((countries > 1).sum()),
    )
    record_verification(files, info)
    return Dataset(spec.name, users, items, events, None, None, None, info)

"""Public-data loaders on the fixture files in data/fixtures/ (never the network)."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pooch
import pytest
import requests

from recbook import datasets
from recbook.datasets import (
    ChecksumError,
    DataUnavailableError,
    UnverifiedDataWarning,
    movielens,
    online_retail,
    registry,
)

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "data" / "fixtures"
RETAIL_XLSX = FIX / "online_retail_sample.xlsx"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty data folder per test (also its derived-cache folder), and no network: any
    real download attempt fails."""
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("RECBOOK_DATA", str(folder))
    monkeypatch.setenv("RECBOOK_CACHE", str(folder))

    def no_network(self, fname, *args, **kwargs):
        raise AssertionError(f"a test tried to download {fname}")

    monkeypatch.setattr(pooch.Pooch, "fetch", no_network)
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_rows(path: Path, sep: str) -> list[tuple[int, ...]]:
    """A file of ``user<sep>item<sep>rating<sep>timestamp`` lines, parsed by hand."""
    text = path.read_text(encoding="latin-1")
    return [tuple(int(x) for x in ln.split(sep)) for ln in text.splitlines() if ln]


def as_raw(ds: datasets.Dataset, frame: pd.DataFrame) -> set[tuple[int, ...]]:
    """Map contiguous ids back to the file's ids: (user, item, rating, timestamp) tuples."""
    u = ds.users["raw_user_id"].to_numpy()[frame["user_id"]]
    i = ds.items["raw_item_id"].to_numpy()[frame["item_id"]]
    cols = zip(u, i, frame["rating"].astype(int), frame["timestamp"])
    return {tuple(int(x) for x in row) for row in cols}


def load_quiet(*args, **kwargs) -> datasets.Dataset:
    with pytest.warns(UnverifiedDataWarning):
        return datasets.load_movielens(*args, **kwargs)


# --- registry ------------------------------------------------------------------------------


def test_registry_lists_every_archive_with_sha256_and_url():
    reg = registry.entries()
    for spec in datasets.SPECS.values():
        sha, url = reg[spec.archive]
        assert len(sha) == 64 and int(sha, 16) >= 0
        assert url.startswith("https://") and url.endswith(spec.archive)
    assert "Online Retail.xlsx" in reg  # the workbook inside the UCI zip


# --- MovieLens 100K ------------------------------------------------------------------------


def test_ml100k_folder_matches_the_raw_file():
    ds = load_quiet("100k", path=FIX / "ml-100k")
    rows = raw_rows(FIX / "ml-100k" / "u.data", "\t")
    assert ds.name == "movielens-100k"
    assert len(ds.events) == len(rows) and as_raw(ds, ds.events) == set(rows)
    assert (ds.n_users, ds.n_items) == (8, 10)
    assert ds.users["user_id"].tolist() == list(range(8))
    assert ds.items["item_id"].tolist() == list(range(10))
    assert ds.events["user_id"].between(0, ds.n_users - 1).all()
    assert ds.events["item_id"].between(0, ds.n_items - 1).all()
    assert list(ds.events.columns) == ["user_id", "item_id", "rating", "timestamp", "event"]
    assert ds.events["timestamp"].dtype == np.int64 and ds.events["rating"].dtype == np.float64
    assert ds.events["user_id"].dtype == np.int64 and ds.events["item_id"].dtype == np.int64
    assert (ds.events["event"] == "rating").all()
    assert ds.events["timestamp"].is_monotonic_increasing
    assert len(ds.ratings()) == len(rows)


def test_ml100k_side_information_and_latin1():
    ds = load_quiet("100k", path=FIX / "ml-100k")
    items = ds.items.set_index("raw_item_id")
    assert items.loc[4, "title"] == "Misérables, Les (1995)"  # byte 0xE9 in the file
    assert items.loc[5, "title"] == "Night Train to Köln (1996)"
    assert items.loc[10, "genres"] == "unknown" and items.loc[10, "category"] == "unknown"
    assert pd.isna(items.loc[10, "release_date"])
    assert items.loc[1, "release_date"] == pd.Timestamp("1993-04-08")
    # genres rebuilt from the 19 flags of u.item, category is the first of them
    line = (FIX / "ml-100k" / "u.item").read_bytes().decode("latin-1").splitlines()[1]
    flags = [int(f) for f in line.split("|")[5:]]
    genres = (FIX / "ml-100k" / "u.genre").read_text().split()
    expect = [g.split("|")[0] for g, f in zip(genres, flags) if f]
    assert items.loc[2, "genres"] == "|".join(expect) and items.loc[2, "category"] == expect[0]
    users = ds.users.set_index("raw_user_id")
    assert list(users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert users.loc[1, "occupation"] == "educator" and users.loc[1, "zip_code"] == "55037"


def test_ml100k_zip_folder_and_single_file_agree(tmp_path):
    local_zip = tmp_path / "my-copy-of-ml-100k.zip"  # not the official name: unverified
    shutil.copy(FIX / "ml-100k.zip", local_zip)
    loaded = [load_quiet("100k", path=p) for p in (local_zip, FIX / "ml-100k")]
    pd.testing.assert_frame_equal(loaded[0].events, loaded[1].events)
    pd.testing.assert_frame_equal(loaded[0].users, loaded[1].users)
    pd.testing.assert_frame_equal(loaded[0].items, loaded[1].items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unverified, and no side files: only u.data is read
        alone = datasets.load_movielens("100k", path=FIX / "ml-100k" / "u.data")
    assert as_raw(alone, alone.events) == as_raw(loaded[0], loaded[0].events)
    assert loaded[0].info["sha256"] == sha256(local_zip)
    assert loaded[1].info["sha256"] == sha256(FIX / "ml-100k" / "u.data")
    assert not any(ds.info["verified"] for ds in [*loaded, alone])


def test_a_single_file_reads_only_that_file(tmp_path):
    """path=.../u.data also read every sibling: a planted u.item replaced the titles."""
    folder = tmp_path / "copy"
    shutil.copytree(FIX / "ml-100k", folder)
    items = (folder / "u.item").read_bytes().replace(b"Toy Story", b"PLANTED")
    (folder / "u.item").write_bytes(items)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = datasets.load_movielens("100k", path=folder / "u.data")
    assert set(ds.info["files_sha256"]) == {"u.data"}
    assert "title" not in ds.items
    message = " ".join(str(w.message) for w in record)
    assert "only the file named is read: pass its folder" in message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "title" in datasets.load_movielens("100k", path=folder).items  # named folder


def test_a_zip_is_hashed_from_the_bytes_it_parses(tmp_path, monkeypatch):
    """The archive was hashed, then reopened and read again: now it is read once."""
    local_zip = tmp_path / "copy.zip"
    shutil.copy(FIX / "ml-100k.zip", local_zip)
    monkeypatch.setattr(registry, "sha256_file", lambda *a: pytest.fail("second read"))
    ds = load_quiet("100k", path=local_zip)
    assert ds.info["sha256"] == sha256(local_zip)


def test_a_member_above_the_size_cap_is_refused(tmp_path, monkeypatch):
    local_zip = tmp_path / "bomb.zip"  # a member that inflates far beyond the zip's size
    with zipfile.ZipFile(local_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-100k/u.data", b"1\t1\t1\t1\n" * 100_000)
    monkeypatch.setattr(registry, "MAX_FILE_BYTES", local_zip.stat().st_size + 1)
    with pytest.raises(ValueError, match=r"ml-100k/u.data in .*above the cap of"):
        datasets.load_movielens("100k", path=local_zip)
    monkeypatch.setattr(registry, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match=r"the zip .* above the cap"):
        datasets.load_movielens("100k", path=local_zip)
    with pytest.raises(ValueError, match=r"u.data is .* above the cap"):
        datasets.load_movielens("100k", path=FIX / "ml-100k")


def test_ml100k_ratings_file_alone_warns_and_keeps_ids(tmp_path):
    shutil.copy(FIX / "ml-100k" / "u.data", tmp_path / "u.data")
    with pytest.warns(UserWarning) as record:
        ds = datasets.load_movielens("100k", path=tmp_path / "u.data")
    assert any("has no u.user, u.item (only the file named" in str(w.message) for w in record)
    assert ds.info["missing_side_files"] == ["u.user", "u.item"]
    rows = raw_rows(tmp_path / "u.data", "\t")
    assert as_raw(ds, ds.events) == set(rows)
    assert ds.n_items == len({r[1] for r in rows})


@pytest.mark.parametrize("split", datasets.ML100K_SPLITS)
def test_ml100k_official_split_is_consistent_with_full_data(split):
    ds = load_quiet("100k", path=FIX / "ml-100k", split=split)
    base = raw_rows(FIX / "ml-100k" / f"{split}.base", "\t")
    test = raw_rows(FIX / "ml-100k" / f"{split}.test", "\t")
    assert (len(ds.train), len(ds.test)) == (len(base), len(test))
    assert as_raw(ds, ds.train) == set(base) and as_raw(ds, ds.test) == set(test)
    full = as_raw(ds, ds.events)
    assert as_raw(ds, ds.train) | as_raw(ds, ds.test) <= full
    pairs = lambda f: set(zip(f["user_id"], f["item_id"]))  # noqa: E731
    assert not pairs(ds.train) & pairs(ds.test)
    assert list(ds.train.columns) == list(ds.events.columns)
    assert ds.info["split"] == split


def test_ml100k_five_folds_partition_the_data():
    full = load_quiet("100k", path=FIX / "ml-100k")
    tests = []
    for k in range(1, 6):
        ds = load_quiet("100k", path=FIX / "ml-100k", split=f"u{k}")
        tests.append(as_raw(ds, ds.test))
    assert sum(len(t) for t in tests) == len(full.events)
    assert set().union(*tests) == as_raw(full, full.events)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"variant": "100k", "split": "u6"}, "unknown MovieLens-100K split 'u6'"),
        ({"variant": "1m", "split": "u1"}, "only MovieLens-100K ships official splits"),
        ({"variant": "10m"}, "unknown MovieLens variant '10m'"),
    ],
)
def test_bad_variant_or_split_is_a_clear_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        datasets.load_movielens(path=FIX / "ml-100k", **kwargs)


def _ml100k_copy(tmp_path, ratings: bytes | None = None) -> Path:
    """The fixture folder copied, with ``u.data`` replaced by ``ratings`` when given."""
    folder = tmp_path / "ml-100k"
    shutil.copytree(FIX / "ml-100k", folder)
    if ratings is not None:
        (folder / "u.data").write_bytes(ratings)
    return folder


def _zipped(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """``folder`` zipped under its own name (the official layout), plus ``extra`` members."""
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{folder.name}/{f.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


def test_malformed_ratings_file_names_the_file_and_line(tmp_path):
    """3 fields failed with an obscure int() error: the 'fewer fields' check never fired."""
    good = (FIX / "ml-100k" / "u.data").read_bytes()
    n = good.count(b"\n")
    folder = _ml100k_copy(tmp_path, good + b"1\t2\t3\n")
    with pytest.raises(ValueError, match=rf"u\.data line {n + 1} has 3 fields, expected 4"):
        datasets.load_movielens("100k", path=folder)


def test_ratings_with_an_extra_column_are_refused(tmp_path):
    """An extra column was dropped silently."""
    lines = (FIX / "ml-100k" / "u.data").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].rstrip(b"\n") + b"\t99\n"
    folder = _ml100k_copy(tmp_path, b"".join(lines))
    with pytest.raises(ValueError, match=r"u\.data line 3 has 5 fields, expected 4"):
        datasets.load_movielens("100k", path=folder)


def test_a_field_that_is_not_a_number_names_the_line(tmp_path):
    lines = (FIX / "ml-100k" / "u.data").read_bytes().splitlines(keepends=True)
    lines[1] = b"1\t2\tfive\t881250949\n"
    folder = _ml100k_copy(tmp_path, b"".join(lines))
    with pytest.raises(ValueError, match=r"u\.data line 2: rating is 'five', not a number"):
        datasets.load_movielens("100k", path=folder)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \n"])
def test_empty_ratings_are_refused_in_a_folder_and_a_zip(tmp_path, content):
    """An empty u.data gave a Dataset with 0 users and 0 events."""
    folder = _ml100k_copy(tmp_path, content)
    with pytest.raises(ValueError, match="u.data is empty"):
        datasets.load_movielens("100k", path=folder)
    archive = _zipped(folder, tmp_path / "copy.zip")
    with pytest.raises(ValueError, match="u.data is empty"):
        datasets.load_movielens("100k", path=archive)


def test_zip_with_a_decoy_folder_is_refused_as_ambiguous(tmp_path):
    """A zip holding zzz/u.data beside ml-100k/ used the decoy (and mixed side files)."""
    decoy = b"1\t1\t5\t881250949\n"
    archive = _zipped(FIX / "ml-100k", tmp_path / "copy.zip", {"zzz/u.data": decoy})
    with pytest.raises(ValueError, match=r"holds u\.data in 2 folders \(ml-100k, zzz\)"):
        datasets.load_movielens("100k", path=archive)
    folder = tmp_path / "two-copies"
    shutil.copytree(FIX / "ml-100k", folder / "ml-100k")
    (folder / "zzz").mkdir()
    (folder / "zzz" / "u.data").write_bytes(decoy)
    with pytest.raises(ValueError, match="ambiguous"):
        datasets.load_movielens("100k", path=folder)


def test_side_files_come_only_from_the_ratings_folder(tmp_path):
    """A u.item in another folder of the zip is not mixed in."""
    archive = tmp_path / "copy.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(FIX / "ml-100k" / "u.data", "ml-100k/u.data")
        zf.write(FIX / "ml-100k" / "u.item", "other/u.item")
    with pytest.warns(UnverifiedDataWarning), pytest.warns(UserWarning, match="no u.user, u.item"):
        ds = datasets.load_movielens("100k", path=archive)
    assert ds.info["missing_side_files"] == ["u.user", "u.item"]


# --- per-file verification of extracted copies --------------------------------------------


def test_extracted_folder_is_verified_file_by_file(tmp_path, monkeypatch):
    """With inner-file hashes in the registry, an extracted folder is verified; one file
    with an official name and other content is refused; without hashes, a warning."""
    folder = _ml100k_copy(tmp_path)
    reg = dict(registry.entries())
    for f in folder.iterdir():
        reg[f"ml-100k/{f.name}"] = (sha256(f), None)
    monkeypatch.setattr(registry, "entries", lambda: reg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedDataWarning)
        ds = datasets.load_movielens("100k", path=folder, split="u1")
    assert ds.info["verified"] and ds.info["sha256"] == sha256(folder / "u.data")
    assert set(ds.info["files_sha256"]) == {"u.data", "u.user", "u.genre", "u.item", "u1.base",
                                            "u1.test"}  # fmt: skip
    (folder / "u.user").write_bytes((folder / "u.user").read_bytes() + b"\n")
    with pytest.raises(ChecksumError, match=r"u\.user is named like the official ml-100k/u\.user"):
        datasets.load_movielens("100k", path=folder)
    del reg["ml-100k/u.user"]
    with pytest.warns(UnverifiedDataWarning, match=r"no hash for u\.user \(sha256 [0-9a-f]{64}\)"):
        ds = datasets.load_movielens("100k", path=folder)
    assert not ds.info["verified"]


def test_registry_ships_inside_the_package():
    from importlib import resources

    text = resources.files("recbook").joinpath("data/registry.txt").read_text()
    assert "ml-100k.zip sha256:" in text
    assert not (ROOT / "data" / "registry.txt").exists()  # one registry, in the package


# --- MovieLens 1M --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["ml-1m", "ml-1m.zip"])  # ratings.dat alone: no side files
def test_ml1m_parses_double_colon_latin1(where, tmp_path):
    path = FIX / where
    if where.endswith(".zip"):  # the official name would be checked against the registry
        path = shutil.copy(path, tmp_path / "ml1m-local.zip")
    ds = load_quiet("1m", path=path)
    rows = raw_rows(FIX / "ml-1m" / "ratings.dat", "::")
    assert ds.name == "movielens-1m" and as_raw(ds, ds.events) == set(rows)
    assert (ds.n_users, ds.n_items) == (6, 8)
    titles = set(ds.items["title"])
    assert {"Misérables, Les (1995)", "Café au lait (1993)"} <= titles
    never = ds.items.loc[ds.items["raw_item_id"] == 21, "item_id"].item()
    assert never not in set(ds.events["item_id"])  # listed in movies.dat, never rated
    users = ds.users.set_index("raw_user_id")
    assert users.loc[1, "occupation"] == "clerical/admin"  # code 3 in users.dat
    assert users.loc[3, "zip_code"] == "48201-2210"
    assert set(ds.users["age"]) <= {1, 18, 25, 35, 45, 50, 56}
    assert ds.items.set_index("raw_item_id").loc[5, "category"] == "Drama"
    assert ds.train is None and ds.test is None


# --- Online Retail -------------------------------------------------------------------------


def sheet_rows() -> list[dict]:
    ws = openpyxl.load_workbook(RETAIL_XLSX, read_only=True).active
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], row)) for row in values[1:]]


def load_retail(path=RETAIL_XLSX) -> datasets.Dataset:
    with pytest.warns(UnverifiedDataWarning):
        return datasets.load_online_retail(path=path)


def test_retail_cleaning_counts_add_up():
    ds = load_retail()
    rows = sheet_rows()
    report = ds.info["cleaning"]
    assert ds.info["n_raw_rows"] == len(rows)
    assert report["dropped"].sum() + len(ds.events) == len(rows)
    assert report["remaining"].iloc[-1] == len(ds.events)
    assert (report["dropped"] > 0).all(), "the fixture hits every rule"
    # the first rule sees every row, so its count is simply the number of "C" invoices
    cancelled = sum(str(r["InvoiceNo"]).startswith("C") for r in rows)
    assert report.loc["cancellation", "dropped"] == cancelled
    assert list(report.index) == [
        "cancellation", "missing_customer", "non_positive_quantity", "non_product_code",
        "non_positive_price", "missing_field",
    ]  # fmt: skip


def test_retail_kept_rows_obey_every_rule():
    ds = load_retail()
    ev = ds.events.merge(ds.items, on="item_id", suffixes=("", "_item"))
    assert not ev["invoice"].str.startswith("C").any()
    assert (ev["quantity"] > 0).all() and (ev["unit_price"] > 0).all()
    codes = ev["raw_item_id"].str.upper()
    assert not codes.isin(datasets.NON_PRODUCT_CODES).any()
    assert not codes.str.startswith("GIFT_").any()
    assert ev["rating"].isna().all() and (ev["event"] == "purchase").all()
    assert ds.ratings().empty and len(ds.positives()) == len(ds.events)


def test_retail_tables_ids_and_side_information():
    ds = load_retail()
    ev = ds.events
    cols = ["user_id", "item_id", "rating", "timestamp", "event", "quantity", "unit_price"]
    assert list(ev.columns[:7]) == cols
    assert ds.users["user_id"].tolist() == list(range(ds.n_users))
    assert ds.items["item_id"].tolist() == list(range(ds.n_items))
    assert ev["timestamp"].dtype == np.int64 and ev["quantity"].dtype == np.int64
    # 2010-12-01 08:26 read as UTC
    assert ev["timestamp"].min() == int(pd.Timestamp("2010-12-01 08:26", tz="UTC").timestamp())
    users = ds.users.set_index("raw_user_id")
    assert users.loc[12431, "country"] == "Australia"  # 3 rows Australia, 1 Netherlands
    assert ds.info["users_with_several_countries"] == 1
    items = ds.items.set_index("raw_item_id")
    assert items.loc["22728", "title"] == "RED SPOT MUG"  # one row has no description
    assert items.loc["85123A", "unit_price"] == pytest.approx(2.55)
    assert ds.info["duplicate_rows_kept"] == 1


def test_retail_zip_folder_and_renamed_workbook_agree(tmp_path):
    local_zip = tmp_path / "retail-copy.zip"
    with zipfile.ZipFile(local_zip, "w") as zf:
        zf.write(RETAIL_XLSX, "retail.xlsx")  # "Online Retail.xlsx" would be checked: below
    folder = tmp_path / "extracted"
    folder.mkdir()
    shutil.copy(RETAIL_XLSX, folder / "retail.xlsx")
    a, b, c = load_retail(local_zip), load_retail(folder), load_retail()
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.events, c.events)
    pd.testing.assert_frame_equal(a.items, c.items)


def test_retail_parse_cache_is_parquet_and_reused(cache, monkeypatch):
    first = load_retail()
    caches = list(cache.glob("online_retail_*"))
    assert [c.suffix for c in caches] == [".parquet"]
    assert sha256(RETAIL_XLSX)[:16] in caches[0].name
    assert caches[0].read_bytes()[:4] == b"PAR1"  # data only: nothing in it can run
    monkeypatch.setattr(online_retail, "_read_retail_workbook", lambda *a: pytest.fail("re-parsed"))
    second = load_retail()
    pd.testing.assert_frame_equal(first.events, second.events)
    pd.testing.assert_frame_equal(first.items, second.items)


def test_a_planted_pickle_is_never_loaded(cache):
    """The old cache name with a pickle that would run code on load is ignored."""
    import pickle

    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("the planted pickle ran",))

    for version in (1, 2):
        name = f"online_retail_{sha256(RETAIL_XLSX)[:16]}_v{version}.pkl"
        (cache / name).write_bytes(pickle.dumps(Boom()))
    assert len(load_retail().events) > 0


def test_a_stale_or_foreign_parquet_cache_is_ignored(cache):
    first = load_retail()
    target = next(cache.glob("online_retail_*.parquet"))
    other = pd.DataFrame({"InvoiceNo": ["X"]})
    other.to_parquet(target)  # right name, no recbook metadata
    with pytest.warns(UserWarning, match="ignoring the parse cache"):
        again = load_retail()
    pd.testing.assert_frame_equal(first.events, again.events)
    target.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="cannot be read"):
        load_retail()


def test_no_pickle_anywhere_in_recbook():
    import re

    for path in (ROOT / "recbook").rglob("*.py"):
        text = path.read_text()
        assert not re.search(
            r"read_pickle|to_pickle|pickle\.load|import pickle|allow_pickle=True", text
        ), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_retail_workbook_without_a_column_is_refused(tmp_path):
    df = pd.read_excel(RETAIL_XLSX, engine="openpyxl").drop(columns=["CustomerID"])
    bad = tmp_path / "bad.xlsx"
    df.to_excel(bad, index=False)
    with pytest.raises(ValueError, match="CustomerID"):
        datasets.load_online_retail(path=bad)


def test_official_workbook_name_with_other_content_is_refused(tmp_path):
    fake = tmp_path / "Online Retail.xlsx"
    shutil.copy(RETAIL_XLSX, fake)
    with pytest.raises(ChecksumError, match="43465a06f2ccf7c8"):
        datasets.load_online_retail(path=fake)
    in_a_zip = tmp_path / "my-copy.zip"  # any zip: the workbook inside is checked too
    with zipfile.ZipFile(in_a_zip, "w") as zf:
        zf.write(RETAIL_XLSX, "Online Retail.xlsx")
    with pytest.raises(ChecksumError, match="43465a06f2ccf7c8"):
        datasets.load_online_retail(path=in_a_zip)


# --- checksums, cache, offline -------------------------------------------------------------


def test_local_copy_named_like_the_official_zip_with_wrong_hash_is_refused():
    with pytest.raises(ChecksumError) as err:
        datasets.load_movielens("100k", path=FIX / "ml-100k.zip")
    msg = str(err.value)
    assert sha256(FIX / "ml-100k.zip") in msg and registry.entries()["ml-100k.zip"][0] in msg


def test_corrupted_cached_file_is_an_error_naming_it(cache):
    target = cache / "ml-100k.zip"
    shutil.copy(FIX / "ml-100k.zip", target)
    with pytest.raises(ChecksumError) as err:
        datasets.load("movielens-100k")
    assert str(target) in str(err.value) and "Delete it" in str(err.value)
    assert target.exists()  # left for the user to inspect, never silently replaced


@pytest.mark.parametrize("name", ["movielens-100k", "movielens-1m", "online-retail"])
def test_offline_error_names_url_sha256_and_target(name, cache, monkeypatch):
    def offline(self, fname, *args, **kwargs):
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch.Pooch, "fetch", offline)
    spec = datasets.SPECS[name]
    sha, url = registry.entries()[spec.archive]
    with pytest.raises(DataUnavailableError) as err:
        datasets.load(name)
    msg = str(err.value)
    assert url in msg and sha in msg and str(cache / spec.archive) in msg and "path=" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_download_with_wrong_hash_is_a_checksum_error(monkeypatch):
    def bad_hash(self, fname, *args, **kwargs):
        raise ValueError(f"SHA256 hash of downloaded file ({fname}) does not match the known hash")

    monkeypatch.setattr(pooch.Pooch, "fetch", bad_hash)
    with pytest.raises(ChecksumError, match="discarded"):
        datasets.fetch("movielens-1m")


def test_verified_download_then_cached(cache, monkeypatch):
    """Pretend the fixture zip is the official one: download once, then read from the cache."""
    reg = dict(registry.entries())
    reg["ml-100k.zip"] = (sha256(FIX / "ml-100k.zip"), reg["ml-100k.zip"][1])
    monkeypatch.setattr(registry, "entries", lambda: reg)
    calls = []

    def fake_download(self, fname, *args, **kwargs):
        calls.append(fname)
        return shutil.copy(FIX / fname, Path(self.abspath) / fname)

    monkeypatch.setattr(pooch.Pooch, "fetch", fake_download)
    first = datasets.load("movielens-100k", split="ua")
    second = datasets.load_movielens("100k")
    assert calls == ["ml-100k.zip"]  # the second load used the verified cache
    assert first.info["verified"] and first.info["file"] == str(cache / "ml-100k.zip")
    pd.testing.assert_frame_equal(first.events, second.events)
    assert len(first.test) == 2 * first.n_users  # ua holds out 2 ratings per user here
    # the same bytes passed with path= are now recognised as the official zip: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedDataWarning)
        assert datasets.load_movielens("100k", path=cache / "ml-100k.zip").info["verified"]


def test_verified_retail_zip_from_the_cache(cache, monkeypatch):
    """The official layout: the workbook "Online Retail.xlsx" at the root of the UCI zip."""
    archive = cache / "online+retail.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(RETAIL_XLSX, "Online Retail.xlsx")
    reg = dict(registry.entries())
    reg["online+retail.zip"] = (sha256(archive), reg["online+retail.zip"][1])
    monkeypatch.setattr(registry, "entries", lambda: reg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedDataWarning)
        ds = datasets.load("online-retail")
        again = datasets.load_online_retail(path=cache)  # a folder holding the zip
    assert ds.info["verified"] and again.info["verified"]
    assert ds.info["n_raw_rows"] == len(sheet_rows())
    pd.testing.assert_frame_equal(ds.events, again.events)


def test_bad_names_and_paths_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'movielens'"):
        datasets.load("movielens")
    with pytest.raises(ValueError, match="nothing to fetch"):
        datasets.fetch("shop")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.load_movielens("100k", path=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="has no ratings.dat"):
        datasets.load_movielens("1m", path=FIX / "ml-100k")
    broken = tmp_path / "half-downloaded.zip"
    broken.write_bytes((FIX / "ml-100k.zip").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable zip"):
        datasets.load_movielens("100k", path=broken)


@pytest.mark.parametrize("name", datasets.DATASETS)
def test_every_dataset_takes_path_none(name, monkeypatch):
    """A notebook passes its DATA_PATH whatever its DATASET: None means the default source
    (the generator for the shop, the verified download for public data)."""
    if name == "shop":
        sizes = {"n_users": 20, "n_items": 30, "n_events": 400, "seed": 5}
        by_name = datasets.load("shop", path=None, **sizes)
        pd.testing.assert_frame_equal(by_name.events, datasets.load_shop(**sizes).events)
        return

    def offline(self, fname, *args, **kwargs):
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch.Pooch, "fetch", offline)
    with pytest.raises(DataUnavailableError, match="path="):
        datasets.load(name, path=None)


@pytest.mark.filterwarnings("ignore::recbook.datasets.UnverifiedDataWarning")
def test_load_passes_path_to_the_public_loaders():
    ml = datasets.load("movielens-100k", FIX / "ml-100k", split="u1")  # path may be positional
    direct = datasets.load_movielens("100k", path=FIX / "ml-100k", split="u1")
    pd.testing.assert_frame_equal(ml.train, direct.train)
    retail = datasets.load("online-retail", path=RETAIL_XLSX)
    pd.testing.assert_frame_equal(
        retail.events, datasets.load_online_retail(path=RETAIL_XLSX).events
    )


def test_a_path_for_the_shop_is_refused():
    with pytest.raises(ValueError, match="the shop is generated from a seed: path= is for public"):
        datasets.load("shop", path=FIX / "ml-100k")


def test_data_dir_follows_the_environment(cache, monkeypatch):
    assert datasets.data_dir() == cache
    monkeypatch.delenv("RECBOOK_DATA")
    assert datasets.data_dir() == ROOT / "data"


# --- fixtures are reproducible -------------------------------------------------------------


def test_make_fixtures_rewrites_identical_files(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", ROOT / "data" / "make_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "fixtures")
    module.main()
    made = sorted(
        p.relative_to(tmp_path / "fixtures")
        for p in (tmp_path / "fixtures").rglob("*")
        if p.is_file()
    )
    kept = sorted(p.relative_to(FIX) for p in FIX.rglob("*") if p.is_file())
    assert made == kept
    for rel in made:
        assert (tmp_path / "fixtures" / rel).read_bytes() == (FIX / rel).read_bytes(), rel


@pytest.mark.skipif(
    importlib.util.find_spec("python_calamine") is None, reason="python-calamine not installed"
)
def test_calamine_and_openpyxl_read_the_same_workbook():
    raw = RETAIL_XLSX.read_bytes()
    by_openpyxl = online_retail._read_retail_workbook(raw, "fixture", "openpyxl")
    by_calamine = online_retail._read_retail_workbook(raw, "fixture", "calamine")
    pd.testing.assert_frame_equal(by_openpyxl, by_calamine)


def test_retail_fractional_customer_id_is_refused_not_truncated(tmp_path):
    wb = openpyxl.load_workbook(RETAIL_XLSX)
    ws = wb.active
    column = [c.value for c in ws[1]].index("CustomerID") + 1
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, column).value is not None)
    ws.cell(row, column).value = float(ws.cell(row, column).value) + 0.5
    path = tmp_path / "fractional.xlsx"
    wb.save(path)
    with (
        pytest.raises(ValueError, match=rf"CustomerID \(sheet rows\).*not exact.*\[{row}\]"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", UnverifiedDataWarning)
        datasets.load_online_retail(path=path)


@pytest.mark.parametrize(
    "line, message",
    [
        ("196\t242\t3.5\t881250949", "rating is '3.5', not an integer"),
        ("99999999999999999999\t242\t3\t881250949", "raw_user_id is .*64-bit integer range"),
        ("196\t-9223372036854775809\t3\t881250949", "raw_item_id is .*64-bit integer range"),
        ("196\t242\tnan\t881250949", "rating is 'nan', not a number"),
    ],
)
def test_movielens_fields_that_are_no_int64_are_named(tmp_path, line, message):
    raw = f"1\t1\t4\t881250949\n{line}\n".encode()
    with pytest.raises(ValueError, match=rf"u\.data line 2: {message}"):
        movielens._read_text_table(raw, "\t", movielens._RATING_COLS, "u.data", dtype="int64")

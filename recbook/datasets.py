"""Datasets behind one interface: the synthetic shop and public data (MovieLens, Online Retail).

Every loader returns a :class:`Dataset` with contiguous integer ids, so a notebook switches data
by changing its ``DATASET`` parameter and nothing else.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import importlib.util
import io
import json
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pooch

from recbook import checks
from recbook.checksums import ChecksumError, sha256_bytes, sha256_file
from recbook.columns import EVENT, ITEM, RATING, TIMESTAMP, USER

DATASETS = ("shop", "movielens-100k", "movielens-1m", "online-retail")


@dataclass
class Dataset:
    """Users, items and events of one dataset, with the generator's truth when it is known.

    ``train``/``test`` are set only when the source ships an official split (MovieLens-100K
    ``u1``..``u5``, ``ua``, ``ub``); ``info`` holds provenance (source URL, cleaning counts).
    """

    name: str
    users: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    truth: Any = None
    train: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def ratings(self) -> pd.DataFrame:
        """Events that carry an explicit 1-5 rating (user_id, item_id, rating, timestamp)."""
        rated = self.events[self.events[RATING].notna()]
        return rated[[USER, ITEM, RATING, TIMESTAMP]].reset_index(drop=True)

    def positives(self) -> pd.DataFrame:
        """Implicit positive interactions: clicks and purchases in the shop, every rating or
        purchase in public data (user_id, item_id, timestamp)."""
        ev = self.events
        if EVENT in ev and ev[EVENT].isin(["view"]).any():
            ev = ev[ev[EVENT] != "view"]
        return ev[[USER, ITEM, TIMESTAMP]].reset_index(drop=True)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
            f"{len(self.events)} events)"
        )


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a dataset by name: ``"shop"`` (default, offline), ``"movielens-100k"``,
    ``"movielens-1m"`` or ``"online-retail"`` (downloaded once and checksum-verified)."""
    if name == "shop":
        from recbook.shop import load_shop

        return load_shop(**kwargs)
    if name == "movielens-100k":
        return load_movielens("100k", **kwargs)
    if name == "movielens-1m":
        return load_movielens("1m", **kwargs)
    if name == "online-retail":
        return load_online_retail(**kwargs)
    checks.one_of(name, DATASETS, "dataset")  # raises: every known name returned above
    raise AssertionError(name)


def load_shop(**kwargs: Any) -> Dataset:
    """The synthetic shop (see :func:`recbook.shop.load_shop`)."""
    from recbook.shop import load_shop as _load_shop

    return _load_shop(**kwargs)


# ---------------------------------------------------------------------------------------------
# Public data: where the files live and how they are verified
# ---------------------------------------------------------------------------------------------

DATA_ENV = "RECBOOK_DATA"
_REPO = Path(__file__).resolve().parents[1]
# the repository's data/ folder, only when recbook runs from a checkout (not from a wheel)
_REPO_DATA = _REPO / "data" if (_REPO / "pyproject.toml").is_file() else None
REGISTRY = "data/registry.txt"  # inside the package: read with importlib.resources
ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

__all__ = ["ChecksumError"]  # re-exported: one ChecksumError for data and model files


class DataUnavailableError(FileNotFoundError):
    """A public data file that is not cached and could not be downloaded."""


class UnverifiedDataWarning(UserWarning):
    """A local copy given with ``path=`` that matches no recorded checksum (used, but flagged)."""


@dataclass(frozen=True)
class _Spec:
    name: str  # as in DATASETS
    archive: str  # the official download's file name (a key of the registry)
    folder: str  # the folder inside the official zip that holds the files ("" = its root)
    main: str  # the file a copy must contain (ratings / workbook)
    call: str  # how to pass a local copy, for error messages
    homepage: str
    licence: str
    citation: str
    main_suffix: str | None = None  # accept one file with this suffix when ``main`` is absent


_ML_LICENCE = (
    "GroupLens usage licence: research use, acknowledge and cite Harper & Konstan (2015); "
    "no redistribution without permission (recbook downloads it, never ships it)"
)
_ML_CITATION = (
    "F. M. Harper and J. A. Konstan. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems 5(4):19, 2015. doi:10.1145/2827872"
)
_SPECS = {
    "movielens-100k": _Spec(
        "movielens-100k", "ml-100k.zip", "ml-100k", "u.data", 'load_movielens("100k", path=...)',
        "https://grouplens.org/datasets/movielens/100k/", _ML_LICENCE, _ML_CITATION,
    ),
    "movielens-1m": _Spec(
        "movielens-1m", "ml-1m.zip", "ml-1m", "ratings.dat", 'load_movielens("1m", path=...)',
        "https://grouplens.org/datasets/movielens/1m/", _ML_LICENCE, _ML_CITATION,
    ),
    "online-retail": _Spec(
        "online-retail", "online+retail.zip", "", "Online Retail.xlsx",
        "load_online_retail(path=...)", "https://archive.ics.uci.edu/dataset/352/online+retail",
        "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
        "D. Chen. Online Retail [Dataset]. UCI Machine Learning Repository, 2015. "
        "doi:10.24432/C5BW33",
        main_suffix=".xlsx",
    ),
}  # fmt: skip


def data_dir() -> Path:
    """Folder for downloaded data: ``$RECBOOK_DATA``, else the repository's ``data/`` when
    recbook runs from a checkout, else the user cache (``pooch.os_cache("recbook")``)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    if _REPO_DATA is not None and _REPO_DATA.is_dir():
        return _REPO_DATA
    return Path(pooch.os_cache("recbook"))


@functools.lru_cache(maxsize=1)
def _read_registry() -> dict[str, tuple[str, str | None]]:
    resource = importlib.resources.files("recbook").joinpath(REGISTRY)
    if not resource.is_file():
        raise FileNotFoundError(
            f"the checksum registry recbook/{REGISTRY} is missing from the installed package; "
            "reinstall recbook (it ships inside the package)"
        )
    reader = pooch.Pooch(path=data_dir(), base_url="")
    with resource.open("r", encoding="utf-8") as handle:
        reader.load_registry(handle)  # pooch's own format: name  sha256:HASH  [url]
    out: dict[str, tuple[str, str | None]] = {}
    for fname, checksum in reader.registry.items():
        alg, _, digest = checksum.partition(":")
        if alg != "sha256" or len(digest) != 64:
            raise ValueError(f"recbook/{REGISTRY}: {fname} needs a 'sha256:<64 hex>' checksum")
        out[fname] = (digest, reader.urls.get(fname))
    return out


def _registry() -> dict[str, tuple[str, str | None]]:
    """``{file name: (sha256, url)}`` from the package's ``data/registry.txt``: the official
    archives, and files inside them under their path in the zip."""
    return _read_registry()


def _download(fname: str, directory: Path) -> Path:
    """Download one registered file into ``directory`` with pooch (sha256-checked)."""
    sha, url = _registry()[fname]
    fetcher = pooch.Pooch(
        path=directory,
        base_url="",
        registry={fname: f"sha256:{sha}"},
        urls={fname: url},
        retry_if_failed=1,
        allow_updates=False,
    )
    return Path(fetcher.fetch(fname, progressbar=True))


def _check_cached(target: Path, sha: str, url: str | None) -> str:
    actual = sha256_file(target)
    if actual != sha:
        raise ChecksumError(
            f"the cached file {target} has sha256 {actual}, but recbook's registry expects "
            f"{sha}: it is corrupted, incomplete (an interrupted download?) or not the official "
            f"file. Delete it (rm '{target}') and load again to download a fresh copy from "
            f"{url}, or replace it with a good copy."
        )
    return actual


def _official_copy(spec: _Spec) -> Path:
    """The verified official archive in :func:`data_dir`, downloaded on first use."""
    sha, url = _registry()[spec.archive]
    target = data_dir() / spec.archive
    if not target.exists():
        try:
            target = _download(spec.archive, target.parent)
        except Exception as exc:  # network, TLS, HTTP, disk: all mean "not available"
            if isinstance(exc, ValueError) and "hash" in str(exc).lower():
                raise ChecksumError(
                    f"{spec.name}: the file downloaded from {url} does not have the sha256 "
                    f"{sha} recorded in recbook's registry, so it was discarded ({exc}). The "
                    f"server copy may have changed or the transfer broke; try again, or get the "
                    f"file elsewhere and pass it with {spec.call}."
                ) from exc
            raise DataUnavailableError(_unavailable_message(spec, target, sha, url, exc)) from exc
    _check_cached(target, sha, url)
    return target


def _unavailable_message(spec: _Spec, target: Path, sha: str, url: str | None, exc) -> str:
    return (
        f"{spec.name}: {spec.archive} is not in the data folder and could not be downloaded "
        f"({type(exc).__name__}: {exc}).\n"
        f"  URL:             {url}\n"
        f"  expected sha256: {sha}\n"
        f"  put the file at: {target}\n"
        f"Download it where there is network access (or copy it from a colleague) and save it "
        f"at that path (set {DATA_ENV} to use another folder), or pass a local copy with "
        f"{spec.call} - the zip, the folder extracted from it, or its {spec.main} file."
    )


def fetch(name: str) -> Path:
    """Download (once) and verify the official archive of a public dataset; return its path.

    Use it to pre-download before an offline workshop:
    ``python -c "from recbook.datasets import fetch; fetch('movielens-100k')"``.
    """
    if name not in _SPECS:
        raise ValueError(
            f"unknown public dataset {name!r}; choose one of {', '.join(_SPECS)} "
            "(the shop is generated, there is nothing to fetch)"
        )
    return _official_copy(_SPECS[name])


class _Files:
    """The files of one copy of a dataset, found by base name in a zip, a folder or next to a
    single file, so every parser reads the same way whatever the user passed.

    The files come from ONE folder: the one holding the main file. A copy with the main file
    in several folders (a decoy ``zzz/u.data`` beside ``ml-100k/``) is refused as ambiguous.
    Unless the whole archive matched the registry (``trusted``), every file read is hashed
    as read and checked against the registry's entry for it, when there is one.
    """

    def __init__(self, path: Path, spec: _Spec):
        self.path, self.spec, self.trusted = path, spec, False
        self.read_sha256: dict[str, str] = {}  # real file name -> sha256 of the bytes parsed
        main = spec.main
        if path.is_dir():
            self.kind = "folder"
            found = [f for f in [*path.iterdir(), *path.glob("*/*")] if f.is_file()]
            entries = [(f.parent.relative_to(path).as_posix(), f.name, str(f)) for f in found]
        elif path.suffix.lower() == ".zip":
            self.kind = "zip"
            try:
                with zipfile.ZipFile(path) as zf:
                    names = [n for n in zf.namelist() if not n.endswith("/")]
            except zipfile.BadZipFile as exc:
                raise ValueError(
                    f"{path} is not a readable zip archive ({exc}); a truncated download? "
                    "Download it again."
                ) from exc
            entries = [(n.rpartition("/")[0], n.rpartition("/")[2], n) for n in names]
        else:
            self.kind = "file"
            entries = [(".", f.name, str(f)) for f in path.parent.iterdir() if f.is_file()]
        entries = [(d or ".", name, ref) for d, name, ref in entries]
        self.real = {}  # name used by the loader -> the file's own name
        holders = sorted({d for d, name, _ in entries if name == main})
        if self.kind == "file":
            holders, self.real[main] = ["."], path.name
        elif not holders and spec.main_suffix:  # e.g. a renamed workbook
            alike = [(d, n) for d, n, _ in entries if n.lower().endswith(spec.main_suffix)]
            if len(alike) == 1:
                holders, self.real[main] = [alike[0][0]], alike[0][1]
        if not holders:
            raise FileNotFoundError(
                f"{path} has no {main}; pass the official zip, the folder extracted from it, "
                f"or the {main} file itself"
            )
        if len(holders) > 1:
            raise ValueError(
                f"{path} holds {main} in {len(holders)} folders ({', '.join(holders)}), so it "
                f"is not one copy of {spec.name}: the files to read are ambiguous. Pass the "
                "folder of the copy you mean (extract the zip first), or remove the others."
            )
        self.folder = holders[0]
        self.members = {name: ref for d, name, ref in entries if d == self.folder}
        if self.kind == "file":
            self.members[main] = str(path)  # the file the user named is the main file
        elif main in self.real:
            self.members[main] = self.members[self.real[main]]

    def has(self, name: str) -> bool:
        return name in self.members

    def local_file(self, name: str) -> Path:
        """The file on disk behind ``name``: the zip itself, or the file."""
        return self.path if self.kind == "zip" else Path(self.members[name])

    def read(self, name: str) -> bytes:
        """The bytes of ``name``; refused when it carries an official name but not the
        official content."""
        if name not in self.members:
            raise FileNotFoundError(f"{self.path} has no {name}")
        if self.kind == "zip":
            with zipfile.ZipFile(self.path) as zf:
                data = zf.read(self.members[name])
        else:
            data = Path(self.members[name]).read_bytes()
        if not self.trusted:
            real = self.real.get(name, name)
            actual = self.read_sha256[real] = sha256_bytes(data)
            expected = _inner_sha256(self.spec, real)
            if expected is not None and actual != expected:
                raise ChecksumError(
                    f"{self.path}: {real} is named like the official {_inner_key(self.spec, real)} "
                    f"of {self.spec.archive}, but its sha256 is {actual}, not {expected} "
                    "(recbook's registry): it is damaged, incomplete or another version. "
                    f"Download {self.spec.archive} again; if you changed the file on purpose, "
                    "rename it and it is used as an unverified copy (with a warning)."
                )
        return data

    def unverified(self) -> dict[str, str]:
        """``{file: sha256}`` of the files read that the registry has no hash for."""
        if self.trusted:
            return {}
        return {
            n: sha for n, sha in self.read_sha256.items() if _inner_sha256(self.spec, n) is None
        }


def _inner_key(spec: _Spec, name: str) -> str:
    """Registry key of a file inside the official archive: its path in the zip."""
    return f"{spec.folder}/{name}" if spec.folder else name


def _inner_sha256(spec: _Spec, name: str) -> str | None:
    entry = _registry().get(_inner_key(spec, name))
    return entry[0] if entry else None


def _open_copy(spec: _Spec, path: str | os.PathLike | None) -> tuple[_Files, dict[str, Any]]:
    """The files to parse plus provenance: the verified official archive when ``path`` is
    None, else the user's copy. Call :func:`_verified` once everything has been read."""
    sha, url = _registry()[spec.archive]
    info: dict[str, Any] = {
        "source_url": url,
        "homepage": spec.homepage,
        "licence": spec.licence,
        "citation": spec.citation,
    }
    if path is None:
        archive = _official_copy(spec)
        files = _Files(archive, spec)
        files.trusted = True
        info.update(file=str(archive), sha256=sha, verified=True)
        return files, info

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"path={str(path)!r} does not exist; pass the {spec.archive} zip, the folder "
            f"extracted from it, or its {spec.main} file"
        )
    nested = p.is_dir() and not (p / spec.main).is_file() and not any(p.glob(f"*/{spec.main}"))
    if nested and (p / spec.archive).is_file():  # a folder that holds the downloaded zip
        p = p / spec.archive
    files = _Files(p, spec)
    info["file"] = str(files.local_file(spec.main))
    if files.kind == "zip":
        actual = sha256_file(p)
        if actual == sha:
            files.trusted = True
            info.update(sha256=actual, verified=True)
        elif p.name == spec.archive:
            raise ChecksumError(
                f"{p} is named like the official {spec.archive} but its sha256 is {actual}, "
                f"not {sha} (recbook's registry): it is damaged, incomplete or another version. "
                f"Download it again from {url}; if you changed it on purpose, rename it and it "
                "is used as an unverified copy (with a warning)."
            )
        else:
            info["sha256"] = actual
    return files, info


def _verified(files: _Files, info: dict[str, Any], stacklevel: int = 3) -> None:
    """After parsing: record in ``info`` whether every file read matched the registry, and
    warn with each unmatched file's sha256 when one did not."""
    if files.trusted:
        return
    main = files.real.get(files.spec.main, files.spec.main)
    info.setdefault("sha256", files.read_sha256.get(main))
    info["files_sha256"] = dict(files.read_sha256)
    unverified = files.unverified()
    info["verified"] = not unverified
    if unverified:
        listed = ", ".join(f"{n} (sha256 {sha})" for n, sha in unverified.items())
        warnings.warn(
            f"{files.spec.name}: using {files.path} as an unverified local copy: recbook's "
            f"registry has no hash for {listed}, so it cannot tell this from the official "
            f"{files.spec.archive} (sha256 {_registry()[files.spec.archive][0]}) and results "
            "may differ from published ones. Load the official zip to have it verified.",
            UnverifiedDataWarning,
            stacklevel=stacklevel,
        )


def _index(raw: pd.Series, catalogue: pd.Index, what: str) -> np.ndarray:
    """Contiguous ids: positions of ``raw`` ids in the sorted ``catalogue``."""
    pos = catalogue.get_indexer(raw)
    if (pos < 0).any():
        bad = pd.unique(raw[pos < 0])[:5]
        raise ValueError(
            f"{what}: {int((pos < 0).sum())} rows refer to ids missing from the catalogue "
            f"(e.g. {list(bad)}); the copy is incomplete or mixed from different versions"
        )
    return pos.astype(np.int64)


def _events_in_time_order(cols: dict[str, np.ndarray], event: str) -> pd.DataFrame:
    """Events sorted by (timestamp, user_id, item_id) with a constant ``event`` column placed
    after ``timestamp``; sorting one packed int64 key is ~10x faster than DataFrame.sort_values."""
    user, item, ts = (np.asarray(cols[c], dtype=np.int64) for c in (USER, ITEM, TIMESTAMP))
    n_u, n_i = int(user.max(initial=0)) + 1, int(item.max(initial=0)) + 1
    t = ts - (ts.min() if len(ts) else 0)
    if len(ts) and int(t.max()) < (2**62) // (n_u * n_i):  # one int64 key: a single argsort
        order = np.argsort((t * n_u + user) * n_i + item, kind="stable")
    else:
        order = np.lexsort((item, user, ts))
    names = list(cols)
    at = names.index(TIMESTAMP) + 1
    frame = pd.DataFrame({n: np.asarray(cols[n])[order] for n in names[:at]})
    frame[EVENT] = event
    for n in names[at:]:
        frame[n] = np.asarray(cols[n])[order]
    return frame


def _catalogue(table: pd.DataFrame, raw_col: str, new_col: str, what: str) -> pd.DataFrame:
    if table[raw_col].duplicated().any():
        dups = table.loc[table[raw_col].duplicated(), raw_col].head(5).tolist()
        raise ValueError(f"{what}: duplicated ids {dups}")
    table = table.sort_values(raw_col, kind="stable").reset_index(drop=True)
    table.insert(0, new_col, np.arange(len(table), dtype=np.int64))
    return table


# ---------------------------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------------------------

_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# ML-1M README: users.dat codes its occupations 0..20.
_ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_RATING_COLS = ["raw_user_id", "raw_item_id", RATING, TIMESTAMP]


def _line_fields(raw: bytes, sep: bytes) -> tuple[np.ndarray, np.ndarray]:
    """1-based numbers of the non-blank lines of ``raw`` and their field counts (separators
    + 1), counted with numpy over the bytes (a million lines in milliseconds)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    if len(buf) and buf[-1] != ord("\n"):
        ends = np.append(ends, len(buf))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    seps = np.concatenate([[0], np.cumsum(buf == sep[0])])
    fields = seps[ends] - seps[starts] + 1
    is_space = np.isin(buf, np.frombuffer(b" \t\r", dtype=np.uint8))
    spaces = np.concatenate([[0], np.cumsum(is_space)])
    blank = (spaces[ends] - spaces[starts]) == (ends - starts)
    return np.flatnonzero(~blank) + 1, fields[~blank]


def _read_text_table(
    raw: bytes, sep: str, names: list[str], what: str, dtype: Any = None
) -> pd.DataFrame:
    """Parse one MovieLens file (latin-1, no header, no quoting; ``::`` read as one separator).

    Every non-blank line must have exactly ``len(names)`` fields and every typed field must
    parse; otherwise the error names the file, the line and what it holds. An empty file is
    an error, not an empty table.
    """
    if sep == "::":
        raw, sep = raw.replace(b"::", b"\t"), "\t"
    lines, fields = _line_fields(raw, sep.encode())
    if len(lines) == 0:
        raise ValueError(f"{what} is empty: the copy is damaged or incomplete; get it again")
    wrong = np.flatnonzero(fields != len(names))
    if len(wrong):
        k = wrong[0]
        text = raw.split(b"\n")[lines[k] - 1].decode("latin-1").rstrip("\r")
        raise ValueError(
            f"{what} line {lines[k]} has {fields[k]} fields, expected {len(names)} "
            f"({', '.join(names)}) separated by {sep!r}: {text[:80]!r}"
            + (f" ({len(wrong)} such lines)" if len(wrong) > 1 else "")
        )
    read = functools.partial(
        pd.read_csv, sep=sep, header=None, names=names, index_col=False, encoding="latin-1",
        quoting=csv.QUOTE_NONE, keep_default_na=False,
    )  # fmt: skip
    try:
        return read(io.BytesIO(raw), dtype=dtype)
    except (ValueError, pd.errors.ParserError) as exc:  # find the field that does not parse
        text = read(io.BytesIO(raw), dtype=str)
        typed = {c: dtype for c in names} if isinstance(dtype, str) else dict(dtype or {})
        for col, kind in typed.items():
            if kind is str:
                continue
            number = pd.to_numeric(text[col], errors="coerce")
            bad = (number.isna() | (number != number.round())).to_numpy()
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{what} line {lines[k]}: {col} is {text[col].iloc[k]!r}, not a number"
                ) from None
        raise ValueError(f"could not parse {what}: {exc}") from exc


def _read_ratings(files: _Files, name: str, sep: str) -> pd.DataFrame:
    df = _read_text_table(files.read(name), sep, _RATING_COLS, name, dtype="int64")
    if not df[RATING].between(1, 5).all():
        raise ValueError(f"{name}: ratings outside 1..5")
    return df


def _parse_date(col: pd.Series, what: str) -> pd.Series:
    """``01-Jan-1995`` -> datetime without relying on the locale's month names; empty -> NaT."""
    out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns]")
    filled = col != ""
    if filled.any():
        parts = col[filled].str.split("-", expand=True)
        month = parts[1].map(_MONTHS) if parts.shape[1] == 3 else None
        if month is None or month.isna().any():
            bad = col[filled].head(3).tolist()
            raise ValueError(f"{what}: dates must look like 01-Jan-1995, got e.g. {bad}")
        ymd = {
            "year": parts[2].astype(int),
            "month": month.astype(int),
            "day": parts[0].astype(int),
        }
        out[filled] = pd.to_datetime(pd.DataFrame(ymd))
    return out


def _ml100k_tables(files: _Files) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    users = items = None
    if files.has("u.user"):
        users = _read_text_table(
            files.read("u.user"), "|", ["raw_user_id", "age", "gender", "occupation", "zip_code"],
            "u.user", dtype={"raw_user_id": "int64", "age": "int64", "zip_code": str},
        )  # fmt: skip
    genres = list(_ML100K_GENRES)
    if files.has("u.genre"):
        lines = files.read("u.genre").decode("latin-1").splitlines()
        genres = [ln.split("|")[0] for ln in lines if ln.strip()]
    if files.has("u.item"):
        cols = ["raw_item_id", "title", "release_date", "video_release_date", "imdb_url"]
        items = _read_text_table(
            files.read("u.item"), "|", cols + genres, "u.item",
            dtype={"raw_item_id": "int64", **{g: "int64" for g in genres}},
        )  # fmt: skip
        flags = items[genres].to_numpy()
        if not np.isin(flags, (0, 1)).all():
            raise ValueError("u.item: genre flags must be 0 or 1")
        names = np.array(genres, dtype=object)
        items["genres"] = ["|".join(names[row.astype(bool)]) for row in flags]
        items["release_date"] = _parse_date(items["release_date"], "u.item")
        items = items.drop(columns=genres + ["video_release_date"])
    return users, items


def _ml1m_tables(files: _Files) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    users = items = None
    if files.has("users.dat"):
        users = _read_text_table(
            files.read("users.dat"), "::",
            ["raw_user_id", "gender", "age", "occupation", "zip_code"], "users.dat",
            dtype={"raw_user_id": "int64", "age": "int64", "occupation": "int64", "zip_code": str},
        )  # fmt: skip
        code = users["occupation"]
        if not code.between(0, len(_ML1M_OCCUPATIONS) - 1).all():
            raise ValueError("users.dat: occupation codes must be 0..20 (see the ML-1M README)")
        users["occupation"] = np.array(_ML1M_OCCUPATIONS, dtype=object)[code.to_numpy()]
        users = users[["raw_user_id", "age", "gender", "occupation", "zip_code"]]
    if files.has("movies.dat"):
        items = _read_text_table(
            files.read("movies.dat"), "::", ["raw_item_id", "title", "genres"], "movies.dat",
            dtype={"raw_item_id": "int64"},
        )  # fmt: skip
    return users, items


def load_movielens(
    variant: str = "100k", path: str | os.PathLike | None = None, split: str | None = None
) -> Dataset:
    """MovieLens 100K or 1M ratings with user and movie side information.

    Without ``path`` the official GroupLens zip is downloaded once into :func:`data_dir` and
    checked against ``data/registry.txt``. ``path`` takes a copy you already have: the zip,
    the folder extracted from it, or the ratings file (``u.data`` / ``ratings.dat``; side files
    next to it are used). A copy with the official sha256 is "verified"; a file named like the
    official zip with another hash is refused; anything else is used with an
    :class:`UnverifiedDataWarning` that shows its hash.

    Events: ``user_id, item_id, rating (float 1-5), timestamp (unix s), event="rating"``,
    sorted by time. Users: ``age, gender, occupation, zip_code`` (ML-1M ``age`` is the
    README's age-group code 1/18/25/35/45/50/56). Items: ``title``, ``genres`` ('|'-joined),
    ``category`` (first genre), and for 100K ``release_date``, ``imdb_url``. Items include
    movies nobody rated (ML-1M lists 3,883 movies, 3,706 rated).

    ``split`` (100K only): ``"u1"``..``"u5"`` (five-fold), ``"ua"``/``"ub"`` (10 ratings per
    user held out) fill ``Dataset.train``/``Dataset.test`` from the official files, with the
    same ids as ``events``.
    """
    checks.one_of(variant, ("100k", "1m"), "MovieLens variant")
    if split is not None and variant != "100k":
        raise ValueError(
            f"split={split!r}: only MovieLens-100K ships official splits; for 1M use "
            "recbook.splits (e.g. splits.per_user_split)"
        )
    if split is not None:
        checks.one_of(split, ML100K_SPLITS, "MovieLens-100K split")
    spec = _SPECS[f"movielens-{variant}"]
    files, info = _open_copy(spec, path)
    sep = "\t" if variant == "100k" else "::"
    ratings = _read_ratings(files, spec.main, sep)
    users, items = (_ml100k_tables if variant == "100k" else _ml1m_tables)(files)
    side = ("u.user", "u.item") if variant == "100k" else ("users.dat", "movies.dat")
    missing = [f for f, t in zip(side, (users, items)) if t is None]
    if missing:
        info["missing_side_files"] = missing
        warnings.warn(
            f"{spec.name}: {files.path} has no {', '.join(missing)}; the users/items tables "
            "then hold only the ids seen in the ratings",
            UserWarning,
            stacklevel=2,
        )
    if users is None:
        users = pd.DataFrame({"raw_user_id": np.unique(ratings["raw_user_id"])})
    if items is None:
        items = pd.DataFrame({"raw_item_id": np.unique(ratings["raw_item_id"])})
    users = _catalogue(users, "raw_user_id", USER, f"{spec.name} users")
    items = _catalogue(items, "raw_item_id", ITEM, f"{spec.name} items")
    if "genres" in items:
        first = items["genres"].str.split("|").str[0]
        items["category"] = first.where(first != "", "unknown")
    user_ix, item_ix = pd.Index(users["raw_user_id"]), pd.Index(items["raw_item_id"])

    def to_events(r: pd.DataFrame, what: str) -> pd.DataFrame:
        cols = {
            USER: _index(r["raw_user_id"], user_ix, what),
            ITEM: _index(r["raw_item_id"], item_ix, what),
            RATING: r[RATING].to_numpy(dtype="float64"),
            TIMESTAMP: r[TIMESTAMP].to_numpy(dtype="int64"),
        }
        return _events_in_time_order(cols, event="rating")

    events = to_events(ratings, spec.main)
    if events.duplicated([USER, ITEM]).any():
        raise ValueError(f"{spec.main}: a user rated the same movie twice; not MovieLens data?")
    train = test = None
    if split is not None:
        keys = events[USER] * len(items) + events[ITEM]
        parts = []
        for part in ("base", "test"):
            name = f"{split}.{part}"
            if not files.has(name):
                raise FileNotFoundError(f"{files.path} has no {name} (official split {split})")
            df = to_events(_read_ratings(files, name, "\t"), name)
            outside = ~np.isin(df[USER] * len(items) + df[ITEM], keys)
            if outside.any():
                raise ValueError(f"{name}: {int(outside.sum())} ratings are not in u.data")
            parts.append(df)
        train, test = parts
        info["split"] = split
    _verified(files, info)
    return Dataset(spec.name, users, items, events, None, train, test, info)


# ---------------------------------------------------------------------------------------------
# UCI Online Retail
# ---------------------------------------------------------------------------------------------

RETAIL_COLUMNS = (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
)  # fmt: skip
# Stock codes that are fees, postage, manual entries or vouchers rather than products.
NON_PRODUCT_CODES = (
    "POST", "DOT", "C2", "M", "D", "S", "B", "CRUK", "AMAZONFEE", "PADS", "BANK CHARGES",
)  # fmt: skip
NON_PRODUCT_PREFIXES = ("GIFT_",)  # gift vouchers: gift_0001_10 ... gift_0001_50
_RETAIL_PARSE_VERSION = 2  # 2: parquet (1 was a pickle, never read any more)


def _excel_engine() -> str:
    """python-calamine (Rust) when installed: ~15x faster than openpyxl on the 541,909-row
    workbook, same values; openpyxl otherwise."""
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
    return data_dir() / f"online_retail_{source_sha256[:16]}_v{_RETAIL_PARSE_VERSION}.parquet"


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
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(cache)  # atomic: a crash never leaves a half-written cache


def _retail_raw(files: _Files) -> pd.DataFrame:
    """The parsed workbook, cached as parquet keyed by the workbook's sha256: parsing the real
    workbook takes minutes with openpyxl, reading the parquet well under a second."""
    name = _SPECS["online-retail"].main
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
    spec = _SPECS["online-retail"]
    files, info = _open_copy(spec, path)
    raw = _retail_raw(files)
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
    users = _catalogue(users, "raw_user_id", USER, "online-retail users")
    items = _catalogue(items, "raw_item_id", ITEM, "online-retail items")

    seconds = (clean["InvoiceDate"] - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    user_ix, item_ix = pd.Index(users["raw_user_id"]), pd.Index(items["raw_item_id"])
    cols = {
        USER: _index(clean["CustomerID"].astype("int64"), user_ix, "CustomerID"),
        ITEM: _index(clean["StockCode"], item_ix, "StockCode"),
        RATING: np.full(len(clean), np.nan),
        TIMESTAMP: seconds.to_numpy(dtype="int64"),
        "quantity": clean["Quantity"].to_numpy(dtype="int64"),
        "unit_price": clean["UnitPrice"].to_numpy(dtype="float64"),
        "invoice": clean["InvoiceNo"].to_numpy(),
    }
    events = _events_in_time_order(cols, event="purchase")
    countries = clean.groupby("CustomerID")["Country"].nunique()
    info.update(
        cleaning=report,
        n_raw_rows=len(raw),
        duplicate_rows_kept=int(clean.duplicated().sum()),
        items_without_description=int((items["title"] == "").sum()),
        users_with_several_countries=int((countries > 1).sum()),
    )
    _verified(files, info)
    return Dataset(spec.name, users, items, events, None, None, None, info)

"""MovieLens 100K and 1M (GroupLens): parsers for the official files, with the official
100K splits. Downloading and verifying the copy is :mod:`recbook.datasets.registry`'s job."""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from recbook import checks
from recbook.columns import ITEM, RATING, TIMESTAMP, USER
from recbook.datasets.base import Dataset, catalogue, events_in_time_order, index_ids
from recbook.datasets.registry import Files, Spec, open_copy, record_verification

ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
_LICENCE = (
    "GroupLens usage licence: research use, acknowledge and cite Harper & Konstan (2015); "
    "no redistribution without permission (recbook downloads it, never ships it)"
)
_CITATION = (
    "F. M. Harper and J. A. Konstan. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems 5(4):19, 2015. doi:10.1145/2827872"
)
ML100K = Spec(
    "movielens-100k", "ml-100k.zip", "ml-100k", "u.data", 'load_movielens("100k", path=...)',
    "https://grouplens.org/datasets/movielens/100k/", _LICENCE, _CITATION,
)  # fmt: skip
ML1M = Spec(
    "movielens-1m", "ml-1m.zip", "ml-1m", "ratings.dat", 'load_movielens("1m", path=...)',
    "https://grouplens.org/datasets/movielens/1m/", _LICENCE, _CITATION,
)  # fmt: skip

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
    + 1), counted with numpy over the bytes (no Python loop over the lines)."""
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
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:  # find the bad field
        text = read(io.BytesIO(raw), dtype=str)
        typed = {c: dtype for c in names} if isinstance(dtype, str) else dict(dtype or {})
        for col, kind in typed.items():
            if kind is str:
                continue
            for k, value in enumerate(text[col]):
                problem = _integer_problem(value)
                if problem:
                    raise ValueError(
                        f"{what} line {lines[k]}: {col} is {value[:40]!r}, {problem}"
                    ) from None
        raise ValueError(f"could not parse {what}: {exc}") from exc


_INT64 = np.iinfo(np.int64)


def _integer_problem(text: str) -> str | None:
    """Why ``text`` is not an int64 (every typed MovieLens field is one), or None: the loader
    names the field and the reason instead of rounding, wrapping or pandas' bare error."""
    try:
        value = int(text.strip())
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return "not a number"
        return "not an integer" if math.isfinite(number) else "not a number"
    if not _INT64.min <= value <= _INT64.max:
        return "beyond the 64-bit integer range (|id| < 2^63): it cannot be stored exactly"
    return None


def _read_ratings(files: Files, name: str, sep: str) -> pd.DataFrame:
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


def _ml100k_tables(files: Files) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
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


def _ml1m_tables(files: Files) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
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
    the folder extracted from it, or the ratings file (``u.data`` / ``ratings.dat``: only that
    file is read, so the items have no titles or genres; pass the folder for those). A copy
    with the official sha256 is "verified"; a file named like the official zip with another
    hash is refused; anything else is used with an :class:`UnverifiedDataWarning` that shows
    its hash.

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
    spec = ML100K if variant == "100k" else ML1M
    files, info = open_copy(spec, path)
    sep = "\t" if variant == "100k" else "::"
    ratings = _read_ratings(files, spec.main, sep)
    users, items = (_ml100k_tables if variant == "100k" else _ml1m_tables)(files)
    side = ("u.user", "u.item") if variant == "100k" else ("users.dat", "movies.dat")
    missing = [f for f, t in zip(side, (users, items)) if t is None]
    if missing:
        info["missing_side_files"] = missing
        hint = (
            f" (only the file named is read: pass its folder, path={str(files.path.parent)!r}, "
            "to use the side files beside it)"
            if files.kind == "file"
            else ""
        )
        warnings.warn(
            f"{spec.name}: {files.path} has no {', '.join(missing)}{hint}; the users/items "
            "tables then hold only the ids seen in the ratings (no titles or genres)",
            UserWarning,
            stacklevel=2,
        )
    if users is None:
        users = pd.DataFrame({"raw_user_id": np.unique(ratings["raw_user_id"])})
    if items is None:
        items = pd.DataFrame({"raw_item_id": np.unique(ratings["raw_item_id"])})
    users = catalogue(users, "raw_user_id", USER, f"{spec.name} users")
    items = catalogue(items, "raw_item_id", ITEM, f"{spec.name} items")
    if "genres" in items:
        first = items["genres"].str.split("|").str[0]
        items["category"] = first.where(first != "", "unknown")
    user_ix, item_ix = pd.Index(users["raw_user_id"]), pd.Index(items["raw_item_id"])

    def to_events(r: pd.DataFrame, what: str) -> pd.DataFrame:
        cols = {
            USER: index_ids(r["raw_user_id"], user_ix, what),
            ITEM: index_ids(r["raw_item_id"], item_ix, what),
            RATING: r[RATING].to_numpy(dtype="float64"),
            TIMESTAMP: r[TIMESTAMP].to_numpy(dtype="int64"),
        }
        return events_in_time_order(cols, event="rating")

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
    record_verification(files, info)
    return Dataset(spec.name, users, items, events, None, train, test, info)

"""The one place for input checks: ids, columns, numbers, probabilities, (ε, δ) and memory.

Every public function in recbook validates its input through these helpers, so a bad value
gets the same clear message wherever it enters: what was wrong, the value, and what to do.
Nothing here clips, drops or substitutes a value.

Memory model: a function whose memory grows with users x items estimates its peak up front
(:func:`memory`) and refuses above :data:`MEMORY_LIMIT` unless the caller raises it with
``max_bytes=``; the message names the estimate and what to do instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from recbook.columns import ITEM, USER


def frame(df: Any, columns: Iterable[str] = (), what: str = "DataFrame") -> pd.DataFrame:
    """``df`` if it is a DataFrame holding ``columns``; a TypeError/KeyError otherwise."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")
    return df


def non_empty(df: pd.DataFrame, what: str = "DataFrame") -> pd.DataFrame:
    """``df`` if it has at least one row."""
    if len(df) == 0:
        raise ValueError(f"{what} is empty: there is nothing to work on")
    return df


def complete(df: pd.DataFrame, columns: Iterable[str], what: str = "df") -> pd.DataFrame:
    """``df`` if ``columns`` hold no missing value (NaN, None, NaT) and no infinity.

    A row without a user or a time is silently regrouped by pandas (dropped by ``groupby``,
    sorted last by ``sort_values``), so it is refused here with the column and the rows."""
    for column in columns:
        values = df[column]
        bad = values.isna().to_numpy().copy()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            bad |= ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            rows = list(df.index[bad][:5])
            raise ValueError(
                f"{what}[{column!r}] has {int(bad.sum())} missing or infinite value(s), at rows "
                f"{rows}{' ...' if bad.sum() > 5 else ''}; drop or fill those rows first"
            )
    return df


def exact_integers(values: pd.Series, what: str) -> np.ndarray:
    """``values`` (numbers, no NaN) as int64, refusing any a cast would change: fractions
    (truncation would merge two ids), infinities, and magnitudes past 2^53 for floats (no
    longer exact) or past int64. The message names the index labels of the bad rows."""
    arr = values.to_numpy()
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} must hold numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        limit = 2.0**53
        bad = ~np.isfinite(arr) | (np.abs(arr) > limit)
        bad[~bad] = arr[~bad] != np.round(arr[~bad])
    elif arr.dtype == np.uint64:
        bad = arr > np.iinfo(np.int64).max
    else:
        bad = np.zeros(len(arr), dtype=bool)
    if bad.any():
        rows = list(values.index[bad][:5])
        raise ValueError(
            f"{what}: {int(bad.sum())} value(s) are not exact whole-number ids, e.g. "
            f"{arr[bad][:3].tolist()} at {rows}; a cast would truncate or round them and merge "
            "different ids: fix the source"
        )
    return arr.astype(np.int64)


def at_least_one(values: Any, what: str, instead: str = "") -> np.ndarray:
    """``values`` as a 1-D array with at least one element (an empty list asks for nothing)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        hint = f"; {instead}" if instead else ""
        raise ValueError(f"{what} must be a non-empty 1-D list, got shape {arr.shape}{hint}")
    return arr


def memory(
    estimate: float, limit: float | None, what: str, advice: str, keyword: str = "max_bytes"
) -> None:
    """Refuse work whose estimated peak memory ``estimate`` (bytes) exceeds ``limit`` (bytes;
    None means :data:`MEMORY_LIMIT`), before any of it is allocated: numpy's MemoryError comes
    only after the machine has started swapping, and says neither how much nor what to do."""
    cap = MEMORY_LIMIT if limit is None else number(limit, keyword, positive=True)
    if estimate > cap:
        raise ValueError(
            f"{what} would need about {estimate / 2**30:.1f} GiB, above the limit of "
            f"{cap / 2**30:.1f} GiB; {advice}, or raise the limit with {keyword}= (bytes)"
        )


#: Default cap of :func:`memory` (bytes); functions that grow with users x items take a
#: ``max_bytes=`` argument to raise it for one call.
MEMORY_LIMIT = 4 * 2**30


def ids(values: Any, n: int, what: str = "ids") -> np.ndarray:
    """``values`` as an int64 1-D array after checking they are whole numbers in ``0..n-1``.

    Out-of-range ids are the quiet killer of embedding models (zeros on GPU, collisions in
    pair codes), so every id that enters a model or a matrix goes through here first.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{what} must hold integer ids, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(f"{what} must hold whole-number ids; found NaN, inf or fractions")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= n:
        raise ValueError(
            f"{what} must lie in 0..{n - 1}, found {lo}..{hi}; re-index ids with the Dataset "
            "(ids are contiguous there) or pass the right catalogue size"
        )
    return arr.astype(np.int64)


def id_columns(
    df: pd.DataFrame, n_users: int, n_items: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """The ``user_id`` and ``item_id`` columns of ``df``, checked against the catalogue sizes
    (every Dataset is re-indexed to those names; rename a foreign table once, at loading)."""
    frame(df, (USER, ITEM), what)
    return (
        ids(df[USER].to_numpy(), n_users, f"{what}[{USER!r}]"),
        ids(df[ITEM].to_numpy(), n_items, f"{what}[{ITEM!r}]"),
    )


def finite_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a float array with no NaN or infinity (text such as 'x' is refused by
    name, not with numpy's bare conversion error)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must hold numbers, but a value is not one ({exc})") from None
    finite = np.isfinite(arr)
    if not finite.all():
        where = [tuple(int(i) for i in p) if arr.ndim != 1 else int(p[0])
                 for p in np.argwhere(np.atleast_1d(~finite))[:5]]  # fmt: skip
        raise ValueError(
            f"{what} contains NaN or infinity ({int((~finite).sum())} value(s), at positions "
            f"{where}); drop or impute those rows first"
        )
    return arr


def same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Refuse two arrays of different shapes (no silent flattening)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"{what}: shapes differ, {np.shape(a)} vs {np.shape(b)}")


def binary_labels(values: Any, what: str = "labels") -> np.ndarray:
    """``values`` as a float array of 0/1 labels."""
    arr = np.asarray(values, dtype=float)
    if not np.isin(arr, (0.0, 1.0)).all():
        bad = np.unique(arr[~np.isin(arr, (0.0, 1.0))])[:5]
        raise ValueError(f"{what} must be 0/1 (or booleans); found {bad}")
    return arr


def probabilities(values: Any, what: str = "probabilities") -> np.ndarray:
    """``values`` as a float array in [0, 1]."""
    arr = finite_array(values, what)
    if (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{what} must lie in [0, 1]; found {arr.min():.3g}..{arr.max():.3g}")
    return arr


def integer(value: Any, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int after checking it is a whole number within the bounds."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{what} must be <= {maximum}, got {v}")
    return v


def seed(value: Any, what: str = "seed") -> int:
    """A seed for numpy/torch: a non-negative integer."""
    return integer(value, what, minimum=0)


def number(
    value: Any,
    what: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
    below: float | None = None,
) -> float:
    """``value`` as a finite float, optionally > 0, >= 0 or < ``below``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{what} must be > 0, got {v}")
    if non_negative and v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    if below is not None and v >= below:
        raise ValueError(f"{what} must be < {below}, got {v}")
    return v


def fraction(value: Any, what: str) -> float:
    """A number strictly between 0 and 1."""
    v = number(value, what)
    if not 0 < v < 1:
        raise ValueError(f"{what} must be strictly between 0 and 1, got {v}")
    return v


def epsilon(value: Any, what: str = "epsilon", allow_zero: bool = False) -> float:
    """A privacy budget ε: finite and > 0 (or >= 0 where a zero budget means "nothing spent")."""
    v = number(value, what)
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be a finite number {bound}, got {value!r}")
    return v


def delta(value: Any, what: str = "delta", n: int | None = None) -> float:
    """A privacy δ in (0, 1); with ``n`` (the number of privacy units) also δ < 1/n, since a
    mechanism that publishes one random unit's data whole satisfies (0, 1/n)-DP."""
    v = number(value, what)
    if not 0 < v < 1:
        raise ValueError(f"{what} must be in (0, 1), got {value!r}")
    if n is not None and v >= 1 / n:
        raise ValueError(
            f"{what} = {v:.3g} must be < 1/n = {1 / n:.3g} for n = {n} privacy units; "
            "a common choice is 1/n^1.1 or smaller"
        )
    return v


def flag(value: Any, what: str) -> bool:
    """``value`` if it is True or False: a string such as ``"no"`` is truthy and would
    silently mean yes."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def instance(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is a ``kind`` (a class or a tuple of them), so a wrong object is named
    here instead of failing later as an AttributeError deep inside."""
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(k.__name__ for k in kinds)
        raise TypeError(
            f"{what} must be an instance of {names}, got {type(value).__name__} ({value!r:.60})"
        )
    return value


def torch_device(value: Any, what: str = "device") -> Any:
    """``value`` as a ``torch.device`` ("cpu", "cuda", "cuda:0", "mps" or a device), checked
    before any tensor moves; torch is imported only when this is called."""
    import torch

    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{what}={value!r} is not a torch device ({exc}); use 'cpu' or 'cuda'"
        ) from None


def one_of(value: Any, options: Iterable[Any], what: str) -> Any:
    """``value`` if it is one of ``options``."""
    opts = tuple(options)
    if value not in opts:
        raise ValueError(f"unknown {what} {value!r}; use one of {opts}")
    return value


def no_extra(kwargs: dict[str, Any], what: str) -> None:
    """Refuse keyword arguments a function does not use (no silent dropping)."""
    if kwargs:
        raise TypeError(f"{what} got unexpected argument(s) {sorted(kwargs)}")

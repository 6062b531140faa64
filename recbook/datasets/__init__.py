"""Datasets behind one interface: the synthetic shop and public data (MovieLens, Online Retail).

Every loader returns a :class:`Dataset` with contiguous integer ids, so a notebook switches data
by changing its ``DATASET`` parameter and nothing else: ``datasets.load(DATASET, ...)``.

The package is layered so that nothing imports back up: :mod:`~recbook.datasets.base` (the
Dataset type) and :mod:`~recbook.datasets.registry` (checksums, downloads, reading a copy) at
the bottom, one module per source above them (:mod:`~recbook.datasets.shop`,
:mod:`~recbook.datasets.movielens`, :mod:`~recbook.datasets.online_retail`), and this module on
top, the only one that knows every source (``tests/test_package_layout.py`` checks it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recbook import checks
from recbook.checksums import ChecksumError
from recbook.datasets.base import Dataset
from recbook.datasets.movielens import ML1M, ML100K, ML100K_SPLITS, load_movielens
from recbook.datasets.online_retail import (
    NON_PRODUCT_CODES,
    NON_PRODUCT_PREFIXES,
    RETAIL_COLUMNS,
    clean_online_retail,
    load_online_retail,
)
from recbook.datasets.online_retail import SPEC as ONLINE_RETAIL
from recbook.datasets.registry import (
    DATA_ENV,
    DataUnavailableError,
    Spec,
    UnverifiedDataWarning,
    data_dir,
    official_copy,
)
from recbook.datasets.shop import load_shop

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "ML100K_SPLITS",
    "NON_PRODUCT_CODES",
    "NON_PRODUCT_PREFIXES",
    "RETAIL_COLUMNS",
    "SPECS",
    "ChecksumError",
    "DataUnavailableError",
    "Dataset",
    "UnverifiedDataWarning",
    "clean_online_retail",
    "data_dir",
    "fetch",
    "load",
    "load_movielens",
    "load_online_retail",
    "load_shop",
]

# name -> loader; the shop has exactly one generator, recbook.datasets.shop.load_shop, and
# ``load("shop", ...)`` and ``load_shop(...)`` are both that function
_LOADERS: dict[str, Callable[..., Dataset]] = {
    "shop": load_shop,
    "movielens-100k": functools.partial(load_movielens, "100k"),
    "movielens-1m": functools.partial(load_movielens, "1m"),
    "online-retail": load_online_retail,
}
DATASETS = tuple(_LOADERS)
#: The public sources' downloads and provenance, by dataset name.
SPECS: dict[str, Spec] = {spec.name: spec for spec in (ML100K, ML1M, ONLINE_RETAIL)}


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a dataset by name: ``"shop"`` (default, offline; ``kwargs`` go to
    :func:`load_shop`), ``"movielens-100k"``, ``"movielens-1m"`` (to
    :func:`load_movielens`) or ``"online-retail"`` (to :func:`load_online_retail`); public
    data is downloaded once and checksum-verified."""
    checks.one_of(name, DATASETS, "dataset")
    return _LOADERS[name](**kwargs)


def fetch(name: str) -> Path:
    """Download (once) and verify the official archive of a public dataset; return its path.

    Use it to pre-download before an offline workshop:
    ``python -c "from recbook.datasets import fetch; fetch('movielens-100k')"``.
    """
    if name not in SPECS:
        raise ValueError(
            f"unknown public dataset {name!r}; choose one of {', '.join(SPECS)} "
            "(the shop is generated, there is nothing to fetch)"
        )
    return official_copy(SPECS[name])

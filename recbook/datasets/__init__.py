"""Datasets behind one interface: the synthetic shop and public data (MovieLens, Online Retail).

Every loader returns a :class:`Dataset` with contiguous integer ids, so a notebook switches data
by changing its ``DATASET`` parameter and nothing else: ``datasets.load(DATASET, path=...)``.

The package is layered so that nothing imports back up: :mod:`~recbook.datasets.base` (the
Dataset type) and :mod:`~recbook.datasets.registry` (checksums, downloads, reading a copy) at
the bottom, one source above them (the :mod:`~recbook.datasets.shop` subpackage,
:mod:`~recbook.datasets.movielens`, :mod:`~recbook.datasets.online_retail`), each importing
only those two, and this module on top, the only one that knows every source
(``tests/test_package_layout.py`` checks it). :mod:`~recbook.datasets.sessions` orders a
source's events into sequences; it imports the sources it reads directly, never this module.

Where files live: downloads in :func:`data_dir` (``$RECBOOK_DATA``, else the checkout's
``data/``, else the user cache); what recbook derives from them (the Online Retail parse cache,
title embeddings) in ``$RECBOOK_CACHE``, else ``platformdirs.user_cache_dir("recbook")``
(:func:`recbook.checksums.cache_dir`), each file checked against the sha256 of its inputs and
written atomically. Deleting that folder only costs recomputation.
"""

from __future__ import annotations

import functools
import os
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
    "world",
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


def load(name: str, path: str | os.PathLike | None = None, **kwargs: Any) -> Dataset:
    """Load a dataset by name: ``"shop"`` (offline; ``kwargs`` go to :func:`load_shop`),
    ``"movielens-100k"``, ``"movielens-1m"`` (to :func:`load_movielens`) or
    ``"online-retail"`` (to :func:`load_online_retail`).

    ``path`` is a local copy of public data (the zip, the extracted folder or the main file);
    without it the official archive is downloaded once and checksum-verified. Every name
    takes ``path=None``, so a notebook can pass its ``DATA_PATH`` whatever its ``DATASET``;
    the shop is generated, so a ``path`` for it is an error rather than silently ignored.
    """
    checks.one_of(name, DATASETS, "dataset")
    if name == "shop":
        if path is not None:
            raise ValueError(
                f"path={str(path)!r} given for the shop, but the shop is generated from a seed: "
                "path= is for public data (movielens-100k, movielens-1m, online-retail)"
            )
        return _LOADERS[name](**kwargs)
    return _LOADERS[name](path=path, **kwargs)


def world(
    name: str,
    seed: int,
    path: str | os.PathLike | None = None,
    *,
    regime: str = "matched",
    **kwargs: Any,
) -> Dataset:
    """The data of one replicate. For the shop: the world generated from ``seed`` in
    ``regime`` (new users, items and events per seed). For public data: the dataset itself,
    the same whatever the seed -- its replicates resample users or splits instead (see
    :func:`recbook.evaluation.replicates`). ``kwargs`` go to :func:`load`."""
    checks.one_of(name, DATASETS, "dataset")
    seed = checks.seed(seed)
    if name == "shop":
        return load("shop", path=path, seed=seed, regime=regime, **kwargs)
    if regime != "matched":
        raise ValueError(
            f"regime={regime!r} is a way to generate the shop; {name!r} is recorded data: "
            "leave regime at 'matched' (the default)"
        )
    return load(name, path=path, **kwargs)


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

"""Datasets behind one interface: the synthetic shop and public data (MovieLens, Online Retail).

Every loader returns a :class:`Dataset` with contiguous integer ids, so a notebook switches data
by changing its ``DATASET`` parameter and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

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
        rated = self.events[self.events["rating"].notna()]
        return rated[["user_id", "item_id", "rating", "timestamp"]].reset_index(drop=True)

    def positives(self) -> pd.DataFrame:
        """Implicit positive interactions: clicks and purchases in the shop, every rating or
        purchase in public data (user_id, item_id, timestamp)."""
        ev = self.events
        if "event" in ev and ev["event"].isin(["view"]).any():
            ev = ev[ev["event"] != "view"]
        return ev[["user_id", "item_id", "timestamp"]].reset_index(drop=True)

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
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_shop(**kwargs: Any) -> Dataset:
    """The synthetic shop (see :func:`recbook.shop.load_shop`)."""
    from recbook.shop import load_shop as _load_shop

    return _load_shop(**kwargs)


def load_movielens(
    variant: str = "100k", path: str | None = None, split: str | None = None
) -> Dataset:
    """MovieLens 100K / 1M (written by the data helper)."""
    raise NotImplementedError("load_movielens is being written")


def load_online_retail(path: str | None = None) -> Dataset:
    """UCI Online Retail (written by the data helper)."""
    raise NotImplementedError("load_online_retail is being written")

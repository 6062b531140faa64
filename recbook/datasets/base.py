"""The :class:`Dataset` every loader returns, and the frame helpers sources use to build one.

It sits at the bottom of :mod:`recbook.datasets`: it imports no other module of the package, so
every source (the shop, MovieLens, Online Retail) can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recbook.columns import EVENT, ITEM, RATING, TIMESTAMP, USER


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


def index_ids(raw: pd.Series, catalogue: pd.Index, what: str) -> np.ndarray:
    """Contiguous ids: positions of ``raw`` ids in the sorted ``catalogue``."""
    pos = catalogue.get_indexer(raw)
    if (pos < 0).any():
        bad = pd.unique(raw[pos < 0])[:5]
        raise ValueError(
            f"{what}: {int((pos < 0).sum())} rows refer to ids missing from the catalogue "
            f"(e.g. {list(bad)}); the copy is incomplete or mixed from different versions"
        )
    return pos.astype(np.int64)


def events_in_time_order(cols: dict[str, np.ndarray], event: str) -> pd.DataFrame:
    """Events sorted by (timestamp, user_id, item_id) with a constant ``event`` column placed
    after ``timestamp``; one argsort of a packed int64 key beats a multi-column sort_values."""
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


def catalogue(table: pd.DataFrame, raw_col: str, new_col: str, what: str) -> pd.DataFrame:
    """``table`` sorted by its raw ids with contiguous ids ``0..n-1`` inserted first as
    ``new_col``; duplicated raw ids are an error (a damaged or mixed copy)."""
    if table[raw_col].duplicated().any():
        dups = table.loc[table[raw_col].duplicated(), raw_col].head(5).tolist()
        raise ValueError(f"{what}: duplicated ids {dups}")
    table = table.sort_values(raw_col, kind="stable").reset_index(drop=True)
    table.insert(0, new_col, np.arange(len(table), dtype=np.int64))
    return table

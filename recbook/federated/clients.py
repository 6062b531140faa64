"""Clients and partitions: who holds which users' ratings.

A *client* is a group of users whose ratings live together (a region's server, a household's
device). Every user belongs to exactly one client, so client-level privacy is also user-level
privacy. Partitions are built from user attributes (natural, non-IID clients: the shop's
regions, MovieLens occupations) or at random (the IID control).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recbook import checks
from recbook.columns import ITEM, RATING, USER

Triples = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class Client:
    """One client's local data as tensors: its users, train and test ratings."""

    client_id: int
    users: np.ndarray
    train: Triples
    test: Triples
    label: str = ""

    @property
    def n_train(self) -> int:
        return len(self.train[0])

    @property
    def n_test(self) -> int:
        return len(self.test[0])


def _triples(df: pd.DataFrame) -> Triples:
    return (
        torch.tensor(df[USER].to_numpy(), dtype=torch.long),
        torch.tensor(df[ITEM].to_numpy(), dtype=torch.long),
        torch.tensor(df[RATING].to_numpy(), dtype=torch.float32),
    )


def groups_by_column(users: pd.DataFrame, column: str) -> dict:
    """User ids grouped by a user attribute (e.g. ``region``, ``occupation``), sorted by the
    attribute's value: naturally non-IID clients whose partition id is the value's rank."""
    checks.frame(users, (USER,), "users")
    if column not in users.columns:
        raise KeyError(f"users has no column {column!r}; columns are {list(users.columns)}")
    return {key: g[USER].to_numpy() for key, g in users.groupby(column, sort=True)}


def groups_random(user_ids: Iterable[int], n_clients: int, seed: int = 0) -> dict:
    """Users shuffled and cut into ``n_clients`` equal groups: the IID control."""
    ids = np.asarray(list(user_ids))
    checks.integer(n_clients, "n_clients", minimum=1, maximum=max(1, len(ids)))
    perm = np.random.default_rng(checks.seed(seed)).permutation(ids)
    return {k: np.sort(g) for k, g in enumerate(np.array_split(perm, n_clients))}


def groups_of_size(
    users: pd.DataFrame,
    size: int,
    within: str | None = None,
    seed: int = 0,
) -> dict:
    """Many small clients of about ``size`` users (a household, a shop, a device group).

    With ``within="region"`` every small client holds users of a single region (non-IID);
    with ``within=None`` users are mixed at random.
    """
    checks.integer(size, "size (users per client)", minimum=1)
    rng = np.random.default_rng(checks.seed(seed))
    parts = groups_by_column(users, within) if within else {"all": users[USER]}
    out: dict = {}
    for key, ids in parts.items():
        ids = rng.permutation(np.asarray(ids))
        for j, chunk in enumerate(np.array_split(ids, max(1, round(len(ids) / size)))):
            out[f"{key}/{j}" if within else len(out)] = np.sort(chunk)
    return out


def _check_ratings(df: pd.DataFrame, what: str, n_items: int | None) -> None:
    """Refuse NaN/inf ratings and ids, and item ids outside the catalogue, naming a row."""
    for col in (USER, ITEM, RATING):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"{what}[{col!r}] holds NaN, infinity or a non-number in {int(bad.sum())} "
                f"row(s) (first at index {df.index[bad.argmax()]!r}); drop or fix those rows"
            )
    checks.ids(df[USER].to_numpy(), np.iinfo(np.int64).max, f"{what}[{USER!r}]")
    checks.ids(df[ITEM].to_numpy(), n_items or np.iinfo(np.int64).max, f"{what}[{ITEM!r}]")


def make_clients(
    train: pd.DataFrame, test: pd.DataFrame, groups: dict, *, n_items: int | None = None
) -> list[Client]:
    """Split train/test ratings by user group into :class:`Client` objects.

    Every user with a rating must be in exactly one group, and every group must hold training
    data; anything else is an error rather than a silent drop. NaN or infinite ratings and ids
    are refused, and with ``n_items`` (the catalogue size) so are item ids outside it.
    """
    checks.frame(train, (USER, ITEM, RATING), "train")
    checks.frame(test, (USER, ITEM, RATING), "test")
    if n_items is not None:
        checks.integer(n_items, "n_items", minimum=1)
    _check_ratings(train, "train", n_items)
    _check_ratings(test, "test", n_items)
    owner: dict[int, int] = {}
    for k, ids in enumerate(groups.values()):
        for u in np.asarray(ids).tolist():
            if u in owner:
                raise ValueError(f"user {u} is in two groups ({owner[u]} and {k}); fix the split")
            owner[u] = k
    seen = pd.concat([train[USER], test[USER]]).unique()
    orphans = [int(u) for u in seen if int(u) not in owner]
    if orphans:
        raise ValueError(
            f"{len(orphans)} users with ratings belong to no client (e.g. {orphans[:5]}); "
            "build the groups from every user in the ratings"
        )
    train_k = train[USER].map(owner).to_numpy()
    test_k = test[USER].map(owner).to_numpy()
    clients = []
    for k, (label, ids) in enumerate(groups.items()):
        tr, te = train[train_k == k], test[test_k == k]
        if len(tr) == 0:
            raise ValueError(
                f"client {label!r} has no training ratings; drop users without ratings "
                "before grouping or use larger groups"
            )
        clients.append(
            Client(
                client_id=k,
                users=np.sort(np.asarray(ids)),
                train=_triples(tr),
                test=_triples(te),
                label=str(label),
            )
        )
    return clients


def pooled(clients: Sequence[Client]) -> Client:
    """All clients' data as one client: centralised training is FedAvg with this one client."""
    if not clients:
        raise ValueError("pooled needs at least one client")
    cat = [torch.cat([getattr(c, part)[j] for c in clients]) for part in ("train", "test")
           for j in range(3)]  # fmt: skip
    users = np.sort(np.concatenate([c.users for c in clients]))
    return Client(-1, users, tuple(cat[:3]), tuple(cat[3:]), label="pooled")


def non_iid_report(clients: Sequence[Client], item_category: np.ndarray) -> pd.DataFrame:
    """Per client: examples, users, and the total-variation distance between its category mix
    and the pooled one (0 = IID, 1 = disjoint)."""
    n_cat = int(item_category.max()) + 1
    counts = np.stack(
        [np.bincount(item_category[c.train[1].numpy()], minlength=n_cat) for c in clients]
    ).astype(float)
    overall = counts.sum(0) / counts.sum()
    tv = 0.5 * np.abs(counts / counts.sum(1, keepdims=True) - overall).sum(1)
    return pd.DataFrame(
        {
            "client": [c.label for c in clients],
            "users": [len(c.users) for c in clients],
            "train_ratings": [c.n_train for c in clients],
            "test_ratings": [c.n_test for c in clients],
            "tv_distance": tv,
        }
    )


def partition(
    train: pd.DataFrame,
    test: pd.DataFrame,
    users: pd.DataFrame,
    column: str,
    partition_id: int,
) -> tuple[str, Client]:
    """Only client ``partition_id``'s data: the users whose ``column`` value has that rank
    (in :func:`groups_by_column`'s order, so partition ``k`` is the loop's client ``k``).

    This is what a Flower SuperNode loads: its own partition, nothing of the other clients'.
    Returns the partition's label (the attribute value) and its :class:`Client`.
    """
    checks.frame(users, (USER,), "users")
    if column not in users.columns:
        raise KeyError(f"users has no column {column!r}; columns are {list(users.columns)}")
    labels = list(groups_by_column(users, column))  # the loop's client order
    checks.integer(partition_id, "partition-id", minimum=0, maximum=len(labels) - 1)
    label = labels[partition_id]
    mine = users.loc[users[column] == label, USER].to_numpy()
    tr, te = train[train[USER].isin(mine)], test[test[USER].isin(mine)]
    rated = np.union1d(tr[USER].unique(), te[USER].unique())
    (client,) = make_clients(tr, te, {label: rated})
    client.client_id = partition_id
    return str(label), client


def num_partitions(users: pd.DataFrame, column: str) -> int:
    """How many natural clients ``column`` defines (its distinct values)."""
    return len(groups_by_column(users, column))

"""Train/test splits and negative sampling, each built so that no test row leaks into training.

All functions read the column names of :mod:`recbook.columns` (``user_id``, ``item_id``,
``timestamp``) and return new DataFrames; none drops a row without saying so in its docstring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbook import checks
from recbook.columns import ITEM, LABEL, TIMESTAMP, USER

_CODE_LIMIT = np.iinfo(np.int64).max  # user * n_items + item must fit in an int64


def _rows(df: pd.DataFrame, columns: tuple[str, ...], what: str = "df") -> pd.DataFrame:
    """``df`` after checking it is a non-empty DataFrame with ``columns``."""
    return checks.non_empty(checks.frame(df, columns, what), what)


def _pair_ids(df: pd.DataFrame, n_items: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """User ids (non-negative integers) and item ids (``0..n_items-1``) of ``df``, checked,
    so that ``user * n_items + item`` codes a pair uniquely."""
    _rows(df, (USER, ITEM), what)
    users = checks.ids(df[USER].to_numpy(), _CODE_LIMIT // n_items, f"{what}[{USER!r}]")
    items = checks.ids(df[ITEM].to_numpy(), n_items, f"{what}[{ITEM!r}]")
    return users, items


def random_split(
    df: pd.DataFrame, test_size: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows assigned to test uniformly at random (users and items may be unseen in train)."""
    _rows(df, ())
    checks.fraction(test_size, "test_size")
    is_test = np.random.default_rng(checks.seed(seed)).random(len(df)) < test_size
    return df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True)


def per_user_split(
    df: pd.DataFrame, test_size: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's rows split in the ratio ``test_size``, so every test user is known in
    training. A user with n rows puts ``floor(n * test_size)`` of them in test (none if n = 1)."""
    checks.complete(_rows(df, (USER,)), (USER,))
    checks.fraction(test_size, "test_size")
    rng = np.random.default_rng(checks.seed(seed))
    shuffled = df.iloc[rng.permutation(len(df))]
    position = shuffled.groupby(USER, sort=False).cumcount().to_numpy()
    size = shuffled.groupby(USER, sort=False)[USER].transform("size").to_numpy()
    is_test = position < np.floor(size * test_size)
    return (
        shuffled[~is_test].sort_index().reset_index(drop=True),
        shuffled[is_test].sort_index().reset_index(drop=True),
    )


def leave_last_out(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest row goes to test (ties broken by row order); users with a single row
    stay entirely in train."""
    checks.complete(_rows(df, (USER, TIMESTAMP)), (USER, TIMESTAMP))
    ordered = df.reset_index(drop=True).sort_values([USER, TIMESTAMP], kind="stable")
    last = ~ordered.duplicated(USER, keep="last").to_numpy()
    many = ordered.groupby(USER)[USER].transform("size").to_numpy() > 1
    is_test = last & many
    return (
        ordered[~is_test].sort_index().reset_index(drop=True),
        ordered[is_test].sort_index().reset_index(drop=True),
    )


def temporal_split(
    df: pd.DataFrame,
    quantile: float = 0.8,
    cutoff: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Everything before a global time cut is train, the rest test — the split a live system
    faces. ``cutoff`` (a timestamp) overrides ``quantile``. Test may contain users and items
    never seen in training; filter them explicitly if a model cannot score them."""
    _rows(df, (TIMESTAMP,))
    times = df[TIMESTAMP]
    bad = times.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_bool_dtype(times):
        bad |= ~np.isfinite(times.to_numpy(dtype=float))
    if bad.any():
        raise ValueError(
            f"df[{TIMESTAMP!r}] has {int(bad.sum())} missing or infinite timestamps; a row "
            "without a time belongs to neither side of a time cut: drop or fill them first"
        )
    if cutoff is None:
        checks.fraction(quantile, "quantile")
        cutoff = int(np.quantile(times.to_numpy(), quantile))
    is_test = times.to_numpy() >= cutoff
    if is_test.all() or not is_test.any():
        raise ValueError(
            f"cutoff {cutoff} puts every row on one side; choose a time inside the data"
        )
    return df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True)


def cold_start_items(
    df: pd.DataFrame,
    item_fraction: float = 0.2,
    seed: int = 0,
    items: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Hold out whole items: every row of a cold item is in test, none in train.

    Cold items are ``items`` if given (e.g. the shop's late releases), otherwise a random
    ``item_fraction`` of the items present. Returns ``(train, test, cold_item_ids)``.
    """
    checks.complete(_rows(df, (ITEM,)), (ITEM,))
    present = np.unique(df[ITEM].to_numpy())
    if items is None:
        checks.fraction(item_fraction, "item_fraction")
        n_cold = max(1, int(round(item_fraction * len(present))))
        cold = np.sort(
            np.random.default_rng(checks.seed(seed)).choice(present, size=n_cold, replace=False)
        )
    else:
        cold = np.unique(
            checks.at_least_one(items, "items", "pass items=None to draw item_fraction of them")
        )
        unknown = np.setdiff1d(cold, present)
        if len(unknown):
            raise ValueError(
                f"{len(unknown)} cold item id(s) never occur in df, e.g. {unknown[:5]}"
            )
    is_test = np.isin(df[ITEM].to_numpy(), cold)
    if is_test.all():
        raise ValueError("every row belongs to a cold item; nothing is left to train on")
    return df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True), cold


def _pair_codes(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return users.astype(np.int64) * n_items + items.astype(np.int64)


def check_disjoint(train: pd.DataFrame, test: pd.DataFrame, what: str = "train and test") -> None:
    """Refuse a training table that shares a (user, item) pair with its test table: a model
    that saw the test pair (as a rating, a click or a chosen negative) is scored on its own
    training data. Raises ``ValueError`` naming how many pairs overlap and one of them."""
    for df, name in ((train, "train"), (test, "test")):
        _rows(df, (USER, ITEM), f"{what}: {name}")
    shared = pd.merge(
        train[[USER, ITEM]].drop_duplicates(), test[[USER, ITEM]].drop_duplicates(), how="inner"
    )
    if len(shared):
        user, item = shared.iloc[0]
        raise ValueError(
            f"{what} share {len(shared):,} (user, item) pairs, e.g. user {user}, item {item}: "
            "remove the test pairs from the training rows before fitting"
        )


def sample_negatives(
    df: pd.DataFrame,
    n_items: int,
    n_neg: int = 4,
    strategy: str = "uniform",
    seed: int = 0,
    seen: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``n_neg`` negative items for every row of ``df``, never an item the user has seen.

    ``seen`` (default: ``df``) lists the pairs that count as seen — pass train + test positives
    when sampling for evaluation so no true positive becomes a "negative". ``strategy`` is
    ``"uniform"`` over all items or ``"popularity"`` (proportional to the item's count in
    ``seen``, which makes harder negatives; never-seen items are then never drawn).
    Returns columns ``user_id, item_id`` (one row per negative).
    """
    n_items = checks.integer(n_items, "n_items", minimum=1)
    n_neg = checks.integer(n_neg, "n_neg", minimum=1)
    checks.one_of(strategy, ("uniform", "popularity"), "strategy")
    checks.seed(seed)
    users, _ = _pair_ids(df, n_items, "df")
    seen_users, seen_items = _pair_ids(df if seen is None else seen, n_items, "seen")
    seen_codes = np.unique(_pair_codes(seen_users, seen_items, n_items))
    per_user_seen = pd.Series(seen_codes // n_items).value_counts()
    full = per_user_seen[per_user_seen >= n_items]
    if len(full):
        raise ValueError(f"user(s) {list(full.index[:5])} have seen every item: no negative exists")
    rng = np.random.default_rng(seed)
    users = np.repeat(users, n_neg)
    if strategy == "uniform":
        prob = None
    else:
        counts = np.bincount(seen_items, minlength=n_items).astype(float)
        prob = counts / counts.sum()
    items = rng.choice(n_items, size=len(users), p=prob)
    for _ in range(20):  # rejection sampling: redraw only the pairs that were seen
        bad = np.isin(_pair_codes(users, items, n_items), seen_codes)
        if not bad.any():
            break
        items[bad] = rng.choice(n_items, size=int(bad.sum()), p=prob)
    bad = np.flatnonzero(np.isin(_pair_codes(users, items, n_items), seen_codes))
    weights = np.ones(n_items) if prob is None else prob
    for user in np.unique(users[bad]):  # heavy users: draw from their own unseen items
        rows = bad[users[bad] == user]
        unseen = np.setdiff1d(np.arange(n_items), seen_items[seen_users == user])
        w = weights[unseen]
        if w.sum() == 0:
            raise ValueError(
                f"user {user}: every item with a popularity count is seen; use strategy='uniform'"
            )
        items[rows] = rng.choice(unseen, size=len(rows), p=w / w.sum())
    return pd.DataFrame({USER: users, ITEM: items})


def add_negatives(
    df: pd.DataFrame, n_items: int, n_neg: int = 4, seed: int = 0, **kwargs
) -> pd.DataFrame:
    """``df``'s (user_id, item_id) pairs labelled 1 plus ``n_neg`` sampled negatives per row
    labelled 0; ``kwargs`` (``strategy``, ``seen``) go to :func:`sample_negatives`."""
    negatives = sample_negatives(df, n_items, n_neg=n_neg, seed=seed, **kwargs)
    positives = df[[USER, ITEM]].assign(**{LABEL: 1.0})
    return pd.concat([positives, negatives.assign(**{LABEL: 0.0})], ignore_index=True)


def sample_eval_candidates(
    test: pd.DataFrame,
    seen: pd.DataFrame,
    n_items: int,
    n_neg: int = 99,
    seed: int = 0,
    *,
    max_bytes: float | None = None,
) -> np.ndarray:
    """The sampled-ranking protocol (NCF, Rendle et al. 2020): for each test row, its positive
    item in column 0 followed by ``n_neg`` distinct items the user has not seen (``seen`` should
    hold train and test pairs). Returns an int array (len(test), 1 + n_neg); relevance is
    column 0. Memory grows with test rows x items (about 14 bytes each: random keys, the seen
    mask, the partition), checked against ``max_bytes`` (default ``checks.MEMORY_LIMIT``)
    before anything is allocated."""
    n_items = checks.integer(n_items, "n_items", minimum=2)
    n_neg = checks.integer(n_neg, "n_neg", minimum=1, maximum=n_items - 1)
    checks.seed(seed)
    users, test_items = _pair_ids(test, n_items, "test")
    seen_users, seen_items = _pair_ids(seen, n_items, "seen")
    uniq, row_of = np.unique(users, return_inverse=True)
    checks.memory(
        (len(test) * 14 + len(uniq)) * n_items,
        max_bytes,
        f"sample_eval_candidates on {len(test):,} test rows x {n_items:,} items",
        "evaluate a sample of the test rows, or call it on batches of test rows",
    )
    seen_mask = np.zeros((len(uniq), n_items), dtype=bool)
    pos = np.searchsorted(uniq, seen_users)
    ok = (pos < len(uniq)) & (uniq[pos.clip(max=len(uniq) - 1)] == seen_users)
    seen_mask[pos[ok], seen_items[ok]] = True
    seen_mask[row_of, test_items] = True
    available = n_items - seen_mask.sum(axis=1)
    if (available < n_neg).any():
        raise ValueError(f"some users have fewer than n_neg={n_neg} unseen items; lower n_neg")
    keys = np.random.default_rng(seed).random((len(test), n_items), dtype=np.float32)
    keys[seen_mask[row_of]] = np.inf
    negatives = np.argpartition(keys, n_neg - 1, axis=1)[:, :n_neg]
    return np.hstack([test_items[:, None], negatives])

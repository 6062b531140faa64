"""iALS and BPR: exact updates, negatives that are negative, and rankings that follow taste."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import implicit_mf


def blocks(n_users: int = 40, n_items: int = 30, seed: int = 0) -> pd.DataFrame:
    """Two taste groups: even users pick among the first half of the items, odd users among
    the second half, about 60 % of their half each."""
    rng = np.random.default_rng(seed)
    rows = []
    half = n_items // 2
    for u in range(n_users):
        pool = np.arange(half) if u % 2 == 0 else np.arange(half, n_items)
        for i in pool[rng.random(half) < 0.6]:
            rows.append((u, int(i)))
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def in_group_share(scores: np.ndarray, n_items: int) -> float:
    """Share of each user's top-5 items that lie in the user's own half."""
    half = n_items // 2
    top = np.argsort(-scores, axis=1)[:, :5]
    own = np.where((np.arange(len(scores)) % 2 == 0)[:, None], top < half, top >= half)
    return float(own.mean())


def test_interactions_are_binary_and_checked():
    df = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [1, 1, 2]})
    x = implicit_mf.interactions(df, 2, 3)
    assert x.toarray().tolist() == [[0, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="0..2"):
        implicit_mf.interactions(df.assign(item_id=[1, 1, 3]), 2, 3)
    with pytest.raises(KeyError, match="item_id"):
        implicit_mf.interactions(df.drop(columns="item_id"), 2, 3)
    with pytest.raises(ValueError, match="empty"):
        implicit_mf.interactions(df.iloc[:0], 2, 3)


def test_ials_row_update_is_the_weighted_ridge_solution():
    df = blocks()
    x = implicit_mf.interactions(df, 40, 30)
    rng = np.random.default_rng(1)
    items = rng.normal(0, 0.3, (30, 4))
    reg, alpha = 0.2, 5.0
    solved = implicit_mf._ials_side(x, items, reg, alpha, block=7)  # blocks split the rows
    dense = x.toarray()
    for u in (0, 1, 17, 39):
        c = 1 + alpha * dense[u]
        a = items.T @ (c[:, None] * items) + reg * (dense[u].sum() + 1) * np.eye(4)
        b = items.T @ (c * dense[u])
        np.testing.assert_allclose(solved[u], np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_ials_ranks_each_users_own_group_first():
    df = blocks()
    model = implicit_mf.fit_ials(df, 40, 30, factors=4, iters=5, seed=0)
    scores = model.score_matrix()
    assert scores.shape == (40, 30)
    assert in_group_share(scores, 30) > 0.95
    assert model.history["iteration"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(model.score_matrix(users=[3, 5]), scores[[3, 5]])


def test_ials_refuses_bad_settings():
    df = blocks()
    with pytest.raises(ValueError, match="reg"):
        implicit_mf.fit_ials(df, 40, 30, reg=0.0)
    with pytest.raises(TypeError, match="factors"):
        implicit_mf.fit_ials(df, 40, 30, factors=2.5)


def test_sample_negatives_never_returns_a_positive():
    df = blocks()
    x = implicit_mf.interactions(df, 40, 30)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), 50)
    neg = implicit_mf.sample_negatives(users, x, rng)
    assert not x[users, neg].any()
    assert len(np.unique(neg)) > 20  # spread over the catalogue, not one item
    full = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 0]})
    with pytest.raises(ValueError, match="every item"):
        implicit_mf.sample_negatives(np.array([0]), implicit_mf.interactions(full, 2, 2), rng)


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread avoids thread contention on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bpr_learns_the_groups_and_its_loss_falls(one_thread):
    df = blocks()
    model = implicit_mf.fit_bpr(
        df, 40, 30, factors=8, lr=0.05, epochs=10, batch_size=128, seed=0, device="cpu"
    )
    assert in_group_share(model.score_matrix(), 30) > 0.9
    loss = model.history["loss"].to_numpy()
    assert loss[-1] < 0.8 * loss[0]
    assert model.item_bias is not None and model.item_bias.shape == (30,)
    again = implicit_mf.fit_bpr(
        df, 40, 30, factors=8, lr=0.05, epochs=10, batch_size=128, seed=0, device="cpu"
    )
    np.testing.assert_allclose(again.score_matrix(), model.score_matrix(), rtol=1e-5)


def test_bpr_refuses_bad_settings():
    df = blocks()
    with pytest.raises(ValueError, match="lr"):
        implicit_mf.fit_bpr(df, 40, 30, lr=-1.0, device="cpu")
    with pytest.raises(ValueError, match="device"):
        implicit_mf.fit_bpr(df, 40, 30, epochs=1, device="tpu")

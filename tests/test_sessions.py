"""The sequential shop: determinism, the oracle is a distribution and agrees with sampling."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbook import datasets, splits
from recbook.columns import ITEM, TIMESTAMP, USER
from recbook.datasets import sessions


@pytest.fixture(scope="module")
def shop():
    return datasets.load("shop", n_users=80, n_items=150, n_events=4000, seed=3)


@pytest.fixture(scope="module")
def world(shop):
    return sessions.world_from_shop(shop, seed=3)


def test_from_shop_is_deterministic_and_has_the_usual_columns(shop):
    a = sessions.from_shop(shop, seed=1, max_length=12)
    b = sessions.from_shop(shop, seed=1, max_length=12)
    c = sessions.from_shop(shop, seed=2, max_length=12)
    assert a.events.equals(b.events)
    assert not a.events[ITEM].equals(c.events[ITEM])
    for col in (USER, ITEM, TIMESTAMP, "event", "rating", "intent", "source"):
        assert col in a.events
    sizes = a.events.groupby(USER).size()
    assert sizes.min() >= 4 and sizes.max() <= 12 and len(sizes) == shop.n_users
    # the three sources all occur, and repeats only re-buy consumables
    assert set(a.events["source"]) == set(sessions.SOURCES)
    rep = a.events[a.events["source"] == "repeat"]
    assert a.items["consumable"].to_numpy()[rep[ITEM]].all()
    # the usual splits work on it: one held-out event per user
    train, test = splits.leave_last_out(a.events)
    assert len(test) == shop.n_users and len(train) + len(test) == len(a.events)


def test_timestamps_follow_positions(shop):
    ev = sessions.from_shop(shop, seed=0, max_length=10).events
    ordered = ev.sort_values([USER, "position"])
    assert (ordered.groupby(USER)[TIMESTAMP].diff().dropna() > 0).all()


def test_oracle_sums_to_one_for_empty_short_and_long_histories(world):
    hist = [[], [3], list(range(10, 30)), [7, 7, 7]]
    p = world.next_item_probabilities([0, 1, 2, 3], hist)
    assert p.shape == (4, world.n_items)
    assert np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()
    one = world.next_item_probability(2, list(range(10, 30)))
    assert np.allclose(one, p[2])


def test_oracle_matches_sampling(world):
    """Mean oracle probability over sampled histories equals the empirical next-item frequency,
    overall and within groups defined by the last item's category (the hidden intent)."""
    n, length = 30000, 4
    users = np.full(n, 5)
    items, _, _ = world.simulate(users, np.full(n, length), seed=11)
    p = world.next_item_probabilities(users, items[:, :-1])
    nxt = items[:, -1]
    cat = world.item_category
    same = cat[nxt] == cat[items[:, -2]]
    prob_same = (p * (cat[None, :] == cat[items[:, -2]][:, None])).sum(axis=1)
    assert abs(prob_same.mean() - same.mean()) < 4 * np.sqrt(0.25 / n)
    emp = np.bincount(nxt, minlength=world.n_items) / n
    assert 0.5 * np.abs(p.mean(axis=0) - emp).sum() < 0.05
    # the oracle beats the shop-level popularity on log-likelihood of what happened
    marginal = np.bincount(items[:, :-1].ravel(), minlength=world.n_items) + 1.0
    marginal /= marginal.sum()
    assert np.log(p[np.arange(n), nxt]).mean() > np.log(marginal[nxt]).mean() + 0.3


def test_bad_inputs_are_named(world, shop):
    with pytest.raises(ValueError, match="history 0"):
        world.next_item_probabilities([0], [[world.n_items]])
    with pytest.raises(ValueError, match="users"):
        world.next_item_probabilities([world.n_users], [[1]])
    with pytest.raises(ValueError, match="2 users but 1 histories"):
        world.next_item_probabilities([0, 1], [[1]])
    with pytest.raises(ValueError, match="complement_rate"):
        sessions.world_from_shop(shop, complement_rate=0.6, repeat_rate=0.5)
    with pytest.raises(ValueError, match="needs the shop's truth"):
        sessions.world_from_shop(datasets.Dataset("x", shop.users, shop.items, shop.events))
    with pytest.raises(ValueError, match="unknown sequence dataset"):
        sessions.load("netflix")
    with pytest.raises(ValueError, match="the shop is generated from a seed: path= is for public"):
        sessions.load("shop", path="ml-100k.zip")
    with pytest.raises(TypeError, match="unexpected argument"):
        sessions.load("movielens-100k", path="ml-100k.zip", max_length=5)


def test_load_shop_sessions_by_name(shop):
    sizes = {"n_users": 80, "n_items": 150, "n_events": 4000}
    by_name = sessions.load("shop", path=None, seed=3, max_length=8, shop_kwargs=sizes)
    direct = sessions.from_shop(shop, seed=3, max_length=8)
    pd.testing.assert_frame_equal(by_name.events, direct.events)


def test_sessions_imports_its_sources_not_the_datasets_package():
    """sessions sits inside recbook.datasets: importing the package from it would be a cycle."""
    tree = ast.parse(Path(sessions.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    inside = {m for m in imported if m and m.startswith("recbook.datasets")}
    assert inside == {
        "recbook.datasets.base",
        "recbook.datasets.movielens",
        "recbook.datasets.online_retail",
        "recbook.datasets.shop",
    }
    assert not any(
        isinstance(n, ast.ImportFrom)
        and n.module == "recbook"
        and "datasets" in {a.name for a in n.names}
        for n in ast.walk(tree)
    )


@pytest.mark.filterwarnings("ignore::recbook.datasets.UnverifiedDataWarning")
def test_public_sequences_from_fixtures():
    root = Path(__file__).resolve().parents[1] / "data" / "fixtures"
    ml = sessions.load("movielens-100k", path=root / "ml-100k")
    ev = ml.events
    assert (ev.groupby(USER)["position"].diff().dropna() == 1).all()
    assert (ev.groupby(USER)[TIMESTAMP].diff().dropna() >= 0).all()
    retail = sessions.load("online-retail", path=root / "online_retail_sample.xlsx")
    assert not retail.events.duplicated([USER, "invoice", ITEM]).any()
    assert retail.truth is None


def test_a_public_file_is_read_once_and_each_seed_reorders_it(monkeypatch):
    root = Path(__file__).resolve().parents[1] / "data" / "fixtures"
    path = root / "online_retail_sample.xlsx"
    reads = []
    real = sessions.load_online_retail
    monkeypatch.setattr(sessions, "_PUBLIC", {})
    monkeypatch.setattr(
        sessions, "load_online_retail", lambda path: reads.append(path) or real(path=path)
    )
    a = sessions.load("online-retail", path=path, seed=0)
    b = sessions.load("online-retail", path=path, seed=0)
    sessions.load("online-retail", path=path, seed=1)
    assert len(reads) == 1 and a.events.equals(b.events)

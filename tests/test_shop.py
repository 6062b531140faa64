import numpy as np
import pandas as pd
import pytest

from recbook import metrics
from recbook.datasets import load
from recbook.shop import CATEGORIES, REGIONS


@pytest.fixture(scope="module")
def shop():
    return load("shop", scale=0.3, seed=0)


def test_deterministic_from_seed(shop):
    again = load("shop", scale=0.3, seed=0)
    pd.testing.assert_frame_equal(shop.events, again.events)
    other = load("shop", scale=0.3, seed=1)
    assert not shop.events.item_id.equals(other.events.item_id)


def test_schema(shop):
    assert list(shop.events.columns[:5]) == ["user_id", "item_id", "timestamp", "day", "event"]
    assert shop.users.region.nunique() == len(REGIONS) >= 8
    assert shop.items.category.nunique() == len(CATEGORIES) >= 10
    assert shop.events.rating.dropna().isin([1, 2, 3, 4, 5]).all()
    assert (shop.events.loc[shop.events.rating.notna(), "event"] == "purchase").all()
    assert not shop.ratings().duplicated(["user_id", "item_id"]).any()
    assert shop.items.title.str.len().min() > 10


def test_items_appear_only_after_release(shop):
    release = shop.items.release_day.to_numpy()[shop.events.item_id]
    assert (shop.events.day.to_numpy() >= release).all()
    late = shop.items.release_day >= shop.truth.cold_start_day
    assert 0.05 < late.mean() < 0.25


def test_long_tail_popularity(shop):
    counts = shop.events.item_id.value_counts()
    top_share = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 0.3


def test_regions_differ_in_taste(shop):
    joined = shop.events.merge(shop.users, on="user_id").merge(shop.items, on="item_id")
    share = pd.crosstab(joined.region, joined.category, normalize="index")
    assert share.max(axis=0).min() > 1.5 * share.min(axis=0).min()


def test_noise_floor_is_attained_by_truth(shop):
    r = shop.ratings()
    best = shop.truth.expected_rating(r.user_id.to_numpy(), r.item_id.to_numpy())
    assert metrics.rmse(r.rating, best) == pytest.approx(shop.truth.rmse_floor)
    assert shop.truth.rmse_floor < metrics.rmse(r.rating, np.full(len(r), r.rating.mean()))
    assert 0.65 < shop.truth.auc_floor < 0.95


def test_bad_sizes():
    with pytest.raises(ValueError, match="too small"):
        load("shop", n_users=2)
    with pytest.raises(ValueError, match="scale"):
        load("shop", scale=0)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'shopp'"):
        load("shopp")

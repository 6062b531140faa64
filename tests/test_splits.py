import numpy as np
import pandas as pd
import pytest

from recbook import splits
from recbook.datasets import load


@pytest.fixture(scope="module")
def events():
    return load("shop", scale=0.1, seed=3).events


def _pairs(df):
    return set(zip(df.user_id, df.item_id, df.timestamp))


def test_random_split_partitions(events):
    train, test = splits.random_split(events, 0.25, seed=1)
    assert len(train) + len(test) == len(events)
    assert not _pairs(train) & _pairs(test)
    assert 0.2 < len(test) / len(events) < 0.3


def test_per_user_split_keeps_users_known(events):
    train, test = splits.per_user_split(events, 0.2, seed=0)
    assert len(train) + len(test) == len(events)
    assert set(test.user_id) <= set(train.user_id)


def test_leave_last_out_takes_latest(events):
    train, test = splits.leave_last_out(events)
    assert test.user_id.is_unique
    last_train = train.groupby("user_id").timestamp.max()
    assert (test.set_index("user_id").timestamp >= last_train.loc[test.user_id]).all()
    single = events.groupby("user_id").size().pipe(lambda s: s[s == 1].index)
    assert not set(single) & set(test.user_id)


def test_temporal_split_respects_time(events):
    train, test = splits.temporal_split(events, quantile=0.7)
    assert train.timestamp.max() < test.timestamp.min()


def test_cold_start_items_are_absent_from_train(events):
    train, test, cold = splits.cold_start_items(events, item_fraction=0.2, seed=0)
    assert not set(train.item_id) & set(cold)
    assert set(test.item_id) == set(cold)


def test_negatives_never_seen(events):
    pos = events[events.event != "view"]
    for strategy in ("uniform", "popularity"):
        neg = splits.sample_negatives(pos, 100, n_neg=3, strategy=strategy, seed=0, seen=events)
        assert len(neg) == 3 * len(pos)
        seen = set(zip(events.user_id, events.item_id))
        assert not seen & set(zip(neg.user_id, neg.item_id))
    labelled = splits.add_negatives(pos, 100, n_neg=2, seen=events)
    assert labelled.label.sum() == len(pos)


def test_eval_candidates_distinct_and_unseen(events):
    train, test = splits.leave_last_out(events)
    cands = splits.sample_eval_candidates(test, events, 100, n_neg=10, seed=0)
    assert cands.shape == (len(test), 11)
    assert (cands[:, 0] == test.item_id.to_numpy()).all()
    assert all(len(set(row)) == 11 for row in cands)
    seen = set(zip(events.user_id, events.item_id))
    users = np.repeat(test.user_id.to_numpy(), 10)
    assert not seen & set(zip(users, cands[:, 1:].ravel()))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_fraction_outside_unit_interval(events, bad):
    with pytest.raises(ValueError, match="between 0 and 1"):
        splits.random_split(events, bad)


def test_bad_inputs():
    with pytest.raises(KeyError, match="timestamp"):
        splits.leave_last_out(pd.DataFrame({"user_id": [1]}))
    with pytest.raises(ValueError, match="empty"):
        splits.random_split(pd.DataFrame({"user_id": []}))
    with pytest.raises(ValueError, match="every item"):
        splits.sample_negatives(pd.DataFrame({"user_id": [0, 0], "item_id": [0, 1]}), 2)
    with pytest.raises(ValueError, match="strategy"):
        splits.sample_negatives(pd.DataFrame({"user_id": [0], "item_id": [0]}), 5, strategy="x")
    with pytest.raises(ValueError, match="never occur"):
        splits.cold_start_items(pd.DataFrame({"item_id": [0, 1]}), items=np.array([7]))


PAIRS = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 2]})


@pytest.mark.parametrize("bad_item", [5, 7, -1])
def test_sample_negatives_refuses_item_ids_outside_the_catalogue(bad_item):
    """An item id >= n_items (or < 0) collided with another user's pair code: item 5 of user 0
    coded as item 0 of user 1 with n_items = 5."""
    df = PAIRS.assign(item_id=[0, 1, bad_item])
    with pytest.raises(ValueError, match=r"df\['item_id'\] must lie in 0\.\.4"):
        splits.sample_negatives(df, 5)
    with pytest.raises(ValueError, match=r"seen\['item_id'\] must lie in 0\.\.4"):
        splits.sample_negatives(PAIRS, 5, seen=df)


def test_sample_negatives_refuses_negative_or_fractional_users():
    with pytest.raises(ValueError, match=r"df\['user_id'\] must lie in 0\.\."):
        splits.sample_negatives(PAIRS.assign(user_id=[0, -1, 1]), 5)
    with pytest.raises(ValueError, match=r"df\['user_id'\] must hold whole-number ids"):
        splits.sample_negatives(PAIRS.assign(user_id=[0, 0.5, 1]), 5)


@pytest.mark.parametrize("bad_item", [9, -1])
def test_sample_eval_candidates_refuses_out_of_range_items(bad_item):
    test = pd.DataFrame({"user_id": [0], "item_id": [bad_item]})
    with pytest.raises(ValueError, match=r"test\['item_id'\] must lie in 0\.\.4"):
        splits.sample_eval_candidates(test, PAIRS, 5, n_neg=2)
    with pytest.raises(ValueError, match=r"seen\['item_id'\] must lie in 0\.\.4"):
        splits.sample_eval_candidates(PAIRS.head(1), pd.concat([PAIRS, test]), 5, n_neg=2)


def test_sample_eval_candidates_refuses_bad_n_neg():
    with pytest.raises(ValueError, match="n_neg must be <= 4"):
        splits.sample_eval_candidates(PAIRS, PAIRS, 5, n_neg=5)
    with pytest.raises(TypeError, match="n_neg must be an integer"):
        splits.sample_eval_candidates(PAIRS, PAIRS, 5, n_neg=2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_temporal_split_refuses_missing_timestamps(bad):
    df = pd.DataFrame({"timestamp": [1.0, 2.0, bad, 4.0, 5.0]})
    with pytest.raises(ValueError, match=r"df\['timestamp'\] has 1 missing or infinite"):
        splits.temporal_split(df)
    with pytest.raises(ValueError, match="missing or infinite"):
        splits.temporal_split(df, cutoff=3)


def test_temporal_split_refuses_missing_datetimes():
    df = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01", None, "2024-01-03"])})
    with pytest.raises(ValueError, match="1 missing or infinite"):
        splits.temporal_split(df, cutoff=pd.Timestamp("2024-01-02"))


def test_bad_seeds_are_named():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        splits.random_split(PAIRS, 0.5, seed=-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        splits.per_user_split(PAIRS, 0.5, seed=1.5)


def test_check_disjoint_names_the_overlap():
    train = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [1, 2, 3]})
    splits.check_disjoint(train, pd.DataFrame({"user_id": [0, 1], "item_id": [3, 1]}))
    with pytest.raises(ValueError, match="share 1 .* user 1, item 3"):
        splits.check_disjoint(train, pd.DataFrame({"user_id": [1, 1], "item_id": [3, 3]}))
    with pytest.raises(ValueError, match="test"):
        splits.check_disjoint(train, pd.DataFrame({"user_id": [], "item_id": []}))

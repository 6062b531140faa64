import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recbook import evaluation


def test_interval_is_student_t():
    v = [0.50, 0.52, 0.55, 0.49]
    iv = evaluation.interval(v)
    half = stats.t.ppf(0.975, 3) * np.std(v, ddof=1) / 2
    assert iv.mean == pytest.approx(np.mean(v))
    assert (iv.lo, iv.hi) == pytest.approx((np.mean(v) - half, np.mean(v) + half))
    assert iv.n == 4 and iv.contains(0.51) and not iv.contains(0.60)


def test_one_run_has_no_interval_and_bad_values_are_refused():
    iv = evaluation.interval([0.3])
    assert iv.n == 1 and np.isinf(iv.lo) and np.isinf(iv.hi)
    assert "no interval" in str(iv)
    with pytest.raises(ValueError, match="NaN"):
        evaluation.interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="no values"):
        evaluation.interval([])


def _fake_run(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.01)
    return {
        "good": {"ndcg": 0.30 + noise, "rmse": 0.90},
        "close": {"ndcg": 0.30 + noise + rng.normal(0, 0.002), "rmse": 0.91},
        "bad": {"ndcg": 0.20 + noise, "rmse": 1.00},
    }


def test_compare_table_and_paired_difference():
    comp = evaluation.compare(_fake_run, seeds=(0, 1, 2, 3, 4))
    assert comp.models == ["good", "close", "bad"] and comp.metrics == ["ndcg", "rmse"]
    table = comp.table()
    assert table.loc["good", ("ndcg", "mean")] == pytest.approx(
        np.mean([_fake_run(s)["good"]["ndcg"] for s in range(5)])
    )
    # pairing removes the shared noise: the difference is exactly 0.1 on every seed
    diff = comp.difference("good", "bad", "ndcg")
    assert diff.mean == pytest.approx(0.1) and diff.hi - diff.lo < 1e-9
    assert comp.summary().loc["bad", "rmse"].startswith("1.0000")
    d = comp.differences("bad", "ndcg")
    assert list(d.index) == ["good", "close"]


def test_verdicts_including_inconclusive(capsys):
    comp = evaluation.compare(_fake_run, seeds=(0, 1, 2))
    assert evaluation.verdict("good beats bad", comp.difference("good", "bad", "ndcg")) == (
        "confirmed"
    )
    assert evaluation.verdict("bad beats good", comp.difference("bad", "good", "ndcg")) == (
        "not confirmed"
    )
    assert (
        evaluation.verdict("good beats close", comp.difference("good", "close", "ndcg"))
        == "inconclusive"
    )
    assert evaluation.verdict("gain >= 0.2", comp.difference("good", "bad", "ndcg"), 0.2) == (
        "not confirmed"
    )
    out = capsys.readouterr().out
    assert "inconclusive" in out and "95 % interval" in out


def test_compare_refuses_bad_runs():
    with pytest.raises(TypeError, match="must return"):
        evaluation.compare(lambda s: None, seeds=(0,))
    with pytest.raises(ValueError, match="finite"):
        evaluation.compare(lambda s: {"m": {"x": float("nan")}}, seeds=(0,))
    with pytest.raises(ValueError, match="repeat"):
        evaluation.compare(_fake_run, seeds=(0, 0))
    comp = evaluation.compare(_fake_run, seeds=(0, 1))
    with pytest.raises(KeyError, match="unknown model"):
        comp.difference("good", "nope", "ndcg")
    other = evaluation.Comparison(
        pd.DataFrame(
            {"seed": [0, 1, 0], "model": ["a", "a", "b"], "metric": "m", "value": [1.0, 2.0, 3.0]}
        )
    )
    with pytest.raises(ValueError, match="same seeds"):
        other.difference("a", "b", "m")


def test_full_catalogue_metrics_removes_training_items():
    train = pd.DataFrame({"user_id": [0, 1], "item_id": [0, 0]})
    test = pd.DataFrame({"user_id": [0, 1], "item_id": [1, 2]})
    scores = np.array([[9.0, 1.0, 0.0], [9.0, 0.0, 1.0]])
    m = evaluation.full_catalogue_metrics(scores, train, test, k=1)
    assert m["hit_rate"] == 1.0 and m["ndcg"] == 1.0


def test_tune_picks_the_best_validation_value():
    best, scores = evaluation.tune(lambda v: -((v - 3) ** 2), [1, 2, 3, 4])
    assert best == 3 and len(scores) == 4
    best, scores = evaluation.tune(lambda v: v[0] * v[1], [(0.1, 2.0), (0.5, 3.0)])
    assert best == (0.5, 3.0) and scores[(0.1, 2.0)] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="empty grid"):
        evaluation.tune(lambda v: v, [])


def _split(n_users: int = 60, n_items: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs = pd.DataFrame(
        {"user_id": rng.integers(0, n_users, 900), "item_id": rng.integers(0, n_items, 900)}
    ).drop_duplicates()
    is_test = rng.random(len(pairs)) < 0.2
    return pairs[~is_test], pairs[is_test], n_users, n_items


def test_per_user_metrics_average_to_the_aggregate_metrics():
    from recbook import metrics

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, (50, 30)).astype(float)  # many ties
    relevance = rng.random((50, 30)) < 0.1
    per_user = metrics.per_user_metrics(scores, relevance, k=5, seed=7)
    assert list(per_user.index) == list(np.flatnonzero(relevance.any(axis=1)))
    for name, fn in [("precision", metrics.precision_at_k), ("recall", metrics.recall_at_k),
                     ("hit_rate", metrics.hit_rate_at_k), ("ndcg", metrics.ndcg_at_k),
                     ("map", metrics.map_at_k)]:  # fmt: skip
        assert per_user[name].mean() == pytest.approx(fn(scores, relevance, 5, seed=7))


def test_compare_users_pairs_users_and_separates_truth_from_noise():
    train, test, n_users, n_items = _split()
    truth = np.zeros((n_users, n_items))
    truth[test["user_id"], test["item_id"]] = 1.0
    noise = np.random.default_rng(1).random((n_users, n_items))
    comp = evaluation.compare_users({"truth": truth, "noise": noise, "same": noise}, train, test)
    n_eval = test["user_id"].nunique()
    diff = comp.difference("truth", "noise", "ndcg")
    assert diff.n == n_eval and diff.lo > 0
    same = comp.difference("same", "noise", "ndcg")
    assert (same.mean, same.lo, same.hi) == (0.0, 0.0, 0.0)
    assert evaluation.full_catalogue_metrics(noise, train, test)["ndcg"] == pytest.approx(
        comp.interval("noise", "ndcg").mean
    )
    with pytest.raises(ValueError, match="at least one scorer"):
        evaluation.compare_users({}, train, test)


def test_in_words_states_each_verdict_and_refuses_others():
    assert evaluation.in_words("confirmed", "A", "B", "x") == "A beats B (x; verdict: confirmed)"
    assert "loses to" in evaluation.in_words("not confirmed", "A", "B", "x")
    assert "cannot be told apart from" in evaluation.in_words("inconclusive", "A", "B", "x")
    with pytest.raises(ValueError, match="unknown verdict"):
        evaluation.in_words("likely", "A", "B", "x")


# -- the unit of uncertainty ---------------------------------------------------------------------


def _per_user(n_users: int, gain: float, seed: int, world: int = 0) -> dict:
    """Per-user NDCG of a fixed model and of one that is ``gain`` better per user on average;
    the users (and their difficulty) come from ``world``, training noise from ``seed``."""
    users = np.random.default_rng(world)
    base = users.uniform(0.1, 0.5, n_users)
    noise = np.random.default_rng(1000 + seed)
    model = base + gain + users.normal(0, 0.05, n_users) + noise.normal(0, 0.01, n_users)
    index = pd.Index(np.arange(n_users), name="user")
    return {
        "EASE (fixed)": pd.DataFrame({"ndcg": base}, index=index),
        "model": pd.DataFrame({"ndcg": model}, index=index),
    }


def test_a_fixed_test_set_gets_an_interval_over_users(capsys):
    """Public data: the same users in every run, a fixed baseline row. Its interval is over
    users (never zero-width), the known gain is recovered, and the unit is printed."""
    cmp = evaluation.replicates(lambda s: _per_user(400, 0.02, s), [0, 1, 2], "movielens-100k")
    fixed = cmp.interval("EASE (fixed)", "ndcg")
    assert fixed.hi - fixed.lo > 0.01 and fixed.n == 400
    assert fixed.unit == "users, each the mean of 3 seeds"
    gain = cmp.difference("model", "EASE (fixed)", "ndcg")
    assert gain.contains(0.02) and gain.lo > 0
    evaluation.verdict("the model beats EASE", gain)
    assert "95 % interval over 400 users, each the mean of 3 seeds" in capsys.readouterr().out


def test_the_shop_is_replicated_by_worlds(capsys):
    """On the shop each seed is a new world: the fixed row moves between worlds, and the
    interval is over the 3 shops."""
    cmp = evaluation.replicates(lambda s: _per_user(300, 0.05, s, world=s), [1, 2, 3], "shop")
    fixed = cmp.interval("EASE (fixed)", "ndcg")
    assert fixed.n == 3 and fixed.hi > fixed.lo and fixed.unit == "shops x ~300 users"
    assert cmp.difference("model", "EASE (fixed)", "ndcg").contains(0.05)
    with pytest.raises(ValueError, match="development world"):
        evaluation.replicates(lambda s: _per_user(10, 0.0, s), [0, 1, 2], "shop", dev_seed=0)
    with pytest.raises(ValueError, match="development world"):
        evaluation.compare(_fake_run, seeds=(0, 1), dev_seed=1)
    with pytest.raises(ValueError, match="development world"):
        evaluation.replicates(lambda s: _per_user(10, 0.0, s), [evaluation.DEV_SEED], "shop")


def test_random_splits_and_pooled_statistics_are_replicated_by_seed():
    """A statistic that is not a mean over users (RMSE) comes as a dict per model; on public
    data with a new random split per seed each seed is one replicate."""

    def run(seed: int) -> dict:
        noise = np.random.default_rng(seed).normal(0, 0.01, 2)
        return {"biases": {"RMSE": 0.95 + noise[0]}, "MF": {"RMSE": 0.90 + noise[1]}}

    cmp = evaluation.replicates(run, [0, 1, 2], "movielens-100k", split="random", test_share=0.2)
    gain = cmp.difference("biases", "MF", "RMSE")
    assert cmp.unit.startswith("random splits (Nadeau-Bengio") and gain.n == 3
    plain = evaluation.interval(cmp.values("biases", "RMSE") - cmp.values("MF", "RMSE"))
    widened = (gain.hi - gain.lo) / (plain.hi - plain.lo)
    assert widened == pytest.approx(np.sqrt(1 + 3 * 0.25))  # 20 % test: n_test/n_train = 1/4
    with pytest.raises(ValueError, match="test_share"):
        evaluation.replicates(run, [0, 1], "movielens-100k", split="random")
    assert evaluation.replicates(run, [1, 2], "shop").unit == "shops"
    with pytest.raises(TypeError, match="per-user DataFrames"):
        evaluation.replicates(run, [0, 1], "movielens-100k")  # fixed test set, pooled RMSE
    with pytest.raises(ValueError, match="split"):
        evaluation.replicates(run, [0, 1], "shop", split="temporal")


def test_evaluation_seeds_start_at_seed_and_avoid_the_development_world():
    assert evaluation.evaluation_seeds(0, 3) == [0, 1, 2]
    assert evaluation.evaluation_seeds(5, 2) == [5, 6]
    with pytest.raises(ValueError, match="development world"):
        evaluation.evaluation_seeds(evaluation.DEV_SEED - 1, 3)


def test_bootstrap_over_groups_is_paired_and_recovers_a_known_difference():
    rng = np.random.default_rng(0)
    items = np.repeat(np.arange(60), 20)  # 60 cold items, 20 rows each
    item_effect = rng.normal(0, 1, 60)[items]
    truth = item_effect + rng.normal(0, 1, items.size)
    a = truth + rng.normal(0, 0.5, items.size)
    b = truth + rng.normal(0, 1.5, items.size)

    def mse(rows):
        return {
            "a": {"mse": float(np.mean((a[rows] - truth[rows]) ** 2))},
            "b": {"mse": float(np.mean((b[rows] - truth[rows]) ** 2))},
        }

    cmp = evaluation.bootstrap_groups(items, mse, n_boot=300, seed=1, unit="cold items")
    diff = cmp.difference("b", "a", "mse")
    assert diff.mean == pytest.approx(mse(np.arange(items.size))["b"]["mse"] - 0.25, abs=0.3)
    assert diff.contains(2.0) and diff.lo > 1.5  # E[b] - E[a] = 2.25 - 0.25
    assert diff.unit == "cold items (300 bootstrap draws)" and diff.n == 60
    assert diff.describe() == "95 % interval over 60 cold items (300 bootstrap draws)"
    assert cmp.interval("a", "mse").lo < mse(np.arange(items.size))["a"]["mse"]
    with pytest.raises(ValueError, match="one group per row"):
        evaluation.bootstrap_groups(np.array([]), mse)


def test_observed_reports_a_one_run_claim_either_way(capsys):
    assert evaluation.observed("eps = 0.5 costs accuracy", True, "RMSE 1.03 vs 0.98") is True
    assert evaluation.observed("the attack is below 0.55", np.bool_(False)) is False
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "eps = 0.5 costs accuracy: holds in this run (RMSE 1.03 vs 0.98)",
        "the attack is below 0.55: does NOT hold in this run",
    ]
    with pytest.raises(TypeError, match="needs a bool"):
        evaluation.observed("x", 0.3)


@pytest.mark.parametrize(
    "mean, lo, hi, n, match",
    [
        (0.5, 0.9, 0.1, 3, "lo = 0.9 > hi = 0.1"),
        (np.nan, np.nan, np.nan, 3, "Interval.mean"),
        (0.5, np.nan, 1.0, 3, "Interval.lo"),
        (0.5, 0.0, 1.0, 0, "Interval.n"),
        (np.inf, 0.0, 1.0, 3, "Interval.mean"),
    ],
)
def test_interval_refuses_what_no_verdict_could_trust(mean, lo, hi, n, match):
    with pytest.raises((ValueError, TypeError), match=match):
        evaluation.Interval(mean, lo, hi, n)


def test_legitimate_edge_intervals_still_work(capsys):
    one = evaluation.interval([0.3])  # one replicate: infinite bounds, "no interval"
    assert (one.lo, one.hi) == (-np.inf, np.inf)
    same = evaluation.interval([0.3, 0.3])  # zero width
    assert same.lo == same.hi == 0.3
    assert evaluation.verdict("x", one) == "inconclusive"
    outside = evaluation.Interval(0.5, 0.6, 0.7, 10)  # a bootstrap point may sit outside
    assert evaluation.verdict("x", outside) == "confirmed"
    with pytest.raises(TypeError, match="verdict needs an Interval"):
        evaluation.verdict("x", (0.5, 0.6, 0.7))

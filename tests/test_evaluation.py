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

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from recbook import baselines, metrics


def test_rmse_mae_by_hand():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    s = np.round(rng.random(500) + 0.3 * y, 1)  # rounding creates ties
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_ndcg_matches_sklearn():
    rng = np.random.default_rng(1)
    scores = rng.random((50, 30))
    rel = rng.random((50, 30)) < 0.15
    rel[:, 0] |= ~rel.any(axis=1)  # every user has a relevant item
    for k in (1, 5, 10):
        assert metrics.ndcg_at_k(scores, rel, k) == pytest.approx(ndcg_score(rel, scores, k=k))


def test_ranking_by_hand():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    rel = np.array([[True, False, True, False], [True, False, False, False]])
    # user 0 top-2 = items 0, 1 -> one hit; user 1 top-2 = items 3, 2 -> no hit
    assert metrics.precision_at_k(scores, rel, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert metrics.recall_at_k(scores, rel, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert metrics.hit_rate_at_k(scores, rel, 2) == pytest.approx(0.5)
    assert metrics.map_at_k(scores, rel, 3) == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)
    assert metrics.ndcg_at_k(scores, rel, 3) == pytest.approx(
        ((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)) + 0) / 2
    )


def test_users_without_positives_are_excluded():
    scores = np.array([[0.9, 0.1], [0.9, 0.1]])
    rel = np.array([[True, False], [False, False]])
    assert metrics.hit_rate_at_k(scores, rel, 1) == 1.0


def test_report_and_helpers():
    train = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1]})
    pop = baselines.popularity_scores(train, 2, 3)
    assert pop[0].tolist() == [1, 2, 0]
    masked = metrics.exclude_seen(pop, train)
    assert np.isneginf(masked[0, 0]) and masked[1, 0] == 1
    rel = metrics.relevance_matrix(pd.DataFrame({"user_id": [1], "item_id": [0]}), 2, 3)
    report = metrics.ranking_report(masked, rel, ks=(1, 2))
    assert list(report.columns) == ["precision", "recall", "hit_rate", "ndcg", "map"]
    assert report.loc[1, "hit_rate"] == 1.0


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: metrics.rmse([1, 2], [1]), "shapes differ"),
        (lambda: metrics.rmse([], []), "empty"),
        (lambda: metrics.rmse([1, np.nan], [1, 2]), "NaN"),
        (lambda: metrics.auc([1, 1], [0.1, 0.2]), "both"),
        (lambda: metrics.auc([0, 2], [0.1, 0.2]), "0/1"),
        (lambda: metrics.log_loss([0, 1], [0.5, 1.5]), "sigmoid"),
        (
            lambda: metrics.precision_at_k(np.ones((2, 3)), np.ones((2, 3), bool), 0),
            "k must be >= 1",
        ),
        (
            lambda: metrics.precision_at_k(np.ones((2, 3)), np.ones((2, 3), bool), 4),
            "k must be <= 3",
        ),
        (lambda: metrics.ndcg_at_k(np.ones((2, 3)), np.zeros((2, 3), bool), 1), "empty"),
        (lambda: metrics.ndcg_at_k(np.ones((2, 3)), np.ones((3, 3), bool), 1), "shape"),
        (lambda: metrics.ndcg_at_k([[np.nan, 1]], [[True, False]], 1), "NaN"),
    ],
)
def test_bad_input_is_a_clear_error(call, error):
    with pytest.raises(ValueError, match=error):
        call()


def test_missing_columns_and_out_of_range_ids():
    with pytest.raises(KeyError, match="item_id"):
        metrics.relevance_matrix(pd.DataFrame({"user_id": [0]}), 1, 1)
    with pytest.raises(ValueError, match="must lie in 0..1"):
        metrics.relevance_matrix(pd.DataFrame({"user_id": [0], "item_id": [5]}), 1, 2)


def test_user_auc_matches_per_user_metric() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, size=600)
    labels = rng.random(600) < 0.4
    scores = labels + rng.normal(size=600)
    per = metrics.user_aucs(labels, scores, users)
    for user in per.index[:5]:
        mask = users == user
        assert per.loc[user, "auc"] == pytest.approx(metrics.auc(labels[mask], scores[mask]))
    want = np.average(per["auc"], weights=per["n"])
    assert metrics.mean_user_auc(labels, scores, users) == pytest.approx(want)


def test_user_auc_ignores_user_offsets() -> None:
    """A score that only ranks users (not items) is at chance within users, not globally."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(200), 20)
    activity = rng.normal(size=200)
    labels = rng.random(4000) < 1 / (1 + np.exp(-2 * activity[users]))
    score = activity[users]
    assert metrics.auc(labels, score) > 0.7
    assert metrics.mean_user_auc(labels, score, users) == pytest.approx(0.5)


def test_user_auc_needs_mixed_users() -> None:
    with pytest.raises(ValueError, match="undefined"):
        metrics.mean_user_auc([1, 1, 0], [0.1, 0.2, 0.3], [0, 0, 1])


def test_constant_scorer_gets_the_chance_rate_wherever_the_positive_sits():
    """The old bug: positive in column 0 + ties broken toward low indices gave HR@10 = 1.0."""
    n_users, n_items, k = 4000, 100, 10
    relevant = np.zeros((n_users, n_items), dtype=bool)
    relevant[:, 0] = True
    constant = np.zeros((n_users, n_items))
    hr = metrics.hit_rate_at_k(constant, relevant, k)
    assert hr == pytest.approx(k / n_items, abs=0.015)
    relevant_last = np.zeros_like(relevant)
    relevant_last[:, -1] = True
    assert metrics.hit_rate_at_k(constant, relevant_last, k) == pytest.approx(
        k / n_items, abs=0.015
    )
    # expected NDCG of a uniformly random ranking with one relevant item
    chance_ndcg = np.sum(1 / np.log2(np.arange(2, k + 2))) / n_items
    assert metrics.ndcg_at_k(constant, relevant, k) == pytest.approx(chance_ndcg, abs=0.01)


def test_tie_break_is_seeded_and_does_not_touch_untied_rows():
    scores = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 3.0, 2.0, 1.0]])
    a, b = metrics.top_k(scores, 2, seed=1), metrics.top_k(scores, 2, seed=1)
    assert (a == b).all()
    assert a[1].tolist() == [0, 1]
    firsts = {int(metrics.top_k(scores[0], 1, seed=s)[0]) for s in range(40)}
    assert firsts == {0, 1, 2, 3}


def test_ties_inside_the_top_k_are_shuffled_too():
    scores = np.array([[1.0, 1.0, 0.0]])
    orders = {tuple(metrics.top_k(scores, 2, seed=s)[0]) for s in range(30)}
    assert orders == {(0, 1), (1, 0)}


def test_excluded_items_are_never_hits():
    scores = np.array([[-np.inf, -np.inf, 1.0]])
    relevant = np.array([[True, False, False]])
    assert metrics.hit_rate_at_k(scores, relevant, 3) == 0.0
    assert metrics.ndcg_at_k(scores, relevant, 3) == 0.0


def test_top_k_one_row_and_bad_input():
    assert metrics.top_k(np.array([0.1, 0.9, 0.5]), 2).tolist() == [1, 2]
    with pytest.raises(ValueError, match="1-D"):
        metrics.top_k(np.zeros((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="k must be <= 3"):
        metrics.top_k(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="NaN"):
        metrics.top_k(np.array([[np.nan, 1.0]]), 1)


def test_rating_metrics_refuse_bad_shapes_and_labels():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.rmse(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="0/1"):
        metrics.log_loss([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="0/1"):
        metrics.log_loss([-1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.log_loss([1, 0], [1.5, 0.5])


def test_frame_helpers_refuse_out_of_range_ids():
    df = pd.DataFrame({"user_id": [0, 5], "item_id": [0, 1]})
    with pytest.raises(ValueError, match="must lie in 0..1"):
        metrics.relevance_matrix(df, 2, 3)
    with pytest.raises(ValueError, match="must lie in 0..2"):
        baselines.popularity_scores(pd.DataFrame({"item_id": [0, 3]}), 2, 3)
    with pytest.raises(ValueError, match="2-D"):
        metrics.exclude_seen(np.zeros(3), df)

import numpy as np
import pandas as pd
import pytest

from recbook import baselines, evaluation


def test_ease_matches_the_closed_form_by_hand():
    train = pd.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [0, 1, 1, 2, 0]})
    x = baselines.interaction_matrix(train, 3, 3).toarray()
    lam = 5.0
    # solve each column's ridge regression with diag(B) = 0 directly
    b = np.zeros((3, 3))
    for j in range(3):
        others = [i for i in range(3) if i != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(2), a.T @ x[:, j])
    assert np.allclose(baselines.ease_weights(baselines.interaction_matrix(train, 3, 3), lam), b)
    assert np.allclose(baselines.ease_scores(train, 3, 3, l2=lam), x @ b)


def test_ease_beats_popularity_on_structured_data():
    from recbook import evaluation

    rng = np.random.default_rng(0)
    n_users, n_items = 300, 60
    group = rng.integers(0, 3, n_users)  # three tastes, each over its own 20 items
    rows = [
        (u, 20 * group[u] + i) for u in range(n_users) for i in rng.choice(20, 8, replace=False)
    ]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    test = df.groupby("user_id").head(2)
    train = df.drop(test.index)
    ease = evaluation.full_catalogue_metrics(
        baselines.ease_scores(train, n_users, n_items, l2=10.0), train, test
    )
    pop = evaluation.full_catalogue_metrics(
        baselines.popularity_scores(train, n_users, n_items), train, test
    )
    assert ease["ndcg"] > pop["ndcg"] + 0.2


def test_bad_input():
    df = pd.DataFrame({"user_id": [0], "item_id": [7]})
    with pytest.raises(ValueError, match="must lie in 0..2"):
        baselines.ease_scores(df, 1, 3)
    with pytest.raises(ValueError, match="> 0"):
        baselines.ease_weights(baselines.interaction_matrix(df, 1, 8), l2=0)
    with pytest.raises(KeyError, match="item_id"):
        baselines.popularity_scores(pd.DataFrame({"x": [1]}), 1, 2)


def test_tuned_ease_picks_the_best_validation_ndcg():
    rng = np.random.default_rng(0)
    pairs = pd.DataFrame({"user_id": rng.integers(0, 40, 600), "item_id": rng.integers(0, 25, 600)})
    pairs = pairs.drop_duplicates().reset_index(drop=True)
    fit_part, validation = pairs.iloc[:450], pairs.iloc[450:]
    l2, curve = baselines.tuned_ease(fit_part, validation, 40, 25, k=5, grid=(1.0, 50.0, 1e4))
    by_hand = {
        v: evaluation.full_catalogue_metrics(
            baselines.ease_scores(fit_part, 40, 25, l2=v), fit_part, validation, k=5
        )["ndcg"]
        for v in (1.0, 50.0, 1e4)
    }
    assert list(curve.index) == [1.0, 50.0, 1e4]
    np.testing.assert_allclose(curve.to_numpy(), list(by_hand.values()))
    assert l2 == max(by_hand, key=by_hand.get)

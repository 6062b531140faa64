import itertools

import numpy as np
import pytest

from recbook import bandits


def small_env(n_users=6, n_items=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, size=(n_users, n_items))
    return bandits.SlateEnvironment(p, np.arange(1, n_users + 1, dtype=float), k=k, seed=seed)


def test_examination_curves():
    assert np.allclose(bandits.examination(3), [1.0, 1 / np.log2(3), 0.5])
    assert np.allclose(bandits.examination(2, "inverse"), [1.0, 0.5])
    assert np.allclose(bandits.examination(4, "uniform"), 1.0)
    with pytest.raises(ValueError, match="unknown examination kind"):
        bandits.examination(3, "cascade")


def test_best_slate_is_the_best_by_enumeration():
    env = small_env()
    for u in range(env.n_users):
        values = [
            env.click_prob[u, list(s)] @ env.examination
            for s in itertools.permutations(range(env.n_items), env.k)
        ]
        assert np.isclose(env.best_value[u], max(values))


def test_oracle_policy_has_zero_regret_and_others_positive():
    env = small_env()
    oracle = bandits.FixedScores(env.click_prob, env.k, name="oracle")
    run = bandits.simulate(env, oracle, horizon=2500, batch_size=400, seed=1)
    assert np.allclose(run.regret, 0.0)
    assert run.cumulative_regret[-1] == pytest.approx(0.0, abs=1e-9)
    greedy_wrong = bandits.FixedScores(-env.click_prob, env.k)
    assert bandits.simulate(env, greedy_wrong, 500, seed=1).regret.min() > 0


def test_simulation_is_deterministic_in_the_seed():
    env = small_env()
    a = bandits.simulate(env, bandits.Thompson(env.n_items, env.examination), 3000, 500, seed=3)
    b = bandits.simulate(env, bandits.Thompson(env.n_items, env.examination), 3000, 500, seed=3)
    c = bandits.simulate(env, bandits.Thompson(env.n_items, env.examination), 3000, 500, seed=4)
    assert np.array_equal(a.expected, b.expected) and np.array_equal(a.users, b.users)
    assert not np.array_equal(a.expected, c.expected)


def test_click_rates_follow_the_position_based_model():
    env = small_env(n_users=1, n_items=4, k=2)
    slates = np.tile([0, 1], (200_000, 1))
    fb = env.show(np.zeros(200_000, dtype=int), slates, np.random.default_rng(0))
    expect = env.click_prob[0, [0, 1]] * env.examination
    assert np.allclose(fb.clicks.mean(axis=0), expect, atol=0.005)
    assert np.allclose(fb.expected, expect.sum())


@pytest.mark.parametrize(
    "policy",
    [
        lambda e: bandits.EpsilonGreedy(e.n_items, e.examination, 0.1),
        lambda e: bandits.UCB(e.n_items, e.examination),
        lambda e: bandits.Thompson(e.n_items, e.examination),
    ],
)
def test_learning_policies_beat_random_slates(policy):
    env = small_env(n_users=1, n_items=20, k=2, seed=5)
    run = bandits.simulate(env, policy(env), 20_000, 200, seed=0)
    random_value = env.click_prob[0].mean() * env.examination.sum()
    assert run.expected[-2000:].mean() > random_value + 0.5 * (env.best_value[0] - random_value)


def test_segments_and_linear_thompson_learn_contexts():
    # two kinds of users who like opposite halves of the catalogue
    n_items, k = 10, 2
    seg = np.repeat([0, 1], 50)
    p = np.where((np.arange(n_items) < 5)[None, :] == (seg == 0)[:, None], 0.8, 0.1)
    env = bandits.SlateEnvironment(p, np.ones(100), k=k)
    per_item = bandits.simulate(
        env, bandits.Thompson(n_items, env.examination), 20_000, 500, seed=0
    )
    per_seg = bandits.simulate(
        env, bandits.Thompson(n_items, env.examination, seg), 20_000, 500, seed=0
    )
    x = np.stack([np.ones(100), np.where(seg == 0, 1.0, -1.0)], axis=1)
    lin = bandits.simulate(
        env, bandits.LinearThompson(x, n_items, env.examination, noise=0.1), 20_000, 500
    )
    assert per_seg.regret[-5000:].mean() < 0.05 < per_item.regret[-5000:].mean()
    assert lin.regret[-5000:].mean() < 0.05


def test_linear_thompson_update_matches_the_ridge_normal_equations():
    env = small_env()
    x = np.random.default_rng(0).normal(size=(env.n_users, 3))
    pol = bandits.LinearThompson(x, env.n_items, env.examination, ridge=2.0, noise=0.0)
    users = np.array([0, 1, 2, 0])
    slates = np.array([[0, 1, 2], [1, 2, 3], [0, 2, 4], [5, 6, 7]])
    clicks = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)
    pol.update(bandits.Feedback(users, slates, clicks, np.zeros(4), np.zeros(4)))
    for item in range(env.n_items):
        t, r = np.nonzero(slates == item)
        z = x[users[t]] * env.examination[r][:, None]
        assert np.allclose(pol.A[item], 2.0 * np.eye(3) + z.T @ z)
        assert np.allclose(pol.b[item], z.T @ clicks[t, r])
    theta = pol.sample_theta(np.random.default_rng(0))  # noise 0: the posterior mean
    assert np.allclose(theta, np.linalg.solve(pol.A, pol.b[..., None])[..., 0])


def test_linear_thompson_prior_mean_is_the_starting_point():
    x = np.eye(3)
    theta0 = np.arange(12, dtype=float).reshape(4, 3)
    pol = bandits.LinearThompson(
        x, 4, bandits.examination(2), ridge=5.0, noise=0.0, prior_mean=theta0
    )
    assert np.allclose(pol.sample_theta(np.random.default_rng(0)), theta0)


def test_epsilon_mixture_propensities_are_the_empirical_marginals():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 6))
    candidates = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])
    pol = bandits.EpsilonMixture(scores, k=2, epsilon=0.3, candidates=candidates)
    users = np.repeat([0, 1], 100_000)
    slates = pol.select(users, rng)
    for u in (0, 1):
        s = slates[users == u]
        for pos in range(2):
            freq = np.bincount(s[:, pos], minlength=6) / len(s)
            prop = pol.propensity(np.full(6, u), np.stack([np.arange(6)] * 2, axis=1))[:, pos]
            assert np.allclose(freq, prop, atol=0.005)
    masked = np.where(np.isin(range(6), [0, 1, 2, 3]), scores[0], -np.inf)
    assert pol.greedy[0].tolist() == np.argsort(-masked)[:2].tolist()
    env = bandits.SlateEnvironment(rng.uniform(size=(2, 6)), np.ones(2), k=2)
    run = bandits.simulate(env, pol, 200_000, 1000, seed=1)
    assert run.expected.mean() == pytest.approx(pol.value(env), rel=0.01)


def test_bad_inputs_get_clear_errors():
    env = small_env()
    with pytest.raises(ValueError, match="empty slate"):
        env.show(np.array([0]), np.zeros((1, 0), dtype=int))
    with pytest.raises(ValueError, match="same item twice"):
        env.show(np.array([0]), np.array([[1, 1, 2]]))
    with pytest.raises(ValueError, match="must lie in"):
        env.show(np.array([0]), np.array([[1, 2, 99]]))
    with pytest.raises(ValueError, match="positions but the simulator shows k=3"):
        env.show(np.array([0]), np.array([[1, 2]]))
    with pytest.raises(ValueError, match="catalogue has 8"):
        bandits.SlateEnvironment(env.click_prob, np.ones(6), k=9)
    with pytest.raises(ValueError, match="exceeds the catalogue"):
        bandits.Thompson(4, bandits.examination(5))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        bandits.SlateEnvironment(env.click_prob + 1, np.ones(6), k=2)
    with pytest.raises(ValueError, match="propensity is 0"):
        env.show(np.array([0]), np.array([[0, 1, 2]]), propensities=np.array([[0.5, 0.0, 0.1]]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        env.show(np.array([0]), np.array([[0, 1, 2]]), propensities=np.array([[0.5, 1.2, 0.1]]))
    with pytest.raises(ValueError, match="no truth"):
        bandits.SlateEnvironment.from_shop(
            type("D", (), {"truth": None, "name": "movielens-100k"})()
        )
    with pytest.raises(ValueError, match="segments must lie in"):
        bandits.Thompson(8, bandits.examination(3), segments=np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        bandits.EpsilonGreedy(8, bandits.examination(3), epsilon=1.5)


def test_coverage_and_gini():
    assert bandits.coverage(np.array([0, 3, 0, 1])) == 0.5
    assert bandits.gini(np.ones(10)) == pytest.approx(0.0)
    assert bandits.gini(np.array([0, 0, 0, 10.0])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="positive total"):
        bandits.gini(np.zeros(3))


def test_shop_environment_and_feedback_loop():
    from recbook.datasets import load_shop

    ds = load_shop(n_users=60, n_items=40, n_events=3000, seed=1)
    env = bandits.SlateEnvironment.from_shop(ds, k=3)
    users, items = np.array([0, 5, 7]), np.array([3, 1, 39])
    assert np.allclose(env.click_prob[users, items], ds.truth.click_probability(users, items))
    clicked = (ds.events["event"] != "view").astype(float)
    model = bandits.fit_click_model(
        ds.events["user_id"], ds.events["item_id"], clicked, 60, 40, rank=4
    )
    x, theta = bandits.embedding_features(model)
    assert np.allclose(x @ theta.T, model.score_matrix())
    base = (ds.events["user_id"].to_numpy(), ds.events["item_id"].to_numpy(),
            (ds.events["event"] != "view").to_numpy().astype(float))  # fmt: skip
    cold = ds.items["release_day"].to_numpy() >= ds.truth.cold_start_day
    table = bandits.feedback_loop(
        env, base, 0.0, rounds=2, steps_per_round=500, cold_items=cold, rank=4
    )
    assert list(table.index) == [1, 2]
    assert ((table["coverage"] > 0) & (table["coverage"] <= 1)).all()
    explore = bandits.feedback_loop(env, base, 0.5, 2, 500, cold, rank=4)
    assert (explore["coverage"] >= table["coverage"]).all()

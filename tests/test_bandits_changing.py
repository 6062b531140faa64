"""The changing shop (items released mid-run, drifting tastes), the policies that respect
releases, LinUCB, random slates with repeated candidates, and the OPE bootstrap."""

import numpy as np
import pytest

from recbook import bandits
from recbook.bandits import off_policy


def changing_env(phase=100, drift=True):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, size=(5, 8))
    release = np.array([0, 0, 0, 0, 0, 200, 200, 400])
    return bandits.ChangingEnvironment(
        p, np.ones(5), k=3, release_step=release,
        drift_to=p[::-1].copy() if drift else None, drift_steps=400, phase=phase,
    )  # fmt: skip


def test_random_slates_are_distinct_even_with_repeated_candidates():
    rng = np.random.default_rng(0)
    pool = np.array([3, 3, 3, 5, 7, 7])
    slates = bandits.random_slates(20_000, pool, 3, rng)
    assert (np.sort(slates, axis=1) == [3, 5, 7]).all()
    per_row = np.array([[1, 1, 2, 4], [6, 0, 6, 0]])
    s = bandits.random_slates(2, per_row, 2, rng)
    assert s[0, 0] != s[0, 1] and s[1, 0] != s[1, 1]
    # distinct pools: every item at every position with probability 1/M
    s = bandits.random_slates(60_000, np.arange(4), 2, rng)
    for pos in range(2):
        assert np.allclose(np.bincount(s[:, pos], minlength=4) / len(s), 0.25, atol=0.01)
    with pytest.raises(ValueError, match="only 2 distinct items"):
        bandits.random_slates(3, np.array([1, 1, 2]), 3, rng)


def test_changing_environment_releases_and_drifts_by_phase():
    env = changing_env()
    assert env.available.sum() == 5 and not env.available[5:].any()
    assert not np.isin(env.best_slates, [5, 6, 7]).any()
    env.advance(250)  # phase 2 starts at 200: items 5, 6 out; tastes half-way
    assert env.available[:7].all() and not env.available[7]
    want = 0.5 * env.click_prob + 0.5 * env.drift_to
    assert np.allclose(env.current_prob(), want)
    users, slates = np.array([0, 4]), np.array([[5, 1, 2], [6, 0, 3]])
    assert np.allclose(env.expected_reward(users, slates),
                       want[users[:, None], slates] @ env.examination)  # fmt: skip
    best = np.sort(np.where(env.available, want, -1), axis=1)[:, ::-1][:, :3] @ env.examination
    assert np.allclose(env.best_value, best)
    with pytest.raises(ValueError, match="before its release"):
        env.show(np.array([0]), np.array([[7, 1, 2]]))
    env.advance(10_000)
    assert env.available.all() and np.allclose(env.current_prob(), env.drift_to)


def test_changing_environment_rejects_bad_schedules():
    p = np.full((2, 4), 0.3)
    with pytest.raises(ValueError, match="released at step 0"):
        bandits.ChangingEnvironment(p, np.ones(2), k=3, release_step=np.array([0, 0, 5, 5]))
    with pytest.raises(ValueError, match="release_step must give"):
        bandits.ChangingEnvironment(p, np.ones(2), k=2, release_step=np.array([0, 0, -1, 0]))
    with pytest.raises(ValueError, match="drift_to must have"):
        bandits.ChangingEnvironment(p, np.ones(2), k=2, drift_to=np.full((3, 4), 0.2))


@pytest.mark.parametrize(
    "make",
    [
        lambda e, x: bandits.EpsilonGreedy(e.n_items, e.examination, 0.3),
        lambda e, x: bandits.UCB(e.n_items, e.examination),
        lambda e, x: bandits.Thompson(e.n_items, e.examination),
        lambda e, x: bandits.FixedScores(-np.arange(8.0)[::-1] * np.ones((5, 1)), 3),
        lambda e, x: bandits.LinearThompson(x, e.n_items, e.examination, noise=0.3, epsilon=0.2),
        lambda e, x: bandits.LinUCB(x, e.n_items, e.examination, alpha=1.0),
    ],
)
def test_policies_show_items_only_after_their_release(make):
    env = changing_env()
    x = np.random.default_rng(1).normal(size=(5, 3))
    run = bandits.simulate(env, make(env, x), 600, 50, seed=0, keep_logs=True)
    for lo, fb in zip(range(0, 600, 50), run.logs):
        assert (env.release_step[fb.slates] <= lo).all()
    assert np.allclose(run.regret, run.best - run.expected)
    assert run.regret.min() >= -1e-12 and run.fixed is not None


def test_fixed_slate_regret_is_against_the_best_single_slate():
    env = bandits.SlateEnvironment(np.array([[0.9, 0.1, 0.5], [0.1, 0.8, 0.4]]), np.ones(2), k=1)
    assert env.fixed_slate.tolist() == [0]  # 0.5 + 0.05 beats 0.45 and 0.45
    run = bandits.simulate(env, bandits.FixedScores(np.eye(2, 3)[[1, 1]], 1), 10, 5)
    assert np.allclose(run.regret_vs_fixed, env.fixed_value[run.users] - run.expected)


def test_linucb_scores_are_mean_plus_alpha_sd():
    x = np.random.default_rng(0).normal(size=(4, 3))
    pol = bandits.LinUCB(x, 5, bandits.examination(2), ridge=2.0, alpha=0.7)
    clicks = np.array([[1, 0], [0, 1], [1, 1]], bool)
    slates = np.array([[0, 1], [2, 3], [4, 0]])
    fb = bandits.Feedback(np.array([0, 1, 2]), slates, clicks, np.zeros(3), np.zeros(3))
    pol.update(fb)
    s = pol.scores(np.arange(4), np.random.default_rng(0))
    for i in range(5):
        inv = np.linalg.inv(pol.A[i])
        mean = inv @ pol.b[i]
        sd = np.sqrt(np.einsum("ud,de,ue->u", x, inv, x))
        assert np.allclose(s[:, i], x @ mean + 0.7 * sd)


def test_linear_twin_is_greedy_on_the_posterior_mean_and_ridge_per_item():
    x = np.eye(2)
    theta0 = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    pol = bandits.LinearThompson(x, 3, bandits.examination(1), ridge=np.array([5.0, 5.0, 1.0]),
                                 noise=0.0, prior_mean=theta0)  # fmt: skip
    assert np.allclose(pol.A[2], np.eye(2)) and np.allclose(pol.A[0], 5 * np.eye(2))
    assert pol.select(np.array([0, 1]), np.random.default_rng(0)).ravel().tolist() == [0, 1]
    with pytest.raises(ValueError, match="ridge must be positive"):
        bandits.LinearThompson(x, 3, bandits.examination(1), ridge=np.array([1.0, 0.0, 1.0]))


def test_bootstrap_rounds_gives_signed_intervals_around_the_point():
    rng = np.random.default_rng(0)
    y = rng.normal(0.1, 1.0, size=2000)
    parts = {"sum": y, "n": np.ones_like(y)}
    cmp = off_policy.bootstrap_rounds(
        parts, lambda t: {"mean": {"error": t["sum"] / t["n"] - 0.1}}, n_boot=300, seed=1
    )
    iv = cmp.interval("mean", "error")
    assert iv.mean == pytest.approx(y.mean() - 0.1)
    assert iv.lo < iv.mean < iv.hi and iv.n == 2000
    assert iv.hi - iv.lo == pytest.approx(2 * 1.96 / np.sqrt(2000), rel=0.2)
    with pytest.raises(ValueError, match="one value per logged round"):
        off_policy.bootstrap_rounds({"a": y, "b": y[:5]}, lambda t: {}, n_boot=2)


def test_linear_thompson_ignores_last_bit_differences_in_its_inputs():
    # another BLAS kernel (OpenBLAS picks one by CPU) changes the solves' last bits; the
    # rounded scores keep a seeded run the same
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, size=(40, 12))
    env = bandits.SlateEnvironment(p, np.ones(40), k=3)
    x = rng.normal(size=(40, 4))
    x2 = x * (1 + 4e-16 * rng.choice([-1.0, 1.0], size=x.shape))
    assert not np.array_equal(x, x2)
    runs = [
        bandits.simulate(env, bandits.LinearThompson(f, 12, env.examination, noise=0.2), 3000, 50)
        for f in (x, x2)
    ]
    assert np.array_equal(runs[0].expected, runs[1].expected)


def test_canonical_factors_do_not_depend_on_the_basis_als_lands_in():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    rot, _ = np.linalg.qr(rng.normal(size=(4, 4)))  # another basis, the same model
    a = bandits.experiments.canonical_factors(p, q)
    b = bandits.experiments.canonical_factors(p @ rot, q @ rot)
    assert np.allclose(a[0] @ a[1].T, p @ q.T)
    assert np.allclose(a[0], b[0]) and np.allclose(a[1], b[1])


def test_cascade_clicks_stop_at_the_first_attractive_item():
    p = np.array([[0.5, 0.4, 0.2]])
    env = bandits.CascadeEnvironment(p, np.ones(1), k=2)
    slates = np.tile([1, 0], (100_000, 1))
    fb = env.show(np.zeros(100_000, dtype=int), slates, np.random.default_rng(0))
    assert fb.clicks.sum(axis=1).max() == 1  # at most one click per slate
    assert np.allclose(fb.clicks.mean(axis=0), [0.4, 0.6 * 0.5], atol=0.005)
    assert np.allclose(fb.expected, 1 - 0.6 * 0.5)
    assert env.best_value[0] == pytest.approx(1 - 0.5 * 0.6)
    assert env.policy_value(np.array([[2, 1]])) == pytest.approx(1 - 0.8 * 0.6)

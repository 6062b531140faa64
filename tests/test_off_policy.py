import itertools

import numpy as np
import pytest

from recbook import bandits
from recbook.bandits import off_policy


def exact_case():
    """Two contexts, three items, slates of two: every slate a logging policy can show."""
    p = np.array([[0.9, 0.2, 0.5], [0.1, 0.7, 0.4]])
    arrival = np.array([0.3, 0.7])
    exam = np.array([1.0, 0.6])
    slates = list(itertools.permutations(range(3), 2))
    # a stochastic logger with full support, and a different stochastic target
    logger = np.array([[0.3, 0.1, 0.2, 0.1, 0.2, 0.1], [0.05, 0.25, 0.2, 0.1, 0.1, 0.3]])
    target = np.array([[0.0, 0.6, 0.0, 0.1, 0.3, 0.0], [0.5, 0.0, 0.0, 0.0, 0.2, 0.3]])
    return p, arrival, exam, slates, logger, target


def marginal(policy_row, slates, position, item):
    return sum(w for w, s in zip(policy_row, slates) if s[position] == item)


def test_ips_is_unbiased_by_enumeration():
    p, arrival, exam, slates, logger, target = exact_case()
    true_value = sum(
        arrival[x] * target[x, j] * sum(exam[r] * p[x, s[r]] for r in range(2)) / 2
        for x in range(2)
        for j, s in enumerate(slates)
    )
    # E[IPS] over context, logged slate and clicks: the estimator is linear in the reward, so
    # the clicks enter through their expectation e_r p(x, i)
    expected_ips = 0.0
    expected_dr = 0.0
    q = np.full((2, 3), 0.33)  # a wrong reward model: DR stays unbiased through the weights
    for x in range(2):
        for j, s in enumerate(slates):
            rows = range(2)
            reward = np.array([exam[r] * p[x, s[r]] for r in rows])
            pscore = np.array([marginal(logger[x], slates, r, s[r]) for r in rows])
            pe = np.array([marginal(target[x], slates, r, s[r]) for r in rows])
            qhat = np.array([exam[r] * q[x, s[r]] for r in rows])
            qpi = np.array(
                [
                    sum(marginal(target[x], slates, r, i) * exam[r] * q[x, i] for i in range(3))
                    for r in rows
                ]  # fmt: skip
            )
            weight = arrival[x] * logger[x, j]
            expected_ips += weight * off_policy.ips(reward, pscore, pe)
            expected_dr += weight * off_policy.dr(reward, pscore, pe, qhat, qpi)
    assert expected_ips == pytest.approx(true_value, rel=1e-12)
    assert expected_dr == pytest.approx(true_value, rel=1e-12)


def test_estimators_on_the_simulator_and_naive_bias():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.9, size=(50, 12))
    env = bandits.SlateEnvironment(p, np.ones(50), k=2)
    model = p + rng.normal(0, 0.2, size=p.shape)
    logger = bandits.EpsilonMixture(model, 2, epsilon=0.5)
    run = bandits.simulate(env, logger, 200_000, 2000, seed=0, keep_logs=True,
                     propensity=logger.propensity)  # fmt: skip
    users = np.concatenate([f.users for f in run.logs])
    slates = np.concatenate([f.slates for f in run.logs])
    reward = np.concatenate([f.clicks for f in run.logs]).astype(float).ravel()
    pscore = np.concatenate([f.propensities for f in run.logs]).ravel()
    target = bandits.top_slates(p, 2)  # the new policy: the oracle ranking
    pe = (target[users] == slates).astype(float).ravel()
    truth = env.policy_value(target) / 2
    qhat = (model[users[:, None], slates] * env.examination).ravel()
    qpi = (model[users[:, None], target[users]] * env.examination).ravel()
    assert off_policy.ips(reward, pscore, pe) == pytest.approx(truth, rel=0.03)
    assert off_policy.snips(reward, pscore, pe) == pytest.approx(truth, rel=0.03)
    assert off_policy.dr(reward, pscore, pe, qhat, qpi) == pytest.approx(truth, rel=0.03)
    assert np.allclose(off_policy.importance_weights(pscore, pe) * pscore, pe)
    logged_ctr = reward.mean()
    assert abs(logged_ctr / truth - 1) > 0.05  # the old policy's CTR is not the new one's


def test_off_policy_errors():
    with pytest.raises(ValueError, match="pscore has zeros"):
        off_policy.ips([1.0, 0.0], [0.5, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        off_policy.ips([1.0], [1.5], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        off_policy.snips([], [], [])
    with pytest.raises(ValueError, match="shapes differ"):
        off_policy.dr([1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.1], [0.2, 0.2])
    with pytest.raises(ValueError, match="sum\\(w\\) = 0"):
        off_policy.snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])
    with pytest.raises(TypeError, match="boolean"):
        off_policy.replay([1.0, 0.0], [1, 0])
    with pytest.raises(ValueError, match="never takes"):
        off_policy.check_overlap(np.array([True, False, True]))
    off_policy.check_overlap(np.ones(3, dtype=bool))
    assert off_policy.replay(np.array([1.0, 0.0, 1.0]), np.array([True, False, False])) == 1.0

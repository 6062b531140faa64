"""Tests of recbook.privacy: the article's loss, budget checks, accounting, the
membership-inference audit and the de-identification helpers (DP-SGD: test_dp_sgd.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from recbook import privacy, training
from recbook.models_torch import BiasedMF

torch.set_num_threads(1)


# --- the article's loss ----------------------------------------------------------------------


def test_article_loss_is_bce_plus_squared_term():
    prob = torch.tensor([0.1, 0.5, 0.9, 0.7])
    target = torch.tensor([0.0, 1.0, 1.0, 0.25])
    eps = 1.5
    bce = -(target * prob.log() + (1 - target) * (1 - prob).log())
    expected = (bce + eps**2 * (prob - target) ** 2).mean()
    got = privacy.article_dp_loss(prob, target, eps)
    assert torch.allclose(got, expected, atol=1e-6)
    # epsilon = 0 is plain cross-entropy
    assert torch.allclose(privacy.article_dp_loss(prob, target, 0.0), bce.mean(), atol=1e-6)
    per = privacy.article_dp_loss(prob, target, eps, reduction="none")
    assert per.shape == prob.shape


def test_article_loss_gradient_is_a_deterministic_reweighting():
    torch.manual_seed(0)
    z = torch.randn(50, requires_grad=True)
    y = torch.rand(50)
    eps = 2.0
    privacy.article_dp_loss(torch.sigmoid(z), y, eps, reduction="sum").backward()
    f = torch.sigmoid(z).detach()
    expected = (f - y) * privacy.article_gradient_weight(f, eps)
    assert torch.allclose(z.grad, expected, atol=1e-5)
    w = privacy.article_gradient_weight(f, eps)
    assert (w >= 1).all() and (w <= 1 + eps**2 / 2 + 1e-6).all()


@pytest.mark.parametrize(
    "prob, target, eps, match",
    [
        ([0.5], [1.0], -1.0, "epsilon"),
        ([0.5], [1.0], float("nan"), "epsilon"),
        ([1.5], [1.0], 1.0, "sigmoid"),
        ([0.5], [3.0], 1.0, r"\(r - 1\) / 4"),
    ],
)
def test_article_loss_rejects_bad_input(prob, target, eps, match):
    with pytest.raises(ValueError, match=match):
        privacy.article_dp_loss(torch.tensor(prob), torch.tensor(target), eps)


# --- budget and accounting -------------------------------------------------------------------


def test_default_delta_is_ten_times_below_one_over_n():
    for n in (1, 10, 1000, 27_000):
        assert privacy.default_delta(n) == pytest.approx(1 / (10 * n))
    with pytest.raises(ValueError, match="n .* must be >= 1"):
        privacy.default_delta(0)
    with pytest.raises(TypeError, match="integer"):
        privacy.default_delta(10.5)


@pytest.mark.parametrize(
    "eps, delta, match",
    [
        (0.0, 1e-5, "epsilon must be a finite number > 0"),
        (-1.0, 1e-5, "epsilon"),
        (float("inf"), 1e-5, "non-private"),
        (float("nan"), 1e-5, "epsilon must be a finite number"),
        (1.0, 0.0, r"delta must be in \(0, 1\)"),
        (1.0, float("nan"), "delta must be a finite number"),
        (1.0, 1e-3, "must be < 1/n"),  # = 1/n for n = 1000
        (1.0, 0.5, "default_delta"),
    ],
)
def test_check_budget_rejects_bad_parameters(eps, delta, match):
    with pytest.raises(ValueError, match=match):
        privacy.check_budget(eps, delta, 1000)


def test_check_budget_accepts_numpy_numbers():
    # numpy scalars are numbers too (budgets often come out of numpy arithmetic)
    assert privacy.check_budget(np.float32(1), np.float64(1e-5), np.int64(1000)) == (1.0, 1e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: privacy.noise_multiplier_for(float("nan"), 1e-5, 0.05, 200), "epsilon"),
        (lambda: privacy.noise_multiplier_for(1.0, 1.5, 0.05, 200), r"delta must be in"),
        (lambda: privacy.epsilon_opacus(1.0, 0.05, 100, delta=1.5), r"delta must be in"),
        (lambda: privacy.epsilon_opacus(1.0, 0.05, 100, delta=0.0), r"delta must be in"),
        (lambda: privacy.epsilon_dp_accounting(1.0, 0.05, 100, delta=1.5), r"delta must be in"),
        (lambda: privacy.epsilon_opacus(float("nan"), 0.05, 100, 1e-5), "noise_multiplier"),
        (lambda: privacy.epsilon_opacus(1.0, 0.05, 0, 1e-5), "steps must be >= 1"),
        (lambda: privacy.epsilon_dp_accounting(1.0, 0.05, 10, 1e-5, "gdp"), "unknown method"),
        (lambda: privacy.group_privacy(1.0, -1e-6, 3), r"delta must be in"),
        (lambda: privacy.group_privacy(1.0, float("nan"), 3), "delta must be a finite number"),
        (lambda: privacy.group_privacy(1.0, 2.0, 3), r"delta must be in"),
        (lambda: privacy.group_privacy(float("nan"), 1e-6, 3), "epsilon"),
    ],
)
def test_accounting_refuses_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_epsilon_decreases_with_noise_and_grows_with_steps():
    q, steps, delta = 0.01, 500, 1e-5
    for fn in (privacy.epsilon_opacus, privacy.epsilon_dp_accounting):
        eps = [fn(sigma, q, steps, delta) for sigma in (0.8, 1.5, 3.0)]
        assert all(a > b for a, b in zip(eps, eps[1:])), eps
        assert fn(1.0, q, 2 * steps, delta) > fn(1.0, q, steps, delta)


def test_two_libraries_agree_within_five_percent():
    frame = privacy.accountant_crosscheck(1.1, 2048 / 27_000, 140, 1.3e-5)
    assert set(frame["method"]) == {"RDP", "PRV/PLD"}
    assert frame["rel_diff"].abs().max() < 0.05, frame
    # PLD / PRV are tighter than RDP for the same mechanism
    by = frame.set_index(["method", "library"])["epsilon"]
    assert by[("PRV/PLD", "dp-accounting")] < by[("RDP", "dp-accounting")]


def test_noise_multiplier_for_hits_the_target():
    sigma = privacy.noise_multiplier_for(2.0, 1e-5, 0.05, 200)
    eps = privacy.epsilon_opacus(sigma, 0.05, 200, 1e-5)
    assert 0.97 * 2.0 <= eps <= 2.0
    with pytest.raises(ValueError, match="epsilon"):
        privacy.noise_multiplier_for(0.0, 1e-5, 0.05, 200)
    with pytest.raises(ValueError, match="sample_rate"):
        privacy.epsilon_opacus(1.0, 1.5, 10, 1e-5)
    with pytest.raises(ValueError, match="unknown accountant"):
        privacy.epsilon_opacus(1.0, 0.1, 10, 1e-5, accountant="gdp?")


def test_group_privacy_arithmetic():
    assert privacy.group_privacy(1.0, 1e-6, 1) == pytest.approx((1.0, 1e-6))
    eps, delta = privacy.group_privacy(0.5, 1e-6, 4)
    assert eps == pytest.approx(2.0)
    assert delta == pytest.approx(4 * math.exp(1.5) * 1e-6)
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        privacy.group_privacy(1.0, 1e-6, 0)


def test_max_attack_auc_bound():
    assert privacy.max_attack_auc(0.0) == pytest.approx(0.5, abs=1e-6)
    values = [privacy.max_attack_auc(e, 1e-5) for e in (0.5, 1, 2, 4, 8)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] > 0.99
    assert privacy.max_attack_auc(float("inf")) == 1.0


# --- membership inference --------------------------------------------------------------------


def test_attack_is_chance_on_identically_distributed_losses():
    rng = np.random.default_rng(0)
    res = privacy.loss_threshold_attack(rng.exponential(1, 5000), rng.exponential(1, 5000))
    assert abs(res.auc - 0.5) < 0.02
    assert abs(res.advantage) < 0.03


def test_attack_detects_memorisation():
    rng = np.random.default_rng(0)
    res = privacy.loss_threshold_attack(rng.exponential(0.2, 2000), rng.exponential(1.0, 2000))
    assert res.auc > 0.75 and res.advantage > 0.3


def test_attack_rejects_bad_losses():
    with pytest.raises(ValueError, match="members"):
        privacy.loss_threshold_attack([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        privacy.loss_threshold_attack([np.nan], [1.0])


def _fit_plain(df, rating_tensors, epochs=40):
    torch.manual_seed(0)
    model = BiasedMF(40, 30, dim=8, global_mean=3.5)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    batches = training.TensorBatches(*rating_tensors(df), batch_size=100, seed=0)
    training.fit(model, batches, nn.MSELoss(), optimizer=opt, epochs=epochs, progress=False)
    return model


def test_audit_is_chance_for_a_model_that_never_saw_the_members(tiny_ratings, rating_tensors):
    data = tiny_ratings(n=3000, seed=1)
    trained_on, unseen_a, unseen_b = data.iloc[:1000], data.iloc[1000:2000], data.iloc[2000:]
    model = _fit_plain(trained_on, rating_tensors)
    members, non_members = privacy.membership_sample(unseen_a, unseen_b, seed=0)
    res = privacy.loss_threshold_attack(
        privacy.rating_losses(model, members), privacy.rating_losses(model, non_members)
    )
    assert abs(res.auc - 0.5) < 0.04, res
    # the same attack does see the members of an over-fitted model
    members, non_members = privacy.membership_sample(trained_on, unseen_b, seed=0)
    res = privacy.loss_threshold_attack(
        privacy.rating_losses(model, members), privacy.rating_losses(model, non_members)
    )
    assert res.auc > 0.6, res


def test_membership_sample_is_balanced_and_disjoint():
    train = pd.DataFrame({"user_id": range(100), "item_id": 0, "rating": 3.0})
    test = pd.DataFrame({"user_id": range(100, 130), "item_id": 0, "rating": 3.0})
    m, o = privacy.membership_sample(train, test, seed=3)
    assert len(m) == len(o) == 30
    assert not set(m["user_id"]) & set(o["user_id"])
    with pytest.raises(ValueError, match="n must be"):
        privacy.membership_sample(train, test, n=31)
    with pytest.raises(ValueError, match="non-empty"):
        privacy.membership_sample(train.iloc[:0], test)


def test_rating_losses_needs_columns():
    with pytest.raises(KeyError, match="rating"):
        privacy.rating_losses(BiasedMF(2, 2, 2), pd.DataFrame({"user_id": [0], "item_id": [0]}))


# --- de-identification -----------------------------------------------------------------------


def test_quasi_identifier_report_counts_unique_records():
    table = pd.DataFrame(
        {
            "region": ["a", "a", "a", "b", "b", "c"],
            "age": [1, 1, 2, 1, 1, 3],
        }
    )
    rep = privacy.quasi_identifier_report(table, [["region"], ["region", "age"]])
    assert rep.loc["region", "unique_share"] == pytest.approx(1 / 6)
    assert rep.loc["region", "k_anonymity"] == 1
    assert rep.loc["region + age", "groups"] == 4
    assert rep.loc["region + age", "unique_share"] == pytest.approx(2 / 6)
    with pytest.raises(KeyError, match="zip"):
        privacy.quasi_identifier_report(table, [["zip"]])


def test_hashing_ids_is_reversible_by_enumeration():
    ids = np.array([5, 17, 2999])
    hashed = privacy.pseudonymise(ids)
    assert (hashed == privacy.pseudonymise(ids)).all()  # deterministic, hence linkable
    assert len(hashed[0]) == 64
    assert (privacy.reverse_pseudonyms(hashed, np.arange(3000)) == ids).all()
    salted = privacy.pseudonymise(ids, salt="secret")
    assert not (salted == hashed).any()
    assert (privacy.reverse_pseudonyms(salted, np.arange(3000)) == -1).all()
    assert (privacy.reverse_pseudonyms(salted, np.arange(3000), salt="secret") == ids).all()


def test_group_privacy_keeps_delta_a_probability():
    eps, delta = privacy.group_privacy(1.0, 1e-6, 100)
    assert eps == 100.0 and delta == 1.0  # capped: promises nothing, but is not > 1
    assert 0 < privacy.group_privacy(1.0, 1e-6, 3)[1] < 1


def test_group_epsilon_rdp_matches_the_run_at_k1_and_grows_with_k():
    q, steps, delta = 0.05, 200, 1e-6
    sigma = privacy.noise_multiplier_for(1.0, delta, q, steps)
    single = privacy.epsilon_opacus(sigma, q, steps, delta)
    eps = [privacy.group_epsilon_rdp(sigma, q, steps, delta, k) for k in (1, 2, 8)]
    assert eps[0] == pytest.approx(single, rel=0.1)  # k = 1 is the run's own ε
    assert eps[0] < eps[1] < eps[2] < 8 * 27  # monotone, finite
    assert privacy.group_epsilon_rdp(sigma, q, steps, delta, 5) == eps[2]  # 5 -> 8
    with pytest.raises(ValueError, match="k"):
        privacy.group_epsilon_rdp(sigma, q, steps, delta, 0)


def _statement(**kw):
    args = dict(
        model="m",
        unit="example",
        unit_description="one rating",
        n_units=100,
        epsilon_training=1.0,
        delta=1e-4,
        accountant="rdp",
        sample_rate=0.1,
        steps=10,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        secure=True,
    )
    return privacy.PrivacyStatement(**(args | kw))


def test_privacy_statement_with_zero_delta_is_pure_dp_and_bad_values_are_refused():
    assert "delta = 0 (pure DP)" in str(_statement(delta=0.0))
    assert "10x below 1/n" in str(_statement(delta=1e-3))
    with pytest.raises(ValueError, match="delta"):
        _statement(delta=1.5)
    with pytest.raises(ValueError, match="n_units"):
        _statement(n_units=0)
    with pytest.raises(ValueError, match="epsilon_training"):
        _statement(epsilon_training=float("nan"))

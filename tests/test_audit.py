"""Tests of recbook.privacy.audit's one-run ε audit (Steinke, Nasr & Jagielski 2023): the
p-value and the lower bound against closed forms, soundness on randomised response, and the
audit of a real DP-SGD run (lower bound <= the accountant's ε) and of a non-private run
(a large lower bound)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from torch import nn

from recbook import privacy, training
from recbook.models_torch import BiasedMF
from recbook.privacy import audit

torch.set_num_threads(1)


def test_p_value_is_the_binomial_tail_without_delta():
    assert audit.one_run_p_value(100, 40, 30, 0.0, 0.0) == pytest.approx(
        scipy.stats.binom.sf(29, 40, 0.5)
    )
    q = 1 / (1 + math.exp(-1.0))
    assert audit.one_run_p_value(100, 40, 30, 1.0, 0.0) == pytest.approx(
        scipy.stats.binom.sf(29, 40, q)
    )
    values = [audit.one_run_p_value(100, 40, 30, e, 1e-5) for e in (0.0, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:]))  # larger ε explains more
    assert audit.one_run_p_value(100, 40, 30, 1.0, 1e-3) > audit.one_run_p_value(
        100, 40, 30, 1.0, 0.0
    )


def test_lower_bound_for_all_guesses_correct_has_a_closed_form():
    # P[Binomial(r, q) >= r] = q^r = 0.05  ->  eps = log(q / (1 - q))
    r = 1000
    q = 0.05 ** (1 / r)
    got = audit.one_run_epsilon_lower_bound(r, r, r, delta=0.0, confidence=0.95)
    assert got == pytest.approx(math.log(q / (1 - q)), rel=1e-6)
    assert audit.one_run_epsilon_lower_bound(r, r, r // 2, delta=0.0) == 0.0


def test_audit_is_sound_on_randomised_response():
    """ε-DP randomised response: each canary's bit reported truthfully w.p. e^ε/(1+e^ε)."""
    rng = np.random.default_rng(0)
    eps, m = 1.0, 4000
    included = rng.random(m) < 0.5
    truthful = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    scores = np.where(truthful, included, ~included) + rng.normal(0, 1e-3, m)
    res = audit.one_run_audit(scores, included, delta=0.0)
    assert 0.5 < res.epsilon_lower <= eps
    assert res.canaries == m and res.guesses <= m and "confidence" in str(res)


def test_random_scores_give_no_evidence_and_perfect_scores_a_large_bound():
    rng = np.random.default_rng(1)
    included = rng.random(1000) < 0.5
    assert audit.one_run_audit(rng.random(1000), included, delta=1e-5).epsilon_lower < 0.3
    perfect = audit.one_run_audit(included.astype(float), included, delta=1e-5)
    assert perfect.epsilon_lower > 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": [1.0, np.nan]}, "NaN"),
        ({"included": [1, 2]}, "0/1"),
        ({"included": [1, 0, 1]}, "shapes differ"),
        ({"guess_fractions": (0.0,)}, "guess_fractions"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_one_run_audit_refuses_bad_input(kwargs, match):
    args = {"scores": [1.0, 0.0], "included": [1, 0], "delta": 1e-5} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        audit.one_run_audit(args.pop("scores"), args.pop("included"), **args)


def test_rating_canaries_are_new_users_flipped_in_with_probability_half():
    canaries, include = audit.rating_canaries(40, 30, 400, rating=1.0, seed=0)
    assert canaries["user_id"].tolist() == list(range(40, 440))
    assert canaries["item_id"].between(0, 29).all() and (canaries["rating"] == 1.0).all()
    assert canaries["item_id"].nunique() == 1  # one item: only the user part differs
    spread, _ = audit.rating_canaries(40, 30, 400, one_item=False, seed=0)
    assert spread["item_id"].nunique() > 20
    assert 0.4 < include.mean() < 0.6
    again, include2 = audit.rating_canaries(40, 30, 400, rating=1.0, seed=0)
    assert again.equals(canaries) and (include2 == include).all()
    secret = [audit.rating_canaries(40, 30, 400)[1] for _ in range(2)]
    assert not (secret[0] == secret[1]).all()


# --- auditing real training runs ----------------------------------------------------------------


def _with_canaries(df, m=300, seed=0):
    canaries, include = audit.rating_canaries(40, 30, m, rating=1.0, seed=seed)
    return pd.concat([df, canaries[include]], ignore_index=True), canaries, include


def _scores(model, canaries):
    return -privacy.rating_losses(model, canaries)


def _audited_dp_run(tiny_ratings, rating_tensors, noise_multiplier=None):
    """Seeded DP-SGD at ε = 2 on the tiny ratings plus canaries, then the one-run audit."""
    df, canaries, include = _with_canaries(tiny_ratings())
    torch.manual_seed(0)
    model = BiasedMF(40 + len(canaries), 30, dim=4, global_mean=3.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    dp = privacy.make_private(
        model,
        opt,
        privacy.tensor_loader(*rating_tensors(df), batch_size=200),
        nn.MSELoss(),
        target_epsilon=2.0,
        delta=privacy.default_delta(len(df)),
        epochs=5,
        max_grad_norm=1.0,
        clipper="embedding_rows",
        secure_mode=False,
        seed=0,
        noise_multiplier=noise_multiplier,
    )
    dp.fit(progress=False)
    return dp, audit.one_run_audit(_scores(model, canaries), include, delta=dp.delta)


def test_the_audit_can_refute_the_audited_epsilon():
    """Code check: 300 canaries can certify more than ε = 2, so the audit below is a test."""
    ceiling = audit.one_run_max_epsilon(300, delta=1e-4)
    assert ceiling > 2.0
    assert ceiling == pytest.approx(
        max(
            audit.one_run_epsilon_lower_bound(300, r, r, 1e-4, 1 - 0.05 / 5)
            for r in (14, 30, 60, 150, 300)
        )
    )
    assert audit.one_run_max_epsilon(2000, delta=1e-4) > ceiling  # more canaries, more reach


def test_dp_sgd_audit_stays_below_the_accountant(tiny_ratings, rating_tensors):
    dp, res = _audited_dp_run(tiny_ratings, rating_tensors)  # seeded: a check of the code
    assert res.can_refute(dp.epsilon())
    assert res.epsilon_lower <= dp.epsilon()


def test_positive_control_without_noise_is_caught(tiny_ratings, rating_tensors):
    """The same pipeline with σ = 0 must give a bound above the ε it would have claimed."""
    claimed, _ = _audited_dp_run(tiny_ratings, rating_tensors)
    control, res = _audited_dp_run(tiny_ratings, rating_tensors, noise_multiplier=0.0)
    assert control.noiseless and control.epsilon() == math.inf
    assert not control.statement().private and "no noise" in control.label
    assert res.epsilon_lower > claimed.epsilon(), res


def test_saturation_is_reported():
    included = np.r_[np.ones(50), np.zeros(50)].astype(bool)
    res = audit.one_run_audit(included.astype(float), included, delta=1e-5)
    assert res.saturated and res.correct == res.guesses and "SATURATED" in str(res)
    assert res.epsilon_lower == pytest.approx(res.max_certifiable)
    noisy = audit.one_run_audit(np.random.default_rng(0).random(100), included, delta=1e-5)
    assert not noisy.saturated and "SATURATED" not in str(noisy)


def test_non_private_training_fails_the_audit(tiny_ratings, rating_tensors):
    df, canaries, include = _with_canaries(tiny_ratings())
    torch.manual_seed(0)
    model = BiasedMF(40 + len(canaries), 30, dim=4, global_mean=3.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    batches = training.TensorBatches(*rating_tensors(df), batch_size=200, seed=0)
    training.fit(model, batches, nn.MSELoss(), optimizer=opt, epochs=10, progress=False)
    res = audit.one_run_audit(_scores(model, canaries), include, delta=1e-5)
    assert res.epsilon_lower > 2.5, res


def test_row_shift_scores_are_zero_for_untouched_rows():
    w0 = torch.zeros(5, 2)
    w = w0.clone()
    w[1] = torch.tensor([3.0, 4.0])
    assert audit.row_shift_scores(w, w0, [0, 1, 4]).tolist() == [0.0, 5.0, 0.0]
    with pytest.raises(ValueError, match="rows must be"):
        audit.row_shift_scores(w, w0, [5])
    with pytest.raises(ValueError, match="differ in shape"):
        audit.row_shift_scores(w, torch.zeros(4, 2), [0])

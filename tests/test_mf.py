"""Tests of recbook.mf: each fitter recovers a planted low-rank matrix, the batched updates equal
per-row reference solves, and bad input fails with a clear message."""

from __future__ import annotations

import functools
import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbook import mf

N_USERS, N_ITEMS, RANK, NOISE = 120, 80, 3, 0.3


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Ratings from mu + b_u + c_i + p_u.q_i + N(0, 0.3^2) on 35 % of the cells, split 80/20;
    also the noiseless truth of every cell."""
    rng = np.random.default_rng(0)
    P = rng.normal(0, 0.8, (N_USERS, RANK))
    Q = rng.normal(0, 0.8, (N_ITEMS, RANK))
    truth = 3.0 + rng.normal(0, 0.4, N_USERS)[:, None] + rng.normal(0, 0.4, N_ITEMS) + P @ Q.T
    u, i = np.nonzero(rng.random((N_USERS, N_ITEMS)) < 0.35)
    df = pd.DataFrame(
        {"user_id": u, "item_id": i, "rating": truth[u, i] + rng.normal(0, NOISE, len(u))}
    )
    test = df.sample(frac=0.2, random_state=0)
    return df.drop(test.index), test, truth


def rmse(model: mf.MFModel, df: pd.DataFrame) -> float:
    pred = model.predict(df["user_id"].to_numpy(), df["item_id"].to_numpy(), clip=False)
    return float(np.sqrt(np.mean((pred - df["rating"].to_numpy()) ** 2)))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("sgd", {"rank": RANK, "lr": 0.02, "reg": 0.02, "epochs": 60, "batch_size": 64}),
        ("als", {"rank": RANK, "reg": 0.02, "iters": 20}),
        ("bayes", {"rank": RANK, "burn_in": 15, "samples": 30}),
    ],
)
def test_fitters_recover_planted_matrix(planted, name, kwargs):
    train, test, _ = planted
    biases = rmse(mf.fit_biases(train, N_USERS, N_ITEMS, progress=False), test)
    model = mf.fit(train, N_USERS, N_ITEMS, model=name, progress=False, seed=1, **kwargs)
    score = rmse(model, test)
    assert biases > 0.7  # the planted interaction matters ...
    assert score < 1.35 * NOISE  # ... and every method recovers it to near the noise level
    assert len(model.history) > 0 and model.fit_seconds > 0


def test_bayes_estimates_noise_level(planted):
    train, _, _ = planted
    model = mf.fit_bayes(train, N_USERS, N_ITEMS, rank=RANK, burn_in=15, samples=20, progress=False)
    noise = model.history["noise_sd"].iloc[-20:].mean()
    assert abs(noise - NOISE) < 0.06


def test_als_user_step_equals_per_user_ridge_solve(planted):
    """One ALS-WR half-step, batched, against a plain loop over users with np.linalg.solve."""
    train, _, _ = planted
    reg = 0.1
    model = mf.fit_als(train, N_USERS, N_ITEMS, rank=2, reg=reg, iters=1, progress=False)
    # given this model's items, the next user step by a loop over users ...
    mu = model.global_mean
    expected = np.zeros((N_USERS, 3))
    for user, rows in train.groupby("user_id"):
        items = rows["item_id"].to_numpy()
        X = np.hstack([np.ones((len(items), 1)), model.item_factors[items]])
        t = rows["rating"].to_numpy() - mu - model.item_bias[items]
        A = X.T @ X + np.diag([5.0] + [reg * len(items)] * 2)
        expected[user] = np.linalg.solve(A, X.T @ t)
    # ... and by the batched normal equations that fit_als uses
    u, i, r = mf._triples(train, N_USERS, N_ITEMS, "train")
    sides = mf._Sides(u, i, r, N_USERS, N_ITEMS)
    target = r - mu - model.item_bias[i]
    values = mf._with_targets(sides.mask_user, sides.user_pos, target)
    gram, rhs = mf._normal_equations(sides.mask_user, values, mf._design(model.item_factors))
    gram[:, np.arange(3), np.arange(3)] += mf._ridge(sides.n_user, 2, reg, 5.0, True)
    chol = np.linalg.cholesky(gram)
    got = mf._backward(chol, mf._forward(chol, rhs))
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_triangular_solves_match_numpy():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(50, 6, 9))
    P = A @ A.transpose(0, 2, 1) + np.eye(6)
    b = rng.normal(size=(50, 6))
    L = np.linalg.cholesky(P)
    x = mf._backward(L, mf._forward(L, b))
    np.testing.assert_allclose(x, np.linalg.solve(P, b[..., None])[..., 0], rtol=1e-9)


def test_bias_baseline_is_damped_mean_fixed_point(planted):
    train, _, _ = planted
    reg = 5.0
    model = mf.fit_biases(train, N_USERS, N_ITEMS, reg=reg, iters=60, progress=False)
    mu = model.global_mean
    t = train.assign(res=train["rating"] - mu - model.item_bias[train["item_id"]])
    sums = t.groupby("user_id")["res"].agg(["sum", "size"])
    np.testing.assert_allclose(
        model.user_bias[sums.index], sums["sum"] / (sums["size"] + reg), atol=1e-6
    )
    assert model.user_factors.shape == (N_USERS, 0)


def test_wide_factors_equal_average_of_samples():
    """The Bayesian model's 'samples side by side / sqrt(S)' equals averaging predictions."""
    rng = np.random.default_rng(0)
    Us, Vs = rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 7, 3))
    average = np.mean([U @ V.T for U, V in zip(Us, Vs)], axis=0)
    wide = np.concatenate(list(Us), 1) @ np.concatenate(list(Vs), 1).T / 4
    np.testing.assert_allclose(wide, average)


def test_early_stopping_returns_best_epoch(planted):
    train, test, _ = planted
    model = mf.fit_sgd(
        train,
        N_USERS,
        N_ITEMS,
        rank=20,
        lr=0.05,
        reg=0.0,
        epochs=80,
        val=test,
        patience=3,
        progress=False,
    )
    hist = model.history
    assert len(hist) < 80  # it stopped: unregularised rank-20 SGD overfits
    assert rmse(model, test) == pytest.approx(hist["val_rmse"].min(), abs=1e-12)


def test_predict_clips_and_score_matrix_agrees(planted):
    train, test, _ = planted
    model = mf.fit_als(train, N_USERS, N_ITEMS, rank=RANK, iters=5, progress=False)
    scores = model.score_matrix()
    u, i = test["user_id"].to_numpy(), test["item_id"].to_numpy()
    np.testing.assert_allclose(scores[u, i], model.predict(u, i, clip=False))
    clipped = model.predict(u, i)
    assert clipped.min() >= train["rating"].min() and clipped.max() <= train["rating"].max()


def test_same_seed_same_model(planted):
    train, _, _ = planted
    a = mf.fit_bayes(train, N_USERS, N_ITEMS, rank=2, burn_in=2, samples=3, seed=5, progress=False)
    b = mf.fit_bayes(train, N_USERS, N_ITEMS, rank=2, burn_in=2, samples=3, seed=5, progress=False)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)


def test_unrated_item_gets_user_level_prediction(planted):
    train, _, _ = planted
    model = mf.fit_als(train, N_USERS, N_ITEMS + 1, rank=RANK, iters=5, progress=False)
    assert model.item_bias[-1] == 0 and np.all(model.item_factors[-1] == 0)
    assert np.isfinite(model.predict([0], [N_ITEMS])).all()


def test_global_mean_model(planted):
    train, test, _ = planted
    model = mf.fit(train, N_USERS, N_ITEMS, model="mean")
    np.testing.assert_allclose(model.predict_df(test), train["rating"].mean())


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda d: d.drop(columns="rating"), KeyError, "rating"),
        (lambda d: d.assign(user_id=d["user_id"] + 1000), ValueError, "0..119"),
        (lambda d: d.assign(rating=np.nan), ValueError, "NaN"),
        (lambda d: d.assign(item_id=d["item_id"] + 0.5), ValueError, "whole-number ids"),
        (lambda d: pd.concat([d, d.head(1)]), ValueError, "duplicate"),
        (lambda d: d.head(0), ValueError, "empty"),
    ],
)
def test_bad_input_is_named(planted, change, error, match):
    train, _, _ = planted
    with pytest.raises(error, match=match):
        mf.fit_als(change(train), N_USERS, N_ITEMS, rank=2, iters=1, progress=False)


def test_bad_settings_are_named(planted):
    train, test, _ = planted
    with pytest.raises(ValueError, match="unknown model"):
        mf.fit(train, N_USERS, N_ITEMS, model="svd++")
    with pytest.raises(ValueError, match="init"):
        mf.fit_als(train, N_USERS, N_ITEMS, init="zeros", progress=False)
    with pytest.raises(ValueError, match="patience"):
        mf.fit_sgd(train, N_USERS, N_ITEMS, patience=2, progress=False)
    with pytest.raises(ValueError, match="rank"):
        mf.fit_bayes(train, N_USERS, N_ITEMS, rank=0, progress=False)
    with pytest.raises(ValueError, match="same length"):
        mf.global_mean_model(train, N_USERS, N_ITEMS).predict([0, 1], [0])


def test_misspelt_setting_names_the_fitter(planted):
    """A misspelt setting is a TypeError naming the public fitter, not a private helper."""
    train, _, _ = planted
    with pytest.raises(TypeError, match=r"fit_als\(\) got an unexpected keyword argument 'iter'"):
        mf.fit_als(train, N_USERS, N_ITEMS, iter=5, progress=False)
    with pytest.raises(TypeError, match=r"fit_biases\(\) got an unexpected keyword argument"):
        mf.fit_biases(train, N_USERS, N_ITEMS, iter=5, progress=False)


@pytest.mark.parametrize(
    "name, kwargs, unused",
    [
        ("als", {"samples": 5}, "samples"),
        ("sgd", {"burn_in": 5}, "burn_in"),
        ("biases", {"rank": 3}, "rank"),
        ("mean", {"seed": 1}, "seed"),
        ("bayes", {"iters": 3}, "iters"),
    ],
)
def test_fit_refuses_settings_the_model_does_not_take(planted, name, kwargs, unused):
    train, _, _ = planted
    with pytest.raises(TypeError, match=rf"model='{name}'\) does not take \['{unused}'\]"):
        mf.fit(train, N_USERS, N_ITEMS, model=name, progress=False, **kwargs)


def test_fit_fills_defaults_only_where_they_apply(planted, monkeypatch):
    train, _, _ = planted
    seen, real = {}, mf.fit_als

    @functools.wraps(real)  # keeps fit_als's signature, which mf.fit reads
    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(mf, "fit_als", spy)
    mf.fit(train, N_USERS, N_ITEMS, model="als", iters=1, progress=False)
    assert seen == {"rank": mf.DEFAULTS["rank"], "iters": 1, "progress": False}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
        ({"rank": 2.5}, TypeError, "rank must be an integer"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"reg": -0.1}, ValueError, "reg must be >= 0"),
    ],
)
def test_bad_numbers_are_named(planted, kwargs, error, match):
    train, _, _ = planted
    with pytest.raises(error, match=match):
        mf.fit_sgd(train, N_USERS, N_ITEMS, epochs=1, progress=False, **kwargs)


ROOT = Path(__file__).resolve().parents[1]


def test_notebook_defaults_are_the_benchmark_defaults():
    """benchmarks/mf.py promises 'the notebook's default model and settings': mf.DEFAULTS."""
    source = (ROOT / "notebooks" / "03_matrix_factorization.py").read_text()
    values = {
        name: int(re.search(rf"^{name} = (\d+)", source, re.M).group(1))
        for name in ("RANK", "BURN_IN", "SAMPLES")
    }
    assert mf.DEFAULTS == {
        "model": "bayes",
        "rank": values["RANK"],
        "burn_in": values["BURN_IN"],
        "samples": values["SAMPLES"],
    }


def test_benchmark_runs_on_the_official_format_fixture(capsys):
    spec = importlib.util.spec_from_file_location("bench_mf", ROOT / "benchmarks" / "mf.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is an unverified copy, by design
        assert bench.main(["--path", str(ROOT / "data" / "fixtures" / "ml-100k")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^RMSE \d\.\d{4} fit \d+\.\d\d s", out, re.M), out
    assert "baseline user + item biases" in out

import numpy as np
import pandas as pd
import pytest
import torch

from recbook import metrics, training
from recbook.models_torch import MLP, BiasedMF
from recbook.training import TensorBatches, evaluate_loss, fit


def _ratings(n_users=30, n_items=20, seed=0):
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    u, i = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    u, i = u.ravel(), i.ravel()
    r = 3 + (p[u] * q[i]).sum(1)
    return torch.tensor(u), torch.tensor(i), torch.tensor(r, dtype=torch.float32)


def test_mf_learns_a_low_rank_matrix_to_near_zero_loss():
    torch.manual_seed(0)
    u, i, r = _ratings()
    model = BiasedMF(30, 20, dim=4, global_mean=3.0, init_std=0.1)
    batches = TensorBatches(u, i, r, batch_size=64)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    history = fit(
        model, batches, torch.nn.functional.mse_loss, optimizer=opt, epochs=150, progress=False
    )
    assert history.frame.train_loss.iloc[-1] < 0.05  # r has variance ~2
    full = model.score_all().numpy()
    assert metrics.rmse(r.numpy(), full[u.numpy(), i.numpy()]) < 0.25


def test_early_stopping_restores_best():
    torch.manual_seed(0)
    u, i, r = _ratings(seed=1)
    noisy = r + torch.randn_like(r) * 2
    model = BiasedMF(30, 20, dim=16, global_mean=3.0)
    train, val = TensorBatches(u, i, noisy), TensorBatches(u, i, r, shuffle=False)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    h = fit(
        model,
        train,
        torch.nn.functional.mse_loss,
        optimizer=opt,
        epochs=200,
        val_batches=val,
        patience=3,
        progress=False,
    )
    assert len(h.frame) < 200
    best = h.frame.val_loss.min()
    assert evaluate_loss(model, val, torch.nn.functional.mse_loss, "cpu") == pytest.approx(best)


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        TensorBatches(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        TensorBatches(torch.zeros(0))
    with pytest.raises(ValueError, match=r"user ids must lie in 0\.\.2, found 5\.\.5"):
        BiasedMF(3, 3)(torch.tensor([5]), torch.tensor([0]))
    model = MLP(4)
    with pytest.raises(ValueError, match="val_batches"):
        fit(
            model,
            [],
            torch.nn.functional.mse_loss,
            optimizer=torch.optim.SGD(model.parameters(), 0.1),
            epochs=1,
            patience=2,
        )
    with pytest.raises(ValueError, match="MLP in_dim must be >= 1, got 0"):
        MLP(0)
    with pytest.raises(ValueError, match="dropout must be < 1"):
        MLP(2, dropout=1.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TensorBatches(torch.zeros(3), batch_size=0)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(model, [], torch.nn.functional.mse_loss, optimizer=None, epochs=0)


def _fit_mlp(batches, lr=0.01):
    torch.manual_seed(0)
    model = MLP(2, hidden=(4,))
    opt = torch.optim.SGD(model.parameters(), lr)
    return model, lambda: fit(
        model, batches, torch.nn.functional.mse_loss, optimizer=opt, epochs=3, progress=False
    )


def test_fit_stops_on_nan_targets_before_the_weights_turn_nan():
    x, y = torch.randn(8, 2), torch.randn(8)
    y[5] = float("nan")
    model, run = _fit_mlp(TensorBatches(x, y, batch_size=4, shuffle=False))
    with pytest.raises(ValueError, match=r"loss is nan at epoch 1, batch 2; the batch's target"):
        run()
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_fit_stops_when_training_diverges():
    x, y = torch.randn(64, 2) * 1e3, torch.randn(64) * 1e3
    _, run = _fit_mlp(TensorBatches(x, y, batch_size=8), lr=10.0)
    with pytest.raises(ValueError, match="training diverged: lower the learning rate"):
        run()


def test_fit_refuses_an_empty_or_used_up_batch_source():
    _, run = _fit_mlp([])
    with pytest.raises(ValueError, match="yielded no batches in epoch 1"):
        run()
    batches = TensorBatches(torch.randn(4, 2), torch.randn(4))
    _, run = _fit_mlp(b for b in batches)  # a generator: empty after the first epoch
    with pytest.raises(ValueError, match="no batches in epoch 2"):
        run()


def test_compare_timings_reports_medians_and_ratios():
    calls = {"fast": 0, "slow": 0}

    def run(name, seconds):
        def go():
            calls[name] += 1
            return training.History(frame=pd.DataFrame(), best_epoch=0, seconds=seconds)

        return go

    table = training.compare_timings(
        {"fast": run("fast", 1.0), "slow": run("slow", 3.0)}, reference="fast", repeats=3
    )
    assert calls == {"fast": 4, "slow": 4}  # one warm-up round, then three timed
    assert table.loc["slow", "ratio"] == pytest.approx(3.0)
    assert table.loc["fast", "median s"] == 1.0
    with pytest.raises(ValueError, match="reference 'gone'"):
        training.compare_timings({"fast": run("fast", 1.0)}, reference="gone")
    with pytest.raises(ValueError, match="repeats"):
        training.compare_timings({"fast": run("fast", 1.0)}, reference="fast", repeats=0)


def test_id_batches_are_checked_on_the_device_extremes():
    from recbook.models_torch import check_id_batch

    check_id_batch(torch.tensor([0, 2]), torch.tensor([1, 0]), 3, 2)
    check_id_batch(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 3, 2)
    with pytest.raises(ValueError, match="differ in shape"):
        check_id_batch(torch.tensor([0]), torch.tensor([0, 1]), 3, 3)
    with pytest.raises(ValueError, match=r"item ids must lie in 0\.\.1, found -1\.\.0"):
        check_id_batch(torch.tensor([0, 1]), torch.tensor([0, -1]), 3, 2)
    with pytest.raises(ValueError, match="user ids must be an integer tensor"):
        check_id_batch(torch.tensor([0.0]), torch.tensor([0]), 3, 2)
    check_id_batch(torch.tensor([0]), torch.tensor([99]), 3, None)  # items not checked


def test_early_stop_ends_the_progress_bar_complete(monkeypatch):
    """A bar closed short of its total is drawn red in Jupyter: an early stop must end it full."""
    import torch

    from recbook import training

    seen = {}
    real_tqdm = training.tqdm

    def spy(*args, **kwargs):
        bar = real_tqdm(*args, **kwargs)
        seen["bar"] = bar
        return bar

    monkeypatch.setattr(training, "tqdm", spy)
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = torch.randn(64)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0))
    batches = training.TensorBatches(x, y, batch_size=16, seed=0)
    history = training.fit(
        model,
        batches,
        torch.nn.functional.mse_loss,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),  # no progress: stops early
        epochs=50,
        val_batches=batches,
        patience=1,
    )
    bar = seen["bar"]
    assert len(history.frame) < 50
    assert bar.n == bar.total == len(history.frame)


def test_fit_adds_postfix_values_only_to_a_shown_bar(monkeypatch):
    seen, calls = {}, []
    real_tqdm = training.tqdm

    def spy(*args, **kwargs):
        seen["bar"] = real_tqdm(*args, **kwargs)
        return seen["bar"]

    def extra():
        calls.append(1)
        return {"ε": "1.250"}

    monkeypatch.setattr(training, "tqdm", spy)
    x, y = torch.randn(16, 2), torch.randn(16)
    model, _ = _fit_mlp(TensorBatches(x, y, batch_size=8))
    opt = torch.optim.SGD(model.parameters(), 0.01)
    loss = torch.nn.functional.mse_loss
    fit(model, TensorBatches(x, y, batch_size=8), loss, optimizer=opt, epochs=2, postfix=extra)
    assert len(calls) == 2 and seen["bar"].postfix.endswith("ε=1.250")
    fit(model, TensorBatches(x, y), loss, optimizer=opt, epochs=2, postfix=extra, progress=False)
    assert len(calls) == 2


class _CountingSGD(torch.optim.SGD):
    steps = 0

    def step(self, closure=None):
        type(self).steps += 1
        return super().step(closure)


def test_an_empty_batch_still_steps_but_adds_nothing_to_the_loss():
    """A Poisson sample can be empty: DP-SGD still takes that step (noise only)."""
    x, y = torch.randn(4, 2), torch.randn(4)
    empty = (x[:0], y[:0])
    model = MLP(2, hidden=(3,))
    opt = _CountingSGD(model.parameters(), lr=0.0)
    loss = torch.nn.functional.mse_loss
    history = fit(model, [empty, (x, y), empty], loss, optimizer=opt, epochs=1, progress=False)
    assert _CountingSGD.steps == 3
    with torch.no_grad():
        assert history.frame["train_loss"].iloc[0] == pytest.approx(float(loss(model(x), y)))
    only_empty = fit(model, [empty], loss, optimizer=opt, epochs=1, progress=False)
    assert np.isnan(only_empty.frame["train_loss"].iloc[0])  # no rows: no mean loss

"""Tests of recbook.dp_sgd: DP-SGD through Opacus's PrivacyEngine and through the one-backward
embedding clipping, checked against per-example gradients computed one example at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recbook import dp_sgd, privacy, training
from recbook.models_torch import MLP, BiasedMF

torch.set_num_threads(1)
CLIPPERS = dp_sgd.CLIPPERS


def _dp_setup(df, rating_tensors, eps=4.0, epochs=3, delta=None, batch_size=200, clipper="opacus"):
    torch.manual_seed(0)
    model = BiasedMF(40, 30, dim=4, global_mean=3.5)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.02)
    loader = dp_sgd.tensor_loader(*rating_tensors(df), batch_size=batch_size, seed=0)
    delta = privacy.default_delta(len(df)) if delta is None else delta
    return dp_sgd.make_private(
        model,
        opt,
        loader,
        nn.MSELoss(),
        target_epsilon=eps,
        delta=delta,
        epochs=epochs,
        max_grad_norm=1.0,
        clipper=clipper,
    )


@pytest.mark.parametrize("clipper", CLIPPERS)
def test_make_private_trains_and_spends_the_target_epsilon(clipper, tiny_ratings, rating_tensors):
    dp = _dp_setup(tiny_ratings(), rating_tensors, eps=4.0, epochs=3, clipper=clipper)
    assert dp.sample_rate == pytest.approx(200 / 2000)
    hist = training.fit(
        dp.module, dp.loader, dp.criterion, optimizer=dp.optimizer, epochs=3, progress=False
    )
    assert dp.steps == 3 * len(dp.loader) == 30
    assert 0.95 * 4.0 <= dp.epsilon() <= 4.0 * 1.001
    independent = privacy.epsilon_dp_accounting(
        dp.noise_multiplier, dp.sample_rate, dp.steps, dp.delta, "rdp"
    )
    assert independent == pytest.approx(dp.epsilon(), rel=0.05)
    assert hist.frame["train_loss"].iloc[-1] < hist.frame["train_loss"].iloc[0]


def test_both_clippers_calibrate_the_same_noise(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    sigmas = {
        c: _dp_setup(df, rating_tensors, eps=2.0, clipper=c).noise_multiplier for c in CLIPPERS
    }
    assert sigmas["opacus"] == sigmas["embedding_rows"] > 0


def test_more_privacy_means_more_noise(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    sigmas = [_dp_setup(df, rating_tensors, eps=e).noise_multiplier for e in (0.5, 2.0, 8.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0.0}, "epsilon must be a finite number > 0"),
        ({"eps": -2.0}, "epsilon"),
        ({"delta": 1 / 2000}, "delta must satisfy"),
        ({"delta": 0.1}, "delta must satisfy"),
        ({"clipper": "fast"}, "clipper must be one of"),
    ],
)
def test_make_private_rejects_bad_budgets(kwargs, match, tiny_ratings, rating_tensors):
    with pytest.raises(ValueError, match=match):
        _dp_setup(tiny_ratings(), rating_tensors, **kwargs)


def test_make_private_needs_a_dataloader():
    model = BiasedMF(4, 4, dim=2)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    batches = training.TensorBatches(torch.zeros(8, dtype=torch.long), torch.zeros(8))
    with pytest.raises(TypeError, match="tensor_loader"):
        dp_sgd.make_private(
            model,
            opt,
            batches,
            nn.MSELoss(),
            target_epsilon=1.0,
            delta=1e-3,
            epochs=1,
            max_grad_norm=1.0,
        )


def test_fast_embedding_norms_match_opacus():
    from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample

    torch.manual_seed(0)
    layer = nn.Embedding(10, 3)
    ids = torch.randint(0, 10, (16,))
    back = torch.randn(16, 3)
    ours = dp_sgd._one_row_embedding_norms(layer, [ids], back)[layer.weight]
    theirs = compute_embedding_norm_sample(layer, [ids], back)[layer.weight]
    assert torch.allclose(ours, theirs, atol=1e-6)
    # sequences of ids (several rows per example) go to Opacus's general algorithm
    seq = torch.tensor([[1, 1], [2, 0], [2, 0]])
    back2 = torch.tensor([[[0.2], [0.2]], [[0.3], [0.1]], [[0.3], [0.1]]])
    layer1 = nn.Embedding(3, 1)
    got = dp_sgd._one_row_embedding_norms(layer1, [seq], back2)[layer1.weight]
    assert torch.allclose(got, torch.tensor([0.4, 0.3162, 0.3162]), atol=1e-4)


def test_tensor_loader_batches_are_tensors():
    loader = dp_sgd.tensor_loader(torch.arange(10), torch.arange(10.0), batch_size=4)
    first = next(iter(loader))
    assert isinstance(first, tuple) and first[0].shape == (4,)
    with pytest.raises(ValueError, match="batch_size"):
        dp_sgd.tensor_loader(torch.arange(10), batch_size=0)


# --- the one-backward embedding clipping -----------------------------------------------------


def _spread_mf(seed=0):
    """A BiasedMF with large factors, so that most examples' gradients exceed the clip norm."""
    torch.manual_seed(seed)
    model = BiasedMF(20, 10, dim=4, global_mean=3.0)
    with torch.no_grad():
        model.user_factors.weight.normal_(0, 0.8)
        model.item_factors.weight.normal_(0, 0.8)
        model.user_bias.weight.normal_(0, 0.5)
    return model


def _batch(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(20, (n,), generator=g),
        torch.randint(10, (n,), generator=g),
        torch.rand(n, generator=g) * 4 + 1,
    )


def _clipped_sum_one_by_one(model, users, items, ratings, max_grad_norm):
    """The definition: each example's gradient on its own, clipped, then summed."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    norms = []
    for u, i, r in zip(users, items, ratings):
        loss = (model(u[None], i[None]) - r[None]).pow(2).sum()
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum(g.square().sum() for g in grads))
        norms.append(float(norm))
        factor = min(1.0, max_grad_norm / (float(norm) + 1e-6))
        for t, g in zip(total, grads):
            t += factor * g
    return total, np.array(norms)


def test_embedding_rows_clipping_equals_per_example_clipping():
    model = _spread_mf()
    users, items, ratings = _batch()
    expected, norms = _clipped_sum_one_by_one(model, users, items, ratings, max_grad_norm=8.0)
    assert 0.2 < (norms > 8.0).mean() < 0.8  # some examples are clipped, some are not
    criterion = dp_sgd.EmbeddingRowClipping(model, nn.MSELoss(), max_grad_norm=8.0)
    model.train()
    loss = criterion(model(users, items), ratings)
    np.testing.assert_allclose(loss.per_example_norms().detach().numpy(), norms, rtol=1e-5)
    loss.backward()
    for p, want in zip([p for p in model.parameters() if p.requires_grad], expected):
        torch.testing.assert_close(p.grad, want, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        mean_loss = float((model(users, items) - ratings).pow(2).mean())
    assert float(loss.detach()) == pytest.approx(mean_loss)


@pytest.mark.filterwarnings("ignore:Secure RNG", "ignore:Full backward hook")
def test_embedding_rows_clipping_equals_opacus_ghost_clipping():
    """Opacus's PrivacyEngine and recbook's clipping leave the same clipped sum in .grad."""
    from opacus import PrivacyEngine

    users, items, ratings = _batch(n=48, seed=3)
    grads = {}
    for clipper in CLIPPERS:
        model = _spread_mf(seed=2)
        model.train()
        if clipper == "opacus":
            dp_sgd._register_fast_embedding_norms()
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
            module, _, criterion, _ = PrivacyEngine().make_private(
                module=model,
                optimizer=opt,
                criterion=nn.MSELoss(),
                data_loader=dp_sgd.tensor_loader(users, items, ratings, batch_size=48),
                noise_multiplier=1.0,
                max_grad_norm=8.0,
                grad_sample_mode="ghost",
            )
        else:
            module, criterion = model, dp_sgd.EmbeddingRowClipping(model, nn.MSELoss(), 8.0)
        criterion(module(users, items), ratings).backward()
        grads[clipper] = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    for ours, theirs in zip(grads["embedding_rows"], grads["opacus"]):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_embedding_rows_clipping_evaluates_without_gradients():
    model = _spread_mf()
    users, items, ratings = _batch()
    criterion = dp_sgd.EmbeddingRowClipping(model, nn.MSELoss(), 1.0)
    model.eval()
    with torch.no_grad():
        loss = criterion(model(users, items), ratings)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0


class _TiedMF(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(10, 3)

    def forward(self, user, item):
        return (self.table(user) * self.table(item)).sum(-1)


class _SharedWeightMF(nn.Module):
    def __init__(self):
        super().__init__()
        self.users = nn.Embedding(10, 3)
        self.items = nn.Embedding(10, 3)
        self.items.weight = self.users.weight

    def forward(self, user, item):
        return (self.users(user) * self.items(item)).sum(-1)


class _SequenceModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(10, 3)

    def forward(self, user, item):
        return self.table(torch.stack([user, item], 1)).sum((1, 2))


def test_embedding_rows_clipping_refuses_models_it_cannot_clip_exactly():
    with pytest.raises(ValueError, match=r"\['net.0.weight', 'net.0.bias'"):
        dp_sgd.EmbeddingRowClipping(MLP(4, [3]), nn.MSELoss(), 1.0)
    with pytest.raises(TypeError, match="reduction"):
        dp_sgd.EmbeddingRowClipping(_TiedMF(), lambda a, b: a - b, 1.0)
    with pytest.raises(ValueError, match="share a weight"):
        dp_sgd.EmbeddingRowClipping(_SharedWeightMF(), nn.MSELoss(), 1.0)
    ids, target = torch.tensor([1, 2]), torch.tensor([0.0, 1.0])
    tied = _TiedMF()
    criterion = dp_sgd.EmbeddingRowClipping(tied, nn.MSELoss(), 1.0)
    with pytest.raises(ValueError, match="looked up twice"):
        tied(ids, ids)
    seq = _SequenceModel()
    criterion = dp_sgd.EmbeddingRowClipping(seq, nn.MSELoss(), 1.0)
    with pytest.raises(ValueError, match="one id per example"):
        seq(ids, ids)
    model = _spread_mf()
    criterion = dp_sgd.EmbeddingRowClipping(model, nn.MSELoss(), 1.0)
    with pytest.raises(RuntimeError, match="call the model"):
        criterion(torch.zeros(2, requires_grad=True), target)


def test_embedding_rows_needs_an_embedding_model_in_make_private(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    model = MLP(2, [4])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = dp_sgd.tensor_loader(*rating_tensors(df), batch_size=200)
    with pytest.raises(ValueError, match="clipper='opacus'"):
        dp_sgd.make_private(
            model,
            opt,
            loader,
            nn.MSELoss(),
            target_epsilon=1.0,
            delta=1e-4,
            epochs=1,
            max_grad_norm=1.0,
            clipper="embedding_rows",
        )


# --- Poisson sampling ------------------------------------------------------------------------


def test_poisson_batches_draw_opacus_batches():
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    n, q = 500, 0.05
    data = torch.arange(n) * 10
    ours = dp_sgd.PoissonBatches(data, sample_rate=q, generator=torch.Generator().manual_seed(7))
    theirs = UniformWithReplacementSampler(
        num_samples=n, sample_rate=q, generator=torch.Generator().manual_seed(7)
    )
    assert len(ours) == len(theirs) == 20
    for (batch,), indices in zip(ours, theirs):
        assert batch.tolist() == [10 * i for i in indices]


def test_poisson_batch_sizes_are_binomial():
    n, q = 1000, 0.1
    batches = dp_sgd.PoissonBatches(
        torch.arange(n), sample_rate=q, generator=torch.Generator().manual_seed(0)
    )
    sizes = np.array([len(b[0]) for _ in range(20) for b in batches])
    assert sizes.mean() == pytest.approx(n * q, rel=0.03)
    assert sizes.std() == pytest.approx(np.sqrt(n * q * (1 - q)), rel=0.15)
    with pytest.raises(ValueError, match="sample_rate"):
        dp_sgd.PoissonBatches(torch.arange(3), sample_rate=0.0, generator=torch.Generator())

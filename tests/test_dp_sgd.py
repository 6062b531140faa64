"""Tests of DP-SGD (recbook.privacy.dp_sgd and its sampling, clipping and mechanisms modules):
through Opacus's PrivacyEngine and through the one-backward embedding clipping, checked against
per-example gradients computed one example at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recbook import privacy, training
from recbook.models_torch import MLP, BiasedMF
from recbook.privacy import clipping, mechanisms

torch.set_num_threads(1)
CLIPPERS = privacy.CLIPPERS


def _dp_setup(
    df,
    rating_tensors,
    eps=4.0,
    epochs=3,
    delta=None,
    batch_size=200,
    clipper="opacus",
    model=None,
    lr=0.02,
    max_grad_norm=1.0,
    **kwargs,
):
    torch.manual_seed(0)
    model = BiasedMF(40, 30, dim=4, global_mean=3.0) if model is None else model
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = privacy.tensor_loader(*rating_tensors(df), batch_size=batch_size, seed=0)
    delta = privacy.default_delta(len(df)) if delta is None else delta
    kwargs = {"secure_mode": False, "seed": 0} | kwargs
    return privacy.make_private(
        model,
        opt,
        loader,
        nn.MSELoss(),
        target_epsilon=eps,
        delta=delta,
        epochs=epochs,
        max_grad_norm=max_grad_norm,
        clipper=clipper,
        **kwargs,
    )


@pytest.mark.parametrize("clipper", CLIPPERS)
def test_make_private_trains_and_spends_the_target_epsilon(clipper, tiny_ratings, rating_tensors):
    dp = _dp_setup(tiny_ratings(), rating_tensors, eps=4.0, epochs=3, clipper=clipper)
    assert dp.sample_rate == pytest.approx(200 / 2000)
    hist = dp.fit(progress=False)
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
        ({"eps": float("nan")}, "epsilon must be a finite number"),
        ({"delta": 1 / 2000}, r"must be < 1/n"),
        ({"delta": 0.1}, r"must be < 1/n"),
        ({"delta": 1.5}, r"delta must be in \(0, 1\)"),
        ({"delta": 1 / 40, "privacy_unit": "user", "clipper": "embedding_rows"}, "n = 40"),
        ({"clipper": "fast"}, "unknown clipper"),
        ({"privacy_unit": "household"}, "unknown privacy_unit"),
        ({"privacy_unit": "user"}, "needs clipper='embedding_rows'"),
        ({"max_grad_norm": float("nan")}, "max_grad_norm must be a finite number"),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be > 0"),
        ({"lr": 0.0}, "learning rate must be > 0"),
        ({"secure_mode": True}, "a seed would make the noise predictable"),
        ({"seed": None}, "needs a seed"),
        ({"model": BiasedMF(40, 30, dim=4, sparse=True)}, "sparse"),
    ],
)
def test_make_private_rejects_bad_configuration(kwargs, match, tiny_ratings, rating_tensors):
    with pytest.raises(ValueError, match=match):
        _dp_setup(tiny_ratings(), rating_tensors, **kwargs)


def test_make_private_refuses_a_nan_learning_rate(tiny_ratings, rating_tensors):
    model = BiasedMF(40, 30, dim=4)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    opt.param_groups[0]["lr"] = float("nan")  # torch checks only at construction
    with pytest.raises(ValueError, match="learning rate must be a finite number"):
        privacy.make_private(
            model,
            opt,
            privacy.tensor_loader(*rating_tensors(tiny_ratings()), batch_size=200),
            nn.MSELoss(),
            target_epsilon=1.0,
            delta=1e-5,
            epochs=1,
            max_grad_norm=1.0,
        )


def test_make_private_needs_a_dataloader():
    model = BiasedMF(4, 4, dim=2)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    batches = training.TensorBatches(torch.zeros(8, dtype=torch.long), torch.zeros(8))
    with pytest.raises(TypeError, match="tensor_loader"):
        privacy.make_private(
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
    ours = clipping._one_row_embedding_norms(layer, [ids], back)[layer.weight]
    theirs = compute_embedding_norm_sample(layer, [ids], back)[layer.weight]
    assert torch.allclose(ours, theirs, atol=1e-6)
    # sequences of ids (several rows per example) go to Opacus's general algorithm
    seq = torch.tensor([[1, 1], [2, 0], [2, 0]])
    back2 = torch.tensor([[[0.2], [0.2]], [[0.3], [0.1]], [[0.3], [0.1]]])
    layer1 = nn.Embedding(3, 1)
    got = clipping._one_row_embedding_norms(layer1, [seq], back2)[layer1.weight]
    assert torch.allclose(got, torch.tensor([0.4, 0.3162, 0.3162]), atol=1e-4)


def test_tensor_loader_batches_are_tensors():
    loader = privacy.tensor_loader(torch.arange(10), torch.arange(10.0), batch_size=4)
    first = next(iter(loader))
    assert isinstance(first, tuple) and first[0].shape == (4,)
    with pytest.raises(ValueError, match="batch_size"):
        privacy.tensor_loader(torch.arange(10), batch_size=0)


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
    criterion = privacy.EmbeddingRowClipping(model, nn.MSELoss(), max_grad_norm=8.0)
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
            clipping._register_fast_embedding_norms()
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
            module, _, criterion, _ = PrivacyEngine().make_private(
                module=model,
                optimizer=opt,
                criterion=nn.MSELoss(),
                data_loader=privacy.tensor_loader(users, items, ratings, batch_size=48),
                noise_multiplier=1.0,
                max_grad_norm=8.0,
                grad_sample_mode="ghost",
            )
        else:
            module, criterion = model, privacy.EmbeddingRowClipping(model, nn.MSELoss(), 8.0)
        criterion(module(users, items), ratings).backward()
        grads[clipper] = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    for ours, theirs in zip(grads["embedding_rows"], grads["opacus"]):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_embedding_rows_clipping_evaluates_without_gradients():
    model = _spread_mf()
    users, items, ratings = _batch()
    criterion = privacy.EmbeddingRowClipping(model, nn.MSELoss(), 1.0)
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
        privacy.EmbeddingRowClipping(MLP(4, [3]), nn.MSELoss(), 1.0)
    with pytest.raises(TypeError, match="reduction"):
        privacy.EmbeddingRowClipping(_TiedMF(), lambda a, b: a - b, 1.0)
    with pytest.raises(ValueError, match="share a weight"):
        privacy.EmbeddingRowClipping(_SharedWeightMF(), nn.MSELoss(), 1.0)
    for option in ({"padding_idx": 0}, {"scale_grad_by_freq": True}):
        padded = _spread_mf()
        padded.item_factors = nn.Embedding(10, 4, **option)
        with pytest.raises(ValueError, match="padding_idx or scale_grad_by_freq"):
            privacy.EmbeddingRowClipping(padded, nn.MSELoss(), 1.0)
    ids, target = torch.tensor([1, 2]), torch.tensor([0.0, 1.0])
    tied = _TiedMF()
    criterion = privacy.EmbeddingRowClipping(tied, nn.MSELoss(), 1.0)
    with pytest.raises(ValueError, match="looked up twice"):
        tied(ids, ids)
    seq = _SequenceModel()
    criterion = privacy.EmbeddingRowClipping(seq, nn.MSELoss(), 1.0)
    with pytest.raises(ValueError, match="one id per example"):
        seq(ids, ids)
    model = _spread_mf()
    criterion = privacy.EmbeddingRowClipping(model, nn.MSELoss(), 1.0)
    with pytest.raises(RuntimeError, match="call the model"):
        criterion(torch.zeros(2, requires_grad=True), target)


def test_embedding_rows_needs_an_embedding_model_in_make_private(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    model = MLP(2, [4])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = privacy.tensor_loader(*rating_tensors(df), batch_size=200)
    with pytest.raises(ValueError, match="clipper='opacus'"):
        privacy.make_private(
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
    ours = privacy.PoissonBatches(data, sample_rate=q, generator=torch.Generator().manual_seed(7))
    theirs = UniformWithReplacementSampler(
        num_samples=n, sample_rate=q, generator=torch.Generator().manual_seed(7)
    )
    assert len(ours) == len(theirs) == 20
    for (batch,), indices in zip(ours, theirs):
        assert batch.tolist() == [10 * i for i in indices]


def test_poisson_batch_sizes_are_binomial():
    n, q = 1000, 0.1
    batches = privacy.PoissonBatches(
        torch.arange(n), sample_rate=q, generator=torch.Generator().manual_seed(0)
    )
    sizes = np.array([len(b[0]) for _ in range(20) for b in batches])
    assert sizes.mean() == pytest.approx(n * q, rel=0.03)
    assert sizes.std() == pytest.approx(np.sqrt(n * q * (1 - q)), rel=0.15)
    with pytest.raises(ValueError, match="sample_rate"):
        privacy.PoissonBatches(torch.arange(3), sample_rate=0.0, generator=torch.Generator())


# --- secure mode, seeded demos and the privacy statement --------------------------------------


def _trained_weights(dp):
    dp.fit(progress=False)
    return torch.cat([p.detach().reshape(-1) for p in dp.module.parameters()])


@pytest.mark.parametrize("clipper", CLIPPERS)
def test_seeded_runs_repeat_and_secure_runs_never_do(clipper, tiny_ratings, rating_tensors):
    df = tiny_ratings()
    seeded = [_trained_weights(_dp_setup(df, rating_tensors, clipper=clipper)) for _ in range(2)]
    assert torch.equal(seeded[0], seeded[1])
    secure = [
        _trained_weights(
            _dp_setup(df, rating_tensors, clipper=clipper, secure_mode=True, seed=None)
        )
        for _ in range(2)
    ]
    assert not torch.equal(secure[0], secure[1])
    assert not torch.equal(secure[0], seeded[0])


def test_secure_mode_reseeds_sampling_and_noise_every_step(tiny_ratings, rating_tensors):
    dp = _dp_setup(tiny_ratings(), rating_tensors, secure_mode=True, seed=None)
    assert dp.secure_mode and dp.seed is None and dp.label == "private"
    assert isinstance(dp.loader, privacy.ReseededEachStep)
    assert dp.optimizer.secure_mode  # Opacus's floating-point-safe Gaussian noise
    sampling, noise = dp.loader.generators
    states = []
    for _ in dp.loader:
        states.append((sampling.initial_seed(), noise.initial_seed()))
    assert len(states) == len(dp.loader) == 10
    assert len({s for s, _ in states}) == 10 and len({n for _, n in states}) == 10


def test_privacy_statement_says_what_is_covered(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    seeded = _dp_setup(df, rating_tensors)
    seeded.fit(progress=False)
    text = str(seeded.statement("BiasedMF", [("noisy mean rating", 0.05)]))
    assert "NOT PRIVATE" in text and "reproducible demo" in text
    assert "example level" in text and "n = 2,000" in text and "10x below 1/n" in text
    assert "hyper-parameters" in text and "not covered" in text
    st = seeded.statement("BiasedMF", [("noisy mean rating", 0.05)])
    assert st.epsilon == pytest.approx(seeded.epsilon() + 0.05)
    assert not st.private
    secure = _dp_setup(df, rating_tensors, secure_mode=True, seed=None)
    secure.fit(progress=False)
    text = str(secure.statement("BiasedMF"))
    assert "NOT PRIVATE" not in text and "os.urandom" in text
    assert secure.statement().private


# --- nothing exact leaks ------------------------------------------------------------------------


def test_private_model_holds_no_exact_statistic_of_the_data(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    ratings = df["rating"].to_numpy()
    offset = privacy.private_mean(ratings, low=1.0, high=5.0, epsilon=0.05, seed=1)
    model = BiasedMF(40, 30, dim=4, global_mean=offset)
    dp = _dp_setup(df, rating_tensors, model=model)
    dp.fit(progress=False)
    exact = {
        "mean": ratings.mean(),
        "median": np.median(ratings),
        "mean of user means": df.groupby("user_id")["rating"].mean().mean(),
    }
    for name, tensor in list(model.state_dict().items()):
        values = tensor.detach().double().reshape(-1).numpy()
        for stat, value in exact.items():
            assert np.abs(values - value).min() > 1e-5, f"{name} holds the exact {stat}"
    assert abs(offset - ratings.mean()) < 0.2  # noisy but useful


def test_private_mean_is_noisy_bounded_and_refuses_out_of_range_values():
    values = np.full(1000, 4.0)
    draws = [privacy.private_mean(values, low=1, high=5, epsilon=1.0) for _ in range(200)]
    # sum: Laplace(2 / (ε/2)); count: Laplace(1 / (ε/2)) times the centred mean 1; over n
    assert np.std(draws) == pytest.approx(np.sqrt(2) * np.sqrt(4**2 + 2**2) / 1000, rel=0.3)
    assert abs(np.mean(draws) - 4.0) < 0.002
    public_n = [
        privacy.private_mean(values, low=1, high=5, epsilon=1.0, n=1000) for _ in range(200)
    ]
    assert np.std(public_n) == pytest.approx(np.sqrt(2) * 4 / 1000, rel=0.3)  # replace-one: 4/ε
    with pytest.raises(ValueError, match="n=999 but the data hold 1000 units"):
        privacy.private_mean(values, low=1, high=5, epsilon=1.0, n=999)
    seeded = [privacy.private_mean(values, low=1, high=5, epsilon=1.0, seed=3) for _ in range(2)]
    assert seeded[0] == seeded[1] != 4.0
    by_user = privacy.private_mean(
        [1.0, 1.0, 1.0, 5.0], low=1, high=5, epsilon=1e3, groups=[0, 0, 0, 1], seed=0
    )
    assert by_user == pytest.approx(3.0, abs=0.01)  # mean of the two users' means
    with pytest.raises(ValueError, match=r"must lie in \[1.0, 5.0\]"):
        privacy.private_mean([0.5, 3.0], low=1, high=5, epsilon=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        privacy.private_mean([3.0], low=1, high=5, epsilon=0.0)


def test_private_mean_noise_is_exact_discrete_laplace_from_the_os():
    import random

    from recbook.privacy import randomness

    rng = random.Random(0)
    draws = np.array([randomness.discrete_laplace(3.0, rng) for _ in range(20000)])
    assert draws.dtype.kind == "i"  # integers: no floating-point noise
    p = np.exp(-1 / 3.0)
    assert draws.var() == pytest.approx(2 * p / (1 - p) ** 2, rel=0.05)
    assert abs(draws.mean()) < 0.15
    assert isinstance(randomness.scalar_rng(None), random.SystemRandom)
    with pytest.raises(ValueError, match="scale must be > 0"):
        randomness.discrete_laplace(0, rng)


# --- batch-coupled losses are refused -------------------------------------------------------------


class _InBatchSoftmax(nn.Module):
    """Two-tower scores of every user against every item of the batch (in-batch negatives)."""

    def __init__(self):
        super().__init__()
        self.users = nn.Embedding(40, 4)
        self.items = nn.Embedding(30, 4)

    def forward(self, user, item):
        return self.users(user) @ self.items(item).T


class _InBatchLoss(nn.Module):
    reduction = "mean"

    def forward(self, scores, target):
        losses = nn.functional.cross_entropy(scores, torch.arange(len(scores)), reduction="none")
        return losses.mean() if self.reduction == "mean" else losses


@pytest.mark.parametrize("clipper", CLIPPERS)
def test_batch_coupled_loss_is_refused(clipper, tiny_ratings, rating_tensors):
    df = tiny_ratings()
    model = _InBatchSoftmax()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch-coupled loss"):
        privacy.make_private(
            model,
            opt,
            privacy.tensor_loader(*rating_tensors(df), batch_size=200),
            _InBatchLoss(),
            target_epsilon=1.0,
            delta=1e-5,
            epochs=1,
            max_grad_norm=1.0,
            clipper=clipper,
        )


def test_sparse_tables_are_refused_by_the_clipper():
    with pytest.raises(ValueError, match="sparse"):
        privacy.EmbeddingRowClipping(BiasedMF(4, 4, 2, sparse=True), nn.MSELoss(), 1.0)


# --- user-level DP-SGD ----------------------------------------------------------------------------


def _clipped_user_sum_one_by_one(model, users, items, ratings, max_grad_norm):
    """The definition: each user's summed gradient on its own, clipped, then summed."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    norms = {}
    for u in users.unique():
        mask = users == u
        loss = (model(users[mask], items[mask]) - ratings[mask]).pow(2).sum()
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum(g.square().sum() for g in grads))
        norms[int(u)] = float(norm)
        factor = min(1.0, max_grad_norm / (float(norm) + 1e-6))
        for t, g in zip(total, grads):
            t += factor * g
    return total, norms


def _ordered(users, items, ratings, order):
    if order == "by user and item, no repeats":
        keep = np.unique(np.c_[users, items], axis=0, return_index=True)[1]
        users, items, ratings = users[keep], items[keep], ratings[keep]
    if order != "random":
        by_item = torch.argsort(items, stable=True) if "item" in order else torch.arange(len(items))
        idx = by_item[torch.argsort(users[by_item], stable=True)]
        users, items, ratings = users[idx], items[idx], ratings[idx]
    return users, items, ratings


@pytest.mark.parametrize(
    "order", ["random", "by user", "by user and item", "by user and item, no repeats"]
)
def test_user_level_clipping_equals_per_user_clipping(order):
    """Every path of the per-user sums (sorted fallback, runs of a batch in PoissonBatches'
    order, no repeated (user, item) pair) against the definition, one user at a time."""
    model = _spread_mf()
    users, items, ratings = _batch(n=80)
    items[:6] = items[0]  # repeated items within one user: row sums before the norm
    users[:6] = users[0]
    users, items, ratings = _ordered(users, items, ratings, order)
    pairs = users * 10 + items
    assert (len(pairs.unique()) < len(pairs)) == ("no repeats" not in order)
    expected, norms = _clipped_user_sum_one_by_one(model, users, items, ratings, 8.0)
    assert 0.2 < np.mean([n > 8.0 for n in norms.values()]) < 0.9
    criterion = privacy.EmbeddingRowClipping(model, nn.MSELoss(), 8.0, unit_input=0)
    model.train()
    loss = criterion(model(users, items), ratings)
    unit_norm, _ = loss.unit_norms(loss.lookup_gradients())
    want = torch.tensor([norms[int(u)] for u in users.unique()])
    torch.testing.assert_close(unit_norm, want, atol=1e-4, rtol=1e-5)
    loss.backward()
    for p, want in zip([p for p in model.parameters() if p.requires_grad], expected):
        torch.testing.assert_close(p.grad, want, atol=1e-5, rtol=1e-5)


def test_segments_match_a_sort():
    g = torch.Generator().manual_seed(0)
    for keys in [
        torch.randint(0, 30, (200,), generator=g),
        torch.sort(torch.randint(0, 30, (200,), generator=g))[0],
        torch.arange(50) * 3,
        torch.tensor([7]),
        torch.zeros(0, dtype=torch.long),
    ]:
        index, count, distinct = clipping._segments(keys)
        uniq, want = torch.unique(keys, return_inverse=True)
        assert torch.equal(index, want) and count == len(uniq)
        assert distinct == (len(uniq) == len(keys))


def _user_level(df, rating_tensors, **kwargs):
    """User-level DP-SGD on the 40 users of the tiny ratings."""
    return _dp_setup(
        df,
        rating_tensors,
        clipper="embedding_rows",
        privacy_unit="user",
        delta=privacy.default_delta(40),
        **kwargs,
    )


def test_user_level_make_private_samples_whole_users(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    # 8 expected users per step, from the public number of users
    dp = _user_level(df, rating_tensors, sample_rate=8 / 40)
    assert dp.n_units == 40 and dp.privacy_unit == "user" and dp.sample_rate == 0.2
    assert len(dp.loader) == 5 and not dp.sample_rate_from_rows
    per_user = df.groupby("user_id").size()
    for users, items, _ in dp.loader:
        chosen = users.unique()
        assert len(users) == per_user.loc[chosen.numpy()].sum()  # all rows of each chosen user
        key = users * 1000 + items  # ordered by user, then item: the clipper's one-pass path
        assert bool((key[1:] >= key[:-1]).all())
    dp.fit(progress=False)
    assert 0.95 * 4.0 <= dp.epsilon() <= 4.0 * 1.001
    assert "user level" in str(dp.statement())


def test_user_level_q_from_rows_warns_and_is_listed_as_not_covered(tiny_ratings, rating_tensors):
    df = tiny_ratings()
    with pytest.warns(UserWarning, match="pass sample_rate = expected users per step / 40"):
        dp = _user_level(df, rating_tensors)
    assert dp.sample_rate_from_rows
    assert any("sampling rate q" in c for c in dp.statement().not_covered)
    with pytest.raises(ValueError, match="clipper='opacus' samples at q = 1/len"):
        _dp_setup(df, rating_tensors, sample_rate=0.5)
    with pytest.raises(ValueError, match="sample_rate must be in"):
        _dp_setup(df, rating_tensors, clipper="embedding_rows", sample_rate=1.5)


def test_fit_refuses_a_diverging_run(tiny_ratings, rating_tensors):
    dp = _dp_setup(tiny_ratings(), rating_tensors, lr=1e30, eps=0.5)
    with pytest.raises(ValueError, match="training diverged: lower the learning rate"):
        dp.fit(progress=False)


def test_dp_benchmark_runs_on_the_movielens_fixture(capsys):
    import importlib.util
    import warnings
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_dp", root / "benchmarks" / "dp.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = ["--dataset", "movielens-100k", "--path", str(root / "data/fixtures/ml-100k")]
    args += ["--repeats", "1", "--epochs", "2", "--batch-size", "4", "--curve", "8"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is an unverified copy, by design
        assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "DP-SGD embedding_rows, secure" in out and "user level, secure" in out
    assert "test RMSE vs total epsilon" in out


@pytest.mark.parametrize("unit_input", [None, 0])
def test_an_empty_poisson_batch_adds_nothing(unit_input):
    model = _spread_mf()
    criterion = privacy.EmbeddingRowClipping(model, nn.MSELoss(), 1.0, unit_input=unit_input)
    model.train()
    empty = torch.zeros(0, dtype=torch.long)
    criterion(model(empty, empty), torch.zeros(0)).backward()
    for p in model.parameters():
        assert p.grad is None or not p.grad.any()


@pytest.mark.parametrize("clipper", CLIPPERS)
def test_training_survives_empty_poisson_batches(clipper):
    torch.manual_seed(0)
    model = BiasedMF(5, 5, 2, global_mean=3.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    u, i, r = torch.randint(0, 5, (20,)), torch.randint(0, 5, (20,)), torch.rand(20) * 4 + 1
    dp = privacy.make_private(
        model,
        opt,
        privacy.tensor_loader(u, i, r, batch_size=1),  # q = 1/20: about a third of steps empty
        nn.MSELoss(),
        target_epsilon=5.0,
        delta=1e-3,
        epochs=2,
        max_grad_norm=1.0,
        clipper=clipper,
        secure_mode=False,
        seed=0,
    )
    history = dp.fit(progress=False)
    assert dp.steps == 40 and np.isfinite(history.frame["train_loss"]).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("secure", [False, True])
def test_noise_has_std_sigma_times_clip(secure):
    params = [nn.Parameter(torch.zeros(4000, 5)), nn.Parameter(torch.zeros(3000, 1))]
    opt = mechanisms._noising_optimizer()(
        torch.optim.SGD(params, lr=1.0),
        noise_multiplier=1.5,
        max_grad_norm=2.0,
        expected_batch_size=10,
        generator=torch.Generator().manual_seed(0),
        secure_mode=secure,
    )
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.accumulate()
    opt.add_noise()
    noise = torch.cat([p.grad.reshape(-1) for p in params])
    assert float(noise.std()) == pytest.approx(3.0, rel=0.03)
    assert abs(float(noise.mean())) < 0.05
    assert params[1].grad.std() == pytest.approx(3.0, rel=0.1)  # every parameter gets noise


@pytest.mark.parametrize(
    "clipper, unit",
    [("opacus", "example"), ("embedding_rows", "example"), ("embedding_rows", "user")],
)
def test_fit_is_the_plain_dp_sgd_loop(clipper, unit):
    """DPTraining.fit (through training.fit) takes exactly the steps of the textbook loop,
    empty Poisson batches included: same weights and same mean losses, bit for bit."""
    g = torch.Generator().manual_seed(1)
    rows = (torch.randint(0, 5, (30,), generator=g), torch.randint(0, 5, (30,), generator=g))
    rows += (torch.rand(30, generator=g) * 4 + 1,)

    def setup():
        torch.manual_seed(0)
        model = BiasedMF(5, 5, 2, global_mean=3.0)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
        return privacy.make_private(
            model,
            opt,
            privacy.tensor_loader(*rows, batch_size=2),  # q = 1/15: some steps are empty
            nn.MSELoss(),
            target_epsilon=5.0,
            delta=1e-2,
            epochs=2,
            max_grad_norm=1.0,
            clipper=clipper,
            secure_mode=False,
            seed=3,
            privacy_unit=unit,
            sample_rate=1 / 15,  # q = 1/15 at both levels: 15 steps per epoch
        )

    dp = setup()
    history = dp.fit(progress=False)
    by_hand, losses, empty = setup(), [], 0
    for _ in range(2):
        by_hand.module.train()
        total, count = 0.0, 0
        for *inputs, target in by_hand.loader:
            by_hand.optimizer.zero_grad(set_to_none=True)
            loss = by_hand.criterion(by_hand.module(*inputs), target)
            loss.backward()
            by_hand.optimizer.step()
            empty += len(target) == 0
            if len(target):
                total += float(loss.detach()) * len(target)
                count += len(target)
        losses.append(total / count)
    assert empty > 0
    assert history.frame["train_loss"].tolist() == losses
    for ours, theirs in zip(dp.module.parameters(), by_hand.module.parameters()):
        assert torch.equal(ours, theirs)
    assert dp.steps == by_hand.steps


def test_fit_shows_epsilon_and_the_seeded_label_in_the_bar(
    monkeypatch, tiny_ratings, rating_tensors
):
    seen = {}
    real_tqdm = training.tqdm

    def spy(*args, **kwargs):
        seen["bar"] = real_tqdm(*args, **kwargs)
        return seen["bar"]

    monkeypatch.setattr(training, "tqdm", spy)
    dp = _dp_setup(tiny_ratings(), rating_tensors, epochs=1)
    dp.fit(desc="DP-SGD test")
    bar = seen["bar"]
    assert bar.desc == f"DP-SGD test [{privacy.SEEDED_LABEL}]"
    assert bar.postfix.endswith(f"ε={dp.epsilon():.3f}") and "train_loss=" in bar.postfix
    calls = []
    monkeypatch.setattr(type(dp), "epsilon", lambda self: calls.append(1) or 0.0)
    dp.fit(epochs=1, progress=False)
    assert not calls  # ε is computed only for a bar that is shown


def test_a_private_run_returns_no_exact_training_loss(tiny_ratings, rating_tensors):
    private = _dp_setup(tiny_ratings(), rating_tensors, secure_mode=True, seed=None)
    assert "train_loss" not in private.fit(progress=False).frame
    demo = _dp_setup(tiny_ratings(), rating_tensors)  # seeded demo: kept for inspection
    assert "train_loss" in demo.fit(progress=False).frame

"""Tests of recbook.federated on a tiny synthetic rating problem (seconds, no Ray)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recbook import federated as fl
from recbook import privacy
from recbook.models_torch import BiasedMF

N_USERS, N_ITEMS, DIM = 12, 9, 3


def _ratings(seed: int = 0, per_user: int = 6) -> pd.DataFrame:
    """Ratings with structure a model can learn: user bias + item bias + noise, clipped 1..5."""
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 1, N_USERS), rng.normal(0, 1, N_ITEMS)
    rows = [
        (u, int(i), float(np.clip(np.rint(3 + bu[u] + bi[i] + rng.normal(0, 0.3)), 1, 5)))
        for u in range(N_USERS)
        for i in rng.choice(N_ITEMS, per_user, replace=False)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


def _split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    test_mask = df.groupby("user_id").cumcount() == 0
    return df[~test_mask].reset_index(drop=True), df[test_mask].reset_index(drop=True)


def _model_fn():
    return BiasedMF(N_USERS, N_ITEMS, DIM, global_mean=3.0, init_std=0.3)


@pytest.fixture()
def clients() -> list[fl.Client]:
    train, test = _split(_ratings())
    groups = {"a": np.arange(0, 5), "b": np.arange(5, 9), "c": np.arange(9, 12)}
    return fl.make_clients(train, test, groups)


def test_one_client_full_batch_equals_centralised_gradient_descent(clients):
    """FedAvg with one client, E=1 and B=inf is exactly one full-batch GD step per round."""
    everyone = fl.pooled(clients)
    cfg = fl.FedAvgConfig(rounds=3, local_epochs=1, batch_size=None, lr=0.3)
    fed = fl.fedavg(fl.init_model(_model_fn, 0), [everyone], cfg, progress=False).model

    central = fl.init_model(_model_fn, 0)
    opt = torch.optim.SGD([p for p in central.parameters() if p.requires_grad], lr=0.3)
    u, i, r = everyone.train
    for _ in range(3):
        opt.zero_grad()
        torch.mean((central(u, i) - r) ** 2).backward()
        opt.step()
    for (name, a), b in zip(fed.state_dict().items(), central.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_aggregate_is_example_weighted_mean_of_client_models(clients):
    """One round with every client: the shared tensors are the n_k-weighted mean of the
    models each client would produce alone from the same start."""
    cfg = fl.FedAvgConfig(rounds=1, local_epochs=2, batch_size=4, lr=0.2, seed=3)
    result = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    alone, weights = [], []
    for c in clients:
        m = fl.init_model(_model_fn, 0)
        n = fl.local_update(
            m, c.train, epochs=2, batch_size=4, lr=0.2, seed=fl.round_seed(3, 1, c.client_id)
        )
        alone.append(fl.shared_state(m))
        weights.append(n)
    w = np.asarray(weights, dtype=float) / sum(weights)
    got = fl.shared_state(result.model)
    for name in ("item_factors.weight", "item_bias.weight"):
        expect = sum(wk * s[name] for wk, s in zip(w, alone))
        torch.testing.assert_close(got[name], expect, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(alone[0]["item_bias.weight"], alone[1]["item_bias.weight"])


def test_user_rows_stay_with_their_client_and_are_never_sent(clients):
    cfg = fl.FedAvgConfig(rounds=1, client_fraction=1 / 3, batch_size=4, lr=0.2, seed=1)
    start = fl.init_model(_model_fn, 0)
    before = start.user_factors.weight.detach().clone()
    result = fl.fedavg(start, clients, cfg, progress=False)
    assert result.history.loc[1, "reported"] == 1
    after = result.model.user_factors.weight.detach()
    moved = torch.nonzero((after - before).abs().sum(1) > 0).flatten().numpy()
    owners = [c for c in clients if np.isin(moved, c.users).all()]
    assert len(moved) > 0 and len(owners) == 1  # only the one sampled client's users changed
    sent = fl.shared_state(result.model)
    assert not any(name.startswith("user_") for name in sent)
    assert result.history.loc[1, "bytes_up"] == fl.payload_bytes(
        {n: t for n, t in sent.items() if n != "global_mean"}
    )


def test_all_clients_dropping_out_raises_or_skips_explicitly(clients):
    cfg = fl.FedAvgConfig(rounds=2, dropout=0.999999, seed=0)
    expected = r"none of the 3 sampled clients reported \(3 dropped out, 0 timed out\)"
    with pytest.raises(fl.EmptyRoundError, match=expected):
        fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    skip = fl.FedAvgConfig(rounds=2, dropout=0.999999, on_empty_round="skip", seed=0)
    start = fl.init_model(_model_fn, 0)
    before = fl.shared_state(start)
    result = fl.fedavg(start, clients, skip, progress=False)
    assert result.history["skipped"].all() and (result.history["reported"] == 0).all()
    for name, t in fl.shared_state(result.model).items():
        torch.testing.assert_close(t, before[name])


def test_stragglers_and_dropout_are_counted(clients):
    cfg = fl.FedAvgConfig(rounds=4, straggler_fraction=1.0, straggler_work=0.5, batch_size=2)
    h = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False).history
    full = sum(c.n_train for c in clients)
    assert (h["partial"] == 3).all() and (h["examples"] < full).all()
    drop = fl.FedAvgConfig(rounds=4, straggler_fraction=1.0, straggler_policy="drop",
                           on_empty_round="skip")  # fmt: skip
    h = fl.fedavg(fl.init_model(_model_fn, 0), clients, drop, progress=False).history
    assert (h["timed_out"] == 3).all() and h["skipped"].all()


def test_fedavg_learns_on_the_toy_problem(clients):
    cfg = fl.FedAvgConfig(rounds=15, batch_size=4, lr=0.2)
    result = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    assert result.history["rmse"].iloc[-1] < result.history["rmse"].iloc[0]
    assert result.rounds_to(result.history["rmse"].min()) is not None


def test_clip_update_bounds_the_norm():
    delta = {"a": torch.full((4,), 3.0), "b": torch.full((2, 2), 4.0)}
    clipped, norm = fl.clip_update(delta, 1.0)
    assert norm == pytest.approx(math.sqrt(4 * 9 + 4 * 16))
    total = math.sqrt(sum(float((t**2).sum()) for t in clipped.values()))
    assert total == pytest.approx(1.0, rel=1e-6)
    same, _ = fl.clip_update(delta, 100.0)
    torch.testing.assert_close(same["a"], delta["a"])


def test_dp_epsilon_accountant_behaves():
    e1 = fl.dp_epsilon(1.0, 0.1, 20, 1e-5)
    assert 0 < e1 < math.inf
    assert fl.dp_epsilon(2.0, 0.1, 20, 1e-5) < e1  # more noise, less loss of privacy
    assert fl.dp_epsilon(1.0, 0.1, 40, 1e-5) > e1  # more rounds, more loss
    assert fl.dp_epsilon(0.0, 0.1, 20, 1e-5) == math.inf
    z = privacy.noise_multiplier_for(e1, 1e-5, 0.1, 20)  # the one calibrator (recbook.privacy)
    assert z == pytest.approx(1.0, rel=0.02)
    assert not hasattr(fl, "noise_for_epsilon")
    with pytest.raises(ValueError, match="sample_rate"):
        fl.dp_epsilon(1.0, 1.5, 20, 1e-5)


def test_dp_fedavg_reports_epsilon_and_clips(clients):
    dp = fl.DPConfig(clip_norm=0.01, noise_multiplier=0.5, delta=1e-2, seed=0)
    cfg = fl.FedAvgConfig(rounds=3, client_fraction=0.9, batch_size=4, lr=0.2, dp=dp)
    result = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    assert result.epsilon == pytest.approx(fl.dp_epsilon(0.5, 0.9, 3, 1e-2))
    assert "median_update_norm" not in result.history  # a private run shows no exact norm
    check = fl.fedavg(
        fl.init_model(_model_fn, 0), clients,
        fl.FedAvgConfig(rounds=3, client_fraction=0.9, batch_size=4, lr=0.2,
                        dp=fl.DPConfig(clip_norm=0.01, noise_multiplier=0.0, delta=1e-2, seed=0)),
        progress=False,
    )  # fmt: skip
    assert (check.history["median_update_norm"].dropna() > 0.01).all()  # clipping was active
    assert result.privacy.randomness == fl.SEEDED_LABEL  # a seeded run says it is a demo
    assert "not private" in result.privacy.statement()


def test_dp_delta_must_be_below_one_over_clients(clients):
    cfg = fl.FedAvgConfig(rounds=1, dp=fl.DPConfig(delta=0.5, seed=0))
    with pytest.raises(ValueError, match=r"< 1/n"):
        fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    default = fl.DPConfig().delta_for(len(clients))
    assert default == pytest.approx(0.1 / len(clients))  # 1/(10 K): the unit is the client


def test_private_runs_use_os_randomness_by_default(clients):
    """Two DP runs with no seed get different noise (OS entropy); two seeded runs are equal."""

    def final(seed):
        dp = fl.DPConfig(clip_norm=0.05, noise_multiplier=1.0, delta=1e-2, seed=seed)
        cfg = fl.FedAvgConfig(rounds=2, client_fraction=0.9, batch_size=4, lr=0.2, dp=dp)
        res = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
        return res, fl.shared_state(res.model)["item_bias.weight"]

    secure_a, a = final(None)
    _, b = final(None)
    assert secure_a.privacy.randomness == fl.SECURE_LABEL
    assert not torch.equal(a, b)
    _, c = final(3)
    _, d = final(3)
    torch.testing.assert_close(c, d)
    r = fl.Randomness(None)
    assert r.secure and r.gaussian((20000,), 2.0).std().item() == pytest.approx(2.0, rel=0.05)


def test_distributed_dp_matches_central_noise_and_hides_updates(clients):
    """Distributed DP: clients clip and noise their own updates; the server gets the sum
    through secure aggregation. Without noise it equals central DP's clipped sum."""
    runs = {}
    for mode in ("central", "distributed"):
        dp = fl.DPConfig(clip_norm=0.05, noise_multiplier=0.0, delta=1e-2, mode=mode, seed=1)
        cfg = fl.FedAvgConfig(rounds=2, client_fraction=0.9, batch_size=4, lr=0.2, dp=dp)
        runs[mode] = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    a = fl.shared_state(runs["central"].model)
    b = fl.shared_state(runs["distributed"].model)
    for name in ("item_factors.weight", "item_bias.weight"):
        torch.testing.assert_close(a[name], b[name], atol=len(clients) * 2**-15, rtol=0)
    assert "median_update_norm" not in runs["distributed"].history  # server sees no update
    # noisy: the per-client shares add up to sigma * C on the sum, and the report says so
    dp = fl.DPConfig(clip_norm=0.05, noise_multiplier=1.0, delta=1e-2, mode="distributed")
    cfg = fl.FedAvgConfig(rounds=3, client_fraction=0.5, batch_size=4, lr=0.2, dp=dp)
    res = fl.fedavg(fl.init_model(_model_fn, 0), clients, cfg, progress=False)
    p = res.privacy
    assert p.mode == "distributed" and p.randomness == fl.SECURE_LABEL
    assert p.epsilon == pytest.approx(fl.dp_epsilon(1.0, 0.5, 3, 1e-2))
    if p.max_participation:
        assert p.epsilon_vs_server == pytest.approx(
            fl.dp_epsilon(1.0, 1.0, p.max_participation, 1e-2)
        )
    assert "not trusted" in p.statement()
    with pytest.raises(ValueError, match="every sampled client"):
        fl.FedAvgConfig(dropout=0.1, dp=fl.DPConfig(mode="distributed"))


def test_no_exact_data_statistic_in_a_private_model(clients):
    """The private model's state holds the public rating midpoint, not the clients' mean."""
    train, _ = _split(_ratings())
    data_mean = float(train["rating"].mean())

    def public_model():
        return BiasedMF(N_USERS, N_ITEMS, DIM, global_mean=fl.public_mean(), init_std=0.3)

    dp = fl.DPConfig(clip_norm=0.05, noise_multiplier=1.0, delta=1e-2)
    cfg = fl.FedAvgConfig(rounds=2, client_fraction=0.9, batch_size=4, lr=0.2, dp=dp)
    res = fl.fedavg(fl.init_model(public_model, 0), clients, cfg, progress=False)
    state = res.model.state_dict()
    frozen = {n for n, p in res.model.named_parameters() if not p.requires_grad}
    assert frozen == {"global_mean"}
    assert float(state["global_mean"]) == fl.public_mean() == 3.0
    assert abs(float(state["global_mean"]) - data_mean) > 1e-3
    with pytest.raises(ValueError, match="rating scale"):
        fl.public_mean((5, 1))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: fl.FedAvgConfig(lr=float("nan")), "lr must be a finite"),
        (lambda: fl.FedAvgConfig(lr=0), "lr must be > 0"),
        (lambda: fl.FedAvgConfig(batch_size=0), "batch_size"),
        (lambda: fl.FedAvgConfig(rounds=0), "rounds"),
        (lambda: fl.FedAvgConfig(client_fraction=1.5), "client_fraction"),
        (lambda: fl.DPConfig(delta=2), "delta must be in"),
        (lambda: fl.DPConfig(clip_norm=float("nan")), "clip_norm must be a finite"),
        (lambda: fl.DPConfig(noise_multiplier=-1), "noise_multiplier must be >= 0"),
        (lambda: fl.DPConfig(mode="local"), "unknown DPConfig.mode"),
        (lambda: fl.clip_update({"a": torch.ones(2)}, clip_norm=-1), "clip_norm must be > 0"),
        (lambda: fl.dp_epsilon(1.0, 1.5, 3, 1e-5), "sample_rate"),
    ],
)
def test_bad_configuration_is_refused_up_front(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_local_only_without_test_data_is_a_clear_error(clients):
    empty = [
        fl.Client(c.client_id, c.users, c.train, tuple(t[:0] for t in c.test)) for c in clients
    ]
    with pytest.raises(ValueError, match="no client has test ratings"):
        fl.local_only(_model_fn, empty, fl.FedAvgConfig(rounds=1), progress=False)


def test_secure_aggregation_masks_cancel_only_in_the_sum():
    rng = np.random.default_rng(0)
    updates = [rng.normal(size=50) for _ in range(4)]
    for seed in (7, None):  # seeded demo masks and OS-entropy masks
        masked = fl.masked_updates(updates, seed=seed)
        np.testing.assert_allclose(fl.unmask_sum(masked), np.sum(updates, 0), atol=4 * 2**-16)
        # a single masked vector tells nothing: it does not decode to that client's update
        alone = masked[0].astype(np.int32) / 2**16
        assert np.abs(alone - updates[0]).mean() > 1000
    with pytest.raises(ValueError, match="same shape"):
        fl.masked_updates([np.zeros(3), np.zeros(4)])


def test_secure_aggregation_refuses_a_sum_that_would_overflow():
    """20000 + 20000 at scale 2^16 passes 2^31 and would wrap to -25536: refused instead."""
    big = [np.array([20000.0]), np.array([20000.0])]
    with pytest.raises(OverflowError, match="32-bit fixed-point range"):
        fl.masked_updates(big)
    ok = fl.masked_updates([np.array([2000.0]), np.array([2000.0])])
    assert fl.unmask_sum(ok)[0] == 4000.0
    with pytest.raises(OverflowError):
        fl.unmask_sum(ok, bound=20000.0)
    with pytest.raises(ValueError, match="above the agreed bound"):
        fl.masked_updates([np.array([3.0]), np.array([1.0])], bound=2.0)


def test_partitions_and_errors():
    users = pd.DataFrame({"user_id": np.arange(10), "region": list("aabbbccccc")})
    by_region = fl.groups_by_column(users, "region")
    assert [len(v) for v in by_region.values()] == [2, 3, 5]
    iid = fl.groups_random(users.user_id, 3, seed=0)
    assert sorted(np.concatenate(list(iid.values())).tolist()) == list(range(10))
    small = fl.groups_of_size(users, 2, within="region")
    assert all(users.set_index("user_id").loc[v, "region"].nunique() == 1 for v in small.values())
    with pytest.raises(KeyError, match="no column 'city'"):
        fl.groups_by_column(users, "city")
    train, test = _split(_ratings())
    with pytest.raises(ValueError, match="belong to no client"):
        fl.make_clients(train, test, {"a": np.arange(5)})
    with pytest.raises(ValueError, match="in two groups"):
        fl.make_clients(train, test, {"a": np.arange(7), "b": np.arange(6, 12)})
    with pytest.raises(ValueError, match="client_fraction"):
        fl.FedAvgConfig(client_fraction=0)


def test_partition_loads_only_its_own_users():
    users = pd.DataFrame({"user_id": np.arange(N_USERS), "region": list("abc" * 4)})
    train, test = _split(_ratings())
    label, client = fl.partition(train, test, users, "region", 1)
    assert label == "b" and client.client_id == 1
    mine = set(users.loc[users.region == "b", "user_id"])
    assert set(client.train[0].tolist()) <= mine and set(client.test[0].tolist()) <= mine
    assert client.n_train == int(train["user_id"].isin(list(mine)).sum())
    assert fl.num_partitions(users, "region") == 3
    with pytest.raises(ValueError, match="partition-id must be <= 2"):
        fl.partition(train, test, users, "region", 3)
    with pytest.raises(KeyError, match="no column 'zip'"):
        fl.partition(train, test, users, "zip", 0)


def test_flower_message_round_trip():
    pytest.importorskip("flwr")
    state = {"item_bias.weight": torch.arange(6.0).reshape(3, 2)}
    back = fl.arrays_to_state(fl.to_arrays(state))
    torch.testing.assert_close(back["item_bias.weight"], state["item_bias.weight"])
    assert fl.flower_message_bytes(state) >= fl.payload_bytes(state)


def test_fedavg_refuses_a_client_without_training_ratings(clients):
    empty = fl.Client(99, np.array([0]), tuple(t[:0] for t in clients[0].train),
                      clients[0].test, label="empty")  # fmt: skip
    cfg = fl.FedAvgConfig(rounds=1, batch_size=4, lr=0.2)
    with pytest.raises(ValueError, match=r"no training ratings.*'empty'"):
        fl.fedavg(fl.init_model(_model_fn, 0), [*clients, empty], cfg, progress=False)


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("rating", float("nan"), r"train\['rating'\] holds NaN"),
        ("item_id", 999, r"train\['item_id'\] must lie in 0..5"),
        ("item_id", -1, r"train\['item_id'\] must lie in"),
    ],
)
def test_make_clients_refuses_nan_ratings_and_items_outside_the_catalogue(column, value, match):
    train = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [1, 2, 3], "rating": [4.0, 3.0, 5.0]})
    test = train.iloc[:1].copy()
    groups = {"a": [0], "b": [1]}
    assert len(fl.make_clients(train, test, groups, n_items=6)) == 2
    bad = train.copy()
    bad.loc[1, column] = value
    with pytest.raises(ValueError, match=match):
        fl.make_clients(bad, test, groups, n_items=6)


def test_seeded_secure_aggregation_draws_fresh_masks_every_round(monkeypatch):
    import importlib

    fedavg_module = importlib.import_module("recbook.federated.fedavg")  # the module, not fedavg()

    seen = []
    real = fedavg_module.masked_updates

    def spy(updates, **kw):
        seen.append(kw.get("seed"))
        return real(updates, **kw)

    monkeypatch.setattr(fedavg_module, "masked_updates", spy)
    rand = fl.Randomness(3)
    upd = [{"w": torch.zeros(3)}, {"w": torch.ones(3)}]
    for rnd in (1, 2):
        fedavg_module._secure_sum(upd, 2.0, rand, rnd)
    assert len(seen) == 2 and seen[0] != seen[1]

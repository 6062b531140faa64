"""Flower's own DP wrappers in the Flower App (run-config ``dp``), with ε stated by recbook's
accountant (:mod:`recbook.federated.flower`).

The quick tests check the statement, the App's wiring of Flower's wrappers and the
configuration errors. The simulation test (marker ``flower``: it starts a
``flower-superlink --simulation`` on 127.0.0.1 for a bounded time) runs the App with
``DifferentialPrivacyServerSideFixedClipping`` and with
``DifferentialPrivacyClientSideFixedClipping`` + ``fixedclipping_mod``, without noise so the
result is exact, and checks both against the from-scratch loop's clipped DP-FedAvg - and that
the clip norm is small enough to change the result (the wrappers really clip). Flower's
adaptive clipping is refused with an error naming the alternatives.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
import torch
from flower_defaults import APP, DEFAULTS, ROOT
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)
from recbook_flower import strategy
from recbook_flower.task import TaskConfig

from recbook import datasets, splits
from recbook import federated as fl
from recbook.federated import flower
from recbook.models_torch import BiasedMF

FIXTURE = ROOT / "data" / "fixtures" / "ml-100k"
CLIP = 0.05
RUN = dict(
    dataset="movielens-100k", data_path=str(FIXTURE), partition_column="gender",
    num_rounds=2, local_epochs=1, batch_size=4, lr=0.2, l2=0.0, dim=3, seed=0, test_size=0.2,
)  # fmt: skip
CONFIG = DEFAULTS | {k.replace("_", "-"): v for k, v in RUN.items()}


def _task(**overrides) -> TaskConfig:
    """The App's config for ``RUN`` with ``overrides`` (Python names), as Flower passes it."""
    return TaskConfig.from_run_config(
        CONFIG | {k.replace("_", "-"): v for k, v in overrides.items()}
    )


def _privacy(mode: str, n_nodes: int = 8, **settings) -> dict | None:
    """recbook's statement for ``RUN``'s rounds at the App's default DP settings."""
    base = {"noise_multiplier": 1.0, "clip_norm": 0.5, "rounds": RUN["num_rounds"]}
    return flower.flower_privacy(mode, n_nodes=n_nodes, **(base | settings))


def test_flower_dp_epsilon_comes_from_recbooks_accountant():
    report = _privacy("server-clipping", noise_multiplier=1.2)
    assert report["delta"] == pytest.approx(1 / 80)  # 1 / (10 K)
    want = fl.dp_epsilon(0.6, 1.0, RUN["num_rounds"], 1 / 80)  # replace-one z/2, q = 1
    assert report["epsilon"] == pytest.approx(want) and math.isfinite(want)
    assert "server is trusted" in report["statement"] and "q = 1" in report["statement"]
    assert "fixedclipping_mod" in _privacy("client-clipping", noise_multiplier=1.2)["statement"]
    assert _privacy("off") is None
    silent = _privacy("server-clipping", noise_multiplier=0.0)
    assert silent["epsilon"] == math.inf and "NOT private" in silent["statement"]
    with pytest.raises(ValueError, match="Flower DP mode"):
        _privacy("local")


def test_the_app_states_recbooks_accounting_for_its_run_config():
    assert strategy.privacy(_task()) is None  # dp off by default
    cfg = _task(dp="server-clipping", dp_clip=0.3, dp_noise_multiplier=1.2, num_partitions=8)
    assert strategy.privacy(cfg) == _privacy("server-clipping", noise_multiplier=1.2, clip_norm=0.3)


def test_the_apps_epsilon_equals_a_hand_dp_accounting_computation():
    """Flower's equal-weight average of K clipped updates plus N(0, (zC/K)^2), one node
    replaced: the sum moves by up to 2C against noise zC, i.e. a Gaussian mechanism with
    multiplier z/2, composed over the rounds without sampling."""
    z, rounds, k, delta = 1.6, 5, 8, 1e-3
    report = flower.flower_privacy(
        "server-clipping", n_nodes=k, rounds=rounds, noise_multiplier=z, clip_norm=0.5,
        delta=delta,
    )  # fmt: skip
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(z / 2), rounds)
    assert report["epsilon"] == pytest.approx(acc.get_epsilon(delta), rel=1e-9)
    assert report["effective_noise_multiplier"] == z / 2 and report["adjacency"] == "replace-one"
    assert "replace-one" in report["statement"]


def test_the_apps_epsilon_matches_flowers_own_accountant_told_z_over_2():
    """Flower's accountant (no amplification) offers only add-or-remove adjacency; told the
    replace-one multiplier z/2 it gives recbook's number. Told Flower's z, as its wrappers
    would, it states a smaller epsilon than the mechanism run (README, upstream notes)."""
    from flwr.supercore.privacy_accounting import (
        GaussianPrivacyEvent,
        NeighboringRelation,
        PrivacyConfig,
        SamplingMethod,
    )
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    k, z, rounds, delta = 8, 1.6, 5, 1e-3

    def flowers(multiplier: float) -> float:
        config = PrivacyConfig(
            delta, k, NeighboringRelation.ADD_OR_REMOVE_ONE, SamplingMethod.NO_AMPLIFICATION
        )
        acc = RdpAccountant(config)
        acc.compose(GaussianPrivacyEvent(multiplier, sample_size=k, population_size=k), rounds)
        return acc.get_epsilon(delta)

    ours = flower.flower_privacy(
        "server-clipping", n_nodes=k, rounds=rounds, noise_multiplier=z, clip_norm=0.5,
        delta=delta,
    )["epsilon"]  # fmt: skip
    assert ours == pytest.approx(flowers(z / 2), rel=1e-6)
    assert flowers(z) < ours


def test_the_statement_warns_when_there_are_too_few_units():
    few = _privacy("server-clipping", n_nodes=8)
    assert few["warning"] and "WARNING: only 8 units" in few["statement"]
    assert str(flower.MIN_UNITS) in few["warning"]
    many = _privacy("server-clipping", n_nodes=flower.MIN_UNITS)
    assert many["warning"] is None and "WARNING" not in many["statement"]


def test_adaptive_clipping_is_refused_with_the_alternatives():
    with pytest.raises(ValueError, match="server-clipping.*client-clipping"):
        _privacy("server-adaptive")
    with pytest.raises(ValueError, match="run-config dp.*not offered.*set dp"):
        _task(dp="server-adaptive")


def test_the_apps_noise_comes_from_an_os_seeded_generator(monkeypatch):
    """The wrapper draws its noise from recbook's generator (a fresh OS seed every round)
    through the hook Flower's fixed-clipping wrappers call, never numpy's global state."""
    seeds = []
    real = strategy.os_generator

    def spy():
        seeds.append(1)
        return real()

    monkeypatch.setattr(strategy, "os_generator", spy)
    wrapped = strategy.dp_strategy(FedAvg(), _task(dp="server-clipping", dp_clip=1.0), 4)
    zeros = ArrayRecord({"w": Array(np.zeros(20000, dtype=np.float32))})
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    a = wrapped._add_noise_to_aggregated_arrays(zeros)["w"].numpy()
    b = wrapped._add_noise_to_aggregated_arrays(zeros)["w"].numpy()
    assert len(seeds) == 2 and not np.allclose(a, b)  # fresh generator each round
    assert (np.random.get_state()[1] == state).all()  # numpy's global state untouched
    assert a.std() == pytest.approx(1.0 * 1.0 / 4, rel=0.05) and a.dtype == np.float32
    assert "_add_noise_to_aggregated_arrays" in vars(
        DifferentialPrivacyServerSideFixedClipping
    ).keys() | {
        n for c in DifferentialPrivacyServerSideFixedClipping.__mro__ for n in vars(c)
    }  # Flower still has the hook the App overrides


@pytest.mark.parametrize(
    "dp, match",
    [
        ({"dp": "local"}, "run-config dp"),
        ({"dp": "server-clipping", "dp_clip": 0.0}, "dp-clip"),
        ({"dp": "server-clipping", "dp_noise_multiplier": -1.0}, "dp-noise-multiplier"),
        ({"dp": "server-clipping", "dp_clip": float("nan")}, "dp-clip"),
    ],
)
def test_flower_dp_refuses_bad_settings(dp, match):
    with pytest.raises(ValueError, match=match):
        _task(**dp)


def test_flower_dp_refuses_a_delta_of_one_over_k_or_more():
    with pytest.raises(ValueError, match="1/n"):
        _privacy("server-clipping", delta=0.2)


def test_flower_dp_strategy_is_flowers_wrapper():
    base = FedAvg()
    assert strategy.dp_strategy(base, _task(), 2) is base
    server = strategy.dp_strategy(base, _task(dp="server-clipping", dp_clip=0.3), 2)
    client = strategy.dp_strategy(base, _task(dp="client-clipping"), 2)
    assert isinstance(server, DifferentialPrivacyServerSideFixedClipping)
    assert isinstance(client, DifferentialPrivacyClientSideFixedClipping)
    assert server.clipping_norm == 0.3 and server.num_sampled_clients == 2


def test_under_dp_the_app_weighs_updates_equally():
    plain, dp = (
        strategy.build_strategy(_task()),
        strategy.build_strategy(_task(dp="client-clipping")),
    )
    assert isinstance(plain, FedAvg) and plain.weighted_by_key == "num-examples"
    assert dp.strategy.weighted_by_key == "unit-weight"  # the noise std z C / m assumes it
    assert plain.min_train_nodes == DEFAULTS["num-partitions"]  # every node, every round


def _loop(clip: float | None) -> fl.FedResult:
    """The from-scratch loop on the SuperNodes' partitions; with ``clip``: DP-FedAvg with
    equal weights, clipping at ``clip`` and no noise (what the noiseless wrappers compute)."""
    with pytest.warns(datasets.UnverifiedDataWarning):
        ds = datasets.load("movielens-100k", path=FIXTURE)
    train, test = splits.per_user_split(ds.ratings(), test_size=RUN["test_size"], seed=0)
    n = fl.num_partitions(ds.users, "gender")
    clients = [fl.partition(train, test, ds.users, "gender", k)[1] for k in range(n)]
    dp = None if clip is None else fl.DPConfig(clip_norm=clip, noise_multiplier=0.0, seed=0)
    cfg = fl.FedAvgConfig(
        rounds=RUN["num_rounds"], local_epochs=1, batch_size=4, lr=0.2, seed=0, dp=dp
    )

    def model_fn():
        return BiasedMF(ds.n_users, ds.n_items, RUN["dim"], global_mean=fl.public_mean())

    return fl.fedavg(fl.init_model(model_fn, 0), clients, cfg, progress=False)


@pytest.mark.flower
def test_flower_dp_wrappers_run_and_clip_in_simulation():
    if not Path(sys.executable).with_name("flower-superlink").exists() and not shutil.which(
        "flower-superlink"
    ):
        pytest.skip("flower-superlink is not installed")
    clipped, plain = _loop(CLIP), _loop(None)
    assert clipped.history["median_update_norm"].min() > 2 * CLIP  # clipping is active
    results = {}
    try:
        with fl.LocalFederation("simulation", 2, timeout=420, app_dir=APP) as federation:
            for mode in ("server-clipping", "client-clipping"):
                results[mode] = federation.run(
                    **RUN, dp=mode, dp_clip=CLIP, dp_noise_multiplier=0.0
                )
        assert federation._descendants() == []
    except RuntimeError as err:
        if "node timed out during startup" in str(err):  # Ray's fixed 30 s raylet wait
            pytest.skip("Ray's raylet did not register within its 30 s on this busy machine")
        raise
    for mode, result in results.items():
        np.testing.assert_allclose(
            result["history"]["rmse"].to_numpy(), clipped.history["rmse"].to_numpy(), rtol=1e-5
        )
        for name, t in fl.shared_state(clipped.model).items():
            torch.testing.assert_close(result["weights"][name], t, rtol=1e-5, atol=1e-6)
        unclipped = fl.shared_state(plain.model)["item_factors.weight"]
        assert (result["weights"]["item_factors.weight"] - unclipped).abs().max() > 1e-3
        assert result["privacy"]["mode"] == mode and result["privacy"]["epsilon"] == math.inf

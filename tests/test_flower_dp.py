"""Flower's own DP wrappers in the Flower App (run-config ``dp``), with ε stated by recbook's
accountant.

The quick tests check the statement and the configuration errors. The simulation test (marker
``flower_deployment``: it starts a ``flower-superlink --simulation`` on 127.0.0.1 for a
bounded time) runs the app with ``DifferentialPrivacyServerSideFixedClipping`` and with
``DifferentialPrivacyClientSideFixedClipping`` + ``fixedclipping_mod``, without noise so the
result is exact, and checks both against the from-scratch loop's clipped DP-FedAvg - and that
the clip norm is small enough to change the result (the wrappers really clip); then
``DifferentialPrivacyServerSideAdaptiveClipping`` with noise (its clip norm moves, its ε is
the accounted one).
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recbook import datasets, splits
from recbook import federated as fl
from recbook.federated import flower
from recbook.models_torch import BiasedMF

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "ml-100k"
CLIP = 0.05
RUN = dict(
    dataset="movielens-100k", data_path=str(FIXTURE), partition_column="gender",
    num_rounds=2, local_epochs=1, batch_size=4, lr=0.2, l2=0.0, dim=3, seed=0, test_size=0.2,
)  # fmt: skip
CONFIG = {k.replace("_", "-"): v for k, v in RUN.items()} | {"result-dir": ""}


def _task(**dp) -> dict:
    return flower.task_from_config(CONFIG | {k.replace("_", "-"): v for k, v in dp.items()})


def test_flower_dp_epsilon_comes_from_recbooks_accountant():
    task = _task(dp="server-clipping", dp_clip=0.5, dp_noise_multiplier=1.2)
    report = flower.flower_privacy(task, n_nodes=8)
    assert report["delta"] == pytest.approx(1 / 80)  # 1 / (10 K)
    want = fl.dp_epsilon(1.2, 1.0, RUN["num_rounds"], 1 / 80)  # no amplification: q = 1
    assert report["epsilon"] == pytest.approx(want) and math.isfinite(want)
    assert "server is trusted" in report["statement"] and "q = 1" in report["statement"]
    client = flower.flower_privacy(_task(dp="client-clipping", dp_noise_multiplier=1.2), 8)
    assert "fixedclipping_mod" in client["statement"]
    assert flower.flower_privacy(_task(), 8) is None  # dp off by default
    silent = flower.flower_privacy(_task(dp="server-clipping", dp_noise_multiplier=0.0), 8)
    assert silent["epsilon"] == math.inf and "NOT private" in silent["statement"]


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


def test_adaptive_clipping_is_accounted_with_its_noisy_count():
    """Flower's split of z (Andrew et al.'s centred-bit formula) inverted by hand, then the
    plain-bit count (sensitivity 1) added back: the effective z is below Flower's nominal z."""
    s, z_updates, z_eff = flower.adaptive_noise(0.5, 8, count_std=1.0)
    assert s == 1.0 and z_updates**-2 == pytest.approx(0.5**-2 - 2.0**-2)
    assert z_eff**-2 == pytest.approx(z_updates**-2 + 1.0) and z_eff < 0.5
    assert flower.adaptive_noise(0.3, 8)[0] == pytest.approx(0.4)  # Flower's default K/20
    with pytest.raises(ValueError, match="dp-count-std"):
        flower.adaptive_noise(0.8, 8)
    task = _task(dp="server-adaptive", dp_noise_multiplier=0.5, dp_count_std=1.0)
    report = flower.flower_privacy(task, 8)
    assert report["epsilon"] == pytest.approx(fl.dp_epsilon(z_eff, 1.0, 2, 1 / 80))
    fixed = flower.flower_privacy(_task(dp="server-clipping", dp_noise_multiplier=0.5), 8)
    assert report["epsilon"] > fixed["epsilon"]  # the count costs privacy too
    assert "z_eff" in report["statement"] and "adaptation settings" in report["statement"]
    with pytest.raises(ValueError, match="dp-target-quantile"):
        _task(dp="server-adaptive", dp_target_quantile=1.5)


def test_flower_dp_refuses_a_delta_of_one_over_k_or_more():
    with pytest.raises(ValueError, match="1/n"):
        flower.flower_privacy(_task(dp="server-clipping", dp_delta=0.2), n_nodes=8)


def test_flower_dp_strategy_is_flowers_wrapper():
    pytest.importorskip("flwr")
    from flwr.serverapp.strategy import (
        DifferentialPrivacyClientSideFixedClipping,
        DifferentialPrivacyServerSideAdaptiveClipping,
        DifferentialPrivacyServerSideFixedClipping,
        FedAvg,
    )

    base = FedAvg()
    assert flower._dp_strategy(base, _task(), 2) is base
    server = flower._dp_strategy(base, _task(dp="server-clipping", dp_clip=0.3), 2)
    client = flower._dp_strategy(base, _task(dp="client-clipping"), 2)
    assert isinstance(server, DifferentialPrivacyServerSideFixedClipping)
    assert isinstance(client, DifferentialPrivacyClientSideFixedClipping)
    assert server.clipping_norm == 0.3 and server.num_sampled_clients == 2
    adaptive = flower._dp_strategy(
        base, _task(dp="server-adaptive", dp_noise_multiplier=0.5, dp_count_std=1.0), 2
    )
    assert isinstance(adaptive, DifferentialPrivacyServerSideAdaptiveClipping)
    assert adaptive.clipped_count_stddev == 1.0
    assert adaptive.noise_multiplier == pytest.approx(flower.adaptive_noise(0.5, 2, 1.0)[1])


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


@pytest.mark.flower_deployment
def test_flower_dp_wrappers_run_and_clip_in_simulation():
    pytest.importorskip("flwr")
    if not Path(sys.executable).with_name("flower-superlink").exists() and not shutil.which(
        "flower-superlink"
    ):
        pytest.skip("flower-superlink is not installed")
    clipped, plain = _loop(CLIP), _loop(None)
    assert clipped.history["median_update_norm"].min() > 2 * CLIP  # clipping is active
    results = {}
    try:
        with fl.LocalFederation("simulation", 2, timeout=420) as federation:
            for mode in ("server-clipping", "client-clipping"):
                results[mode] = federation.run(
                    **RUN, dp=mode, dp_clip=CLIP, dp_noise_multiplier=0.0
                )
            adaptive = federation.run(
                **RUN, dp="server-adaptive", dp_clip=CLIP, dp_noise_multiplier=0.5,
                dp_count_std=1.0,
            )  # fmt: skip
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
    # adaptive clipping with noise: runs, moves its clip norm, states its accounted epsilon
    report = adaptive["privacy"]
    z_eff = flower.adaptive_noise(0.5, 2, 1.0)[2]
    assert report["epsilon"] == pytest.approx(fl.dp_epsilon(z_eff, 1.0, RUN["num_rounds"], 0.05))
    assert report["final_clip_norm"] != CLIP and np.isfinite(adaptive["history"]["rmse"]).all()

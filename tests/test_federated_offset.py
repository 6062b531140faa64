"""DP-FedAvg's private global offset: a bounded per-client statistic, noised once, composed
with the training rounds in one dp-accounting computation (paid from the budget, not added)."""

from __future__ import annotations

import dp_accounting
import numpy as np
import pandas as pd
import pytest

from recbook import federated as fl
from recbook.federated import dp


@pytest.fixture()
def clients() -> list[fl.Client]:
    train = pd.DataFrame(
        {
            "user_id": [0, 0, 1, 2, 2],
            "item_id": [0, 1, 2, 0, 3],
            "rating": [5.0, 5.0, 1.0, 4.0, 3.0],
        }
    )
    test = train.iloc[[0, 2, 3]].copy()
    return fl.make_clients(train, test, {"a": [0], "b": [1], "c": [2]})


def test_client_offsets_are_clipped_client_means(clients):
    offsets = fl.client_offsets(clients, centre=3.0, half_width=1.0)
    np.testing.assert_allclose(offsets, [1.0, -1.0, 0.5])  # means 5, 1, 3.5 minus 3, clipped
    exact = fl.private_offset(clients, centre=3.0, half_width=1.0, noise_multiplier=0.0,
                              rand=fl.Randomness(0))  # fmt: skip
    assert exact == pytest.approx(3.0 + 0.5 / 3)


def test_the_offsets_noise_has_std_z_h_over_k(clients):
    rand = fl.Randomness(1)
    draws = [
        fl.private_offset(clients, centre=3.0, half_width=1.0, noise_multiplier=2.0, rand=rand)
        for _ in range(2000)
    ]
    assert np.std(draws) == pytest.approx(2.0 * 1.0 / 3, rel=0.1)
    assert np.mean(draws) == pytest.approx(3.0 + 0.5 / 3, abs=0.05)


def test_composed_epsilon_is_one_dp_accounting_composition():
    z, q, t, delta, z_mu = 1.3, 0.1, 30, 1e-4, 10.0
    acc = dp_accounting.rdp.RdpAccountant(orders=dp.RDP_ORDERS)
    train = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    acc.compose(train, t)
    acc.compose(dp_accounting.GaussianDpEvent(z_mu))
    both = fl.composed_epsilon(z, q, t, delta, z_mu)
    assert both == pytest.approx(acc.get_epsilon(delta), rel=1e-9)
    assert both > fl.composed_epsilon(z, q, t, delta)  # the offset costs privacy
    assert fl.composed_epsilon(0.0, q, t, delta, z_mu) == float("inf")


def test_the_training_noise_pays_for_the_offset_from_the_same_budget():
    z_with = fl.noise_for_composed(1.0, 1e-4, 0.1, 30, offset_noise=10.0)
    z_without = fl.noise_for_composed(1.0, 1e-4, 0.1, 30)
    assert z_with > z_without
    assert fl.composed_epsilon(z_with, 0.1, 30, 1e-4, 10.0) <= 1.0
    assert fl.composed_epsilon(z_with * 0.98, 0.1, 30, 1e-4, 10.0) > 1.0  # tight to 1 %
    with pytest.raises(ValueError, match="offset alone"):
        fl.noise_for_composed(0.01, 1e-4, 0.1, 30, offset_noise=1.0)

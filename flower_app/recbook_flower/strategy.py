"""The ServerApp's strategy: Flower's ``FedAvg``, wrapped in Flower's own fixed-clipping DP
wrapper when the run config's ``dp`` is on, and recbook's statement of what that run guarantees.

* ``"server-clipping"``: ``DifferentialPrivacyServerSideFixedClipping`` (the server clips each
  update and adds the noise: a trusted server, central DP).
* ``"client-clipping"``: ``DifferentialPrivacyClientSideFixedClipping``, with Flower's
  ``fixedclipping_mod`` on the ClientApp (clients clip; the server still sees each clipped
  update and adds the noise).

Under DP, updates are averaged with equal weights (the noise std ``z C / m`` assumes it) and
every SuperNode takes part in every round; ε comes from recbook's accountant for replace-one
adjacency (:func:`recbook.federated.flower.flower_privacy`). The noise is drawn from a numpy
generator seeded from the OS (``secrets``) for every round, not from numpy's global generator
Flower would use: the wrapper overrides Flower's ``_add_noise_to_aggregated_arrays`` hook (a
test checks that Flower still calls it). Flower's adaptive clipping is not offered (README).
Flower's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``) is not offered either: it runs
only in Flower's legacy workflow (``LegacyContext``, ``flwr.server.strategy``,
``FitIns``/``FitRes`` messages), not with the Message-API strategies this App uses.
"""

from __future__ import annotations

import secrets

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)

from recbook.federated.flower import flower_privacy
from recbook_flower.task import UNIT_WEIGHT, TaskConfig

WRAPPERS = {
    "server-clipping": DifferentialPrivacyServerSideFixedClipping,
    "client-clipping": DifferentialPrivacyClientSideFixedClipping,
}


def by_examples(records: list[RecordDict], _weighting_key: str) -> MetricRecord:
    """Evaluation metrics averaged with weights ``num-examples`` (the pooled test MSE), also
    when DP averages the updates with equal weights."""
    rows = [m for rec in records for m in rec.metric_records.values()]
    total = sum(float(m["num-examples"]) for m in rows)
    keys = [k for k in rows[0] if k != "num-examples"] if rows else []
    out = {
        k: sum(float(m[k]) * float(m["num-examples"]) for m in rows) / (total or 1.0) for k in keys
    }
    return MetricRecord(out | {"num-examples": total})


def os_generator() -> np.random.Generator:
    """A numpy generator seeded with 128 bits from the OS (``secrets``): unpredictable noise."""
    return np.random.default_rng(secrets.randbits(128))


def dp_strategy(strategy: Strategy, cfg: TaskConfig, n_nodes: int) -> Strategy:
    """``strategy`` wrapped in Flower's DP wrapper for ``cfg.dp``, its noise std
    ``z C / n_nodes`` drawn from :func:`os_generator`, fresh every round."""
    if cfg.dp == "off":
        return strategy

    class OsSeededNoise(WRAPPERS[cfg.dp]):
        def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
            std = self.noise_multiplier * self.clipping_norm / self.num_sampled_clients
            rng = os_generator()
            return ArrayRecord(
                {
                    k: Array(np.asarray(a.numpy() + rng.normal(0.0, std, a.shape), a.dtype))
                    for k, a in aggregated_arrays.items()
                }
            )

    return OsSeededNoise(strategy, cfg.dp_noise_multiplier, cfg.dp_clip, n_nodes)


def build_strategy(cfg: TaskConfig) -> Strategy:
    """FedAvg over every one of ``num-partitions`` SuperNodes, each round, with federated
    evaluation; weighted by ``num-examples``, or equally (``unit-weight``) under DP."""
    n_nodes = cfg.num_partitions
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=n_nodes,
        min_evaluate_nodes=n_nodes,
        min_available_nodes=n_nodes,
        weighted_by_key="num-examples" if cfg.dp == "off" else UNIT_WEIGHT,
        evaluate_metrics_aggr_fn=by_examples,  # the test MSE pools every rating
    )
    return dp_strategy(strategy, cfg, n_nodes)


def privacy(cfg: TaskConfig) -> dict | None:
    """recbook's (ε, δ) statement for this run (None without DP)."""
    return flower_privacy(cfg.dp, n_nodes=cfg.num_partitions, **cfg.privacy_settings())

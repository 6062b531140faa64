"""The ServerApp's strategy: Flower's ``FedAvg``, wrapped in Flower's own DP wrapper when the
run config's ``dp`` is on, and recbook's statement of what that run guarantees.

* ``"server-clipping"``: ``DifferentialPrivacyServerSideFixedClipping`` (the server clips each
  update and adds the noise: a trusted server, central DP).
* ``"client-clipping"``: ``DifferentialPrivacyClientSideFixedClipping``, with Flower's
  ``fixedclipping_mod`` on the ClientApp (clients clip; the server still sees each clipped
  update and adds the noise).
* ``"server-adaptive"``: ``DifferentialPrivacyServerSideAdaptiveClipping`` (Andrew et al. 2021:
  the clip norm follows a target quantile of the update norms, learnt from a noisy count that
  is accounted in ε, see :func:`recbook.federated.flower.adaptive_noise`).

Under DP, updates are averaged with equal weights (the noise std ``z C / m`` assumes it) and
every SuperNode takes part in every round; ε comes from recbook's accountant
(:func:`recbook.federated.flower.flower_privacy`). Flower draws the noise from numpy's global
generator, so the wrapper re-seeds it from the OS before every aggregation.
Flower's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``) is not offered: it runs only in
Flower's legacy workflow (``LegacyContext``, ``flwr.server.strategy``, ``FitIns``/``FitRes``
messages), not with the Message-API strategies this App uses.
"""

from __future__ import annotations

import numpy as np
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)

from recbook.federated.flower import adaptive_noise, flower_privacy
from recbook_flower.task import UNIT_WEIGHT, TaskConfig

WRAPPERS = {
    "server-clipping": DifferentialPrivacyServerSideFixedClipping,
    "client-clipping": DifferentialPrivacyClientSideFixedClipping,
    "server-adaptive": DifferentialPrivacyServerSideAdaptiveClipping,
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


def dp_strategy(strategy: Strategy, cfg: TaskConfig, n_nodes: int) -> Strategy:
    """``strategy`` wrapped in Flower's DP wrapper for ``cfg.dp``, its noise drawn after
    re-seeding numpy's global generator (Flower's noise source) from the OS."""
    if cfg.dp == "off":
        return strategy

    class OsSeededNoise(WRAPPERS[cfg.dp]):
        def aggregate_train(self, server_round, replies):
            np.random.seed(None)  # fresh OS entropy: the round's noise is unpredictable
            return super().aggregate_train(server_round, replies)

    z = cfg.dp_noise_multiplier
    if cfg.dp == "server-adaptive":
        count_std = adaptive_noise(z, n_nodes, cfg.dp_count_std)[0]
        return OsSeededNoise(
            strategy,
            z,
            n_nodes,
            initial_clipping_norm=cfg.dp_clip,
            target_clipped_quantile=cfg.dp_target_quantile,
            clip_norm_lr=cfg.dp_clip_lr,
            clipped_count_stddev=count_std if z > 0 else None,
        )
    return OsSeededNoise(strategy, z, cfg.dp_clip, n_nodes)


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

"""Federated learning for recommendation, split by concept.

* :mod:`.clients` - who holds which users' ratings (natural and random partitions);
* :mod:`.state` - which tensors leave a client (federated CF: user rows stay home) and the
  public global offset;
* :mod:`.fedavg` - FedAvg from scratch, local-only training, faults;
* :mod:`.dp` - DP-FedAvg with a trusted server (central DP) or without one (distributed DP);
* :mod:`.secagg` - toy pairwise-mask secure aggregation with an overflow check;
* :mod:`.flower` - model state as Flower messages, and recbook's (ε, δ) statement for Flower's
  own DP wrappers;
* :mod:`.local_federation` - Flower's simulation and deployment engines started on 127.0.0.1,
  a Flower App submitted with ``flwr run``, its result read back.

The same FedAvg runs as a Flower App: a separate project (``flower_app/`` of the checkout,
package ``recbook_flower``) that imports recbook; recbook never imports it.
:class:`LocalFederation` finds it by folder (``app_dir``). Randomness (secure by default,
seeded runs labelled as demos) is :mod:`recbook.privacy.randomness`, re-exported here.

Trust model, step by step: a client trusts itself with its raw ratings and user rows, which
never leave it. In plain FedAvg and in central DP-FedAvg the server is trusted to see each
client's update (which names the items its users rated). In distributed DP-FedAvg the server
is honest-but-curious and sees only the noisy sum under secure aggregation; it must not
collude with clients (colluding clients know their own noise shares and can subtract them,
leaving only the honest clients' noise). Whoever receives the published models (other
clients, the public) is never trusted; DP bounds what they learn.
"""

from recbook.federated.clients import (
    Client,
    groups_by_column,
    groups_of_size,
    groups_random,
    make_clients,
    non_iid_report,
    num_partitions,
    partition,
    pooled,
)
from recbook.federated.dp import (
    DPConfig,
    PrivacyReport,
    client_offsets,
    clip_update,
    composed_epsilon,
    dp_epsilon,
    noise_for_composed,
    private_offset,
)
from recbook.federated.fedavg import (
    EmptyRoundError,
    FedAvgConfig,
    FedResult,
    fedavg,
    federated_rmse,
    local_only,
    local_update,
    squared_error,
)
from recbook.federated.flower import (
    arrays_to_state,
    flower_message_bytes,
    flower_privacy,
    to_arrays,
)
from recbook.federated.local_federation import LocalFederation, flwr_run_command
from recbook.federated.secagg import capacity_check, masked_updates, unmask_sum
from recbook.federated.state import (
    RATING_SCALE,
    init_model,
    load_state,
    payload_bytes,
    private_state,
    public_mean,
    round_seed,
    shared_state,
    user_side,
)
from recbook.privacy.randomness import SECURE_LABEL, SEEDED_LABEL, Randomness

__all__ = [
    "Client",
    "DPConfig",
    "EmptyRoundError",
    "FedAvgConfig",
    "FedResult",
    "LocalFederation",
    "PrivacyReport",
    "RATING_SCALE",
    "Randomness",
    "SECURE_LABEL",
    "SEEDED_LABEL",
    "arrays_to_state",
    "capacity_check",
    "client_offsets",
    "clip_update",
    "composed_epsilon",
    "dp_epsilon",
    "federated_rmse",
    "fedavg",
    "flower_message_bytes",
    "flower_privacy",
    "flwr_run_command",
    "groups_by_column",
    "groups_of_size",
    "groups_random",
    "init_model",
    "load_state",
    "local_only",
    "local_update",
    "make_clients",
    "masked_updates",
    "noise_for_composed",
    "non_iid_report",
    "num_partitions",
    "partition",
    "payload_bytes",
    "pooled",
    "private_offset",
    "private_state",
    "public_mean",
    "round_seed",
    "shared_state",
    "squared_error",
    "to_arrays",
    "unmask_sum",
    "user_side",
]

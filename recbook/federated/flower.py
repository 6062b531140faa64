"""recbook's side of Flower: model state as Flower messages, and what Flower's DP modes guarantee.

* **Messages.** :func:`to_arrays` and :func:`arrays_to_state` turn a model's named tensors into
  a Flower ``ArrayRecord`` and back; :func:`flower_message_bytes` is what such a record weighs
  on the wire.
* **Accounting.** The Flower App (``flower_app/``) offers Flower's fixed-clipping DP wrappers
  (run-config ``dp``, one of :data:`DP_MODES`). :func:`flower_privacy` states the (ε, δ) of
  such a run for the mechanism Flower runs. It lives here, not in the App, because the
  privacy claim is recbook's: it uses recbook's accountant, is tested with the library, and
  holds for whoever runs the App with an installed recbook.

**The mechanism.** Every SuperNode trains in every round and Flower's ``FedAvg`` divides the
sum of the clipped updates by the number of replies ``m`` (equal weights), then adds
N(0, (z C / m)^2). The denominator is the realised number of units, so the natural adjacency
is *replace-one* (one SuperNode's data swapped for another's, ``m`` fixed): the sum moves by up
to ``2 C``, the noise std on the sum is ``z C``, an effective noise multiplier of ``z / 2``
(:func:`replace_one_multiplier`), accounted without amplification by sampling (q = 1).

``dp="server-adaptive"`` (Flower's ``DifferentialPrivacyServerSideAdaptiveClipping``) is not
offered: in flwr 1.41 its clip-norm update drives the norm away from the target quantile and
its noise does not use the clip it accounted for (``flower_app/README.md`` has the bug report).
The noise comes from a numpy generator the App seeds from the OS (``secrets``) every round.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from recbook import checks
from recbook.federated.dp import DPConfig, dp_epsilon
from recbook.federated.state import State

DP_MODES = ("off", "server-clipping", "client-clipping")


# ----------------------------------------------------------------------------- messages


def to_arrays(state: State) -> ArrayRecord:
    """Named torch tensors as a Flower ``ArrayRecord``."""
    return ArrayRecord({n: Array(t.detach().cpu().numpy()) for n, t in state.items()})


def arrays_to_state(record: ArrayRecord) -> State:
    """A Flower ``ArrayRecord`` back to named torch tensors."""
    return {n: torch.from_numpy(np.array(a.numpy())) for n, a in record.items()}


def flower_message_bytes(state: State) -> int:
    """Bytes of a state as a Flower ``ArrayRecord`` (what travels in a message)."""
    return int(to_arrays(state).count_bytes())


# ----------------------------------------------------------------------------- accounting

#: Below this many units (SuperNodes) the App warns that its guarantee means little: with
#: δ = 1/(10 K) the guarantee tolerates a failure with probability ≥ 10⁻³ (far above the
#: 10⁻⁵-10⁻⁶ of practice), and each unit is ≥ 1 % of the population, so the published average
#: is itself close to a statistic of single units; DP is meant for many units.
MIN_UNITS = 100

REMOVED_MODES = {
    "server-adaptive": (
        "dp='server-adaptive' (Flower's DifferentialPrivacyServerSideAdaptiveClipping) is not "
        "offered: in flwr 1.41 its clip-norm rule moves away from the target quantile and its "
        "noise does not use the clip norm it accounts for (see flower_app/README.md); use "
        "dp='server-clipping' or dp='client-clipping' with a clip norm chosen on public data"
    )
}


def check_mode(mode: str, what: str = "Flower DP mode") -> str:
    """``mode`` if it is one of :data:`DP_MODES`; a removed mode gets an error naming why and
    the alternatives."""
    if mode in REMOVED_MODES:
        raise ValueError(f"{what}: {REMOVED_MODES[mode]}")
    return checks.one_of(mode, DP_MODES, what)


def replace_one_multiplier(z: float) -> float:
    """The noise multiplier the accountant sees for Flower's equal-weight average under
    replace-one adjacency: noise std ``z C`` on a sum whose sensitivity is ``2 C``."""
    return checks.number(z, "noise_multiplier", non_negative=True) / 2


def few_units_warning(n_units: int) -> str | None:
    """A warning line when ``n_units`` < :data:`MIN_UNITS` (None otherwise)."""
    if n_units >= MIN_UNITS:
        return None
    return (
        f"WARNING: only {n_units} units (SuperNodes); below {MIN_UNITS} this guarantee means "
        f"little: delta = 1/(10 K) = {0.1 / n_units:.2g} allows a failure with probability "
        "> 1e-3, and each unit is more than 1 % of the data behind the published average"
    )


def flower_privacy(
    mode: str,
    *,
    n_nodes: int,
    rounds: int,
    noise_multiplier: float,
    clip_norm: float,
    delta: float = 0.0,
) -> dict | None:
    """What a Flower run with DP mode ``mode`` guarantees, by recbook's accountant (None when
    ``mode`` is ``"off"``).

    Each round is Flower's equal-weight average of ``n_nodes`` clipped updates plus
    N(0, (z C / n_nodes)^2): accounted under replace-one adjacency as a Gaussian mechanism with
    multiplier ``z / 2`` (:func:`replace_one_multiplier`), q = 1, over ``rounds``, at ``delta``
    (0: 1/(10 K)). The unit is a SuperNode's whole partition (all its users).
    """
    check_mode(mode)
    if mode == "off":
        return None
    delta = DPConfig(delta=delta or None).delta_for(n_nodes)
    z, clip = noise_multiplier, clip_norm
    z_acc = replace_one_multiplier(z)
    eps = dp_epsilon(z_acc, 1.0, rounds, delta)
    if mode == "server-clipping":
        trust = "the server is trusted: it sees every update in the clear, clips it, adds noise"
        wrapper = "DifferentialPrivacyServerSideFixedClipping"
    else:
        trust = (
            "clients clip (fixedclipping_mod); the server still sees every clipped update in "
            "the clear and adds the noise, so it is trusted (no secure aggregation here)"
        )
        wrapper = "DifferentialPrivacyClientSideFixedClipping + fixedclipping_mod"
    warning = few_units_warning(n_nodes)
    lines = [
        f"Flower DP-FedAvg ({wrapper}): ({eps:.3g}, {delta:.2g})-DP per SuperNode "
        f"({n_nodes} partitions, replace-one) for the shared tensors the server publishes"
        + ("" if math.isfinite(eps) else " - no noise: NOT private, a clipping check"),
        f"  accountant: recbook RDP (dp-accounting), replace-one adjacency (the average divides "
        f"by the {n_nodes} replies, so one node's swap moves the sum by up to 2C): effective "
        f"noise multiplier z/2 = {z_acc:g} (z = {z:g}), every node every round (q = 1, no "
        f"amplification), {rounds} rounds, clip norm {clip:g}, noise std z*C/{n_nodes} on "
        "the average",
        f"  trust: {trust}",
        "  not covered: the user rows kept on each node, the evaluation metrics nodes "
        "report, the choice of the clip norm",
        "  randomness: a numpy generator seeded from the OS (secrets) for every round's noise",
    ]
    if warning:
        lines.insert(1, "  " + warning)
    return {
        "mode": mode, "epsilon": eps, "delta": delta, "noise_multiplier": z,
        "effective_noise_multiplier": z_acc, "adjacency": "replace-one", "clip_norm": clip,
        "rounds": rounds, "sample_rate": 1.0, "nodes": n_nodes, "warning": warning,
        "statement": "\n".join(lines),
    }  # fmt: skip

"""recbook's side of Flower: model state as Flower messages, and what Flower's DP modes guarantee.

* **Messages.** :func:`to_arrays` and :func:`arrays_to_state` turn a model's named tensors into
  a Flower ``ArrayRecord`` and back; :func:`flower_message_bytes` is what such a record weighs
  on the wire.
* **Accounting.** The Flower App (``flower_app/``) offers Flower's own DP wrappers (run-config
  ``dp``, one of :data:`DP_MODES`). :func:`flower_privacy` states the (ε, δ) of such a run by
  recbook's accountant, and :func:`adaptive_noise` undoes Flower's split of the noise
  multiplier in adaptive clipping. They live here, not in the App, because the privacy claim
  is recbook's: it uses recbook's accountant, is tested with the library, and holds for
  whoever runs the App with an installed recbook. They take plain numbers, not the App's
  configuration, so the library never imports the App.

Updates are averaged with equal weights (the noise std ``z C / m`` assumes it) and every
SuperNode takes part in every round, so ε comes without amplification by sampling. Flower draws
the noise from numpy's global generator; the App's ServerApp re-seeds it from the OS before
every aggregation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from recbook import checks
from recbook.federated.dp import DPConfig, dp_epsilon
from recbook.federated.state import State

DP_MODES = ("off", "server-clipping", "client-clipping", "server-adaptive")


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


def adaptive_noise(z: float, n_nodes: int, count_std: float = 0.0) -> tuple[float, float, float]:
    """(std of the clipped-count noise, noise multiplier of the updates, effective noise
    multiplier for the accountant) of Flower's adaptive-clipping wrappers told ``z``.

    Flower splits ``z`` as Andrew et al. (2021, Thm. 1) do: updates get
    ``z_u = (z^-2 - (2 s)^-2)^-1/2`` and the count of clipped updates N(0, s^2), ``s =
    count_std`` or ``n_nodes / 20``. The ``2 s`` is for centred bits (b - 1/2, sensitivity
    1/2); Flower counts plain bits, whose sum moves by 1 when a client joins or leaves, so the
    two releases together are a Gaussian mechanism with ``z_eff = (z_u^-2 + s^-2)^-1/2``,
    smaller than ``z``: recbook accounts ``z_eff``, not Flower's nominal ``z``.
    """
    if z == 0:
        return count_std, 0.0, 0.0
    s = count_std or n_nodes / 20
    if z >= 2 * s:
        raise ValueError(
            f"adaptive clipping needs dp-noise-multiplier < 2 x dp-count-std = {2 * s:g} "
            f"(Flower's split of the noise; dp-count-std 0 means {n_nodes}/20): raise "
            "dp-count-std or lower the noise multiplier"
        )
    z_updates = (z**-2 - (2 * s) ** -2) ** -0.5
    return s, z_updates, (z_updates**-2 + s**-2) ** -0.5


def flower_privacy(
    mode: str,
    *,
    n_nodes: int,
    rounds: int,
    noise_multiplier: float,
    clip_norm: float,
    delta: float = 0.0,
    target_quantile: float = 0.5,
    clip_lr: float = 0.2,
    count_std: float = 0.0,
) -> dict | None:
    """What a Flower run with DP mode ``mode`` guarantees, by recbook's accountant (None when
    ``mode`` is ``"off"``).

    Every SuperNode trains in every round (``fraction_train=1``), so each round is a Gaussian
    mechanism on the average of ``n_nodes`` clipped updates with no amplification by sampling:
    ε = :func:`recbook.federated.dp.dp_epsilon` at sample rate 1 over the rounds, at
    ``delta`` (0: 1/(10 K)). The unit is a SuperNode's whole partition (all its users).
    ``clip_norm`` is the fixed clip norm, or the initial one under ``"server-adaptive"``, whose
    ``target_quantile``, ``clip_lr`` and ``count_std`` (0: ``n_nodes / 20``) are Flower's
    adaptive-clipping settings.
    """
    checks.one_of(mode, DP_MODES, "Flower DP mode")
    if mode == "off":
        return None
    delta = DPConfig(delta=delta or None).delta_for(n_nodes)
    z, clip = noise_multiplier, clip_norm
    z_acc, clip_text, extra = z, f"clip norm {clip:g}", {}
    if mode == "server-adaptive":
        count_std, z_updates, z_acc = adaptive_noise(z, n_nodes, count_std)
        clip_text = (
            f"adaptive clip norm from {clip:g} (target quantile {target_quantile:g}, "
            f"lr {clip_lr:g}, noisy clipped count std {count_std:g}); Flower's z "
            f"{z:g} gives updates z {z_updates:.3g}, accounted as z_eff {z_acc:.3g} (plain "
            "clipped-count bits: sensitivity 1)"
        )
        extra = {"count_std": count_std, "z_updates": z_updates, "z_effective": z_acc}
    eps = dp_epsilon(z_acc, 1.0, rounds, delta)
    if mode == "server-adaptive":
        trust = (
            "the server is trusted: it sees every update in the clear, clips it to a norm "
            "it adapts from a noisy count of clipped updates, adds noise"
        )
        wrapper = "DifferentialPrivacyServerSideAdaptiveClipping"
    elif mode == "server-clipping":
        trust = "the server is trusted: it sees every update in the clear, clips it, adds noise"
        wrapper = "DifferentialPrivacyServerSideFixedClipping"
    else:
        trust = (
            "clients clip (fixedclipping_mod); the server still sees every clipped update in "
            "the clear and adds the noise, so it is trusted (no secure aggregation here)"
        )
        wrapper = "DifferentialPrivacyClientSideFixedClipping + fixedclipping_mod"
    statement = "\n".join(
        [
            f"Flower DP-FedAvg ({wrapper}): ({eps:.3g}, {delta:.2g})-DP per SuperNode "
            f"({n_nodes} partitions) for the shared tensors the server publishes"
            + ("" if math.isfinite(eps) else " - no noise: NOT private, a clipping check"),
            f"  accountant: recbook RDP (dp-accounting), every node every round (q = 1, no "
            f"amplification), {rounds} rounds, noise multiplier {z:g}, {clip_text}, "
            f"equal weights, noise std z*C/{n_nodes} on the average",
            f"  trust: {trust}",
            "  not covered: the user rows kept on each node, the evaluation metrics nodes "
            "report, the choice of the "
            + ("initial clip norm and the adaptation settings" if extra else "clip norm"),
            "  randomness: Flower's noise from numpy's global generator, re-seeded from the OS "
            "before every aggregation (not a cryptographic generator within a round)",
        ]
    )
    return {
        "mode": mode, "epsilon": eps, "delta": delta, "noise_multiplier": z,
        "clip_norm": clip, "rounds": rounds, "sample_rate": 1.0, "nodes": n_nodes,
        "statement": statement, **extra,
    }  # fmt: skip

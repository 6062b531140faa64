"""Which tensors leave a client: the shared/private split of a federated recommender.

In federated collaborative filtering (Ammad-ud-din et al. 2019) the user factors and biases
are trained and kept on the user's client; only the item side (and any frozen public
constants) is sent. The simulation keeps ONE model object whose user rows play the part of the
clients' private state: only the owning client's local training touches its rows, so leaving
them in place between rounds is the same as each device keeping them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

State = dict[str, torch.Tensor]
PrivatePredicate = Callable[[str], bool]

RATING_SCALE = (1.0, 5.0)


def user_side(name: str) -> bool:
    """Default split of :class:`recbook.models_torch.BiasedMF`: ``user_*`` stays on the client."""
    return name.startswith("user_")


def public_mean(scale: tuple[float, float] = RATING_SCALE) -> float:
    """The midpoint of the public rating scale: the global offset ``mu`` of a federated or
    private model. The pooled mean of the clients' ratings is an exact statistic of their data
    (and a server could not even compute it without seeing every rating), so it must not be
    baked into a model that claims privacy."""
    lo, hi = (float(v) for v in scale)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"rating scale must be two finite numbers lo < hi, got {scale}")
    return (lo + hi) / 2


def shared_state(model: nn.Module, private: PrivatePredicate = user_side) -> State:
    """A detached copy of the parameters and buffers a client sends (everything not private)."""
    return {n: t.detach().clone() for n, t in model.state_dict().items() if not private(n)}


def private_state(model: nn.Module, private: PrivatePredicate = user_side) -> State:
    """A detached copy of the parameters that never leave the client."""
    return {n: t.detach().clone() for n, t in model.state_dict().items() if private(n)}


def load_state(model: nn.Module, state: State) -> None:
    """Copy ``state`` into the model's tensors in place (no new parameters, optimiser-safe)."""
    own = model.state_dict()
    missing = [n for n in state if n not in own]
    if missing:
        raise KeyError(f"model has no tensors named {missing}; known: {list(own)}")
    with torch.no_grad():
        for n, t in state.items():
            own[n].copy_(torch.as_tensor(t, dtype=own[n].dtype, device=own[n].device))


def payload_bytes(state: State) -> int:
    """Bytes of the raw tensors in a message (what a float32 wire format carries)."""
    return int(sum(t.numel() * t.element_size() for t in state.values()))


def init_model(model_fn: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model under a fixed torch seed without disturbing the global RNG, so a server
    and every client build the same initial weights (the initial model is public)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_fn()


def round_seed(seed: int, rnd: int, client_id: int) -> int:
    """The local-shuffle seed of ``client_id`` in round ``rnd``: depends on nothing else, so
    the Flower app and the from-scratch loop shuffle alike."""
    return int(np.random.SeedSequence([seed, rnd, client_id + 1]).generate_state(1)[0])

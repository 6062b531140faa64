"""Toy secure aggregation: pairwise masks that cancel only in the sum (Bonawitz et al. 2017).

Trust model: the server is *honest-but-curious* - it runs the protocol as written but would
read any update it saw. With masking it sees each client's message as uniformly random
numbers modulo 2^32 and learns only the sum. What the toy leaves out: the masks come from a
dealer (here the run's random source) instead of a Diffie-Hellman key agreement, and there is
no secret sharing, so one client dropping out mid-round loses the sum (the real protocol and
Flower's SecAgg+ workflow recover from that).

Arithmetic is fixed point modulo 2^32, decoded as a signed 32-bit integer. The modulus bounds
the *sum*: ``n`` clients each sending values up to ``bound`` need ``n * bound * scale < 2^31``,
or the sum wraps silently into a wrong number. :func:`masked_updates` checks this before any
mask is drawn and refuses, rather than returning a wrapped sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from recbook import checks
from recbook.privacy.randomness import Randomness

MODULUS_BITS = 32
_HALF = 2 ** (MODULUS_BITS - 1)


def capacity_check(n_clients: int, bound: float, scale: float) -> None:
    """Refuse a sum of ``n_clients`` values, each at most ``bound`` in absolute value, that
    could overflow the signed 32-bit fixed-point range."""
    checks.integer(n_clients, "n_clients", minimum=1)
    checks.number(bound, "bound", non_negative=True)
    checks.number(scale, "scale", positive=True)
    worst = n_clients * math.ceil(bound * scale + 0.5)
    if worst >= _HALF:
        raise OverflowError(
            f"a sum of {n_clients} values up to {bound:g} at scale {scale:g} can reach "
            f"{worst / scale:.4g}, beyond the 32-bit fixed-point range +-{_HALF / scale:.4g}; "
            "clip updates tighter, lower scale, or aggregate fewer clients per sum"
        )


def _fixed_point(x: np.ndarray, scale: float) -> np.ndarray:
    q = np.rint(np.asarray(x, dtype=np.float64) * scale)
    return q.astype(np.int64).astype(np.uint32)  # two's complement mod 2^32


def masked_updates(
    updates: Sequence[np.ndarray],
    *,
    scale: float = 2**16,
    bound: float | None = None,
    seed: int | None = None,
) -> list[np.ndarray]:
    """Each client's update plus its pairwise masks, in fixed point modulo 2^32.

    Every pair of clients ``i < j`` shares a random mask ``m_ij``; client ``i`` adds it and
    client ``j`` subtracts it, so each masked vector alone is uniform while the masks cancel
    in the sum. ``bound`` is the public per-coordinate bound every client promises (each
    client checks its own update against it); ``None`` takes the largest value present (the
    toy's dealer view). Masks come from the OS unless ``seed`` is given (demo only).
    """
    if not updates:
        raise ValueError("masked_updates needs at least one update")
    shape = np.shape(updates[0])
    if any(np.shape(u) != shape for u in updates):
        raise ValueError("all updates must have the same shape")
    arrays = [checks.finite_array(u, f"update {k}") for k, u in enumerate(updates)]
    peak = max(float(np.abs(a).max(initial=0.0)) for a in arrays)
    if bound is None:
        bound = peak
    elif peak > bound:
        raise ValueError(
            f"an update has a coordinate of size {peak:.4g} above the agreed bound {bound:g}; "
            "clip before masking (nothing is clipped silently here)"
        )
    capacity_check(len(arrays), bound, scale)
    rand = Randomness(seed)
    out = [_fixed_point(a, scale) for a in arrays]
    n = len(out)
    for i in range(n):
        for j in range(i + 1, n):
            mask = rand.integers(shape).astype(np.uint32)
            out[i] = out[i] + mask  # uint32 arithmetic wraps: addition mod 2^32
            out[j] = out[j] - mask
    return out


def unmask_sum(
    masked: Sequence[np.ndarray], *, scale: float = 2**16, bound: float | None = None
) -> np.ndarray:
    """The server's view: add the masked vectors mod 2^32 and decode the fixed-point sum.

    With ``bound`` (the clients' agreed per-coordinate bound) the capacity check is repeated
    here, so a server never decodes a sum that may have wrapped.
    """
    if not masked:
        raise ValueError("unmask_sum needs at least one masked vector")
    if bound is not None:
        capacity_check(len(masked), bound, scale)
    total = np.zeros_like(masked[0], dtype=np.uint32)
    for m in masked:
        total = total + np.asarray(m, dtype=np.uint32)
    return total.astype(np.int32).astype(np.float64) / scale

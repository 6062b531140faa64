"""Where the randomness of a private run comes from: the OS, or a seed for a labelled demo.

A DP guarantee holds only if the noise and the sampling are unknown to the attacker. A model
trained with noise from a fixed, published seed is a deterministic function of the data, and
two models from the same seed share their noise, which an attacker can cancel. So every
private run draws from the operating system's CSPRNG unless a seed is given, and a seeded run
is labelled :data:`SEEDED_LABEL` wherever it is reported. DP-SGD, the audit and DP-FedAvg all
take their OS randomness and their labels from here, so that there is one place to check and
one wording for a seeded run.

* :func:`os_seed` - 63 OS bits for seeding a generator (DP-SGD re-seeds its torch generators
  with it every step; the noisy mean and the audit's canaries use it once).
* :class:`Randomness` - one run's separate streams (sampling, noise, masks) for DP-FedAvg and
  secure aggregation. Its secure Gaussian is Box-Muller over 53-bit uniforms from
  ``os.urandom``. Floating-point sampling has known subtleties (Mironov 2012); production
  systems use a discrete Gaussian (Canonne et al. 2020) - this is the teaching version, honest
  about its limits.
* :func:`discrete_laplace` - exact integer Laplace noise (Canonne, Kamath & Steinke 2020) from
  ``random.SystemRandom`` (the OS CSPRNG), for scalar statistics such as the noisy mean: no
  floating-point sampling, so none of Mironov's (2012) attacks on float Laplace noise apply.
"""

from __future__ import annotations

import os
import random
import secrets
from fractions import Fraction

import numpy as np
import torch

from recbook import checks

SEEDED_LABEL = "reproducible demo, not private (seeded noise and sampling)"
SECURE_LABEL = "secure (noise and sampling from the OS CSPRNG)"
NOISELESS_LABEL = "NOT PRIVATE: no noise (a positive control for audits)"


def os_seed() -> int:
    """63 bits from the operating system's CSPRNG, for seeding a generator that must stay
    unpredictable (a private run's noise, batches, canaries)."""
    return secrets.randbits(63)


def mode_label(seed: int | None) -> str:
    """How a run's randomness is described in its output."""
    return SECURE_LABEL if seed is None else SEEDED_LABEL


def _secure_uniform(n: int) -> np.ndarray:
    """``n`` uniforms in (0, 1) from 53 random bits each (os.urandom)."""
    bits = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) / 2.0**53


class Randomness:
    """The random source of one run: ``seed=None`` (OS entropy, private) or a seed (demo)."""

    def __init__(self, seed: int | None) -> None:
        self.seed = None if seed is None else checks.seed(seed)
        # separate streams, so that e.g. drawing masks never changes which clients are sampled
        self._rng = self._noise = self._masks = None
        if seed is not None:
            self._rng, self._noise, self._masks = (
                np.random.default_rng([self.seed, stream]) for stream in (1, 2, 3)
            )

    @property
    def secure(self) -> bool:
        return self.seed is None

    @property
    def label(self) -> str:
        return mode_label(self.seed)

    def uniform(self, n: int) -> np.ndarray:
        """``n`` uniforms in [0, 1): client sampling, dropout draws."""
        return _secure_uniform(n) if self._rng is None else self._rng.random(n)

    def gaussian(self, shape: tuple[int, ...] | torch.Size, std: float) -> torch.Tensor:
        """Float32 N(0, std^2) noise of ``shape``."""
        n = int(np.prod(shape))
        if self._rng is None:
            u1, u2 = _secure_uniform(n), _secure_uniform(n)
            z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        else:
            z = self._noise.standard_normal(n)
        return torch.from_numpy((z * std).astype(np.float32)).reshape(tuple(shape))

    def integers(self, shape: tuple[int, ...], high: int = 2**32) -> np.ndarray:
        """Uniform integers in [0, high): masks for secure aggregation."""
        if self._rng is None:
            n = int(np.prod(shape))
            raw = np.frombuffer(os.urandom(8 * n), dtype=np.uint64)
            return (raw % np.uint64(high)).reshape(shape)
        return self._masks.integers(0, high, size=shape, dtype=np.uint64)


def scalar_rng(seed: int | None) -> random.Random:
    """The generator of a scalar mechanism: the OS CSPRNG (``random.SystemRandom``) without a
    seed; a seeded ``random.Random`` otherwise (reproducible demo, not private)."""
    return random.SystemRandom() if seed is None else random.Random(checks.seed(seed))


def _bernoulli_exp(gamma: Fraction, rng: random.Random) -> bool:
    """Exactly Bernoulli(exp(-gamma)) for rational gamma >= 0 (CKS 2020, Alg. 1)."""
    while gamma > 1:
        if not _bernoulli_exp(Fraction(1), rng):
            return False
        gamma -= 1
    k = 1
    while rng.randrange(gamma.denominator * k) < gamma.numerator:  # Bernoulli(gamma / k)
        k += 1
    return k % 2 == 1


def _geometric_exp(x: Fraction, rng: random.Random) -> int:
    """P[k] proportional to exp(-x k), k = 0, 1, ... for rational x > 0 (CKS 2020, Alg. 2)."""
    s, t = x.numerator, x.denominator
    while True:
        u = rng.randrange(t)
        if _bernoulli_exp(Fraction(u, t), rng):
            break
    v = 0
    while _bernoulli_exp(Fraction(1), rng):
        v += 1
    return (v * t + u) // s


def discrete_laplace(scale: float | Fraction, rng: random.Random) -> int:
    """An integer with P[z] proportional to exp(-|z| / scale), sampled exactly (CKS 2020, Alg. 2)
    with rational arithmetic. Noise of ``scale = Δ / ε`` on an integer statistic of
    sensitivity Δ is ε-DP."""
    scale = Fraction(scale)
    if scale <= 0:
        raise ValueError(f"discrete_laplace: scale must be > 0, got {float(scale)}")
    while True:
        negative = rng.randrange(2) == 1
        magnitude = _geometric_exp(1 / scale, rng)
        if negative and magnitude == 0:
            continue
        return -magnitude if negative else magnitude

"""The randomised mechanisms: Gaussian noise on the clipped gradient sum, and a Laplace mean.

Noise is where the privacy comes from, and its scale is set by the accountant; keeping the
mechanisms apart from the sampling, the clipping and the training loop shows what each one
adds and what it costs in ε:

* :func:`calibrated_noise_multiplier` - σ that spends exactly (ε, δ) for a DP-SGD schedule.
* :func:`_noising_optimizer` - Opacus's noising optimizer for already-clipped gradients, the
  optimizer of ``clipper="embedding_rows"``.
* :func:`private_mean` - an ε-DP statistic paid from the same budget, such as a model's global
  offset, so that no exact statistic of the data goes into a private model: exact discrete
  Laplace noise from the OS CSPRNG on the sum and on the count (or a public count).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import torch

from recbook import checks
from recbook.privacy.accounting import noise_multiplier_for
from recbook.privacy.randomness import discrete_laplace, scalar_rng


@functools.lru_cache(maxsize=256)
def calibrated_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str
) -> float:
    """σ that spends exactly (ε, δ) in ``epochs`` epochs at Poisson rate ``sample_rate``
    (``int(epochs / sample_rate)`` steps, as ``make_private_with_epsilon`` counts them), by
    Opacus's search; cached because the search evaluates the accountant many times and
    notebooks ask for the same budget repeatedly."""
    steps = int(epochs / sample_rate)
    return noise_multiplier_for(target_epsilon, delta, sample_rate, steps, accountant)


@functools.cache
def _noising_optimizer() -> type:
    """Opacus's noising optimizer for clipped gradients (``DPOptimizerFastGradientClipping``) that
    keeps each step's clipped sum with ``clone()`` instead of ``copy.deepcopy``, whose per-call
    overhead is a visible share of a small embedding model's step. Noise, scaling and the
    accountant hook are Opacus's code. Built on first use, so importing this module does not
    import Opacus."""
    from opacus.optimizers import DPOptimizerFastGradientClipping

    class NoisingOptimizer(DPOptimizerFastGradientClipping):
        def add_noise(self) -> None:
            """Seeded: Opacus's own. Secure: Opacus's secure-mode noise (one draw discarded,
            then the sum of four N(0, std²) draws halved, per coordinate) drawn for all
            parameters in one call instead of one per parameter — the same distribution,
            with one generator call per step instead of one per parameter."""
            if not self.secure_mode:
                return super().add_noise()
            from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

            std = getattr(self, "_adjusted_noise_multiplier", self.noise_multiplier)
            std = std * self.max_grad_norm
            sums = [p.summed_grad for p in self.params]
            for s in sums:
                _check_processed_flag(s)
            device, total = sums[0].device, sum(s.numel() for s in sums)
            torch.normal(0.0, std, size=(1, 1), device=device, generator=self.generator)
            draws = torch.normal(0.0, std, size=(4, total), device=device, generator=self.generator)
            noise = draws.sum(0).div_(2).split([s.numel() for s in sums])
            for p, s, z in zip(self.params, sums, noise):
                p.grad = (s + z.view_as(s).to(s.dtype)).view_as(p)
                _mark_as_processed(s)

        def accumulate(self) -> None:
            for p in self.params:
                if p.summed_grad is None:
                    p.summed_grad = p.grad.detach().clone()
                else:
                    p.summed_grad.add_(p.grad.detach())

    return NoisingOptimizer


GRID = 2.0**-20  # the noisy sum is an integer number of these steps


def private_mean(
    values,
    *,
    low: float,
    high: float,
    epsilon: float,
    groups=None,
    seed: int | None = None,
    n: int | None = None,
) -> float:
    """ε-DP mean of values in ``[low, high]``, e.g. a model's global offset.

    Values are centred on the midpoint. The count is not taken as exact: by default (add/remove
    adjacency) the centred sum (one unit moves it by at most ``(high - low) / 2``) and the
    count (by 1) each get ε/2, composed to ε. With a public ``n`` (replace-one adjacency; it
    must equal the number of units) all of ε goes to the sum, whose sensitivity is then
    ``high - low``. With ``groups`` (e.g. user ids) each group first averages its own values,
    so the unit is the group. Values outside the range are refused, not clipped.

    The noise is exact discrete Laplace (:func:`~recbook.privacy.randomness.discrete_laplace`)
    on the sum in steps of 2^-20 and on the count, from the OS CSPRNG unless a ``seed`` is given
    (reproducible demo, not private).
    """
    low, high = checks.number(low, "low"), checks.number(high, "high")
    if not low < high:
        raise ValueError(f"low must be < high, got {low}, {high}")
    epsilon = checks.epsilon(epsilon)
    v = checks.finite_array(values, "values").ravel()
    if v.size == 0:
        raise ValueError("private_mean got no values")
    if v.min() < low or v.max() > high:
        raise ValueError(
            f"values must lie in [{low}, {high}]; found {v.min():.3g}..{v.max():.3g}: fix the "
            "range (it bounds each unit's influence) rather than clipping the data"
        )
    mid, half = (low + high) / 2, (high - low) / 2
    centred = v - mid
    if groups is not None:
        g = np.asarray(groups).ravel()
        checks.same_shape(g, v, "private_mean: groups vs values")
        centred = pd.Series(centred).groupby(g).mean().to_numpy()
    rng = scalar_rng(seed)
    if n is None:
        eps_sum, sensitivity = epsilon / 2, half
    else:
        n = checks.integer(n, "n (the public number of units)", minimum=1)
        if n != centred.size:
            raise ValueError(
                f"n={n} but the data hold {centred.size} units; a public n must be the true "
                "count (or pass n=None to pay for a noisy count)"
            )
        eps_sum, sensitivity = epsilon, 2 * half
    steps = math.ceil(sensitivity / GRID) + 1  # +1: rounding the sum to the grid
    noisy_sum = round(float(centred.sum()) / GRID) + discrete_laplace(
        Fraction(steps) / Fraction(eps_sum), rng
    )
    if n is None:
        count = max(1, centred.size + discrete_laplace(1 / Fraction(epsilon / 2), rng))
    else:
        count = n
    return float(np.clip(mid + noisy_sum * GRID / count, low, high))

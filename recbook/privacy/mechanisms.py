"""The randomised mechanisms: Gaussian noise on the clipped gradient sum, and a Laplace mean.

Noise is where the privacy comes from, and its scale is set by the accountant; keeping the
mechanisms apart from the sampling, the clipping and the training loop shows what each one
adds and what it costs in ε:

* :func:`calibrated_noise_multiplier` - σ that spends exactly (ε, δ) for a DP-SGD schedule.
* :func:`_noising_optimizer` - Opacus's noising optimizer for already-clipped gradients, the
  optimizer of ``clipper="embedding_rows"``.
* :func:`private_mean` - an ε-DP statistic paid from the same budget, such as a model's global
  offset, so that no exact statistic of the data goes into a private model.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch

from recbook import checks
from recbook.privacy.accounting import noise_multiplier_for
from recbook.privacy.randomness import os_seed


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


def private_mean(
    values,
    *,
    low: float,
    high: float,
    epsilon: float,
    groups=None,
    seed: int | None = None,
) -> float:
    """ε-DP mean of values in ``[low, high]`` (Laplace mechanism), e.g. a model's global offset.

    Values are centred on the midpoint, so one unit changes the sum by at most
    ``(high - low) / 2`` (add or remove); the count is treated as public, as Opacus treats n.
    With ``groups`` (e.g. user ids) each group first averages its own values, so the unit is
    the group. Values outside the range are refused, not clipped. Noise from the OS unless a
    ``seed`` is given (reproducible demo, not private).
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
    rng = np.random.default_rng(os_seed() if seed is None else checks.seed(seed))
    noisy_sum = centred.sum() + rng.laplace(0.0, half / epsilon)
    return float(np.clip(mid + noisy_sum / centred.size, low, high))

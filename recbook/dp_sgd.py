"""DP-SGD for recommenders with Opacus: per-example (or per-user) clipping, Gaussian noise,
Poisson sampling and an accountant calibrated to a target (ε, δ) (notebook 05).

:func:`make_private` returns what a training loop needs (module, optimizer, criterion, loader);
:meth:`DPTraining.fit` trains with ε shown in the progress bar, and
:meth:`DPTraining.statement` closes with what the model guarantees.

**Randomness.** ``secure_mode=True`` (the default) is what makes the result private: the
noise and the Poisson batches come from torch generators re-seeded with 63 fresh bits from the
operating system's CSPRNG (``secrets``/``os.urandom``) before every step, and the noise uses
Opacus's secure-mode sampling (four Gaussians per coordinate, robust to the floating-point
attacks on Gaussian samplers). What this guarantees: no seed, no earlier run and nothing in the
code lets anyone predict or reproduce a step's noise or batch, and two runs never share noise.
What it does not: within one step the draws come from torch's generator (Mersenne Twister on
CPU, Philox on CUDA), which is not a cryptographic generator — an attacker who saw raw draws of
one step could in principle recover that step's seed; DP-SGD never publishes raw draws, only
their sum with the gradients. Opacus's own secure mode needs ``torchcsprng``, which has no build
for torch 2.13. ``secure_mode=False`` needs a ``seed``, reproduces every number, and is
labelled "reproducible demo, not private" in the progress bar and the privacy statement: anyone
with the seed can recompute the noise and subtract it.

**Clipping.** Two ways to clip each example's gradient:

* ``clipper="opacus"``: Opacus's ``PrivacyEngine`` with ghost clipping. General (any layer
  Opacus supports); two full backward passes and hooks on every layer.
* ``clipper="embedding_rows"``: for models whose every trainable parameter is an
  ``nn.Embedding`` that each example looks up once (``BiasedMF``). An example's gradient is then
  its backprop vector placed in one row per table, so a cheap backward pass to the lookups gives
  every example's gradient norm exactly, and adding the clipped vectors into their rows gives
  the clipped sum (what a second backward pass would compute, without it). Noise, accounting
  and the optimizer are Opacus's own classes. About half of Opacus's work, which keeps DP-SGD
  under 2x the non-private run (``benchmarks/dp.py``), at the example and the user level.

**Unit of privacy.** ``privacy_unit="example"`` protects one row of the dataset;
``privacy_unit="user"`` (embedding-row clipper) samples users (each user with probability q,
bringing all their rows), clips each user's *summed* gradient to ``max_grad_norm`` and accounts
over the n users: the guarantee covers everything one user contributed.

**Refused up front** (configuration time, before any training): ε ≤ 0, δ outside (0, 1/n), NaN
or non-positive clip norms or learning rates, sparse embeddings (Opacus's noise is dense),
a batch-coupled loss — one example's loss depending on other examples of the batch, as with
in-batch softmax — detected by evaluating the loss on the first 64 rows and on their first half:
per-example losses must not change.
"""

from __future__ import annotations

import copy
import functools
import math
import secrets
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from recbook import checks
from recbook.accounting import (
    ACCOUNTANTS,
    PrivacyStatement,
    accountant_crosscheck,
    check_budget,
    noise_multiplier_for,
)
from recbook.training import History

CLIPPERS = ("opacus", "embedding_rows")
UNITS = ("example", "user")
SEEDED_LABEL = "reproducible demo, not private"


def os_seed() -> int:
    """63 bits from the operating system's CSPRNG, for re-seeding a torch generator."""
    return secrets.randbits(63)


class _BatchTensorDataset(TensorDataset):
    """A ``TensorDataset`` whose batches are one tensor index (``__getitems__``), not one
    Python call per row — Opacus's Poisson loader then costs about what ``TensorBatches`` does."""

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def _keep_batch(batch):
    return batch


def tensor_loader(
    *tensors: torch.Tensor, batch_size: int, seed: int = 0, shuffle: bool = True
) -> DataLoader:
    """A fast ``DataLoader`` over tensors that :func:`make_private` turns into Poisson sampling
    (expected batch size ``batch_size``). ``seed`` only orders the non-private batches; private
    batches are drawn by :func:`make_private`'s own generator."""
    if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
        raise ValueError("tensor_loader needs tensors of one common, non-zero length")
    if len(tensors[0]) == 0:
        raise ValueError("tensor_loader got empty tensors: nothing to train on")
    checks.integer(batch_size, "batch_size", minimum=1, maximum=len(tensors[0]))
    return DataLoader(
        _BatchTensorDataset(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=_keep_batch,
        generator=torch.Generator().manual_seed(checks.seed(seed)),
    )


def _unit_order(units: torch.Tensor, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row order by unit, then by the first integer column that is not the units (stable)."""
    order = torch.arange(len(units))
    second = next(
        (t for t in tensors if t.dim() == 1 and not t.is_floating_point() and not t.equal(units)),
        None,
    )
    if second is not None:
        order = torch.argsort(second, stable=True)
    return order[torch.argsort(units[order], stable=True)]


class PoissonBatches:
    """Opacus's Poisson sampling (``UniformWithReplacementSampler``) vectorised over tensors.

    Every step includes each row independently with probability ``sample_rate``, for
    ``int(1 / sample_rate)`` steps per epoch — Opacus's rule, drawn from ``generator`` in the
    same order, so with the same generator state it yields the very batches ``DPDataLoader``
    does, as one tensor index instead of a Python list per batch.

    With ``units`` (one id per row, e.g. the user) it samples *units* instead: each unit is
    included with probability ``sample_rate`` and brings all its rows (user-level DP-SGD). The
    rows are then kept ordered by unit, and within a unit by the first other id column (e.g.
    the item), so that a batch's per-unit and per-(unit, item) sums are runs of consecutive
    rows for :class:`ClippedLoss` — no sort per step. Which units are drawn does not change.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        sample_rate: float,
        generator: torch.Generator,
        units: torch.Tensor | None = None,
    ) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors) or not len(tensors[0]):
            raise ValueError("PoissonBatches needs tensors of one common, non-zero length")
        rate = checks.number(sample_rate, "sample_rate", positive=True)
        if rate > 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        self.tensors, self.sample_rate, self.generator = tensors, rate, generator
        self.steps = int(1 / self.sample_rate)
        self._unit_of_row = None
        if units is not None:
            if len(units) != len(tensors[0]):
                raise ValueError("units must give one unit id per row")
            order = _unit_order(units, tensors)
            self.tensors = tuple(t[order] for t in tensors)
            uniq, unit_of_row = torch.unique(units[order], return_inverse=True)
            self.n_units = len(uniq)
            # unit k's rows are the run [start[k], start[k] + count[k]) of the ordered rows
            self._count = torch.bincount(unit_of_row, minlength=self.n_units)
            self._start = torch.cumsum(self._count, 0) - self._count
            self._unit_of_row = unit_of_row
        else:
            self.n_units = len(tensors[0])

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            keep = torch.rand(self.n_units, generator=self.generator) < self.sample_rate
            idx = keep.nonzero().reshape(-1)
            if self._unit_of_row is not None:  # the rows of the kept units, in row order
                count = self._count[idx]
                total = int(count.sum())
                shift = self._start[idx] - (torch.cumsum(count, 0) - count)
                idx = torch.repeat_interleave(shift, count, output_size=total)
                idx += torch.arange(total)
            yield tuple(t[idx] for t in self.tensors)


class ReseededEachStep:
    """Wraps a batch iterable so that, before each batch (one optimizer step), every generator
    in ``generators`` is re-seeded from the OS — secure mode's per-step fresh randomness."""

    def __init__(self, loader: Iterable, generators: Sequence[torch.Generator]) -> None:
        self.loader, self.generators = loader, list(generators)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def sample_rate(self) -> float:
        return self.loader.sample_rate

    def __iter__(self) -> Iterator:
        batches = iter(self.loader)
        while True:
            for g in self.generators:
                g.manual_seed(os_seed())
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield batch


# ---------------------------------------------------------------------------------------------
# Clipping for embedding models: one backward pass to the lookups, one for the clipped loss
# ---------------------------------------------------------------------------------------------


def _one_row_embedding_norms(layer: nn.Embedding, activations, backprops):
    """Opacus norm sampler for an ``nn.Embedding`` when each example looks up one row: the
    gradient is the backprop vector placed in that row, so its norm is the vector's norm.
    Any other input shape goes to Opacus's general (sort-based) norm sampler."""
    from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample

    ids = activations[0]
    if ids.numel() == ids.shape[0] and backprops.numel() == ids.shape[0] * layer.embedding_dim:
        return {layer.weight: backprops.reshape(ids.shape[0], layer.embedding_dim).norm(2, dim=1)}
    return compute_embedding_norm_sample(layer, activations, backprops)


def _register_fast_embedding_norms() -> None:
    from opacus.grad_sample.utils import register_norm_sampler

    register_norm_sampler(nn.Embedding)(_one_row_embedding_norms)


def _segments(keys: torch.Tensor) -> tuple[torch.Tensor, int, bool]:
    """(segment index of each key, number of distinct keys, whether all keys are distinct),
    segments numbered in increasing key order. Non-decreasing keys (a batch in
    :class:`PoissonBatches`' order) are split into runs in one pass; others are sorted."""
    n = len(keys)
    if n < 2 or bool((keys[1:] >= keys[:-1]).all()):
        starts = keys[1:] != keys[:-1]
        index = torch.zeros(n, dtype=torch.long, device=keys.device)
        torch.cumsum(starts, 0, out=index[1:])
        count = int(index[-1]) + 1 if n else 0
        return index, count, count == n
    uniq, index = torch.unique(keys, return_inverse=True)
    return index, len(uniq), len(uniq) == n


@dataclass
class ClippedLoss:
    """Per-example losses of one batch and the embedding lookups that produced them.
    ``backward()`` leaves in each parameter's ``.grad`` the sum of the examples' gradients, each
    clipped to norm ``max_grad_norm`` — or, with ``units``, the sum over units (users) of each
    unit's summed gradient clipped to ``max_grad_norm`` — what the noising optimizer then noises
    and averages."""

    losses: torch.Tensor
    lookups: list[torch.Tensor]
    max_grad_norm: float
    ids: list[torch.Tensor] | None = None  # row ids looked up in each table
    table_sizes: list[int] | None = None
    units: torch.Tensor | None = None  # the privacy unit of each example (user-level)
    weights: list[torch.Tensor] | None = None  # the tables' weights, to write .grad directly

    def lookup_gradients(self) -> list[torch.Tensor]:
        """d loss_n / d lookup_n for every table: example n's whole gradient, because example n
        touches one row per table and that row's gradient is exactly this vector."""
        if len(self.losses) == 0:
            return [torch.zeros_like(t) for t in self.lookups]
        return list(torch.autograd.grad(self.losses.sum(), self.lookups, retain_graph=True))

    @staticmethod
    def norms(lookup_gradients: list[torch.Tensor]) -> torch.Tensor:
        """Per-example gradient norms over all tables."""
        squares = torch.stack([g.flatten(1).square().sum(1) for g in lookup_gradients])
        return squares.sum(0).sqrt()

    def per_example_norms(self) -> torch.Tensor:
        """Each example's full gradient norm (what Opacus's ghost clipping computes)."""
        return self.norms(self.lookup_gradients())

    def unit_norms(self, lookup_gradients: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(norm of each unit's summed gradient, the unit index of each example).

        A unit's gradient in table t is the sum of its examples' lookup gradients placed in
        their rows; examples of one unit that hit the same row add up before the norm, so the
        sum is taken per (unit, row) pair and the squares are added per unit. These are segment
        sums: when the batch comes ordered by unit (and by row within a unit, as
        :class:`PoissonBatches` yields it) the segments are runs of equal keys, found in one
        pass; a batch with no repeated (unit, row) pair needs no per-pair sum at all. Any other
        order falls back to sorting (``torch.unique``) — the same sums either way."""
        if self.units is None or self.ids is None or self.table_sizes is None:
            raise ValueError("unit_norms needs units, ids and table sizes (user-level clipping)")
        unit_of, n_units, _ = _segments(self.units)
        squares = torch.zeros(n_units, device=self.losses.device)
        for g, rows, size in zip(lookup_gradients, self.ids, self.table_sizes):
            flat = g.flatten(1)
            own_row = torch.equal(rows, self.units)  # the unit's own row (e.g. the user tables)
            if own_row:
                pair_of, n_pairs, distinct = unit_of, n_units, False
            else:
                pair_of, n_pairs, distinct = _segments(unit_of * size + rows)
            if distinct:  # one example per (unit, row): its gradient is the pair's sum
                squares.index_add_(0, unit_of, flat.square().sum(1).to(squares.dtype))
                continue
            summed = torch.zeros(n_pairs, flat.shape[1], device=flat.device, dtype=flat.dtype)
            per_pair = summed.index_add_(0, pair_of, flat).square().sum(1).to(squares.dtype)
            if own_row:
                squares += per_pair
            else:
                unit_of_pair = torch.empty(n_pairs, dtype=unit_of.dtype, device=unit_of.device)
                unit_of_pair[pair_of] = unit_of
                squares.index_add_(0, unit_of_pair, per_pair)
        return squares.sqrt(), unit_of

    def backward(self) -> None:
        grads = self.lookup_gradients()
        # Opacus's clipping factor, C / (norm + 1e-6) capped at 1, scales each example's
        # lookup gradients; pushing them into the tables sums the clipped gradients per row.
        if self.units is None:
            factor = (self.max_grad_norm / (self.norms(grads) + 1e-6)).clamp(max=1.0)
        else:
            unit_norm, unit_of = self.unit_norms(grads)
            factor = (self.max_grad_norm / (unit_norm + 1e-6)).clamp(max=1.0)[unit_of]
        clipped = [g * factor.reshape(-1, *[1] * (g.dim() - 1)) for g in grads]
        if self.weights is None or self.ids is None:
            torch.autograd.backward(self.lookups, clipped)
            return
        # What the embeddings' backward pass computes (each example's clipped vector added to
        # its row), written straight into .grad: the autograd pass through the lookups costs
        # about a third of a non-private step on notebook 05's model.
        for weight, rows, g in zip(self.weights, self.ids, clipped):
            if weight.grad is None:
                weight.grad = torch.zeros_like(weight)
            weight.grad.index_add_(
                0, rows, g.reshape(len(rows), *weight.shape[1:]).to(weight.dtype)
            )

    def detach(self) -> torch.Tensor:
        """The batch's mean loss (for logging), like a reduced loss's ``detach()``."""
        if len(self.losses) == 0:
            return torch.zeros((), device=self.losses.device)
        return self.losses.detach().mean()


class EmbeddingRowClipping:
    """Criterion for DP-SGD on models whose trainable parameters are all ``nn.Embedding``
    tables, each looked up once per example (one id per example, no tied tables).

    It hooks the tables to keep each forward pass's lookups and returns a :class:`ClippedLoss`.
    With ``unit_input`` (the position of the unit id, e.g. the user, among the model's inputs)
    it clips per unit instead of per example. Anything it cannot clip exactly (a ``Linear``
    layer, sequences of ids, a table used twice, sparse gradients, padding rows or
    frequency-scaled gradients) raises an error that names it: use ``clipper="opacus"``.
    Without gradients it returns the mean loss.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        max_grad_norm: float,
        unit_input: int | None = None,
    ) -> None:
        if not hasattr(criterion, "reduction"):
            raise TypeError(
                f"criterion {type(criterion).__name__} has no `reduction`; "
                "pass a torch loss module such as nn.MSELoss()"
            )
        self.criterion = copy.copy(criterion)
        self.criterion.reduction = "none"
        self.max_grad_norm = checks.number(max_grad_norm, "max_grad_norm", positive=True)
        self.unit_input = None if unit_input is None else checks.integer(unit_input, "unit_input")
        self._names = {
            m: name
            for name, m in model.named_modules()
            if isinstance(m, nn.Embedding) and m.weight.requires_grad
        }
        self.tables = list(self._names)
        sparse = [name for m, name in self._names.items() if m.sparse]
        if sparse:
            raise ValueError(
                f"tables {sparse} emit sparse gradients (sparse=True); DP-SGD adds dense noise "
                "to every row, so build the model with sparse=False"
            )
        weights = {id(t.weight) for t in self.tables}
        if len(weights) < len(self.tables):
            raise ValueError(
                f"tables {list(self._names.values())} share a weight (tied embeddings): an "
                "example's rows can then overlap. Use clipper='opacus' for this model"
            )
        unusual = [
            name
            for m, name in self._names.items()
            if m.padding_idx is not None or m.scale_grad_by_freq
        ]
        if unusual:
            raise ValueError(
                f"tables {unusual} use padding_idx or scale_grad_by_freq: a lookup's gradient "
                "is then not its backprop vector in its row (a padding row gets none, scaling "
                "couples the batch), so per-example norms would be wrong. Use clipper='opacus'"
            )
        others = [
            n for n, p in model.named_parameters() if p.requires_grad and id(p) not in weights
        ]
        if others:
            raise ValueError(
                f"clipper='embedding_rows' needs every trainable parameter to be an nn.Embedding "
                f"table; {others} are not. Use clipper='opacus' for this model"
            )
        if not self.tables:
            raise ValueError("model has no trainable nn.Embedding tables: nothing to make private")
        self._lookups: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self._units: torch.Tensor | None = None
        self._weights = [t.weight for t in self.tables]  # .grad is written here directly
        model.register_forward_pre_hook(self._new_forward)
        for table in self.tables:
            table.register_forward_hook(self._keep_lookup)

    def _new_forward(self, module: nn.Module, args) -> None:
        self._lookups = {}
        if self.unit_input is not None and module.training and torch.is_grad_enabled():
            if self.unit_input >= len(args):
                raise ValueError(
                    f"unit_input={self.unit_input} but the model got {len(args)} inputs"
                )
            self._units = args[self.unit_input]

    def _keep_lookup(self, table: nn.Module, args, output: torch.Tensor) -> None:
        if not (table.training and torch.is_grad_enabled()):
            return
        name = self._names[table]
        if table in self._lookups:
            raise ValueError(
                f"table {name!r} was looked up twice in one forward pass; per-example norms of a "
                "shared table need clipper='opacus'"
            )
        ids = args[0]
        if ids.dim() != 1:
            raise ValueError(
                f"table {name!r} got ids of shape {tuple(ids.shape)}; clipper='embedding_rows' "
                "needs one id per example (shape (batch,)). Use clipper='opacus'"
            )
        self._lookups[table] = (ids, output)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> ClippedLoss | torch.Tensor:
        losses = self.criterion(output, target)
        if not torch.is_grad_enabled():
            return losses.mean()
        if losses.shape != (len(target),):
            raise ValueError(
                f"the criterion must give one loss per example, shape ({len(target)},); got "
                f"{tuple(losses.shape)}"
            )
        missing = [self._names[t] for t in self.tables if t not in self._lookups]
        if missing:
            raise RuntimeError(
                f"no lookups recorded for {missing}: call the model (in train mode, with "
                "gradients) on this batch before the loss"
            )
        kept, self._lookups = [self._lookups[t] for t in self.tables], {}
        units = None
        if self.unit_input is not None:
            units, self._units = self._units, None
            if units is None or units.shape != (len(target),):
                raise RuntimeError("no unit ids recorded for this batch: call the model first")
        return ClippedLoss(
            losses,
            [out for _, out in kept],
            self.max_grad_norm,
            ids=[ids for ids, _ in kept],
            table_sizes=[t.num_embeddings for t in self.tables],
            units=units,
            weights=self._weights,
        )


@functools.cache
def _noising_optimizer() -> type:
    """Opacus's noising optimizer for clipped gradients (``DPOptimizerFastGradientClipping``) that
    keeps each step's clipped sum with ``clone()`` instead of ``copy.deepcopy`` — about 0.1 ms of a
    2 ms step on notebook 05's model. Noise, scaling and the accountant hook are Opacus's code."""
    from opacus.optimizers import DPOptimizerFastGradientClipping

    class NoisingOptimizer(DPOptimizerFastGradientClipping):
        def add_noise(self) -> None:
            """Seeded: Opacus's own. Secure: Opacus's secure-mode noise (one draw discarded,
            then the sum of four N(0, std²) draws halved, per coordinate) drawn for all
            parameters in one call instead of one per parameter — same distribution, about
            a third less time on notebook 05's model."""
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


# ---------------------------------------------------------------------------------------------
# A noisy statistic paid from the budget (instead of an exact one inside the model)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# make_private
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def calibrated_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str
) -> float:
    """σ that spends exactly (ε, δ) in ``epochs`` epochs at Poisson rate ``sample_rate``
    (``int(epochs / sample_rate)`` steps, as ``make_private_with_epsilon`` counts them), by
    Opacus's search; cached because it takes about a second and notebooks ask for the same
    budget repeatedly."""
    steps = int(epochs / sample_rate)
    return noise_multiplier_for(target_epsilon, delta, sample_rate, steps, accountant)


def _to(batch: Iterable[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


@dataclass
class DPTraining:
    """What :func:`make_private` returns: train with :meth:`fit` (or any loop over ``module``,
    ``optimizer``, ``criterion`` and ``loader``), then read the spent ε and the statement."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: object
    loader: Iterable
    ledger: object  # the Opacus accountant that records every step
    target_epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    max_grad_norm: float
    accountant: str
    clipper: str
    secure_mode: bool
    seed: int | None
    privacy_unit: str
    n_units: int
    epochs: int

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far (from the accountant's history)."""
        return int(sum(s for _, _, s in self.ledger.history))

    @property
    def label(self) -> str:
        """ "private" in secure mode, else the seeded-demo label."""
        return "private" if self.secure_mode else SEEDED_LABEL

    def epsilon(self) -> float:
        """ε spent so far, by the accountant the noise was calibrated with (0 before a step)."""
        if not self.ledger.history:
            return 0.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(self.ledger.get_epsilon(self.delta))

    def crosscheck(self) -> pd.DataFrame:
        """:func:`recbook.accounting.accountant_crosscheck` for the steps taken so far."""
        return accountant_crosscheck(
            self.noise_multiplier, self.sample_rate, self.steps, self.delta
        )

    def statement(
        self, model: str = "model", other_spends: Sequence[tuple[str, float]] = ()
    ) -> PrivacyStatement:
        """The closing privacy statement; ``other_spends`` lists ε paid from the same budget
        outside training (e.g. ``[("noisy mean rating", 0.05)]``), added to the total."""
        spends = tuple((str(w), checks.epsilon(e, w)) for w, e in other_spends)
        unit_description = (
            "one row (one rating)"
            if self.privacy_unit == "example"
            else "all rows of one user (every rating they gave)"
        )
        return PrivacyStatement(
            model=f"{model}, DP-SGD ({self.privacy_unit} level, clipper {self.clipper})",
            unit=self.privacy_unit,
            unit_description=unit_description,
            n_units=self.n_units,
            epsilon_training=self.epsilon(),
            delta=self.delta,
            accountant=self.accountant,
            sample_rate=self.sample_rate,
            steps=self.steps,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            secure=self.secure_mode,
            other_spends=spends,
        )

    def fit(
        self,
        epochs: int | None = None,
        *,
        device: torch.device | str = "cpu",
        desc: str = "DP-SGD",
        progress: bool = True,
    ) -> History:
        """Train for ``epochs`` (default: the epochs ε was calibrated for). The progress bar
        shows the loss and ε spent so far (computed only when the bar is shown); a seeded run's
        bar says it is a reproducible demo, not private."""
        epochs = self.epochs if epochs is None else checks.integer(epochs, "epochs", minimum=1)
        device = torch.device(device)
        self.module.to(device)
        label = "" if self.secure_mode else f" [{SEEDED_LABEL}]"
        rows, start = [], time.perf_counter()
        bar = tqdm(range(1, epochs + 1), desc=desc + label, disable=not progress, leave=True)
        for epoch in bar:
            self.module.train()
            t0, total, count = time.perf_counter(), 0.0, 0
            for batch in self.loader:
                *inputs, target = _to(batch, device)
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.criterion(self.module(*inputs), target)
                loss.backward()
                self.optimizer.step()
                if len(target):  # an empty Poisson batch still steps (noise only)
                    total += float(loss.detach()) * len(target)
                    count += len(target)
            loss_value = total / max(count, 1)
            if not math.isfinite(loss_value):
                bar.close()
                raise FloatingPointError(
                    f"training loss became {loss_value} in epoch {epoch}: lower the learning rate"
                )
            rows.append({"epoch": epoch, "train_loss": loss_value})
            rows[-1]["seconds"] = time.perf_counter() - t0
            if progress:
                bar.set_postfix({"loss": f"{loss_value:.4f}", "ε": f"{self.epsilon():.3f}"})
        bar.close()
        return History(
            frame=pd.DataFrame(rows).set_index("epoch"),
            best_epoch=epochs,
            seconds=time.perf_counter() - start,
        )


def _dataset_rows(loader: DataLoader, k: int) -> list[torch.Tensor]:
    dataset = loader.dataset
    if isinstance(dataset, TensorDataset):
        return [t[:k] for t in dataset.tensors]
    return list(torch.utils.data.default_collate([dataset[i] for i in range(k)]))


def refuse_batch_coupled_loss(
    model: nn.Module, criterion: nn.Module, rows: Sequence[torch.Tensor], device: torch.device
) -> None:
    """Raise if one example's loss depends on the other examples of its batch.

    DP-SGD's clipping assumes the batch loss is a sum of per-example losses; with in-batch
    softmax (or batch norm) example n's loss moves when others join, so its clipped "gradient"
    is not its own and the accounted sensitivity is wrong. The test: per-example losses of
    ``rows`` must equal those of their first half evaluated alone (model in eval mode, no
    gradients). It reveals nothing private beyond this code property, and runs before training.
    """
    k = len(rows[0])
    if k < 2:
        return
    half = k // 2
    crit = copy.copy(criterion)
    crit.reduction = "none"
    *inputs, target = [t.to(device) for t in rows]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            full = crit(model(*inputs), target)
            part = crit(model(*[t[:half] for t in inputs]), target[:half])
    finally:
        model.train(was_training)
    if full.shape != (k,):
        raise ValueError(
            f"the criterion must give one loss per example with reduction='none', shape ({k},);"
            f" got {tuple(full.shape)}"
        )
    if part.shape != (half,) or not torch.allclose(full[:half], part, rtol=1e-4, atol=1e-6):
        raise ValueError(
            "batch-coupled loss: an example's loss changes with the other examples in its batch "
            "(in-batch softmax? batch norm?). DP-SGD clips per-example gradients, which such a "
            "loss does not have; use a per-example loss (e.g. sampled negatives per example)"
        )


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    criterion: nn.Module,
    *,
    target_epsilon: float,
    delta: float,
    epochs: int,
    max_grad_norm: float,
    accountant: str = "rdp",
    clipper: str = "opacus",
    secure_mode: bool = True,
    seed: int | None = None,
    privacy_unit: str = "example",
    unit_input: int = 0,
) -> DPTraining:
    """DP-SGD for ``model`` calibrated to spend (``target_epsilon``, ``delta``) in ``epochs``.

    Each step samples every unit (row, or user with ``privacy_unit="user"``, whose id is input
    number ``unit_input``) independently with probability ``q = 1 / len(loader)`` (Poisson),
    clips each unit's gradient to ``max_grad_norm`` and adds Gaussian noise of std
    ``noise_multiplier * max_grad_norm``; δ must be below 1/n for n units. ``secure_mode``
    (default) draws noise and batches from OS-seeded generators re-seeded every step (see the
    module docstring for exactly what that guarantees); ``secure_mode=False`` needs ``seed``
    and is a reproducible demo, not private. Move the model to its device first.
    """
    from opacus import PrivacyEngine
    from opacus.accountants import create_accountant
    from opacus.data_loader import DPDataLoader

    checks.one_of(accountant, ACCOUNTANTS, "accountant")
    checks.one_of(clipper, CLIPPERS, "clipper (use one of dp_sgd.CLIPPERS)")
    checks.one_of(privacy_unit, UNITS, "privacy_unit")
    if not isinstance(loader, DataLoader):
        raise TypeError("make_private needs a torch DataLoader; build one with tensor_loader()")
    if not hasattr(criterion, "reduction"):
        raise TypeError(
            f"criterion {type(criterion).__name__} has no `reduction`; pass a torch loss module"
        )
    epochs = checks.integer(epochs, "epochs", minimum=1)
    max_grad_norm = checks.number(max_grad_norm, "max_grad_norm", positive=True)
    for group in optimizer.param_groups:
        checks.number(float(group["lr"]), "the optimizer's learning rate", positive=True)
    if secure_mode and seed is not None:
        raise ValueError(
            "secure_mode=True draws its randomness from the OS; a seed would make the noise "
            "predictable. Pass secure_mode=False with the seed for a reproducible demo"
        )
    if not secure_mode:
        if seed is None:
            raise ValueError(f"secure_mode=False needs a seed: the run is then a {SEEDED_LABEL!r}")
        seed = checks.seed(seed)
    sparse = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding) and m.sparse]
    if sparse:
        raise ValueError(
            f"embeddings {sparse} are sparse (sparse=True); DP-SGD adds dense noise to every "
            "row, which sparse gradients cannot hold. Build the model with sparse=False"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters: nothing to make private")
    tensor_data = isinstance(loader.dataset, TensorDataset)
    units = None
    if privacy_unit == "user":
        if clipper != "embedding_rows" or not tensor_data:
            raise ValueError(
                "privacy_unit='user' needs clipper='embedding_rows' and a tensor_loader() "
                "(per-user sums are taken over embedding lookups)"
            )
        unit_input = checks.integer(unit_input, "unit_input", minimum=0)
        if unit_input >= len(loader.dataset.tensors) - 1:
            raise ValueError(f"unit_input={unit_input} is not one of the model's inputs")
        units = loader.dataset.tensors[unit_input]
        n_units = int(torch.unique(units).numel())
    else:
        n_units = len(loader.dataset)
    target_epsilon, delta = check_budget(target_epsilon, delta, n_units)
    if clipper == "embedding_rows":  # refuses models it cannot clip before anything runs
        row_clipping = EmbeddingRowClipping(
            model, criterion, max_grad_norm, unit_input if units is not None else None
        )
    device = params[0].device
    refuse_batch_coupled_loss(
        model, criterion, _dataset_rows(loader, min(64, len(loader.dataset))), device
    )

    sampling = torch.Generator()
    noise = torch.Generator(device=device)
    if secure_mode:
        sampling.manual_seed(os_seed())
        noise.manual_seed(os_seed())
    else:
        sampling.manual_seed(seed)
        noise.manual_seed(seed + 1)
    if clipper == "opacus":
        # Ghost clipping's two backward passes trip a harmless torch notice on every model
        # whose inputs are ids (nothing upstream needs a gradient); silence only that message.
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients")
    sample_rate = 1 / len(loader)  # Opacus's rule: one expected batch per loader batch
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        sigma = calibrated_noise_multiplier(target_epsilon, delta, sample_rate, epochs, accountant)
        if clipper == "opacus":
            # PrivacyEngine.make_private_with_epsilon is this call after its own σ search
            _register_fast_embedding_norms()
            engine = PrivacyEngine(accountant=accountant)
            module, dp_optimizer, dp_criterion, _ = engine.make_private(
                module=model,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=max_grad_norm,
                poisson_sampling=True,
                grad_sample_mode="ghost",
                noise_generator=noise,
            )
            dp_optimizer.secure_mode = secure_mode  # Opacus's floating-point-safe noise
            ledger = engine.accountant
        else:
            # the pieces PrivacyEngine assembles, with EmbeddingRowClipping doing the clipping
            module, dp_criterion = model, row_clipping
            dp_optimizer = _noising_optimizer()(
                optimizer,
                noise_multiplier=sigma,
                max_grad_norm=max_grad_norm,
                expected_batch_size=max(1, int(n_units * sample_rate)),  # as PrivacyEngine
                loss_reduction="mean",
                generator=noise,
                secure_mode=secure_mode,
            )
            ledger = create_accountant(mechanism=accountant)
            dp_optimizer.attach_step_hook(ledger.get_optimizer_hook_fn(sample_rate=sample_rate))
    if tensor_data:
        dp_loader = PoissonBatches(
            *loader.dataset.tensors, sample_rate=sample_rate, generator=sampling, units=units
        )
    else:
        dp_loader = DPDataLoader.from_data_loader(loader, generator=sampling)
    if secure_mode:
        dp_loader = ReseededEachStep(dp_loader, [sampling, noise])
    return DPTraining(
        module=module,
        optimizer=dp_optimizer,
        criterion=dp_criterion,
        loader=dp_loader,
        ledger=ledger,
        target_epsilon=target_epsilon,
        delta=delta,
        noise_multiplier=float(dp_optimizer.noise_multiplier),
        sample_rate=float(sample_rate),
        max_grad_norm=max_grad_norm,
        accountant=accountant,
        clipper=clipper,
        secure_mode=bool(secure_mode),
        seed=seed,
        privacy_unit=privacy_unit,
        n_units=n_units,
        epochs=epochs,
    )

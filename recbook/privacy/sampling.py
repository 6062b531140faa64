"""Which rows a DP-SGD step sees: Poisson-sampled batches, per example or per user.

DP-SGD's accounting assumes Poisson sampling (every unit joins a step independently with
probability q), not shuffled fixed-size batches, so the batches are part of the privacy
mechanism and live here, apart from the training loop:

* :func:`tensor_loader` - the ``DataLoader`` that :func:`recbook.privacy.dp_sgd.make_private`
  turns into Poisson sampling; its batches are one tensor index, not one Python call per row.
* :class:`PoissonBatches` - Opacus's sampler vectorised over tensors, with whole users as the
  unit for user-level DP, rows kept in the order the user-level clipper reads in one pass.
* :class:`ReseededEachStep` - secure mode's fresh OS seed for every step's generators.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset

from recbook import checks
from recbook.privacy.randomness import os_seed


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
    """A fast ``DataLoader`` over tensors that :func:`~recbook.privacy.dp_sgd.make_private`
    turns into Poisson sampling (expected batch size ``batch_size``). ``seed`` only orders the
    non-private batches; private batches are drawn by ``make_private``'s own generator."""
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
    rows for :class:`~recbook.privacy.clipping.ClippedLoss` — no sort per step. Which units are
    drawn does not change.
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

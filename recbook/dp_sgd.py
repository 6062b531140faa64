"""DP-SGD for recommenders with Opacus: per-example clipping, Gaussian noise, Poisson sampling
and an accountant calibrated to a target (ε, δ) (notebook 05).

:func:`make_private` returns what a training loop needs (module, optimizer, criterion, loader)
and reads the spent ε afterwards. Two ways to clip each example's gradient:

* ``clipper="opacus"``: Opacus's ``PrivacyEngine`` with ghost clipping. General (any layer
  Opacus supports); two full backward passes and hooks on every layer.
* ``clipper="embedding_rows"``: for models whose every trainable parameter is an
  ``nn.Embedding`` that each example looks up once (``BiasedMF``). An example's gradient is then
  its backprop vector placed in one row per table, so a cheap backward pass to the lookups gives
  every example's gradient norm exactly, and one full backward pass of the clipped loss gives the
  clipped sum. Noise, Poisson sampling and accounting are still Opacus's own classes. It does
  the same computation with about half the work, which is what brings DP-SGD's cost on the
  notebook's model under 2x the non-private run (``benchmarks/dp.py``).
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recbook.privacy import ACCOUNTANTS, accountant_crosscheck, check_budget, noise_multiplier_for

CLIPPERS = ("opacus", "embedding_rows")


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
    """A fast ``DataLoader`` over tensors that :func:`make_private` can turn into Opacus's
    Poisson-sampling loader (expected batch size ``batch_size``)."""
    if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
        raise ValueError("tensor_loader needs tensors of one common, non-zero length")
    if len(tensors[0]) == 0:
        raise ValueError("tensor_loader got empty tensors: nothing to train on")
    if batch_size <= 0 or batch_size > len(tensors[0]):
        raise ValueError(f"batch_size must be in 1..{len(tensors[0])}, got {batch_size}")
    return DataLoader(
        _BatchTensorDataset(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=_keep_batch,
        generator=torch.Generator().manual_seed(seed),
    )


class PoissonBatches:
    """Opacus's Poisson sampling (``UniformWithReplacementSampler``) vectorised over tensors.

    Every step includes each row independently with probability ``sample_rate``, for
    ``int(1 / sample_rate)`` steps per epoch — Opacus's rule, drawn from ``generator`` in the
    same order, so with the same generator state it yields the very batches ``DPDataLoader``
    does, as one tensor index instead of a Python list per batch.
    """

    def __init__(
        self, *tensors: torch.Tensor, sample_rate: float, generator: torch.Generator
    ) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors) or not len(tensors[0]):
            raise ValueError("PoissonBatches needs tensors of one common, non-zero length")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        self.tensors, self.sample_rate, self.generator = tensors, float(sample_rate), generator
        self.steps = int(1 / self.sample_rate)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        n = len(self.tensors[0])
        for _ in range(self.steps):
            keep = torch.rand(n, generator=self.generator) < self.sample_rate
            idx = keep.nonzero().reshape(-1)
            yield tuple(t[idx] for t in self.tensors)


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
        return {layer.weight: backprops.reshape(ids.shape[0], -1).norm(2, dim=1)}
    return compute_embedding_norm_sample(layer, activations, backprops)


def _register_fast_embedding_norms() -> None:
    from opacus.grad_sample.utils import register_norm_sampler

    register_norm_sampler(nn.Embedding)(_one_row_embedding_norms)


@dataclass
class ClippedLoss:
    """Per-example losses of one batch and the embedding lookups that produced them.
    ``backward()`` leaves in each parameter's ``.grad`` the sum of the examples' gradients, each
    clipped to norm ``max_grad_norm`` — what Opacus's optimizer then noises and averages."""

    losses: torch.Tensor
    lookups: list[torch.Tensor]
    max_grad_norm: float

    def lookup_gradients(self) -> list[torch.Tensor]:
        """d loss_n / d lookup_n for every table: example n's whole gradient, because example n
        touches one row per table and that row's gradient is exactly this vector."""
        if len(self.losses) == 0:
            return [torch.zeros_like(t) for t in self.lookups]
        return list(torch.autograd.grad(self.losses.sum(), self.lookups, retain_graph=True))

    @staticmethod
    def norms(lookup_gradients: list[torch.Tensor]) -> torch.Tensor:
        """Per-example gradient norms over all tables."""
        squares = torch.stack([g.reshape(len(g), -1).square().sum(1) for g in lookup_gradients])
        return squares.sum(0).sqrt()

    def per_example_norms(self) -> torch.Tensor:
        """Each example's full gradient norm (what Opacus's ghost clipping computes)."""
        return self.norms(self.lookup_gradients())

    def backward(self) -> None:
        grads = self.lookup_gradients()
        # Opacus's clipping factor, C / (norm + 1e-6) capped at 1, scales each example's
        # lookup gradients; pushing them into the tables sums the clipped gradients per row.
        factor = (self.max_grad_norm / (self.norms(grads) + 1e-6)).clamp(max=1.0)
        clipped = [g * factor.reshape(-1, *[1] * (g.dim() - 1)) for g in grads]
        torch.autograd.backward(self.lookups, clipped)

    def detach(self) -> torch.Tensor:
        """The batch's mean loss (for logging), like a reduced loss's ``detach()``."""
        if len(self.losses) == 0:
            return torch.zeros((), device=self.losses.device)
        return self.losses.detach().mean()


class EmbeddingRowClipping:
    """Criterion for DP-SGD on models whose trainable parameters are all ``nn.Embedding``
    tables, each looked up once per example (one id per example, no tied tables).

    It hooks the tables to keep each forward pass's lookups and returns a :class:`ClippedLoss`.
    Anything else (a ``Linear`` layer, sequences of ids, a table used twice) raises an error
    that names it: use ``clipper="opacus"`` for such models. Without gradients (evaluation) it
    returns the plain mean loss.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module, max_grad_norm: float) -> None:
        if not hasattr(criterion, "reduction"):
            raise TypeError(
                f"criterion {type(criterion).__name__} has no `reduction`; "
                "pass a torch loss module such as nn.MSELoss()"
            )
        self.criterion = copy.copy(criterion)
        self.criterion.reduction = "none"
        self.max_grad_norm = float(max_grad_norm)
        self._names = {
            m: name
            for name, m in model.named_modules()
            if isinstance(m, nn.Embedding) and m.weight.requires_grad
        }
        self.tables = list(self._names)
        weights = {id(t.weight) for t in self.tables}
        if len(weights) < len(self.tables):
            raise ValueError(
                f"tables {list(self._names.values())} share a weight (tied embeddings): an "
                "example's rows can then overlap. Use clipper='opacus' for this model"
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
        self._lookups: dict[nn.Module, torch.Tensor] = {}
        model.register_forward_pre_hook(self._new_forward)
        for table in self.tables:
            table.register_forward_hook(self._keep_lookup)

    def _new_forward(self, module: nn.Module, args) -> None:
        self._lookups = {}

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
        self._lookups[table] = output

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
        lookups, self._lookups = [self._lookups[t] for t in self.tables], {}
        return ClippedLoss(losses, lookups, self.max_grad_norm)


@functools.cache
def _noising_optimizer() -> type:
    """Opacus's noising optimizer for clipped gradients (``DPOptimizerFastGradientClipping``) that
    keeps each step's clipped sum with ``clone()`` instead of ``copy.deepcopy`` — about 0.1 ms of a
    2 ms step on notebook 05's model. Noise, scaling and the accountant hook are Opacus's code."""
    from opacus.optimizers import DPOptimizerFastGradientClipping

    class NoisingOptimizer(DPOptimizerFastGradientClipping):
        def accumulate(self) -> None:
            for p in self.params:
                if p.summed_grad is None:
                    p.summed_grad = p.grad.detach().clone()
                else:
                    p.summed_grad.add_(p.grad.detach())

    return NoisingOptimizer


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


@dataclass
class DPTraining:
    """What :func:`make_private` returns: train ``module`` with ``optimizer``, ``criterion`` and
    ``loader`` (e.g. through ``recbook.training.fit``), then read the spent ε."""

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

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far (from the accountant's history)."""
        return int(sum(s for _, _, s in self.ledger.history))

    def epsilon(self) -> float:
        """ε spent so far, by the accountant the noise was calibrated with."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(self.ledger.get_epsilon(self.delta))

    def crosscheck(self) -> pd.DataFrame:
        """:func:`recbook.privacy.accountant_crosscheck` for the steps taken so far."""
        return accountant_crosscheck(
            self.noise_multiplier, self.sample_rate, self.steps, self.delta
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
    seed: int = 0,
    clipper: str = "opacus",
) -> DPTraining:
    """DP-SGD for ``model`` calibrated to spend (``target_epsilon``, ``delta``) in ``epochs``.

    Each step samples every example independently with probability ``batch_size / n``
    (Poisson), clips each example's gradient to ``max_grad_norm`` and adds Gaussian noise of std
    ``noise_multiplier * max_grad_norm``. The unit of privacy is one row of ``loader``'s dataset.
    ``clipper`` picks how per-example norms are computed (see the module docstring); the
    noise, sampling and accounting are Opacus's either way. Batches are drawn with ``loader``'s
    generator (seeded by :func:`tensor_loader`); the noise with a generator seeded from ``seed``
    on the model's device, so move the model to its device (``model.to(dev)``) first.
    """
    from opacus import PrivacyEngine
    from opacus.accountants import create_accountant
    from opacus.data_loader import DPDataLoader

    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    if clipper not in CLIPPERS:
        raise ValueError(f"clipper must be one of {CLIPPERS}, got {clipper!r}")
    if not isinstance(loader, DataLoader):
        raise TypeError("make_private needs a torch DataLoader; build one with tensor_loader()")
    n = len(loader.dataset)
    check_budget(target_epsilon, delta, n)
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not math.isfinite(max_grad_norm) or max_grad_norm <= 0:
        raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters: nothing to make private")
    noise = torch.Generator(device=params[0].device).manual_seed(seed + 1)
    if clipper == "opacus":
        # Ghost clipping's two backward passes trip a harmless torch notice on every model
        # whose inputs are ids (nothing upstream needs a gradient); silence only that message.
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        sample_rate = 1 / len(loader)  # Opacus's rule: one expected batch per loader batch
        sigma = calibrated_noise_multiplier(
            float(target_epsilon), float(delta), sample_rate, int(epochs), accountant
        )
        if clipper == "opacus":
            # PrivacyEngine.make_private_with_epsilon is this call after its own σ search
            _register_fast_embedding_norms()
            engine = PrivacyEngine(accountant=accountant)
            module, dp_optimizer, dp_criterion, dp_loader = engine.make_private(
                module=model,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=float(max_grad_norm),
                poisson_sampling=True,
                grad_sample_mode="ghost",
                noise_generator=noise,
            )
            ledger = engine.accountant
        else:
            # the pieces PrivacyEngine assembles, with EmbeddingRowClipping doing the clipping
            module, dp_criterion = model, EmbeddingRowClipping(model, criterion, max_grad_norm)
            dp_optimizer = _noising_optimizer()(
                optimizer,
                noise_multiplier=sigma,
                max_grad_norm=float(max_grad_norm),
                expected_batch_size=int(n * sample_rate),  # as PrivacyEngine computes it
                loss_reduction="mean",
                generator=noise,
            )
            ledger = create_accountant(mechanism=accountant)
            dp_optimizer.attach_step_hook(ledger.get_optimizer_hook_fn(sample_rate=sample_rate))
            if isinstance(loader.dataset, TensorDataset):
                dp_loader = PoissonBatches(
                    *loader.dataset.tensors, sample_rate=sample_rate, generator=loader.generator
                )
            else:
                dp_loader = DPDataLoader.from_data_loader(loader)
    return DPTraining(
        module=module,
        optimizer=dp_optimizer,
        criterion=dp_criterion,
        loader=dp_loader,
        ledger=ledger,
        target_epsilon=float(target_epsilon),
        delta=float(delta),
        noise_multiplier=float(dp_optimizer.noise_multiplier),
        sample_rate=float(dp_loader.sample_rate),
        max_grad_norm=float(max_grad_norm),
        accountant=accountant,
        clipper=clipper,
    )

"""Bounding each unit's influence: per-example (or per-user) gradient clipping.

Clipping is what gives DP-SGD's noise a known sensitivity, and it is the expensive part, so it
gets its own module:

* :func:`_register_fast_embedding_norms` - gives Opacus's ghost clipping (``clipper="opacus"``)
  a norm sampler for embeddings looked up once per example, where Opacus's general one sorts.
* :class:`EmbeddingRowClipping` and :class:`ClippedLoss` (``clipper="embedding_rows"``) - for
  models whose every trainable parameter is an ``nn.Embedding`` that each example looks up
  once (``BiasedMF``). An example's gradient is then its backprop vector placed in one row per
  table, so one backward pass to the lookups gives every example's gradient norm exactly, and
  adding the clipped vectors into their rows gives the clipped sum (what a second backward pass
  would compute, without it). With a unit input (the user) it clips each user's summed gradient.
* :func:`refuse_batch_coupled_loss` - the precondition of both: a loss that is a sum of
  per-example losses, checked before training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from recbook import checks


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
    """Make :func:`_one_row_embedding_norms` Opacus's norm sampler for ``nn.Embedding``."""
    from opacus.grad_sample.utils import register_norm_sampler

    register_norm_sampler(nn.Embedding)(_one_row_embedding_norms)


def _segments(keys: torch.Tensor) -> tuple[torch.Tensor, int, bool]:
    """(segment index of each key, number of distinct keys, whether all keys are distinct),
    segments numbered in increasing key order. Non-decreasing keys (a batch in
    :class:`~recbook.privacy.sampling.PoissonBatches`' order) are split into runs in one pass;
    others are sorted."""
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
        :class:`~recbook.privacy.sampling.PoissonBatches` yields it) the segments are runs of
        equal keys, found in one pass; a batch with no repeated (unit, row) pair needs no
        per-pair sum at all. Any other order falls back to sorting (``torch.unique``) — the
        same sums either way."""
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
        # its row), written straight into .grad: on a small embedding model the autograd pass
        # through the lookups is a large share of a whole step.
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

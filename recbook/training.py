"""The PyTorch fit loop every notebook shares: minibatches on the device, a progress bar,
early stopping on a validation loss, and the history as a DataFrame. DP-SGD trains through it
too (:meth:`recbook.privacy.dp_sgd.DPTraining.fit`), hence the progress-bar ``postfix`` and
the empty Poisson batches it accepts."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from recbook import checks


class TensorBatches:
    """Minibatches over tensors already on the device.

    Cheaper than ``DataLoader`` for the small, fast models here (no per-row Python work): each
    epoch draws one permutation and slices it. Re-iterable; ``len`` is the number of batches.
    """

    def __init__(
        self, *tensors: torch.Tensor, batch_size: int = 1024, shuffle: bool = True, seed: int = 0
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        for k, t in enumerate(tensors):
            checks.instance(t, torch.Tensor, f"TensorBatches tensor {k}")
        checks.flag(shuffle, "shuffle")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        if n == 0:
            raise ValueError("TensorBatches got empty tensors: nothing to train on")
        self.tensors, self.shuffle = tensors, shuffle
        self.batch_size = checks.integer(batch_size, "batch_size", minimum=1)
        self.generator = torch.Generator().manual_seed(checks.seed(seed))

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.tensors[0])
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.tensors[0].device)
        else:
            order = torch.arange(n, device=self.tensors[0].device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


@dataclass
class History:
    """What :func:`fit` returns: one row per epoch, and where the best validation loss was."""

    frame: pd.DataFrame
    best_epoch: int
    seconds: float


def _to(batch: Iterable[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


def _nan_hint(inputs: list[torch.Tensor], target: torch.Tensor) -> str:
    """What to check when a loss is not finite: NaN/inf in the data, else divergence."""
    bad = [
        name
        for name, t in [*((f"input {k}", x) for k, x in enumerate(inputs)), ("target", target)]
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        return f"the batch's {', '.join(bad)} hold NaN or infinity: drop or impute those rows"
    return "the inputs are finite, so training diverged: lower the learning rate"


def evaluate_loss(
    model: torch.nn.Module, batches: Iterable, loss_fn: Callable, device: torch.device
) -> float:
    """Mean loss over batches (weighted by batch size), without gradients."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            *inputs, target = _to(batch, device)
            total += float(loss_fn(model(*inputs), target)) * len(target)
            count += len(target)
    if count == 0:
        raise ValueError("evaluate_loss got no batches")
    if not math.isfinite(total):
        raise ValueError(f"the evaluation loss is {total / count}: NaN or infinity in the data?")
    return total / count


def fit(
    model: torch.nn.Module,
    train_batches: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device | str = "cpu",
    val_batches: Iterable | None = None,
    patience: int | None = None,
    desc: str = "train",
    progress: bool = True,
    postfix: Callable[[], Mapping[str, object]] | None = None,
    show_train_loss: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs``; each batch is ``(*inputs, target)``.

    With ``val_batches`` the validation loss is tracked; with ``patience`` training stops after
    that many epochs without improvement and the best weights are restored (early stopping is
    what lets one default generalise across datasets of different sizes).

    ``postfix`` adds values to the progress bar after each epoch (DP-SGD shows the ε spent so
    far); it is called only when the bar is shown. ``show_train_loss=False`` keeps the exact
    training loss off the bar (a private run must not display it). A batch with no rows, which
    Poisson sampling can draw, still takes its optimizer step (for DP-SGD a step of noise alone,
    which the accounting counts) but adds nothing to the epoch's mean loss.
    """
    checks.integer(epochs, "epochs", minimum=1)
    if patience is not None:
        checks.integer(patience, "patience", minimum=1)
        if val_batches is None:
            raise ValueError("early stopping (patience=) needs val_batches")
    checks.instance(model, torch.nn.Module, "model")
    checks.instance(optimizer, torch.optim.Optimizer, "optimizer")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (prediction, target) -> loss, got {loss_fn!r}")
    checks.flag(progress, "progress")
    checks.flag(show_train_loss, "show_train_loss")
    device = checks.torch_device(device)
    model.to(device)
    rows, best_loss, best_epoch, best_state, waited = [], float("inf"), 0, None, 0
    start = time.perf_counter()
    bar = tqdm(total=epochs, desc=desc, disable=not progress, leave=True, unit="epoch")
    for epoch in range(1, epochs + 1):
        model.train()
        t0, total, count, step = time.perf_counter(), 0.0, 0, 0
        for step, batch in enumerate(train_batches, 1):
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                bar.close()
                raise TypeError(
                    f"{desc}: train_batches must yield (*inputs, target) tuples of tensors, got "
                    f"a {type(batch).__name__}; wrap the tensors in TensorBatches(...)"
                )
            *inputs, target = _to(batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(*inputs), target)
            value = float(loss.detach()) if len(target) else 0.0  # an empty mean is NaN
            if not math.isfinite(value):  # before the step, so the weights stay finite
                bar.close()
                raise ValueError(
                    f"{desc}: the loss is {value} at epoch {epoch}, batch {step}; "
                    f"{_nan_hint(inputs, target)}"
                )
            loss.backward()
            optimizer.step()
            total += value * len(target)
            count += len(target)
        if step == 0:
            bar.close()
            raise ValueError(
                f"{desc}: train_batches yielded no batches in epoch {epoch}; pass a non-empty, "
                "re-iterable source (a TensorBatches or DataLoader, not a used-up generator)"
            )
        row = {"epoch": epoch, "train_loss": total / count if count else math.nan}
        if val_batches is not None:
            row["val_loss"] = evaluate_loss(model, val_batches, loss_fn, device)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        shown = {
            k: f"{v:.4f}"
            for k, v in row.items()
            if k.endswith("loss") and (show_train_loss or k != "train_loss")
        }
        if progress and postfix is not None:
            shown.update(postfix())
        bar.set_postfix(shown)
        bar.update(1)
        watched = row.get("val_loss", row["train_loss"])
        if watched < best_loss:
            best_loss, best_epoch, waited = watched, epoch, 0
            if patience is not None:
                best_state = copy.deepcopy(model.state_dict())
        elif patience is not None:
            waited += 1
            if waited >= patience:
                # end the bar at the epochs run, so an early stop is a finished (not red) bar
                bar.set_description(f"{desc} (early stop)")
                bar.total = epoch
                bar.refresh()
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return History(
        frame=pd.DataFrame(rows).set_index("epoch"),
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start,
    )


def compare_timings(
    runs: dict[str, Callable[[], History]], *, reference: str, repeats: int = 5
) -> pd.DataFrame:
    """Time several training runs against one ``reference`` run.

    Each callable trains from scratch and returns its :class:`History`; its ``seconds`` (the
    training loop only, not the set-up) is the time. Runs are interleaved ``repeats`` times after
    one untimed warm-up round, so drift on a busy machine hits all of them alike, and the median
    is reported with its ratio to the reference's median.
    """
    if reference not in runs:
        raise ValueError(f"reference {reference!r} is not one of the runs {list(runs)}")
    checks.integer(repeats, "repeats", minimum=1)
    for run in runs.values():  # warm-up: first-call costs (allocations, lazy imports)
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(run().seconds)
    frame = pd.DataFrame(
        {
            "median s": {k: float(pd.Series(v).median()) for k, v in seconds.items()},
            "min s": {k: min(v) for k, v in seconds.items()},
            "max s": {k: max(v) for k, v in seconds.items()},
        }
    )
    frame["ratio"] = frame["median s"] / frame.loc[reference, "median s"]
    frame.index.name = "run"
    return frame

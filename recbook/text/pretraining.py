"""Article 003's "pre-train, then fine-tune", run for real: continued masked-language-model
training of a pretrained encoder on the shop's own titles, and fine-tuning with a warm-up and
linear-decay learning-rate schedule.

Why a module: the bundled all-MiniLM-L6-v2 is a sentence encoder and ships **no MLM head**.
``AutoModelForMaskedLM.from_pretrained`` would create one silently-ish (and transformers calls
the checkpoint "corrupted" for lacking it). :func:`masked_lm_from_encoder` builds the head in
the open instead: a ``BertForMaskedLM`` whose encoder is a copy of the pretrained one, whose
decoder is *tied* to the pretrained word embeddings (so the output layer starts from the
pretrained token vectors, not from noise), and whose only new weights -- the transform
(Linear + GELU + LayerNorm) and the output bias -- get BERT's standard initialisation. It
returns a table saying where every weight came from.

:func:`continue_pretraining` then trains with transformers' ``DataCollatorForLanguageModeling``
(15 % of the tokens chosen; of those 80 % become ``[MASK]``, 10 % a random token, 10 % stay).
The head is trained alone for the first ``head_steps`` (a random head's large gradients would
otherwise damage the pretrained encoder), then everything. Logits are computed only at the
chosen positions -- the loss is the same, and the 30522-way output layer is the costliest part
of a step on a CPU.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from recbook import checks
from recbook.text.encoder import TextEncoder, check_titles
from recbook.training import History, evaluate_loss


def masked_lm_from_encoder(encoder: TextEncoder) -> tuple[Any, pd.DataFrame]:
    """A ``BertForMaskedLM`` built from ``encoder``'s pretrained weights, and its loading report.

    The encoder's weights are copied (``encoder.model`` is left untouched). The report has one
    row per weight tensor of the MLM model or the checkpoint: ``status`` is ``pretrained``
    (copied), ``tied`` (the decoder, shared with the pretrained word embeddings), ``new`` (the
    head's transform and bias, standard BERT initialisation: normal(0, 0.02) weights, zero
    biases, LayerNorm 1/0) or ``unused`` (in the checkpoint, not needed for MLM: the pooler).
    """
    from transformers import BertForMaskedLM

    config = copy.deepcopy(encoder.model.config)
    if getattr(config, "model_type", None) != "bert":
        raise ValueError(
            f"masked_lm_from_encoder builds a BertForMaskedLM; {encoder.name} is a "
            f"{getattr(config, 'model_type', type(encoder.model).__name__)!r} model"
        )
    config.tie_word_embeddings = True
    torch.manual_seed(0)  # the new head's initialisation is reproducible
    mlm = BertForMaskedLM(config)  # every weight initialised by BERT's _init_weights
    source = {k: v for k, v in encoder.model.state_dict().items() if "position_ids" not in k}
    result = mlm.bert.load_state_dict(source, strict=False)
    mlm.tie_weights()
    decoder = mlm.cls.predictions.decoder
    if decoder.weight is not mlm.bert.embeddings.word_embeddings.weight:
        raise RuntimeError("the MLM decoder is not tied to the word embeddings")
    missing = {f"bert.{k}" for k in result.missing_keys if "position_ids" not in k}
    if missing:
        raise RuntimeError(f"pretrained encoder weights missing from the checkpoint: {missing}")
    rows = []
    for name, tensor in mlm.state_dict().items():
        if "position_ids" in name or name == "cls.predictions.decoder.bias":
            continue  # a buffer, and an alias of cls.predictions.bias
        if name == "cls.predictions.decoder.weight":
            status = "tied"
        elif name.startswith("bert."):
            status = "pretrained"
        else:
            status = "new"
        rows.append({"weight": name, "shape": tuple(tensor.shape), "status": status})
    rows += [
        {"weight": k, "shape": tuple(source[k].shape), "status": "unused"}
        for k in result.unexpected_keys
    ]
    return mlm, pd.DataFrame(rows)


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over a model's weights (names and bytes): names adapted weights in caches."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def adapted_encoder(encoder: TextEncoder, mlm: Any, suffix: str = "+mlm") -> TextEncoder:
    """A :class:`TextEncoder` around the MLM model's encoder (``mlm.bert``), same tokenizer,
    named ``encoder.name + suffix`` and keyed by the sha256 of its new weights."""
    return TextEncoder(
        name=encoder.name + suffix,
        tokenizer=encoder.tokenizer,
        model=mlm.bert,
        source=f"{encoder.source}, continued masked-LM pre-training",
        sha256=weights_sha256(mlm.bert),
    )


def freeze_below(bert: Any, train_layers: int) -> None:
    """Keep only the top ``train_layers`` transformer layers of a BERT trainable: the
    embeddings and the layers below stop needing gradients (backward stops there)."""
    layers = bert.encoder.layer
    n = checks.integer(train_layers, "train_layers", minimum=0, maximum=len(layers))
    bert.embeddings.requires_grad_(False)
    for layer in layers[: len(layers) - n]:
        layer.requires_grad_(False)


def _mlm_loss(mlm: Any, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    labels = batch["labels"].to(device)
    hidden = mlm.bert(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
    ).last_hidden_state
    chosen = labels != -100
    if not chosen.any():  # no token drawn: nothing to predict (the caller skips the update)
        return hidden.sum().detach() * 0.0
    logits = mlm.cls(hidden[chosen])
    return torch.nn.functional.cross_entropy(logits, labels[chosen])


def _collator(tokenizer: Any, mlm_probability: float, seed: int) -> Any:
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(
        tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed
    )


def _features(tokenizer: Any, titles: Sequence[Any], max_length: int) -> list[dict]:
    texts = check_titles(titles)
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [
        {"input_ids": ids, "attention_mask": mask}
        for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])
    ]


def masked_lm_loss(
    mlm: Any,
    tokenizer: Any,
    titles: Sequence[Any],
    *,
    mlm_probability: float = 0.15,
    max_length: int = 24,
    batch_size: int = 128,
    seed: int = 0,
    device: Any = "cpu",
) -> float:
    """Mean masked-LM cross-entropy over ``titles`` with a fixed, seeded masking (the same
    tokens are masked every call with the same seed: before/after numbers are comparable)."""
    checks.fraction(mlm_probability, "mlm_probability")
    device = torch.device(device)
    features = _features(tokenizer, titles, max_length)
    collate = _collator(tokenizer, mlm_probability, checks.seed(seed))
    mlm.to(device)
    was_training = mlm.training
    mlm.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = collate(features[start : start + batch_size])
            n = int((batch["labels"] != -100).sum())
            if n:
                total += float(_mlm_loss(mlm, batch, device)) * n
                count += n
    mlm.train(was_training)
    if count == 0:
        raise ValueError("no token was masked: use more titles or a larger mlm_probability")
    return total / count


def continue_pretraining(
    mlm: Any,
    tokenizer: Any,
    titles: Sequence[Any],
    *,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 1e-4,
    head_steps: int = 20,
    warmup_fraction: float = 0.1,
    mlm_probability: float = 0.15,
    max_length: int = 24,
    train_embeddings: bool = False,
    train_layers: int | None = None,
    seed: int = 0,
    device: Any = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Continue masked-LM training of ``mlm`` on ``titles`` for ``steps`` optimiser steps.

    Batches of ``batch_size`` titles are drawn without replacement (reshuffled each pass) and
    masked by ``DataCollatorForLanguageModeling(mlm_probability=...)``. The first
    ``head_steps`` train only the new head; then the encoder joins. AdamW with
    ``get_linear_schedule_with_warmup`` (warm-up over ``warmup_fraction`` of the steps, then
    linear decay to zero). ``train_embeddings=False`` keeps the 30522-row token table -- and so
    the tied decoder -- fixed (much cheaper on a CPU); ``train_layers=n`` trains only the top
    ``n`` transformer layers (and the head), so no gradient flows through the lower ones.
    Returns one row per step: loss, lr (loss NaN on a step whose batch had no token masked --
    possible only with very short titles -- where no update is made).
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    steps = checks.integer(steps, "steps", minimum=1)
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    head_steps = checks.integer(head_steps, "head_steps", minimum=0, maximum=steps)
    lr = checks.number(lr, "lr", positive=True)
    checks.fraction(warmup_fraction, "warmup_fraction")
    checks.fraction(mlm_probability, "mlm_probability")
    seed = checks.seed(seed)
    device = torch.device(device)
    features = _features(tokenizer, titles, max_length)
    collate = _collator(tokenizer, mlm_probability, seed)
    rng = np.random.default_rng(seed)
    mlm.to(device).train()
    mlm.requires_grad_(True)
    embeddings = mlm.bert.embeddings.word_embeddings.weight
    embeddings.requires_grad_(train_embeddings)
    if train_layers is not None:
        freeze_below(mlm.bert, train_layers)
    head = [p for n, p in mlm.named_parameters() if n.startswith("cls.") and p.requires_grad]
    body = [p for n, p in mlm.named_parameters() if n.startswith("bert.") and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": head, "weight_decay": 0.01}, {"params": body, "weight_decay": 0.01}], lr=lr
    )
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(round(warmup_fraction * steps)), steps
    )
    order: list[int] = []
    rows = []
    bar = tqdm(total=steps, desc="masked-LM pre-training", disable=not progress, leave=False)
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order += rng.permutation(len(features)).tolist()
        chosen, order = order[:batch_size], order[batch_size:]
        batch = collate([features[i] for i in chosen])
        body_on = step > head_steps
        for p in body:
            p.requires_grad_(body_on)
        optimizer.zero_grad(set_to_none=True)
        loss = _mlm_loss(mlm, batch, device)
        if loss.requires_grad:  # False only when the collator masked no token: no update
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
        else:
            value = float("nan")
        rows.append({"step": step, "loss": value, "lr": schedule.get_last_lr()[0]})
        schedule.step()
        bar.update(1)
    bar.close()
    mlm.requires_grad_(True)  # as it came in: every weight trainable
    mlm.eval()
    return pd.DataFrame(rows).set_index("step")


def fine_tune(
    model: torch.nn.Module,
    batches: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    warmup_fraction: float = 0.1,
    device: Any = "cpu",
    val_batches: Iterable | None = None,
    desc: str = "fine-tune",
    progress: bool = True,
) -> History:
    """Train for ``epochs`` with a linear warm-up then linear decay of every parameter group's
    learning rate (``transformers.get_linear_schedule_with_warmup``), stepped per batch.

    Why a schedule: a pretrained encoder's first updates come from a head that has not yet
    adapted to the task; a short warm-up keeps them small, and the decay ends training at a
    learning rate of zero, so the last batches do not jolt the weights. No early stopping:
    the schedule fixes the length. The progress bar (one tick per step) closes when done.
    Returns a :class:`recbook.training.History` (train loss per epoch, validation loss when
    ``val_batches`` is given).
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    epochs = checks.integer(epochs, "epochs", minimum=1)
    checks.fraction(warmup_fraction, "warmup_fraction")
    device = torch.device(device)
    per_epoch = len(batches)  # type: ignore[arg-type]
    if per_epoch == 0:
        raise ValueError("fine_tune got no batches")
    total = epochs * per_epoch
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(round(warmup_fraction * total)), total
    )
    model.to(device)
    rows, start = [], time.perf_counter()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    for epoch in range(1, epochs + 1):
        model.train()
        t0, loss_sum, count = time.perf_counter(), 0.0, 0
        for batch in batches:
            *inputs, target = (t.to(device) for t in batch)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(*inputs), target)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * len(target)
            count += len(target)
            bar.update(1)
        row = {"epoch": epoch, "train_loss": loss_sum / max(count, 1)}
        if val_batches is not None:
            row["val_loss"] = evaluate_loss(model, val_batches, loss_fn, device)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    bar.close()
    return History(
        frame=pd.DataFrame(rows).set_index("epoch"),
        best_epoch=epochs,
        seconds=time.perf_counter() - start,
    )

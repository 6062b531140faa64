"""Behaviour sequences for Transformers: batches, a causal self-attention next-item model
(SASRec-style) and masked-item pre-training (BERT4Rec-style cloze).

Tokens: item ``j`` is token ``j + 1``; ``0`` pads, ``n_items + 1`` is the cloze ``[MASK]``.
Sequences are padded on the **left** and positions are counted back from the latest event
(SASRec): position 0 is always "the event just before the prediction", for training and serving
alike. Training windows are cut from the end of each sequence, and a trained model reads at
most as many events as its longest training window (``model.window``), so every position used
at validation or serving time has received a gradient (a history longer than any training
window would otherwise be read through position embeddings that never moved from their
random initialisation).

Loss: full-softmax cross-entropy over the whole catalogue. With ~1000 items the full softmax
costs little, and sampled losses with few negatives are known to under-train and mis-rank
sequential models (Petrov & Macdonald 2023, "gSASRec: Reducing Overconfidence in Sequential
Recommendation Trained with Negative Sampling", RecSys 2023) -- so nothing is sampled here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recbook import checks, training
from recbook.columns import ITEM, TIMESTAMP, USER

IGNORE = -100  # target value that the loss skips (padding, unmasked cloze positions)


# --- sequences and batches ---------------------------------------------------------------


def user_sequences(events: pd.DataFrame, n_users: int, n_items: int) -> list[np.ndarray]:
    """Each user's item ids in time order (ties keep the frame's row order); users without
    events get an empty array, so ``result[u]`` is always user ``u``'s sequence."""
    checks.frame(events, (USER, ITEM, TIMESTAMP), "events")
    users, items = checks.id_columns(events, n_users, n_items, "events")
    order = np.lexsort((np.arange(len(users)), events[TIMESTAMP].to_numpy(), users))
    users, items = users[order], items[order]
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u] : bounds[u + 1]] for u in range(n_users)]


@dataclass
class LeaveLastOut:
    """Per-user leave-last-out on sequences: the last item is the test target, the one before
    it the validation target, the rest trains. ``users`` are those with >= ``min_length``
    events; row ``b`` of every field belongs to ``users[b]``."""

    users: np.ndarray
    train: list[np.ndarray]
    val_target: np.ndarray
    test_history: list[np.ndarray]
    test_target: np.ndarray

    @property
    def val_history(self) -> list[np.ndarray]:
        return self.train

    def repeat_share(self) -> float:
        """Share of training events that re-buy an item already in the user's history."""
        seen = sum(len(s) - len(np.unique(s)) for s in self.train)
        return seen / max(1, sum(len(s) for s in self.train))


def leave_last_out(sequences: Sequence[np.ndarray], min_length: int = 3) -> LeaveLastOut:
    """Split each sequence with ``>= min_length`` (>= 3) items into train / validation / test."""
    min_length = checks.integer(min_length, "min_length", minimum=3)
    users = np.array([u for u, s in enumerate(sequences) if len(s) >= min_length], dtype=np.int64)
    if len(users) == 0:
        raise ValueError(f"no user has {min_length} or more events: nothing to evaluate")
    seqs = [np.asarray(sequences[u]) for u in users]
    return LeaveLastOut(
        users=users,
        train=[s[:-2] for s in seqs],
        val_target=np.array([s[-2] for s in seqs]),
        test_history=[s[:-1] for s in seqs],
        test_target=np.array([s[-1] for s in seqs]),
    )


def _check_history(history: Any, n_items: int, what: str) -> np.ndarray:
    arr = np.asarray(history)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of item ids, got shape {arr.shape}")
    return checks.ids(arr, n_items, what)


def _cut(
    histories: Sequence[Any], n_items: int, max_len: int, allow_empty: bool
) -> list[np.ndarray]:
    """The last ``max_len`` items of each history, checked."""
    checks.integer(max_len, "max_len", minimum=1)
    rows = []
    for b, h in enumerate(histories):
        arr = _check_history(h, n_items, f"history {b}")
        if len(arr) == 0 and not allow_empty:
            raise ValueError(
                f"history {b} is empty: a sequence model needs at least one event; score new "
                "visitors with a non-personal fallback (e.g. popularity)"
            )
        rows.append(arr[-max_len:])
    return rows


def pad_left(
    histories: Sequence[Any], n_items: int, max_len: int, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Token matrix ``(B, L)`` (items + 1, left-padded with 0) of the **last** ``max_len``
    items of each history, and each row's length: every row's latest item sits in the last
    column, which is what the model reads (positions count back from there). Ids outside
    ``0..n_items-1`` are an error; an empty history is one too unless ``allow_empty``."""
    rows = _cut(histories, n_items, max_len, allow_empty)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    tokens = np.zeros((len(rows), width), dtype=np.int64)
    for b, r in enumerate(rows):
        tokens[b, width - len(r) :] = r + 1
    return tokens, lengths


def next_item_windows(
    sequences: Sequence[Any], n_items: int, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pairs for next-item prediction: each sequence is cut, from its end, into
    windows of ``max_len + 1`` items (consecutive windows share one item, so every transition
    is a target exactly once); input = window[:-1], target = window[1:], left-padded
    (``IGNORE`` on padding). The width is the longest window: the positions it trains."""
    checks.integer(max_len, "max_len", minimum=1)
    inputs, targets = [], []
    for b, s in enumerate(sequences):
        arr = _check_history(s, n_items, f"sequence {b}")
        for end in range(len(arr) - 1, 0, -max_len):
            start = max(0, end - max_len)
            inputs.append(arr[start:end])
            targets.append(arr[start + 1 : end + 1])
    if not inputs:
        raise ValueError("no sequence has two or more items: nothing to learn transitions from")
    tok, _ = pad_left(inputs, n_items, max_len)
    tgt = np.full(tok.shape, IGNORE, dtype=np.int64)
    for b, t in enumerate(targets):
        tgt[b, tok.shape[1] - len(t) :] = t
    return torch.from_numpy(tok), torch.from_numpy(tgt)


def last_item_targets(
    histories: Sequence[Any], targets: Any, n_items: int, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation pairs: the loss is taken at the last position only (the held-out item)."""
    tok, _ = pad_left(histories, n_items, max_len)
    target = checks.ids(np.asarray(targets).reshape(-1), n_items, "targets")
    if len(target) != len(tok):
        raise ValueError(f"{len(tok)} histories but {len(target)} targets")
    tgt = np.full(tok.shape, IGNORE, dtype=np.int64)
    tgt[:, -1] = target
    return torch.from_numpy(tok), torch.from_numpy(tgt)


def cloze_mask(
    tokens: torch.Tensor, n_items: int, mask_prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT4Rec's cloze task: hide a random ``mask_prob`` of the real tokens behind
    ``[MASK]`` (at least one per row) and ask for the hidden items back."""
    checks.fraction(mask_prob, "mask_prob")
    real = tokens > 0
    # draws come from the (CPU) generator so masks do not depend on where the tokens live
    draw = torch.rand(tokens.shape, generator=generator).to(tokens.device) < mask_prob
    # one forced position per row, uniform over its real tokens (wherever the padding is)
    pick = torch.rand(tokens.shape, generator=generator).to(tokens.device)
    forced = pick.masked_fill(~real, -1.0).argmax(dim=1)
    draw[torch.arange(len(tokens), device=tokens.device), forced] = True
    hide = draw & real
    masked = torch.where(hide, torch.full_like(tokens, n_items + 1), tokens)
    target = torch.where(hide, tokens - 1, torch.full_like(tokens, IGNORE))
    return masked, target


class ClozeBatches:
    """Minibatches ``(masked tokens, targets, targets)`` with fresh masks every epoch (the
    targets twice: once to pick the positions to score, once for the loss)."""

    def __init__(
        self,
        tokens: torch.Tensor,
        n_items: int,
        mask_prob: float = 0.2,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        self.inner = training.TensorBatches(tokens, batch_size=batch_size, seed=seed)
        self.n_items, self.mask_prob = n_items, mask_prob
        self.generator = torch.Generator().manual_seed(checks.seed(seed) + 1)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for (tok,) in self.inner:
            masked, target = cloze_mask(tok, self.n_items, self.mask_prob, self.generator)
            yield masked, target, target


# --- the model ---------------------------------------------------------------------------


class _Block(nn.Module):
    """Pre-norm Transformer block; returns the attention weights when asked."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, attn_mask, key_padding_mask, need_weights: bool = False):
        h = self.norm1(x)
        a, w = self.attn(
            h,
            h,
            h,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            average_attn_weights=False,
        )
        x = x + self.drop(a)
        return x + self.drop(self.ff(self.norm2(x))), w


class SequenceModel(nn.Module):
    """Self-attention over a behaviour sequence: item + learned position embeddings, masked
    multi-head attention, and the item embeddings again (plus an item bias) as output layer.

    ``causal=True`` (SASRec) lets position ``t`` attend to positions ``<= t`` only, so the
    output at ``t`` predicts item ``t + 1``. ``causal=False`` (BERT4Rec) sees both sides and is
    trained on the cloze task; its weights can then start a causal model.

    Inputs are left-padded; the position embedding of a slot is its distance from the last
    column (0 = the latest event). ``window`` is how many of the latest events the model reads
    when scoring: ``max_len`` until :func:`train_next_item` sets it to the longest training
    window, so serving never reads a position that training left untouched.
    """

    def __init__(
        self,
        n_items: int,
        dim: int = 32,
        heads: int = 2,
        layers: int = 2,
        max_len: int = 30,
        dropout: float = 0.2,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.n_items = checks.integer(n_items, "n_items", minimum=1)
        self.max_len = checks.integer(max_len, "max_len", minimum=1)
        checks.integer(dim, "dim", minimum=1)
        if dim % checks.integer(heads, "heads", minimum=1):
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        checks.integer(layers, "layers", minimum=1)
        self.causal, self.heads, self.window = causal, heads, max_len
        self.item = nn.Embedding(n_items + 2, dim, padding_idx=0)  # pad, items, [MASK]
        self.position = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.item.weight, std=dim**-0.5)
        nn.init.normal_(self.position.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def _masks(self, tokens: torch.Tensor, causal: bool):
        """(attn_mask, key_padding_mask); True = may not attend. Padding sits on the left, so
        a causal mask alone would let real items see it: pads are masked as keys, and a pad
        query sees only itself (a fully masked row would make NaN)."""
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        pad = tokens == 0
        if not causal:
            return None, pad
        dev = tokens.device
        future = torch.triu(torch.ones(length, length, dtype=torch.bool, device=dev), 1)
        if not bool(pad.any()):
            return future, None
        blocked = (future[None] | pad[:, None, :]) & ~torch.eye(
            length, dtype=torch.bool, device=dev
        )
        return blocked.repeat_interleave(self.heads, dim=0), None

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Item + position embeddings; the position counts back from the last column."""
        pos = torch.arange(tokens.shape[1] - 1, -1, -1, device=tokens.device)
        return self.item(tokens) + self.position(pos)[None]

    def hidden(self, tokens: torch.Tensor, causal: bool | None = None) -> torch.Tensor:
        """Contextual state ``(B, L, dim)`` of every position (tokens left-padded)."""
        causal = self.causal if causal is None else causal
        attn_mask, pad_mask = self._masks(tokens, causal)
        x = self.drop(self._embed(tokens))
        for block in self.blocks:
            x, _ = block(x, attn_mask, pad_mask)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits over the catalogue at every position, ``(B, L, n_items)``."""
        return self.hidden(tokens) @ self.item.weight[1 : self.n_items + 1].T + self.bias

    def item_vectors(self) -> torch.Tensor:
        """``(n_items, dim + 1)``: item embedding and bias, so that a score is one dot product
        with ``[state, 1]`` (what a nearest-neighbour index needs)."""
        w = self.item.weight[1 : self.n_items + 1]
        return torch.cat([w, self.bias[:, None]], dim=1)

    @torch.no_grad()
    def attention(self, history: Any) -> list[np.ndarray]:
        """Attention weights ``(heads, L, L)`` of each layer for one history (eval mode)."""
        was = self.training
        self.eval()
        tok, _ = pad_left([history], self.n_items, self.window)
        tok = torch.from_numpy(tok).to(self.item.weight.device)
        attn_mask, pad_mask = self._masks(tok, self.causal)
        x = self._embed(tok)
        maps = []
        for block in self.blocks:
            x, w = block(x, attn_mask, pad_mask, need_weights=True)
            maps.append(w[0].cpu().numpy())
        self.train(was)
        return maps


class _AtTargets(nn.Module):
    """The model as :func:`recbook.training.fit` calls it during training: logits only at the
    positions that have a target (padding and unmasked cloze positions cost nothing)."""

    def __init__(self, model: SequenceModel, causal: bool) -> None:
        super().__init__()
        self.model, self.causal = model, causal

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        m = self.model
        h = m.hidden(tokens, causal=self.causal)[targets != IGNORE]
        return h @ m.item.weight[1 : m.n_items + 1].T + m.bias


def _loss_at_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets[targets != IGNORE])


def train_next_item(
    model: SequenceModel,
    sequences: Sequence[Any],
    val_histories: Sequence[Any],
    val_targets: Any,
    *,
    epochs: int = 30,
    patience: int = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    desc: str = "next-item",
    causal: bool = True,
) -> training.History:
    """Train the causal model on every transition of ``sequences`` with early stopping on the
    next-item loss of the validation items (best weights restored). Sets ``model.window`` to
    the longest training window: scoring then reads no position training has not reached.

    ``causal=False`` drops the mask during training only (an exercise: each position then sees
    the item it must predict, so the *training* loss collapses while validation, whose item is
    never in the input, does not follow)."""
    if not model.causal:
        raise ValueError(
            "train_next_item needs a causal model (SequenceModel(causal=True)); to see what "
            "the mask prevents, pass causal=False to train_next_item instead"
        )
    device = torch.device(device)
    x, y = next_item_windows(sequences, model.n_items, model.max_len)
    model.window = int(x.shape[1])
    vx, vy = last_item_targets(val_histories, val_targets, model.n_items, model.window)
    x, y, vx, vy = (t.to(device) for t in (x, y, vx, vy))
    train = training.TensorBatches(x, y, y, batch_size=batch_size, seed=seed)
    val = training.TensorBatches(vx, vy, vy, batch_size=1024, shuffle=False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return training.fit(
        _AtTargets(model, causal=bool(causal)),
        train,
        _loss_at_targets,
        optimizer=opt,
        epochs=epochs,
        device=device,
        val_batches=val,
        patience=patience,
        desc=desc,
        progress=progress,
    )


def pretrain_cloze(
    model: SequenceModel,
    sequences: Sequence[Any],
    *,
    epochs: int = 20,
    mask_prob: float = 0.2,
    batch_size: int = 128,
    lr: float = 3e-3,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> training.History:
    """Self-supervised pre-training: BERT4Rec's masked-item task on the training sequences,
    with the model's attention made bidirectional for the duration. Returns the history."""
    device = torch.device(device)
    windows = [
        np.asarray(s)[a : a + model.max_len]
        for s in sequences
        for a in range(0, len(s), model.max_len)
        if len(s)
    ]
    tok, _ = pad_left(windows, model.n_items, model.max_len)
    batches = ClozeBatches(
        torch.from_numpy(tok).to(device), model.n_items, mask_prob, batch_size, seed
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    return training.fit(
        _AtTargets(model, causal=False),
        batches,
        _loss_at_targets,
        optimizer=opt,
        epochs=epochs,
        device=device,
        desc="cloze pre-training",
        progress=progress,
    )


@torch.no_grad()
def user_states(
    model: SequenceModel, histories: Sequence[Any], batch_size: int = 1024
) -> torch.Tensor:
    """The state after each history, ``(B, dim)``: the causal output at its last event.

    Longer histories are cut to the last ``model.window`` events (after training: the
    longest training window); empty ones and unknown item ids are errors (see :func:`pad_left`).
    """
    was = model.training
    model.eval()
    tok, _ = pad_left(histories, model.n_items, model.window)
    dev = model.item.weight.device
    out = []
    for a in range(0, len(tok), batch_size):
        t = torch.from_numpy(tok[a : a + batch_size]).to(dev)
        out.append(model.hidden(t, causal=True)[:, -1])  # left-padded: the latest is last
    model.train(was)
    return torch.cat(out)


@torch.no_grad()
def score_next(
    model: SequenceModel, histories: Sequence[Any], batch_size: int = 1024
) -> np.ndarray:
    """Next-item scores (logits) over the whole catalogue, ``(len(histories), n_items)``."""
    states = user_states(model, histories, batch_size)
    return (states @ model.item.weight[1 : model.n_items + 1].T + model.bias).cpu().numpy()

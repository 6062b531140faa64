"""Recommenders that read an item's title: a two-tower model whose item tower starts from a
pretrained text encoder, frozen (vectors cached once) or fine-tuned end to end.

Why text: an item never seen in training has no learned ID embedding, but it has a title. A
model that maps titles to item vectors can score such cold-start items from day one; an
ID-embedding model (``recbook.models_torch.BiasedMF``) cannot.

The pieces:

* :class:`TitleTokens` — the tokenised titles of every item, indexed by item id;
* :class:`CachedTitleVectors` / :class:`EncodedTitleVectors` — the title vector of an item,
  either looked up in a table computed once by a frozen encoder, or computed by a trainable
  encoder on the titles of the items in the batch (each distinct title once per batch);
* :class:`TextTwoTower` — ``logit(u, i) = b + b_u + b(t_i) + <p_u, g(t_i)>`` with ``t_i`` the
  title vector and ``g`` a small MLP (the "task layers" on top of BERT);
* :class:`ItemGroupedBatches` — minibatches that hold few distinct items, so a fine-tuning step
  encodes few titles however many impressions it trains on;
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from recbook import checks
from recbook.columns import EVENT, ITEM, LABEL, USER
from recbook.models_torch import check_id_batch
from recbook.text.encoder import TextEncoder, mean_pool


class TitleTokens(torch.utils.data.Dataset):
    """Token ids and attention masks of every item's title; row ``i`` is item ``i``."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        if input_ids.shape != attention_mask.shape or input_ids.ndim != 2:
            raise ValueError(
                f"input_ids and attention_mask must be 2-D and alike: "
                f"{tuple(input_ids.shape)} vs {tuple(attention_mask.shape)}"
            )
        if len(input_ids) == 0:
            raise ValueError("no titles: TitleTokens needs at least one item")
        self.input_ids = input_ids.long()
        self.attention_mask = attention_mask.long()

    @classmethod
    def from_titles(
        cls, encoder: TextEncoder, titles: Any, max_length: int = 24, missing: str = "raise"
    ) -> TitleTokens:
        """Tokenise ``titles`` (one per item, in item-id order) with the encoder's tokenizer;
        missing or blank titles follow :func:`recbook.text.check_titles`."""
        tokens = encoder.tokenize(list(titles), max_length=max_length, missing=missing)
        return cls(tokens["input_ids"], tokens["attention_mask"])

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[item], self.attention_mask[item]

    def lengths(self) -> np.ndarray:
        """Tokens per title, [CLS] and [SEP] included."""
        return self.attention_mask.sum(1).numpy()


class CachedTitleVectors(nn.Module):
    """Title vectors computed once by a frozen encoder: a constant lookup table (a buffer, so
    it moves with ``.to(device)`` but is never trained)."""

    def __init__(self, vectors: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        table = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        if table.ndim != 2 or len(table) == 0:
            raise ValueError(f"vectors must be a non-empty (n_items, dim) array, got {table.shape}")
        if not torch.isfinite(table).all():
            raise ValueError("vectors contain NaN or inf")
        self.register_buffer("table", table)

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    @property
    def n_items(self) -> int:
        return int(self.table.shape[0])

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.table[items]


class EncodedTitleVectors(nn.Module):
    """Title vectors from a (trainable) transformer encoder, run on the distinct items of the
    batch only, mean-pooled and L2-normalised like the cached vectors."""

    def __init__(self, encoder_model: nn.Module, tokens: TitleTokens) -> None:
        super().__init__()
        self.encoder = encoder_model
        self.register_buffer("input_ids", tokens.input_ids.clone())
        self.register_buffer("attention_mask", tokens.attention_mask.clone())

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def n_items(self) -> int:
        return int(self.input_ids.shape[0])

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        distinct, inverse = torch.unique(items, return_inverse=True)
        mask = self.attention_mask[distinct]
        width = int(mask.sum(1).max())  # drop columns that are padding for every title here
        ids, mask = self.input_ids[distinct, :width], mask[:, :width]
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return mean_pool(hidden, mask)[inverse]


class TextTwoTower(nn.Module):
    """``logit(u, i) = b + b_u + b(t_i) + <p_u, g(t_i)>``: a user-ID tower and a title tower.

    ``titles`` maps item ids to title vectors (:class:`CachedTitleVectors` or
    :class:`EncodedTitleVectors`); ``g`` is Linear-ReLU-Dropout-Linear to ``dim`` + 1 outputs
    (``hidden=None``: Dropout-Linear), the last output being the item's bias.
    ``standardize=(mean, scale)`` is applied to the title vectors first: sentence vectors of
    similar titles differ little, and centring and scaling makes the head train much faster.
    Take it from :func:`recbook.text.centre_and_scale` (one overall scale): a per-dimension std
    divides by ~0 on an encoder's constant dimensions and collapses fine-tuning. Swapping
    ``titles`` keeps the trained head, which is how the notebook starts fine-tuning from the
    frozen model.
    """

    def __init__(
        self,
        n_users: int,
        titles: nn.Module,
        dim: int = 32,
        hidden: int | None = 128,
        dropout: float = 0.1,
        standardize: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        checks.integer(n_users, "n_users", minimum=1)
        checks.integer(dim, "dim", minimum=1)
        if hidden is not None:
            checks.integer(hidden, "hidden", minimum=1)
        self.n_users = n_users
        self.titles = titles
        self.user = nn.Embedding(n_users, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        if hidden is None:
            self.item_tower: nn.Module = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(titles.dim, dim + 1)
            )
        else:
            self.item_tower = nn.Sequential(
                nn.Linear(titles.dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, dim + 1),
            )
        self.bias = nn.Parameter(torch.zeros(()))
        mean, std = standardize if standardize is not None else (0.0, 1.0)
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).expand(titles.dim).clone()
        std = torch.as_tensor(np.asarray(std, dtype=np.float32)).expand(titles.dim).clone()
        if not (std > 0).all():
            raise ValueError("standardize: every std must be positive")
        self.register_buffer("title_mean", mean)
        self.register_buffer("title_std", std)
        nn.init.normal_(self.user.weight, std=0.05)
        nn.init.zeros_(self.user_bias.weight)

    def item_vectors(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Item vectors ``g(t_i)`` and item biases, from the titles (each distinct item once)."""
        distinct, inverse = torch.unique(items, return_inverse=True)
        vectors = (self.titles(distinct) - self.title_mean) / self.title_std
        out = self.item_tower(vectors)[inverse]
        return out[:, :-1], out[:, -1]

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        check_id_batch(user, item, self.n_users, getattr(self.titles, "n_items", None))
        vectors, item_bias = self.item_vectors(item)
        user_part = self.bias + self.user_bias(user).squeeze(-1)
        return user_part + item_bias + (self.user(user) * vectors).sum(-1)

    @torch.no_grad()
    def score_matrix(
        self, users: np.ndarray | torch.Tensor, items: np.ndarray | torch.Tensor, chunk: int = 256
    ) -> np.ndarray:
        """Logits for every (user, item) pair, shape (len(users), len(items)): the item tower
        runs once per item (in chunks), then one matrix product — the two-tower serving path."""
        was_training = self.training
        self.eval()
        device = self.user.weight.device
        users = torch.as_tensor(np.asarray(users), device=device)
        items = torch.as_tensor(np.asarray(items), device=device)
        parts = [self.item_vectors(items[s : s + chunk]) for s in range(0, len(items), chunk)]
        vectors = torch.cat([p[0] for p in parts])
        item_bias = torch.cat([p[1] for p in parts])
        scores = (
            self.bias
            + self.user_bias(users)  # (U, 1)
            + item_bias[None, :]
            + self.user(users) @ vectors.T
        )
        self.train(was_training)
        return scores.float().cpu().numpy()


class ItemGroupedBatches:
    """Minibatches of ``(user, item, label)`` with at most ``items_per_batch`` distinct items.

    Each epoch shuffles the items, keeps up to ``rows_per_item`` random rows of each (all rows
    when ``None``), and cuts the item order into groups. A fine-tuning step then runs the text
    encoder on ``items_per_batch`` titles while training on up to
    ``items_per_batch * rows_per_item`` impressions. Re-iterable; ``len`` is batches per epoch.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        labels: np.ndarray,
        items_per_batch: int = 32,
        rows_per_item: int | None = 32,
        seed: int = 0,
    ) -> None:
        users, items, labels = (np.asarray(a) for a in (users, items, labels))
        if not len(users) == len(items) == len(labels):
            raise ValueError(
                f"users, items and labels differ in length: {len(users)}, {len(items)}, "
                f"{len(labels)}"
            )
        if len(users) == 0:
            raise ValueError("ItemGroupedBatches got no rows: nothing to train on")
        checks.integer(items_per_batch, "items_per_batch", minimum=1)
        if rows_per_item is not None:
            checks.integer(rows_per_item, "rows_per_item", minimum=1)
        self.users, self.items = users.astype(np.int64), items.astype(np.int64)
        self.labels = labels.astype(np.float32)
        self.items_per_batch, self.rows_per_item = int(items_per_batch), rows_per_item
        self.rng = np.random.default_rng(seed)
        self.n_distinct = len(np.unique(self.items))

    def __len__(self) -> int:
        return -(-self.n_distinct // self.items_per_batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rows = self.rng.permutation(len(self.items))
        distinct = np.unique(self.items)
        item_rank = np.empty(self.items.max() + 1, dtype=np.int64)
        item_rank[self.rng.permutation(distinct)] = np.arange(len(distinct))
        # stable sort by the item's shuffled rank keeps the random row order within an item
        rows = rows[np.argsort(item_rank[self.items[rows]], kind="stable")]
        group = item_rank[self.items[rows]]
        if self.rows_per_item is not None:
            first = np.searchsorted(group, group)  # index of the item's first row in `rows`
            keep = np.arange(len(rows)) - first < self.rows_per_item
            rows, group = rows[keep], group[keep]
        bounds = np.searchsorted(group // self.items_per_batch, np.arange(len(self) + 1))
        for start, stop in zip(bounds[:-1], bounds[1:]):
            idx = rows[start:stop]
            yield (
                torch.from_numpy(self.users[idx]),
                torch.from_numpy(self.items[idx]),
                torch.from_numpy(self.labels[idx]),
            )


def item_titles(items: pd.DataFrame, column: str | None = None) -> pd.Series:
    """The text that describes each item, in item-id order: ``column`` if given, else ``title``
    (the shop) or ``description`` (Online Retail). Missing values are kept for
    :func:`recbook.text.check_titles` to refuse or replace explicitly."""
    candidates = [column] if column else ["title", "description"]
    for name in candidates:
        if name in items.columns:
            ordered = items.sort_values(ITEM) if ITEM in items.columns else items
            if ITEM in items.columns and not np.array_equal(
                ordered[ITEM].to_numpy(), np.arange(len(items))
            ):
                raise ValueError("items.item_id must be the contiguous ids 0..n_items-1")
            return ordered[name].reset_index(drop=True)
    raise KeyError(f"items have no text column {candidates}; columns are {list(items.columns)}")


def labelled_pairs(dataset: Any, n_neg: int = 4, seed: int = 0) -> pd.DataFrame:
    """``user_id, item_id, label`` rows to learn clicks from.

    With impressions (the shop: events ``view``/``click``/``purchase``) every impression is a
    row, labelled 1 when clicked or bought. Without them (Online Retail: purchases only) the
    positives get ``n_neg`` sampled unseen items each, labelled 0
    (:func:`recbook.splits.add_negatives`).
    """
    from recbook import splits

    events = dataset.events
    if EVENT in events.columns and (events[EVENT] == "view").any():
        label = (events[EVENT] != "view").to_numpy(dtype=np.float32)
        return pd.DataFrame(
            {USER: events[USER].to_numpy(), ITEM: events[ITEM].to_numpy(), LABEL: label}
        )
    positives = dataset.positives()[[USER, ITEM]].drop_duplicates()
    pairs = splits.add_negatives(positives, dataset.n_items, n_neg=n_neg, seed=seed)
    return pairs.astype({LABEL: np.float32})

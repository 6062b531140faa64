"""PyTorch recommendation models shared by the notebooks (matrix factorisation, MLP)."""

from __future__ import annotations

import torch
from torch import nn

from recbook import checks


def check_id_batch(
    user: torch.Tensor, item: torch.Tensor, n_users: int, n_items: int | None
) -> None:
    """Refuse a batch whose user/item id tensors differ in shape, are not integers, or hold an
    id outside the tables (``n_items=None``: items are not checked here).

    An out-of-range id fails obscurely on CPU and with a device-side assert (or silently) on a
    GPU, so every embedding model checks its batch first. Only each tensor's min and max leave
    the device, and they go through :func:`recbook.checks.ids` like every other id.
    """
    checks.instance(user, torch.Tensor, "user ids")
    checks.instance(item, torch.Tensor, "item ids")
    if user.shape != item.shape:
        raise ValueError(f"user and item batches differ in shape: {user.shape} vs {item.shape}")
    if user.numel() == 0:
        return
    for ids, n, what in ((user, n_users, "user ids"), (item, n_items, "item ids")):
        if n is None:
            continue
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError(f"{what} must be an integer tensor (torch.long), got {ids.dtype}")
        checks.ids(torch.stack([ids.min(), ids.max()]).cpu().numpy(), n, what)


class BiasedMF(nn.Module):
    """Biased matrix factorisation: ``r_hat = mu + b_u + b_i + p_u . q_i`` (Koren et al. 2009).

    ``sparse=True`` makes the embeddings emit sparse gradients for ``torch.optim.SparseAdam``,
    which only touches the rows of a batch — the fast path for large catalogues on CPU.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 32,
        global_mean: float = 0.0,
        init_std: float = 0.05,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        for value, what in ((n_users, "n_users"), (n_items, "n_items"), (dim, "dim")):
            checks.integer(value, what, minimum=1)
        checks.number(global_mean, "global_mean")
        checks.number(init_std, "init_std", non_negative=True)
        checks.flag(sparse, "sparse")
        self.n_users, self.n_items = n_users, n_items
        self.user_factors = nn.Embedding(n_users, dim, sparse=sparse)
        self.item_factors = nn.Embedding(n_items, dim, sparse=sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
        self.global_mean = nn.Parameter(torch.tensor(float(global_mean)), requires_grad=False)
        for emb in (self.user_factors, self.item_factors):
            nn.init.normal_(emb.weight, std=init_std)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        check_id_batch(user, item, self.n_users, self.n_items)
        dot = (self.user_factors(user) * self.item_factors(item)).sum(-1)
        return (
            self.global_mean
            + self.user_bias(user).squeeze(-1)
            + self.item_bias(item).squeeze(-1)
            + dot
        )

    @torch.no_grad()
    def score_all(self) -> torch.Tensor:
        """The full (users x items) prediction matrix, for top-k ranking."""
        return (
            self.global_mean
            + self.user_bias.weight
            + self.item_bias.weight.T
            + self.user_factors.weight @ self.item_factors.weight.T
        )


class MLP(nn.Module):
    """A plain feed-forward network: Linear-ReLU blocks and a linear output (logits)."""

    def __init__(
        self,
        in_dim: int,
        hidden: tuple[int, ...] = (64, 32),
        out_dim: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        checks.instance(hidden, (tuple, list), "MLP hidden (the layer widths)")
        for value, what in (
            (in_dim, "in_dim"),
            (out_dim, "out_dim"),
            *((h, "hidden") for h in hidden),
        ):
            checks.integer(value, f"MLP {what}", minimum=1)
        checks.number(dropout, "dropout", non_negative=True, below=1)
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1:] != (self.in_dim,):
            raise ValueError(
                f"MLP input has shape {tuple(x.shape)}: its last dimension must be in_dim = "
                f"{self.in_dim}, the number of features the network was built for"
            )
        return self.net(x).squeeze(-1)

"""Matrix factorisation for implicit feedback: iALS and BPR, the two classic top-k learners.

A rating model (:mod:`recbook.mf`) learns to predict the stars a user gives to the items she
chose; it never sees the items she did not choose, so it cannot rank a whole catalogue well.
Implicit-feedback models learn from *which* items were chosen:

- :func:`fit_ials` -- weighted matrix factorisation by alternating least squares (Hu, Koren &
  Volinsky 2008, "iALS"): every (user, item) cell is a target, 1 where the user interacted
  and 0 elsewhere, observed cells weighted ``1 + alpha``. Each row's update is a ridge
  regression in closed form; the cost of the zeros is folded into one Gram matrix ``YᵀY``, so
  an iteration costs O(interactions · f² + rows · f³) rather than O(users · items).
- :func:`fit_bpr` -- Bayesian personalised ranking (Rendle et al. 2009): SGD (Adam) on
  ``-log σ(x_ui - x_uj)`` for an observed item ``i`` and a sampled unobserved item ``j``,
  in PyTorch on :func:`recbook.runtime.device`.

Both return an :class:`ImplicitModel` whose :meth:`~ImplicitModel.score_matrix` feeds
:mod:`recbook.metrics` (remove each user's training items with ``metrics.exclude_seen``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbook import checks
from recbook.columns import ITEM, USER

#: Defaults used by ``benchmarks/ranking.py``, chosen on one split of its synthetic self-test
#: data (never on MovieLens). iALS's ``reg`` is scaled by each row's interaction count plus one;
#: with ``reg / alpha`` above ~0.3 its factors collapse to zero (all scores 0), so the default
#: keeps a wide margin (0.1). BPR overfits with more epochs or a larger ``lr``.
IALS_DEFAULTS = {"factors": 64, "reg": 1.0, "alpha": 10.0, "iters": 10}
BPR_DEFAULTS = {"factors": 64, "lr": 0.001, "reg": 1e-4, "epochs": 40, "batch_size": 1024}


@dataclass
class ImplicitModel:
    """User and item factors (and optional item biases): score(u, i) = p_u · q_i + b_i."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray | None = None
    method: str = ""
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    fit_seconds: float = float("nan")

    @property
    def n_users(self) -> int:
        return len(self.user_factors)

    @property
    def n_items(self) -> int:
        return len(self.item_factors)

    def score_matrix(self, users=None) -> np.ndarray:
        """Scores of ``users`` (default: all) against every item, shape (users, n_items)."""
        p = self.user_factors
        if users is not None:
            p = p[checks.ids(np.atleast_1d(users), self.n_users, "users")]
        scores = p @ self.item_factors.T
        if self.item_bias is not None:
            scores += self.item_bias[None, :]
        return scores


def interactions(train: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary (users x items) CSR matrix of the (user_id, item_id) pairs in ``train`` (a
    repeated pair counts once)."""
    checks.integer(n_users, "n_users", minimum=1)
    checks.integer(n_items, "n_items", minimum=1)
    checks.non_empty(checks.frame(train, (USER, ITEM), "train"), "train")
    u, i = checks.id_columns(train, n_users, n_items, "train")
    x = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


# ----------------------------------------------------------------------------------------------
# iALS


def _ials_side(
    x: sp.csr_matrix, other: np.ndarray, reg: float, alpha: float, block: int
) -> np.ndarray:
    """Solve every row of one side given the other side's factors ``other`` (n_other, f).

    Row ``u``'s normal equations: ``(YᵀY + alpha Σ_{i∈I_u} y_i y_iᵀ + λ_u I) p_u =
    (1 + alpha) Σ_{i∈I_u} y_i`` with ``λ_u = reg (|I_u| + 1)``. The per-row sums of outer
    products are one sparse-times-dense product with the items' vec(y yᵀ), done in blocks of
    rows to bound memory; the systems are then solved together by Cholesky."""
    f = other.shape[1]
    gram = other.T @ other
    outer = np.einsum("nf,ng->nfg", other, other).reshape(len(other), f * f)
    counts = np.asarray(x.sum(axis=1)).ravel()
    rhs_all = (1.0 + alpha) * (x @ other)
    out = np.empty((x.shape[0], f))
    eye = np.eye(f)
    for start in range(0, x.shape[0], block):
        rows = slice(start, start + block)
        a = (x[rows] @ outer).reshape(-1, f, f) * alpha + gram
        a += (reg * (counts[rows] + 1.0))[:, None, None] * eye
        chol = np.linalg.cholesky(a)
        y = np.linalg.solve(chol, rhs_all[rows][:, :, None])
        out[rows] = np.linalg.solve(np.swapaxes(chol, 1, 2), y)[:, :, 0]
    return out


def fit_ials(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    factors: int = IALS_DEFAULTS["factors"],
    reg: float = IALS_DEFAULTS["reg"],
    alpha: float = IALS_DEFAULTS["alpha"],
    iters: int = IALS_DEFAULTS["iters"],
    init_sd: float = 0.01,
    block: int = 1024,
    seed: int = 0,
) -> ImplicitModel:
    """Implicit ALS (Hu et al. 2008) on the binary interactions in ``train``.

    Minimises ``Σ_{u,i} c_ui (t_ui - p_u·q_i)² + Σ_u λ_u |p_u|² + Σ_i λ_i |q_i|²`` over *all*
    cells, with target ``t_ui`` = 1 for an interaction and 0 otherwise, confidence
    ``c_ui = 1 + alpha`` on interactions and 1 elsewhere, and ``λ = reg · (count + 1)``
    (a frequency-scaled penalty, as in ALS-WR and Rendle et al. 2022's iALS revisit, so one
    ``reg`` suits light and heavy rows). Starts from small random factors; each iteration
    solves all users, then all items, exactly.
    """
    factors = checks.integer(factors, "factors", minimum=1)
    iters = checks.integer(iters, "iters", minimum=1)
    block = checks.integer(block, "block", minimum=1)
    reg = checks.number(reg, "reg", positive=True)
    alpha = checks.number(alpha, "alpha", non_negative=True)
    init_sd = checks.number(init_sd, "init_sd", positive=True)
    x = interactions(train, n_users, n_items)
    xt = x.T.tocsr()
    rng = np.random.default_rng(checks.seed(seed))
    users = rng.normal(0.0, init_sd, (n_users, factors))
    items = rng.normal(0.0, init_sd, (n_items, factors))
    rows = []
    start = time.perf_counter()
    for it in range(1, iters + 1):
        users = _ials_side(x, items, reg, alpha, block)
        items = _ials_side(xt, users, reg, alpha, block)
        rows.append({"iteration": it, "seconds": time.perf_counter() - start})
    return ImplicitModel(
        users,
        items,
        None,
        method="iALS (numpy)",
        history=pd.DataFrame(rows),
        fit_seconds=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------------------------
# BPR


def sample_negatives(
    users: np.ndarray, x: sp.csr_matrix, rng: np.random.Generator, tries: int = 50
) -> np.ndarray:
    """One item per entry of ``users`` drawn uniformly among the items that user has *not*
    interacted with in ``x`` (redrawing collisions); an error if a user has interacted with
    every item, since no negative exists for her."""
    n_items = x.shape[1]
    counts = np.diff(x.indptr)
    full = np.flatnonzero(counts[np.unique(users)] >= n_items)
    if full.size:
        raise ValueError("a user has interacted with every item: no negative item to sample")
    codes = np.sort(np.repeat(np.arange(x.shape[0]), counts) * n_items + x.indices)
    neg = rng.integers(0, n_items, len(users))
    for _ in range(tries):
        key = users * n_items + neg
        pos = np.searchsorted(codes, key).clip(max=len(codes) - 1)
        clash = codes[pos] == key
        if not clash.any():
            return neg
        neg[clash] = rng.integers(0, n_items, int(clash.sum()))
    raise RuntimeError(f"could not draw negatives after {tries} rounds; the matrix is too dense")


def fit_bpr(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    factors: int = BPR_DEFAULTS["factors"],
    lr: float = BPR_DEFAULTS["lr"],
    reg: float = BPR_DEFAULTS["reg"],
    epochs: int = BPR_DEFAULTS["epochs"],
    batch_size: int = BPR_DEFAULTS["batch_size"],
    init_sd: float = 0.01,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
) -> ImplicitModel:
    """BPR-MF (Rendle et al. 2009): score ``p_u·q_i + b_i``, trained with Adam on
    ``-log σ(x_ui - x_uj) + reg (|p_u|² + |q_i|² + |q_j|² + b_i² + b_j²)`` per triple.

    Each epoch visits every training interaction once in random order, with one negative per
    interaction drawn uniformly among the user's non-interacted items (:func:`sample_negatives`).
    Runs on :func:`recbook.runtime.device` (``device="auto"``: cuda > mps > cpu).
    """
    import torch

    from recbook import runtime

    factors = checks.integer(factors, "factors", minimum=1)
    epochs = checks.integer(epochs, "epochs", minimum=1)
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    lr = checks.number(lr, "lr", positive=True)
    reg = checks.number(reg, "reg", non_negative=True)
    init_sd = checks.number(init_sd, "init_sd", positive=True)
    seed = checks.seed(seed)
    x = interactions(train, n_users, n_items)
    coo = x.tocoo()
    pos_u, pos_i = coo.row.astype(np.int64), coo.col.astype(np.int64)
    dev = runtime.device(device)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter((torch.randn(n_users, factors, generator=gen) * init_sd).to(dev))
    q = torch.nn.Parameter((torch.randn(n_items, factors, generator=gen) * init_sd).to(dev))
    b = torch.nn.Parameter(torch.zeros(n_items, device=dev))
    opt = torch.optim.Adam([p, q, b], lr=lr)
    epochs_iter = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="BPR", leave=False)
    rows = []
    start = time.perf_counter()
    for epoch in epochs_iter:
        order = rng.permutation(len(pos_u))
        us, is_ = pos_u[order], pos_i[order]
        js = sample_negatives(us, x, rng)
        u_t, i_t, j_t = (torch.as_tensor(a, device=dev) for a in (us, is_, js))
        total = torch.zeros((), device=dev)
        for s in range(0, len(us), batch_size):
            u, i, j = u_t[s : s + batch_size], i_t[s : s + batch_size], j_t[s : s + batch_size]
            pu, qi, qj = p[u], q[i], q[j]
            diff = (pu * (qi - qj)).sum(1) + b[i] - b[j]
            penalty = (pu**2 + qi**2 + qj**2).sum(1) + b[i] ** 2 + b[j] ** 2
            loss = (-torch.nn.functional.logsigmoid(diff) + reg * penalty).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(u)
        rows.append(
            {
                "epoch": epoch,
                "loss": float(total) / len(us),
                "seconds": time.perf_counter() - start,
            }
        )
    if progress:
        epochs_iter.close()
    return ImplicitModel(
        p.detach().cpu().numpy().astype(np.float64),
        q.detach().cpu().numpy().astype(np.float64),
        b.detach().cpu().numpy().astype(np.float64),
        method=f"BPR (PyTorch, {dev.type})",
        history=pd.DataFrame(rows),
        fit_seconds=time.perf_counter() - start,
    )

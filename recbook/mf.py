"""Matrix factorisation in numpy: the reference implementations behind notebook 03.

Three ways to fit ``r_ui ~ mu + b_u + c_i + p_u . q_i`` on the *observed* ratings only:

- :func:`fit_sgd` -- stochastic gradient descent (Funk / Koren style), vectorised over
  mini-batches of ratings.
- :func:`fit_als` -- alternating least squares with closed-form ridge updates; with
  ``weighted=True`` the penalty grows with each row's rating count (ALS-WR, Zhou et al. 2008).
  ``rank=0`` gives the user + item bias baseline.
- :func:`fit_bayes` -- Bayesian MF by Gibbs sampling: the same per-row normal equations as ALS,
  but each row is *drawn* from its Gaussian conditional instead of set to its mode, the
  penalties and the noise level are sampled too (as in libFM's MCMC), and predictions are
  averaged over samples. No regularisation to tune, which is why it is the default.

Every ALS-type step solves all rows at once: the per-row Gram matrices ``sum_j x_j x_j^T`` are one
sparse-times-dense product (rows x observed-indicator) @ (columns x vec(x_j x_j^T)), the stacked
systems are factorised by one batched ``numpy.linalg.cholesky``, and the triangular solves loop
over the few coordinates rather than the many rows. ALS and the sampler start from the truncated
SVD of the bias-free residuals (``init="spectral"``), which shortens their burn-in.

The module is long on purpose: the fitters share one model type, one early-stopping tracker,
the spectral start and (ALS and the sampler) the batched normal equations, so split apart each
would reach into the others' private helpers.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbook import checks, metrics
from recbook.columns import ITEM, RATING, USER

#: The notebook's default model and settings; ``benchmarks/mf.py`` uses exactly these.
DEFAULTS: dict[str, Any] = {"model": "bayes", "rank": 10, "burn_in": 20, "samples": 100}


@dataclass
class MFModel:
    """A fitted biased factor model; ``predict`` and ``score_matrix`` are all a notebook needs.

    A Bayesian model keeps its posterior average as one wide factor model: averaging
    ``p_s . q_s`` over ``S`` samples equals the dot product of the samples laid side by side
    and scaled by ``1/sqrt(S)``, so the same prediction code serves every method.
    """

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    rating_range: tuple[float, float]
    method: str = ""
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    fit_seconds: float = float("nan")

    @property
    def n_users(self) -> int:
        return len(self.user_bias)

    @property
    def n_items(self) -> int:
        return len(self.item_bias)

    def predict(self, users: Any, items: Any, clip: bool = True) -> np.ndarray:
        """Predicted ratings for (user, item) pairs; ``clip`` bounds them to the training scale
        (a prediction of 5.3 on a 1-5 scale is always worse than 5)."""
        u = checks.ids(users, self.n_users, "users")
        i = checks.ids(items, self.n_items, "items")
        if u.shape != i.shape:
            raise ValueError(
                f"users and items must have the same length, got {u.shape} vs {i.shape}"
            )
        pred = self.global_mean + self.user_bias[u] + self.item_bias[i]
        pred = pred + np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
        return np.clip(pred, *self.rating_range) if clip else pred

    def predict_df(self, df: pd.DataFrame) -> np.ndarray:
        """``predict`` on the ``user_id``/``item_id`` columns of a DataFrame."""
        u, i = checks.id_columns(df, self.n_users, self.n_items, "df")
        return self.predict(u, i)

    def score_matrix(self, clip: bool = False) -> np.ndarray:
        """All predicted ratings, shape (n_users, n_items), for top-k ranking."""
        scores = self.user_factors @ self.item_factors.T
        scores += self.global_mean + self.user_bias[:, None] + self.item_bias[None, :]
        return np.clip(scores, *self.rating_range) if clip else scores


def global_mean_model(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    progress: bool = True,
) -> MFModel:
    """The simplest baseline: predict the mean training rating for everyone. (``progress`` is
    accepted so :func:`fit` can pass it to every model; there is nothing to show.)"""
    checks.flag(progress, "progress")
    u, i, r = _triples(train, n_users, n_items, "train")
    return MFModel(
        float(r.mean()),
        np.zeros(n_users),
        np.zeros(n_items),
        np.zeros((n_users, 0)),
        np.zeros((n_items, 0)),
        (float(r.min()), float(r.max())),
        method="global mean",
    )


# ----------------------------------------------------------------------------------------------
# SGD on the observed entries


def fit_sgd(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    rank: int = 20,
    lr: float = 0.01,
    reg: float = 0.05,
    epochs: int = 30,
    batch_size: int = 256,
    init_sd: float = 0.1,
    val: pd.DataFrame | None = None,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
    max_bytes: float | None = None,
) -> MFModel:
    """Biased MF by SGD on observed ratings (loss: squared error + ``reg`` * squared norms).

    Each step takes ``batch_size`` shuffled ratings and applies every rating's own SGD update,
    summed where rows repeat (``np.add.at``): with small batches this is classic per-rating SGD,
    vectorised. With ``val`` and ``patience`` it stops when validation RMSE has not improved for
    ``patience`` epochs and returns the best epoch's parameters. ``max_bytes`` raises the
    memory limit (:data:`recbook.checks.MEMORY_LIMIT`) the factor tables are checked against.
    """
    for name, value in {"rank": rank, "epochs": epochs, "batch_size": batch_size}.items():
        checks.integer(value, name, minimum=1)
    checks.number(lr, "lr", positive=True)
    checks.number(reg, "reg", non_negative=True)
    checks.number(init_sd, "init_sd", non_negative=True)
    checks.seed(seed)
    u, i, r = _triples(train, n_users, n_items, "train")
    _check_memory(n_users, n_items, rank, 0, max_bytes, "fit_sgd")
    val_t = _triples(val, n_users, n_items, "val") if val is not None else None
    rng = np.random.default_rng(seed)
    mu = float(r.mean())
    P = rng.normal(0.0, init_sd, (n_users, rank))
    Q = rng.normal(0.0, init_sd, (n_items, rank))
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    model = MFModel(mu, bu, bi, P, Q, (float(r.min()), float(r.max())), method="numpy SGD")
    tracker = _Tracker(model, (u, i, r), val_t, patience)
    start = time.perf_counter()
    for epoch in _progress(range(1, epochs + 1), progress, "numpy SGD"):
        order = rng.permutation(len(r))
        for lo in range(0, len(r), batch_size):
            idx = order[lo : lo + batch_size]
            bu_, bi_, r_ = u[idx], i[idx], r[idx]
            pu, qi = P[bu_], Q[bi_]
            err = r_ - (mu + bu[bu_] + bi[bi_] + np.einsum("nk,nk->n", pu, qi))
            np.add.at(bu, bu_, lr * (err - reg * bu[bu_]))
            np.add.at(bi, bi_, lr * (err - reg * bi[bi_]))
            np.add.at(P, bu_, lr * (err[:, None] * qi - reg * pu))
            np.add.at(Q, bi_, lr * (err[:, None] * pu - reg * qi))
        if tracker.step(epoch, time.perf_counter() - start):
            break
    return tracker.finish(time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------
# ALS and its Gibbs-sampling twin share the batched normal equations


class _Sides:
    """Sparse structure of the ratings seen from the users' side and from the items' side."""

    def __init__(self, u: np.ndarray, i: np.ndarray, r: np.ndarray, n_users: int, n_items: int):
        self.u, self.i, self.r = u, i, r
        by_user = sp.csr_matrix((np.arange(len(r)) + 1.0, (u, i)), shape=(n_users, n_items))
        by_item = by_user.T.tocsr()
        if by_user.nnz != len(r):
            raise ValueError(
                "train has duplicate (user, item) pairs; aggregate them first, "
                "e.g. df.groupby(['user_id', 'item_id'], as_index=False)['rating'].mean()"
            )
        # which rating sits at each stored position, so targets can be refilled in place
        self.user_pos = by_user.data.astype(np.int64) - 1
        self.item_pos = by_item.data.astype(np.int64) - 1
        self.by_user = by_user
        self.by_item = by_item
        self.mask_user = _indicator(by_user)
        self.mask_item = _indicator(by_item)
        self.n_user = np.diff(by_user.indptr).astype(float)
        self.n_item = np.diff(by_item.indptr).astype(float)


def _indicator(m: sp.csr_matrix) -> sp.csr_matrix:
    ind = m.copy()
    ind.data = np.ones_like(ind.data)
    return ind


def _normal_equations(
    mask: sp.csr_matrix, values: sp.csr_matrix, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row Gram ``sum_j x_j x_j^T`` (n, d, d) and right-hand side ``sum_j t_j x_j`` (n, d)
    over each row's observed columns, for all rows at once.

    The Gram of row ``u`` is ``sum_j mask[u, j] * vec(x_j x_j^T)``: one sparse @ dense product
    with the columns' outer products, of which only the upper triangle is computed.
    """
    d = X.shape[1]
    iu, ju = np.triu_indices(d)
    upper = np.asarray(mask @ (X[:, iu] * X[:, ju]))
    gram = np.empty((mask.shape[0], d, d))
    gram[:, iu, ju] = upper
    gram[:, ju, iu] = upper
    rhs = np.asarray(values @ X)
    return gram, rhs


def _forward(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L y = b`` for a stack of lower-triangular ``L`` (n, d, d), b (n, d); the loop
    runs over the d coordinates, every row at once (faster than n small LAPACK calls)."""
    y = np.empty_like(b)
    for k in range(b.shape[1]):
        y[:, k] = (b[:, k] - np.einsum("nj,nj->n", L[:, k, :k], y[:, :k])) / L[:, k, k]
    return y


def _backward(L: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solve ``L^T x = y`` for a stack of lower-triangular ``L``."""
    x = np.empty_like(y)
    for k in reversed(range(y.shape[1])):
        x[:, k] = (y[:, k] - np.einsum("nj,nj->n", L[:, k + 1 :, k], x[:, k + 1 :])) / L[:, k, k]
    return x


def _with_targets(m: sp.csr_matrix, pos: np.ndarray, target: np.ndarray) -> sp.csr_matrix:
    """The matrix ``m``'s sparsity pattern holding ``target`` (indexed by rating position)."""
    return sp.csr_matrix((target[pos], m.indices, m.indptr), shape=m.shape, copy=False)


def _spectral_init(
    sides: _Sides, mu: float, rank: int, rng: np.random.Generator, shrink: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Starting factors from the truncated SVD of the bias-free residuals, zeros elsewhere,
    rescaled by the observed fraction (the spectral start of matrix completion; Keshavan et al.
    2010). It puts ALS and the sampler near the right subspace instead of a random one."""
    n_users, n_items = sides.by_user.shape
    resid = _with_targets(sides.mask_user, sides.user_pos, sides.r - mu)
    # remove damped user and item means first, so the SVD sees the interaction, not the biases
    b_u = np.asarray(resid.sum(1)).ravel() / (sides.n_user + 5.0)
    resid.data -= np.repeat(b_u, np.diff(resid.indptr))
    cols = resid.tocsc()
    c_i = np.asarray(cols.sum(0)).ravel() / (sides.n_item + 5.0)
    resid.data -= c_i[resid.indices]
    if rank == 0 or rank >= min(n_users, n_items) - 1:
        return rng.normal(0, 0.1, (n_users, rank)), rng.normal(0, 0.1, (n_items, rank))
    from scipy.sparse.linalg import svds

    fraction = resid.nnz / (n_users * n_items)
    v0 = rng.standard_normal(min(n_users, n_items))
    left, sing, right_t = svds(resid / fraction, k=rank, v0=v0)
    root = np.sqrt(sing) * shrink
    return left * root, right_t.T * root


def _start(
    sides: _Sides, mu: float, rank: int, init: str, init_sd: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Initial ``[bias, factors]`` of users and items: ``init="spectral"`` or ``"random"``."""
    n_users, n_items = sides.by_user.shape
    if init == "spectral":
        P, Q = _spectral_init(sides, mu, rank, rng)
    elif init == "random":
        P, Q = rng.normal(0, init_sd, (n_users, rank)), rng.normal(0, init_sd, (n_items, rank))
    else:
        raise ValueError(f"init must be 'spectral' or 'random', got {init!r}")
    return np.hstack([np.zeros((n_users, 1)), P]), np.hstack([np.zeros((n_items, 1)), Q])


def _ridge(counts: np.ndarray, rank: int, reg: float, bias_reg: float, weighted: bool):
    """Diagonal penalties (n, rank + 1): ``bias_reg`` on the bias, ``reg`` (times the row's
    rating count for ALS-WR) on the factors. A row with no ratings gets a tiny positive penalty
    so its system stays solvable; its solution is exactly zero."""
    scale = np.maximum(counts, 1.0) if weighted else np.ones_like(counts)
    ridge = np.empty((len(counts), rank + 1))
    ridge[:, 0] = bias_reg
    ridge[:, 1:] = reg * scale[:, None]
    return np.maximum(ridge, 1e-9)


def _design(factors: np.ndarray) -> np.ndarray:
    """``[1, q_j]``: the leading 1 lets the row's bias be solved with its factors."""
    return np.hstack([np.ones((len(factors), 1)), factors])


def fit_als(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    rank: int = 10,
    reg: float = 0.05,
    bias_reg: float = 5.0,
    weighted: bool = True,
    iters: int = 15,
    init: str = "spectral",
    init_sd: float = 0.1,
    val: pd.DataFrame | None = None,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
    max_bytes: float | None = None,
) -> MFModel:
    """Biased MF by alternating least squares, every row's update in closed form.

    Fixing the items, each user's ``[b_u, p_u]`` solves the ridge problem
    ``(X^T X + L) w = X^T t`` with ``X`` the rows ``[1, q_j]`` of the items the user rated and
    ``t = r - mu - c_j``; then the same for items. ``weighted=True`` (ALS-WR) scales the factor
    penalty by the row's rating count, ``reg * n_u``, so ``reg`` is comparable across data sizes;
    with ``weighted=False`` it is ``reg`` itself. The bias coordinate has a constant penalty
    ``bias_reg``, so a bias estimated from one rating is damped towards 0 (a count-scaled penalty
    would leave it nearly raw). ``rank=0`` fits biases only: the bias baseline. ``max_bytes``
    raises the memory limit (:data:`recbook.checks.MEMORY_LIMIT`) the normal equations are
    checked against.
    """
    checks.integer(iters, "iters", minimum=1)
    checks.integer(rank, "rank", minimum=0)
    checks.number(reg, "reg", non_negative=True)
    checks.number(bias_reg, "bias_reg", non_negative=True)
    checks.number(init_sd, "init_sd", non_negative=True)
    checks.flag(weighted, "weighted")
    checks.seed(seed)
    u, i, r = _triples(train, n_users, n_items, "train")
    _check_memory(n_users, n_items, rank, 0, max_bytes, "fit_als")
    val_t = _triples(val, n_users, n_items, "val") if val is not None else None
    sides = _Sides(u, i, r, n_users, n_items)
    rng = np.random.default_rng(seed)
    mu = float(r.mean())
    W_u, W_i = _start(sides, mu, rank, init, init_sd, rng)
    name = "numpy ALS-WR" if weighted else "numpy ALS"
    model = MFModel(mu, W_u[:, 0], W_i[:, 0], W_u[:, 1:], W_i[:, 1:], (r.min(), r.max()), name)
    tracker = _Tracker(model, (u, i, r), val_t, patience)
    start = time.perf_counter()
    for it in _progress(range(1, iters + 1), progress, name):
        for side in ("user", "item"):
            if side == "user":
                mask, pos, counts = sides.mask_user, sides.user_pos, sides.n_user
                target, other = r - mu - W_i[i, 0], W_i[:, 1:]
            else:
                mask, pos, counts = sides.mask_item, sides.item_pos, sides.n_item
                target, other = r - mu - W_u[u, 0], W_u[:, 1:]
            gram, rhs = _normal_equations(mask, _with_targets(mask, pos, target), _design(other))
            gram[:, np.arange(rank + 1), np.arange(rank + 1)] += _ridge(
                counts, rank, reg, bias_reg, weighted
            )
            chol = np.linalg.cholesky(gram)
            solved = _backward(chol, _forward(chol, rhs))
            if side == "user":
                W_u = solved
            else:
                W_i = solved
        model.user_bias, model.user_factors = W_u[:, 0], W_u[:, 1:]
        model.item_bias, model.item_factors = W_i[:, 0], W_i[:, 1:]
        if tracker.step(it, time.perf_counter() - start):
            break
    return tracker.finish(time.perf_counter() - start)


def als_user_step(
    train: pd.DataFrame,
    model: MFModel,
    reg: float,
    bias_reg: float = 5.0,
    weighted: bool = True,
) -> np.ndarray:
    """One ALS user step on its own: every user's ``[b_u, p_u]`` given ``model``'s items,
    solved together (what :func:`fit_als` does each iteration; exposed to check it by hand)."""
    checks.instance(model, MFModel, "model")
    checks.flag(weighted, "weighted")
    checks.number(reg, "reg", non_negative=True)
    checks.number(bias_reg, "bias_reg", non_negative=True)
    u, i, r = _triples(train, model.n_users, model.n_items, "train")
    sides = _Sides(u, i, r, model.n_users, model.n_items)
    target = r - model.global_mean - model.item_bias[i]
    values = _with_targets(sides.mask_user, sides.user_pos, target)
    gram, rhs = _normal_equations(sides.mask_user, values, _design(model.item_factors))
    d = gram.shape[1]
    gram[:, np.arange(d), np.arange(d)] += _ridge(sides.n_user, d - 1, reg, bias_reg, weighted)
    chol = np.linalg.cholesky(gram)
    return _backward(chol, _forward(chol, rhs))


def fit_biases(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    reg: float = 10.0,
    iters: int = 10,
    val: pd.DataFrame | None = None,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> MFModel:
    """User + item bias baseline (``mu + b_u + c_i``), each bias a damped mean with penalty
    ``reg`` (Koren 2010's baseline predictor, solved by alternating closed-form updates)."""
    model = fit_als(
        train,
        n_users,
        n_items,
        rank=0,
        bias_reg=reg,
        iters=iters,
        val=val,
        patience=patience,
        seed=seed,
        progress=progress,
    )
    model.method = "user + item biases"
    return model


def fit_bayes(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    rank: int = DEFAULTS["rank"],
    burn_in: int = DEFAULTS["burn_in"],
    samples: int = DEFAULTS["samples"],
    init: str = "spectral",
    init_sd: float = 0.1,
    prior_shape: float = 1.0,
    prior_rate: float = 1.0,
    val: pd.DataFrame | None = None,
    seed: int = 0,
    progress: bool = True,
    max_bytes: float | None = None,
) -> MFModel:
    """Bayesian biased MF by Gibbs sampling; predictions averaged over ``samples`` draws.

    The model: ``r_ui ~ N(mu + b_u + c_i + p_u.q_i, 1/alpha)``; each coordinate ``f`` of the
    users' ``w_u = [b_u, p_u]`` ~ ``N(m_f, 1/lambda_f)`` (items have their own ``m``,
    ``lambda``), with Gaussian-Gamma hyper-priors on ``(m_f, lambda_f)`` and a Gamma prior on
    ``alpha`` -- the scheme of libFM's MCMC (Rendle 2012). One sweep draws every user from its
    Gaussian conditional, whose precision ``alpha X^T X + diag(lambda)`` and mean
    ``P^{-1}(alpha X^T t + lambda * m)`` are the ALS normal equations, then every item, then the
    hyper-parameters. The penalties are learnt from the data, so nothing needs tuning. The
    first ``burn_in`` sweeps are discarded. ``max_bytes`` raises the memory limit
    (:data:`recbook.checks.MEMORY_LIMIT`) the kept samples are checked against.
    """
    checks.integer(rank, "rank", minimum=1)
    checks.integer(samples, "samples", minimum=1)
    checks.integer(burn_in, "burn_in", minimum=0)
    checks.number(prior_shape, "prior_shape", positive=True)
    checks.number(prior_rate, "prior_rate", positive=True)
    checks.number(init_sd, "init_sd", non_negative=True)
    checks.seed(seed)
    u, i, r = _triples(train, n_users, n_items, "train")
    _check_memory(n_users, n_items, rank, samples, max_bytes, "fit_bayes")
    val_t = _triples(val, n_users, n_items, "val") if val is not None else None
    sides = _Sides(u, i, r, n_users, n_items)
    rng = np.random.default_rng(seed)
    mu = float(r.mean())
    d = rank + 1
    diag = (slice(None), np.arange(d), np.arange(d))
    W = dict(zip(("user", "item"), _start(sides, mu, rank, init, init_sd, rng)))
    hyper = {side: (np.zeros(d), np.ones(d)) for side in W}  # prior mean m, precision lambda
    alpha = 1.0
    kept: dict[str, list[np.ndarray]] = {"user": [], "item": []}
    val_sum = np.zeros(len(val_t[2])) if val_t is not None else None
    rows = []
    lo, hi = float(r.min()), float(r.max())
    start = time.perf_counter()
    for sweep in _progress(range(1, burn_in + samples + 1), progress, "numpy Bayesian MF"):
        for side, other in (("user", "item"), ("item", "user")):
            mask, pos = (
                (sides.mask_user, sides.user_pos)
                if side == "user"
                else (
                    sides.mask_item,
                    sides.item_pos,
                )
            )
            target = r - mu - W[other][i if side == "user" else u, 0]
            gram, rhs = _normal_equations(
                mask, _with_targets(mask, pos, target), _design(W[other][:, 1:])
            )
            m, lam = hyper[side]
            prec = alpha * gram
            prec[diag] += lam
            # with prec = L L^T: x = L^-T (L^-1 b + z) has mean prec^-1 b, covariance prec^-1
            chol = np.linalg.cholesky(prec)
            y = _forward(chol, alpha * rhs + lam * m)
            W[side] = _backward(chol, y + rng.standard_normal(y.shape))
            hyper[side] = _draw_hyper(W[side], prior_shape, prior_rate, rng)
        # squared error of the new draw, from the item step's normal equations
        w = W["item"]
        sse = target @ target - 2 * np.einsum("nd,nd->", w, rhs)
        sse += np.einsum("nd,nde,ne->", w, gram, w)
        alpha = rng.gamma(prior_shape + len(r) / 2, 1.0 / (prior_rate + 0.5 * max(sse, 0.0)))
        row = {"epoch": sweep, "train_rmse": float(np.sqrt(max(sse, 0.0) / len(r)))}
        if sweep > burn_in:
            kept["user"].append(W["user"])
            kept["item"].append(w)
        if val_t is not None:
            vu, vi, vr = val_t
            wu, wi = W["user"][vu], w[vi]
            pred = mu + wu[:, 0] + wi[:, 0] + np.einsum("nk,nk->n", wu[:, 1:], wi[:, 1:])
            if sweep > burn_in:
                val_sum += pred
                pred = val_sum / len(kept["user"])
            row["val_rmse"] = float(np.sqrt(np.mean((np.clip(pred, lo, hi) - vr) ** 2)))
        row["noise_sd"] = float(alpha**-0.5)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    seconds = time.perf_counter() - start
    U, V = np.stack(kept["user"]), np.stack(kept["item"])  # (S, n, d)
    S = len(U)
    return MFModel(
        mu,
        U[:, :, 0].mean(0),
        V[:, :, 0].mean(0),
        np.concatenate(list(U[:, :, 1:]), axis=1) / np.sqrt(S),
        np.concatenate(list(V[:, :, 1:]), axis=1) / np.sqrt(S),
        (lo, hi),
        method="numpy Bayesian MF (Gibbs)",
        history=pd.DataFrame(rows),
        fit_seconds=seconds,
    )


def _draw_hyper(
    W: np.ndarray, shape: float, rate: float, rng: np.random.Generator, gamma0: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw each coordinate's prior mean and precision given the rows ``W`` (n, d), under
    ``lambda ~ Gamma(shape, rate)`` and ``m | lambda ~ N(0, 1/(gamma0 lambda))``."""
    n = len(W)
    m_hat = W.sum(0) / (n + gamma0)
    spread = ((W - m_hat) ** 2).sum(0) + gamma0 * m_hat**2
    lam = rng.gamma(shape + (n + 1) / 2, 1.0 / (rate + 0.5 * spread))
    m = m_hat + rng.standard_normal(W.shape[1]) / np.sqrt(lam * (n + gamma0))
    return m, lam


def fit(train: pd.DataFrame, n_users: int, n_items: int, model: str | None = None, **kw) -> MFModel:
    """Fit by name (``"bayes"``, ``"als"``, ``"sgd"``, ``"biases"``, ``"mean"``) -- the
    notebook's and benchmark's entry.

    :data:`DEFAULTS` fill in the settings ``kw`` leaves out, where the chosen model has them
    (``samples`` only for ``"bayes"``); a setting passed in ``kw`` that the chosen model does
    not take is an error, never dropped.
    """
    name = DEFAULTS["model"] if model is None else model
    fitters = {
        "bayes": fit_bayes,
        "als": fit_als,
        "sgd": fit_sgd,
        "biases": fit_biases,
        "mean": global_mean_model,
    }
    checks.one_of(name, fitters, "model")
    fitter = fitters[name]
    takes = set(inspect.signature(fitter).parameters) - {"train", "n_users", "n_items"}
    unused = sorted(set(kw) - takes)
    if unused:
        raise TypeError(
            f"mf.fit(model={name!r}) does not take {unused}: {fitter.__name__} has no such "
            f"setting. It takes {sorted(takes)}."
        )
    defaults = {k: v for k, v in DEFAULTS.items() if k in takes}
    return fitter(train, n_users, n_items, **{**defaults, **kw})


# ----------------------------------------------------------------------------------------------
# helpers


class _Tracker:
    """Per-epoch RMSE history and early stopping that restores the best epoch's parameters."""

    def __init__(self, model: MFModel, train_t, val_t, patience: int | None):
        if patience is not None:
            checks.integer(patience, "patience", minimum=1)
            if val_t is None:
                raise ValueError("patience needs a validation set (val=...)")
        self.model, self.train_t, self.val_t, self.patience = model, train_t, val_t, patience
        self.rows: list[dict[str, float]] = []
        self.best = (np.inf, 0, None)

    def _rmse(self, t, epoch: int) -> float:
        u, i, r = t
        pred = self.model.predict(u, i)
        if not np.isfinite(pred).all():  # the data were checked finite: the fit diverged
            raise ValueError(
                f"{self.model.method} diverged by epoch {epoch}: its predictions hold NaN or "
                "infinity; lower lr (or raise reg)"
            )
        return metrics.rmse(r, pred)

    def step(self, epoch: int, seconds: float) -> bool:
        row = {"epoch": epoch, "train_rmse": self._rmse(self.train_t, epoch)}
        if self.val_t is not None:
            row["val_rmse"] = self._rmse(self.val_t, epoch)
            if row["val_rmse"] < self.best[0]:
                m = self.model
                state = [
                    a.copy() for a in (m.user_bias, m.item_bias, m.user_factors, m.item_factors)
                ]
                self.best = (row["val_rmse"], epoch, state)
        row["seconds"] = seconds
        self.rows.append(row)
        return self.patience is not None and epoch - self.best[1] >= self.patience

    def finish(self, seconds: float) -> MFModel:
        m = self.model
        if self.best[2] is not None:
            m.user_bias, m.item_bias, m.user_factors, m.item_factors = self.best[2]
        m.history = pd.DataFrame(self.rows)
        m.fit_seconds = seconds
        return m


def _progress(it, enabled: bool, desc: str):
    if not checks.flag(enabled, "progress"):
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)


def _triples(
    df: pd.DataFrame, n_users: int, n_items: int, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (user, item, rating) arrays from a ratings DataFrame (``user_id``,
    ``item_id``, ``rating``)."""
    checks.integer(n_users, "n_users", minimum=1)
    checks.integer(n_items, "n_items", minimum=1)
    checks.non_empty(checks.frame(df, (USER, ITEM, RATING), what), what)
    u, i = checks.id_columns(df, n_users, n_items, what)
    r = checks.finite_array(df[RATING].to_numpy(), f"{what}[{RATING!r}]")
    return u, i, r


def _check_memory(
    n_users: int, n_items: int, rank: int, samples: int, max_bytes: float | None, what: str
) -> None:
    """Refuse before allocating when the factor tables would not fit: ``[bias, factors]`` of
    every row (three copies: current, best, update), one ``d x d`` system per row of the
    larger side (three: Gram, precision, Cholesky) and ``samples`` kept draws."""
    d = rank + 1
    rows = n_users + n_items
    estimate = 8.0 * (3 * rows * d + 3 * max(n_users, n_items) * d * d + 2 * samples * rows * d)
    checks.memory(estimate, max_bytes, f"{what} with rank {rank}", "lower rank or samples")

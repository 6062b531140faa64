"""Federated averaging for recommendation: clients, FedAvg, faults, DP-FedAvg, Flower glue.

The simulation keeps ONE model object whose user rows play the part of the clients' private
state: a user belongs to exactly one client, and only that client's local training touches its
rows, so leaving them in place between rounds is the same as each device keeping them. What a
client sends is the *shared* part of the model (item factors, item biases, the global mean);
that split is the federated collaborative-filtering design (Ammad-ud-din et al. 2019). Server
aggregation is McMahan et al. (2017) FedAvg: clients sampled with fraction ``C``, ``E`` local
epochs of minibatch SGD with batch ``B``, updates averaged with weights ``n_k / n``.

Every random draw (client sampling, dropout, local shuffles) comes from a seed, and a client's
local shuffle in round ``t`` depends only on ``(seed, t, client)``, so the Flower apps built by
:func:`make_client_app` / :func:`make_server_app` reproduce the from-scratch loop.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

State = dict[str, torch.Tensor]
PrivatePredicate = Callable[[str], bool]


def user_side(name: str) -> bool:
    """Default split of :class:`recbook.models_torch.BiasedMF`: ``user_*`` stays on the client."""
    return name.startswith("user_")


# ----------------------------------------------------------------------------- clients


@dataclass
class Client:
    """One client's local data as tensors: its users, train and test ratings."""

    client_id: int
    users: np.ndarray
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    label: str = ""

    @property
    def n_train(self) -> int:
        return len(self.train[0])

    @property
    def n_test(self) -> int:
        return len(self.test[0])


def _triples(df: pd.DataFrame, col_user: str, col_item: str, col_rating: str):
    return (
        torch.tensor(df[col_user].to_numpy(), dtype=torch.long),
        torch.tensor(df[col_item].to_numpy(), dtype=torch.long),
        torch.tensor(df[col_rating].to_numpy(), dtype=torch.float32),
    )


def groups_by_column(users: pd.DataFrame, column: str, col_user: str = "user_id") -> dict:
    """User ids grouped by a user attribute (e.g. ``region``): naturally non-IID clients."""
    if column not in users.columns:
        raise KeyError(f"users has no column {column!r}; columns are {list(users.columns)}")
    return {key: g[col_user].to_numpy() for key, g in users.groupby(column, sort=True)}


def groups_random(user_ids: Iterable[int], n_clients: int, seed: int = 0) -> dict:
    """Users shuffled and cut into ``n_clients`` equal groups: the IID control."""
    ids = np.asarray(list(user_ids))
    if not 1 <= n_clients <= len(ids):
        raise ValueError(f"n_clients must be in 1..{len(ids)} (number of users), got {n_clients}")
    perm = np.random.default_rng(seed).permutation(ids)
    return {k: np.sort(g) for k, g in enumerate(np.array_split(perm, n_clients))}


def groups_of_size(
    users: pd.DataFrame,
    size: int,
    within: str | None = None,
    seed: int = 0,
    col_user: str = "user_id",
) -> dict:
    """Many small clients of about ``size`` users (a household, a shop, a device group).

    With ``within="region"`` every small client holds users of a single region (non-IID);
    with ``within=None`` users are mixed at random.
    """
    if size <= 0:
        raise ValueError(f"size must be a positive number of users, got {size}")
    rng = np.random.default_rng(seed)
    parts = groups_by_column(users, within, col_user) if within else {"all": users[col_user]}
    out: dict = {}
    for key, ids in parts.items():
        ids = rng.permutation(np.asarray(ids))
        for j, chunk in enumerate(np.array_split(ids, max(1, round(len(ids) / size)))):
            out[f"{key}/{j}" if within else len(out)] = np.sort(chunk)
    return out


def make_clients(
    train: pd.DataFrame,
    test: pd.DataFrame,
    groups: dict,
    col_user: str = "user_id",
    col_item: str = "item_id",
    col_rating: str = "rating",
) -> list[Client]:
    """Split train/test ratings by user group into :class:`Client` objects.

    Every user with a rating must be in exactly one group, and every group must hold training
    data; anything else is an error rather than a silent drop.
    """
    owner: dict[int, int] = {}
    for k, ids in enumerate(groups.values()):
        for u in np.asarray(ids).tolist():
            if u in owner:
                raise ValueError(f"user {u} is in two groups ({owner[u]} and {k}); fix the split")
            owner[u] = k
    seen = pd.concat([train[col_user], test[col_user]]).unique()
    orphans = [int(u) for u in seen if int(u) not in owner]
    if orphans:
        raise ValueError(
            f"{len(orphans)} users with ratings belong to no client (e.g. {orphans[:5]}); "
            "build the groups from every user in the ratings"
        )
    train_k = train[col_user].map(owner).to_numpy()
    test_k = test[col_user].map(owner).to_numpy()
    clients = []
    for k, (label, ids) in enumerate(groups.items()):
        tr, te = train[train_k == k], test[test_k == k]
        if len(tr) == 0:
            raise ValueError(
                f"client {label!r} has no training ratings; drop users without ratings "
                "before grouping or use larger groups"
            )
        clients.append(
            Client(
                client_id=k,
                users=np.sort(np.asarray(ids)),
                train=_triples(tr, col_user, col_item, col_rating),
                test=_triples(te, col_user, col_item, col_rating),
                label=str(label),
            )
        )
    return clients


def pooled(clients: Sequence[Client]) -> Client:
    """All clients' data as one client: centralised training is FedAvg with this one client."""
    cat = [torch.cat([getattr(c, part)[j] for c in clients]) for part in ("train", "test")
           for j in range(3)]  # fmt: skip
    users = np.sort(np.concatenate([c.users for c in clients]))
    return Client(-1, users, tuple(cat[:3]), tuple(cat[3:]), label="pooled")


def non_iid_report(clients: Sequence[Client], item_category: np.ndarray) -> pd.DataFrame:
    """Per client: examples, users, and the total-variation distance between its category mix
    and the pooled one (0 = IID, 1 = disjoint)."""
    n_cat = int(item_category.max()) + 1
    counts = np.stack(
        [np.bincount(item_category[c.train[1].numpy()], minlength=n_cat) for c in clients]
    ).astype(float)
    overall = counts.sum(0) / counts.sum()
    tv = 0.5 * np.abs(counts / counts.sum(1, keepdims=True) - overall).sum(1)
    return pd.DataFrame(
        {
            "client": [c.label for c in clients],
            "users": [len(c.users) for c in clients],
            "train_ratings": [c.n_train for c in clients],
            "test_ratings": [c.n_test for c in clients],
            "tv_distance": tv,
        }
    )


# ----------------------------------------------------------------------------- state helpers


def shared_state(model: nn.Module, private: PrivatePredicate = user_side) -> State:
    """A detached copy of the parameters and buffers a client sends (everything not private)."""
    return {n: t.detach().clone() for n, t in model.state_dict().items() if not private(n)}


def private_state(model: nn.Module, private: PrivatePredicate = user_side) -> State:
    """A detached copy of the parameters that never leave the client."""
    return {n: t.detach().clone() for n, t in model.state_dict().items() if private(n)}


def load_state(model: nn.Module, state: State) -> None:
    """Copy ``state`` into the model's tensors in place (no new parameters, optimiser-safe)."""
    own = model.state_dict()
    missing = [n for n in state if n not in own]
    if missing:
        raise KeyError(f"model has no tensors named {missing}; known: {list(own)}")
    with torch.no_grad():
        for n, t in state.items():
            own[n].copy_(torch.as_tensor(t, dtype=own[n].dtype, device=own[n].device))


def payload_bytes(state: State) -> int:
    """Bytes of the raw tensors in a message (what a float32 wire format carries)."""
    return int(sum(t.numel() * t.element_size() for t in state.values()))


def init_model(model_fn: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model under a fixed torch seed without disturbing the global RNG, so a server
    and every client build the same initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_fn()


_NOISE_STREAM = 2**31 - 2  # a "client id" no real client has: the server's DP noise stream


def _round_seed(seed: int, rnd: int, client_id: int) -> int:
    return int(np.random.SeedSequence([seed, rnd, client_id + 1]).generate_state(1)[0])


# ----------------------------------------------------------------------------- local training


def local_update(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    batch_size: int | None,
    lr: float,
    seed: int,
    max_steps: int | None = None,
    l2: float = 0.0,
    device: torch.device | str = "cpu",
) -> int:
    """``epochs`` passes of plain minibatch SGD on one client's ratings (``batch_size=None`` is
    full batch, the paper's ``B = inf``); returns the number of examples processed.

    The L2 penalty touches only the rows in the batch, and plain SGD leaves rows with zero
    gradient unchanged, so a client never moves another client's user rows.
    """
    if epochs < 0 or lr <= 0:
        raise ValueError(f"need epochs >= 0 and lr > 0, got epochs={epochs}, lr={lr}")
    users, items, ratings = (t.to(device) for t in data)
    n = len(users)
    bs = n if batch_size is None else int(batch_size)
    if bs <= 0:
        raise ValueError(f"batch_size must be positive or None (full batch), got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    model.train()
    steps = seen = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, bs):
            if max_steps is not None and steps >= max_steps:
                return seen
            idx = order[start : start + bs]
            u, i, r = users[idx], items[idx], ratings[idx]
            loss = torch.mean((model(u, i) - r) ** 2)
            if l2:
                loss = loss + l2 * _row_penalty(model, u, i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            seen += len(idx)
    return seen


def _row_penalty(model: nn.Module, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """Mean squared norm of the factor and bias rows in a batch (BiasedMF's tensor names)."""
    needed = ("user_factors", "item_factors", "user_bias", "item_bias")
    if not all(hasattr(model, name) for name in needed):
        raise TypeError(f"l2 > 0 needs a BiasedMF-like model with {needed}; use l2=0 otherwise")
    rows = model.user_factors(u).pow(2).sum(-1) + model.item_factors(i).pow(2).sum(-1)
    return (rows + model.user_bias(u).squeeze(-1) ** 2 + model.item_bias(i).squeeze(-1) ** 2).mean()


@torch.no_grad()
def squared_error(model: nn.Module, data, device: torch.device | str = "cpu") -> tuple[float, int]:
    """Sum of squared errors and count on ``(users, items, ratings)``: what a client reports
    for federated evaluation (the server only ever sees these two numbers)."""
    model.eval()
    users, items, ratings = (t.to(device) for t in data)
    if len(users) == 0:
        return 0.0, 0
    err = model(users, items) - ratings
    return float((err.double() ** 2).sum()), len(users)


def federated_rmse(model: nn.Module, clients: Sequence[Client], device="cpu") -> float:
    """Test RMSE over all clients: the example-weighted aggregate of client-side errors.

    Computed in one pass over the concatenated test sets, which gives the same number as
    summing each client's ``squared_error`` (what the Flower clients report).
    """
    test = _pooled_test(clients)
    sse, count = squared_error(model, test, device)
    if count == 0:
        raise ValueError("no client has test ratings; split each client's data first")
    return math.sqrt(sse / count)


_TEST_CACHE: list = []  # [the clients' test tuples, their concatenation]: one run at a time


def _pooled_test(clients: Sequence[Client]) -> tuple[torch.Tensor, ...]:
    tests = tuple(c.test for c in clients)
    cached = _TEST_CACHE[0] if _TEST_CACHE else ()
    if len(cached) != len(tests) or any(a is not b for a, b in zip(cached, tests)):
        cat = tuple(torch.cat([t[j] for t in tests]) for j in range(3))
        _TEST_CACHE[:] = [tests, cat]  # holding `tests` keeps the identity check sound
    return _TEST_CACHE[1]


# ----------------------------------------------------------------------------- DP-FedAvg


@dataclass
class DPConfig:
    """User-level DP-FedAvg (McMahan et al. 2018): Poisson-sample clients with rate ``C``, clip
    each client's update to L2 norm ``clip_norm``, sum, add N(0, (z * clip_norm)^2) noise at
    the server and divide by the expected number of clients ``C * K``."""

    clip_norm: float = 0.5
    noise_multiplier: float = 1.0
    delta: float | None = None  # default 1 / K^1.1 (below 1/K, as the unit is the client)

    def __post_init__(self) -> None:
        if self.clip_norm <= 0 or self.noise_multiplier < 0:
            raise ValueError(
                f"need clip_norm > 0 and noise_multiplier >= 0, got {self.clip_norm}, "
                f"{self.noise_multiplier}"
            )


def dp_epsilon(noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """epsilon of DP-FedAvg: ``rounds`` Poisson-subsampled Gaussian mechanisms at the client
    level — the same mechanism as DP-SGD, so the same accountant
    (:func:`recbook.privacy.epsilon_dp_accounting`, RDP). ``inf`` without noise."""
    if noise_multiplier <= 0:
        return math.inf
    if not 0 < delta < 1:
        raise ValueError(f"need 0 < delta < 1, got {delta}")
    from recbook.privacy import epsilon_dp_accounting

    return epsilon_dp_accounting(noise_multiplier, sample_rate, rounds, delta, method="rdp")


def noise_for_epsilon(epsilon: float, sample_rate: float, rounds: int, delta: float) -> float:
    """The smallest noise multiplier whose :func:`dp_epsilon` is at most ``epsilon``."""
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    lo, hi = 0.05, 1.0
    while dp_epsilon(hi, sample_rate, rounds, delta) > epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise ValueError(f"epsilon={epsilon} is out of reach for these settings")
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if dp_epsilon(mid, sample_rate, rounds, delta) > epsilon else (lo, mid)
    return hi


def clip_update(delta: State, clip_norm: float) -> tuple[State, float]:
    """Scale an update so its global L2 norm is at most ``clip_norm``; returns the norm before."""
    norm = math.sqrt(sum(float(t.double().pow(2).sum()) for t in delta.values()))
    scale = min(1.0, clip_norm / (norm + 1e-12))
    return {n: t * scale for n, t in delta.items()}, norm


# ----------------------------------------------------------------------------- FedAvg


@dataclass
class FedAvgConfig:
    """FedAvg settings (names as in McMahan et al. 2017) and the fault model."""

    rounds: int = 20
    client_fraction: float = 1.0  # C
    local_epochs: int = 1  # E
    batch_size: int | None = 32  # B; None = full batch
    lr: float = 0.05
    l2: float = 0.0
    server_lr: float = 1.0
    dropout: float = 0.0  # probability that a sampled client never reports
    straggler_fraction: float = 0.0  # probability that a sampled client is slow
    straggler_work: float = 0.25  # share of its local steps a straggler finishes
    straggler_policy: str = "partial"  # "partial": send what is done; "drop": wait no longer
    on_empty_round: str = "raise"  # or "skip": keep the global model, log the round
    dp: DPConfig | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "rounds >= 1": self.rounds >= 1,
            "0 < client_fraction <= 1": 0 < self.client_fraction <= 1,
            "local_epochs >= 1": self.local_epochs >= 1,
            "0 <= dropout < 1": 0 <= self.dropout < 1,
            "0 <= straggler_fraction <= 1": 0 <= self.straggler_fraction <= 1,
            "0 < straggler_work <= 1": 0 < self.straggler_work <= 1,
            "straggler_policy in (partial, drop)": self.straggler_policy in ("partial", "drop"),
            "on_empty_round in (raise, skip)": self.on_empty_round in ("raise", "skip"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid FedAvgConfig: need {', '.join(bad)} (got {self})")


class EmptyRoundError(RuntimeError):
    """No sampled client reported in a round, so there is nothing to average."""


@dataclass
class FedResult:
    """A FedAvg run: per-round history, the trained model, and epsilon when DP was on."""

    history: pd.DataFrame
    model: nn.Module
    epsilon: float | None = None
    config: FedAvgConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def rounds_to(self, target_rmse: float) -> int | None:
        """First round whose test RMSE is at most ``target_rmse`` (None if never)."""
        hit = self.history.index[self.history["rmse"] <= target_rmse]
        return int(hit[0]) if len(hit) else None


def fedavg(
    model: nn.Module,
    clients: Sequence[Client],
    config: FedAvgConfig,
    *,
    private: PrivatePredicate = user_side,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "FedAvg",
) -> FedResult:
    """Train ``model`` with FedAvg over ``clients``; returns the history (RMSE after every
    round, clients sampled / reporting / dropped / late, bytes down and up).

    ``private`` names the tensors that never leave a client (user factors and biases).
    """
    if not clients:
        raise ValueError("fedavg needs at least one client")
    cfg = config
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    k_total = len(clients)
    global_shared = shared_state(model, private)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    rows = []
    for rnd in tqdm(range(1, cfg.rounds + 1), desc=desc, disable=not progress, leave=False):
        if cfg.dp is not None:  # Poisson sampling, as the accountant assumes
            sampled = np.flatnonzero(rng.random(k_total) < cfg.client_fraction)
        else:
            m = max(1, round(cfg.client_fraction * k_total))
            sampled = np.sort(rng.choice(k_total, size=m, replace=False))
        drops = rng.random(len(sampled)) < cfg.dropout
        slow = rng.random(len(sampled)) < cfg.straggler_fraction
        acc = {n: torch.zeros_like(t) for n, t in global_shared.items() if n in trainable}
        weight_sum, reported, partial, timed_out, norms, examples, up = 0.0, 0, 0, 0, [], 0, 0
        down = payload_bytes(global_shared) * len(sampled)
        for k, dropped, is_slow in zip(sampled, drops, slow):
            if dropped:  # went offline after being sampled: nothing arrives
                continue
            if is_slow and cfg.straggler_policy == "drop":  # the server stops waiting
                timed_out += 1
                continue
            c = clients[k]
            load_state(model, global_shared)
            max_steps = None
            if is_slow:  # finishes only part of its local work before the deadline
                bs = c.n_train if cfg.batch_size is None else cfg.batch_size
                full = cfg.local_epochs * math.ceil(c.n_train / bs)
                max_steps = max(1, int(cfg.straggler_work * full))
                partial += 1
            n_k = local_update(
                model,
                c.train,
                epochs=cfg.local_epochs,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                seed=_round_seed(cfg.seed, rnd, c.client_id),
                max_steps=max_steps,
                l2=cfg.l2,
                device=device,
            )
            now = shared_state(model, private)
            delta = {n: now[n] - global_shared[n] for n in acc}
            up += payload_bytes(delta)
            if cfg.dp is not None:
                delta, norm = clip_update(delta, cfg.dp.clip_norm)
                norms.append(norm)
                w = 1.0
            else:
                w = float(n_k)  # examples actually processed (less for a straggler)
            for n in acc:
                acc[n] += w * delta[n]
            weight_sum += w
            reported += 1
            examples += n_k
        row = {
            "round": rnd,
            "sampled": len(sampled),
            "reported": reported,
            "dropped": int(drops.sum()),
            "partial": partial,
            "timed_out": timed_out,
            "examples": examples,
            "bytes_down": down,
            "bytes_up": up,
        }
        load_state(model, global_shared)
        if reported == 0 and cfg.dp is None:
            if cfg.on_empty_round == "raise":
                raise EmptyRoundError(
                    f"round {rnd}: none of the {len(sampled)} sampled clients reported "
                    f"({int(drops.sum())} dropped out, {timed_out} timed out); raise "
                    "client_fraction, lower dropout, or set on_empty_round='skip'"
                )
            row["skipped"] = True
        else:
            if cfg.dp is not None:
                denom = cfg.client_fraction * k_total
                gen = torch.Generator().manual_seed(_round_seed(cfg.seed, rnd, _NOISE_STREAM))
                sd = cfg.dp.noise_multiplier * cfg.dp.clip_norm
                for n in acc:
                    noise = torch.randn(acc[n].shape, generator=gen) * sd
                    acc[n] = (acc[n] + noise.to(acc[n].device)) / denom
                row["median_update_norm"] = float(np.median(norms)) if norms else float("nan")
            else:
                for n in acc:
                    acc[n] /= weight_sum
            for n in acc:
                global_shared[n] = global_shared[n] + cfg.server_lr * acc[n]
            load_state(model, global_shared)
            row["skipped"] = False
        row["rmse"] = federated_rmse(model, clients, device)
        rows.append(row)
    eps = None
    if cfg.dp is not None:
        delta = cfg.dp.delta if cfg.dp.delta is not None else 1.0 / k_total**1.1
        eps = dp_epsilon(cfg.dp.noise_multiplier, cfg.client_fraction, cfg.rounds, delta)
    return FedResult(pd.DataFrame(rows).set_index("round"), model, eps, cfg)


def local_only(
    model_fn: Callable[[], nn.Module],
    clients: Sequence[Client],
    config: FedAvgConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> FedResult:
    """Each client trains its own full model on its own data, never communicating.

    Returns the pooled test RMSE after each "round" of ``local_epochs`` epochs, so it plots on
    the same axis as FedAvg.
    """
    models = [init_model(model_fn, config.seed).to(device) for _ in clients]
    rows = []
    for rnd in tqdm(range(1, config.rounds + 1), desc="local only", disable=not progress,
                    leave=False):  # fmt: skip
        sse = count = 0
        for m, c in zip(models, clients):
            local_update(
                m,
                c.train,
                epochs=config.local_epochs,
                batch_size=config.batch_size,
                lr=config.lr,
                seed=_round_seed(config.seed, rnd, c.client_id),
                l2=config.l2,
                device=device,
            )
            s, n = squared_error(m, c.test, device)
            sse, count = sse + s, count + n
        rows.append({"round": rnd, "rmse": math.sqrt(sse / count), "bytes_down": 0, "bytes_up": 0})
    return FedResult(pd.DataFrame(rows).set_index("round"), models[0], None, config,
                     extra={"models": models})  # fmt: skip


# ----------------------------------------------------------------------------- secure aggregation


def _fixed_point(x: np.ndarray, scale: float) -> np.ndarray:
    q = np.rint(np.asarray(x, dtype=np.float64) * scale)
    if np.abs(q).max(initial=0) >= 2**31:
        raise ValueError("values too large for 32-bit fixed point; lower scale or clip first")
    return q.astype(np.int64).astype(np.uint32)  # two's complement mod 2^32


def masked_updates(
    updates: Sequence[np.ndarray], seed: int = 0, scale: float = 2**16
) -> list[np.ndarray]:
    """Toy pairwise-mask secure aggregation (Bonawitz et al. 2017, without dropout recovery).

    Every pair of clients ``i < j`` shares a random mask ``m_ij`` (in the real protocol from a
    Diffie-Hellman key agreement; here from a dealer seed). Client ``i`` adds ``m_ij`` and
    client ``j`` subtracts it, in fixed point modulo 2^32, so each masked vector is uniformly
    random on its own while the masks cancel exactly in the sum.
    """
    n = len(updates)
    shape = np.shape(updates[0])
    if any(np.shape(u) != shape for u in updates):
        raise ValueError("all updates must have the same shape")
    out = [_fixed_point(u, scale) for u in updates]
    for i in range(n):
        for j in range(i + 1, n):
            pair_rng = np.random.default_rng([seed, i, j])
            mask = pair_rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
            out[i] = out[i] + mask  # uint32 arithmetic wraps: addition mod 2^32
            out[j] = out[j] - mask
    return out


def unmask_sum(masked: Sequence[np.ndarray], scale: float = 2**16) -> np.ndarray:
    """The server's view: add the masked vectors mod 2^32 and decode the fixed-point sum."""
    total = np.zeros_like(masked[0], dtype=np.uint32)
    for m in masked:
        total = total + m
    return total.astype(np.int32).astype(np.float64) / scale


# ----------------------------------------------------------------------------- Flower glue


def flower_message_bytes(state: State) -> int:
    """Bytes of a state as a Flower ``ArrayRecord`` (what travels in a message)."""
    return int(_to_arrays(state).count_bytes())


def _to_arrays(state: State):
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({n: Array(t.detach().cpu().numpy()) for n, t in state.items()})


def arrays_to_state(record) -> State:
    """A Flower ``ArrayRecord`` back to named torch tensors."""
    return {n: torch.from_numpy(np.array(a.numpy())) for n, a in record.items()}


def make_client_app(
    model_fn: Callable[[], nn.Module],
    clients: Sequence[Client],
    *,
    seed: int = 0,
    l2: float = 0.0,
    private: PrivatePredicate = user_side,
):
    """A Flower ``ClientApp`` running the same local update as :func:`fedavg`.

    Client ``k`` is the SuperNode with ``partition-id = k``. Its user rows live in the node's
    ``context.state`` between rounds and are never put in a reply; replies carry the shared
    tensors and ``num-examples`` (Flower's FedAvg weights by it).
    """
    from flwr.app import Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    def _model(msg: Message, context: Context) -> tuple[nn.Module, Client]:
        client = clients[int(context.node_config["partition-id"])]
        model = init_model(model_fn, seed)
        if "private" in context.state:
            load_state(model, arrays_to_state(context.state["private"]))
        load_state(model, arrays_to_state(msg.content["arrays"]))
        return model, client

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        model, client = _model(msg, context)
        cfg = msg.content["config"]
        batch = int(cfg["batch-size"])
        n = local_update(
            model,
            client.train,
            epochs=int(cfg["local-epochs"]),
            batch_size=None if batch <= 0 else batch,
            lr=float(cfg["lr"]),
            seed=_round_seed(seed, int(cfg["server-round"]), client.client_id),
            l2=l2,
        )
        context.state["private"] = _to_arrays(private_state(model, private))
        reply = RecordDict(
            {
                "arrays": _to_arrays(shared_state(model, private)),
                "metrics": MetricRecord({"num-examples": n}),
            }  # fmt: skip
        )
        return Message(content=reply, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        model, client = _model(msg, context)
        sse, n = squared_error(model, client.test)
        metrics = MetricRecord({"num-examples": n, "mse": sse / max(n, 1)})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def make_server_app(
    model_fn: Callable[[], nn.Module],
    num_clients: int,
    config: FedAvgConfig,
    out: dict,
    *,
    private: PrivatePredicate = user_side,
):
    """A Flower ``ServerApp`` that runs Flower's own ``FedAvg`` strategy (federated evaluation
    on every client) and leaves the ``Result`` in ``out["result"]``.

    Flower samples clients with Python's unseeded ``random``, so only full participation
    (``client_fraction=1``) reproduces :func:`fedavg` round by round.
    """
    from flwr.app import ConfigRecord, Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    if config.dp is not None or config.dropout or config.straggler_fraction:
        raise ValueError("the Flower glue runs plain FedAvg; use fedavg() for DP and faults")
    app = ServerApp()
    m = max(1, round(config.client_fraction * num_clients))

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=config.client_fraction,
            fraction_evaluate=1.0,
            min_train_nodes=m,
            min_evaluate_nodes=num_clients,
            min_available_nodes=num_clients,
        )
        initial = shared_state(init_model(model_fn, config.seed), private)
        train_cfg = ConfigRecord(
            {
                "lr": config.lr,
                "local-epochs": config.local_epochs,
                "batch-size": config.batch_size or 0,
            }  # fmt: skip
        )
        out["initial_bytes"] = flower_message_bytes(initial)
        out["result"] = strategy.start(
            grid=grid,
            initial_arrays=_to_arrays(initial),
            num_rounds=config.rounds,
            train_config=train_cfg,
        )

    return app


def in_process_grid(client_app, num_nodes: int, run_id: int = 1):
    """A Flower ``Grid`` that delivers each message by calling the ``ClientApp`` in this
    process, one ``Context`` per node (``partition-id`` 0..n-1): the same apps as on the
    simulation engine, without Ray. The tests use it, and it is the fall-back when Ray
    cannot start."""
    from flwr.app import Context, Message, RecordDict
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run

    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")

    class InProcessGrid(Grid):
        def __init__(self) -> None:
            self._run = Run.create_empty(run_id=run_id)
            self.contexts = {
                1000 + k: Context(
                    run_id=run_id,
                    node_id=1000 + k,
                    node_config={"partition-id": k, "num-partitions": num_nodes},
                    state=RecordDict(),
                    run_config={},
                )
                for k in range(num_nodes)
            }
            self._replies: dict[str, Message] = {}

        def set_run(self, run) -> None:
            self._run = run

        @property
        def run(self):
            return self._run

        def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self) -> list[int]:
            return list(self.contexts)

        def push_messages(self, messages) -> list[str]:
            ids = []
            for msg in messages:
                node = msg.metadata.dst_node_id
                if node not in self.contexts:
                    raise KeyError(f"no node {node}; nodes are {list(self.contexts)}")
                msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
                msg.metadata.__dict__["_run_id"] = run_id
                self._replies[msg.metadata.message_id] = client_app(msg, self.contexts[node])
                ids.append(msg.metadata.message_id)
            return ids

        def pull_messages(self, message_ids) -> list[Message]:
            return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

        def send_and_receive(self, messages, *, timeout=None) -> list[Message]:
            return self.pull_messages(self.push_messages(messages))

    return InProcessGrid()


def hide_tensorflow() -> None:
    """Ray worker set-up hook: make ``import tensorflow`` fail fast in Flower's actors.

    ``flwr.simulation`` imports TensorFlow whenever it is installed (only to offer GPU memory
    growth), which costs seconds of CPU in every worker; the ClientApps here never use it.
    """
    sys.modules.setdefault("tensorflow", None)


@contextlib.contextmanager
def _tensorflow_hidden() -> Iterator[None]:
    """Hide TensorFlow while ``flwr.simulation`` is first imported (unless already loaded)."""
    if "tensorflow" in sys.modules:
        yield
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]


@dataclass
class FlowerRun:
    """How a Flower run went: the engine that ran it, wall seconds, and why Ray was skipped."""

    engine: str
    seconds: float
    note: str = ""


def run_flower(
    server_app,
    client_app,
    num_clients: int,
    *,
    engine: str = "auto",
    num_cpus: int | None = None,
    verbose: bool = False,
) -> FlowerRun:
    """Run a ServerApp/ClientApp pair on Flower's simulation engine (``"ray"``), in this
    process (``"inprocess"``, :func:`in_process_grid`), or ``"auto"``: Ray, and in-process
    only if Ray fails to start (the reason is kept in ``note``).

    ``ray.init`` is called here, with TensorFlow hidden from the workers, before Flower's
    ``run_simulation`` reuses the running instance.
    """
    import logging
    import time

    if engine not in ("auto", "ray", "inprocess"):
        raise ValueError(f"engine must be 'auto', 'ray' or 'inprocess', got {engine!r}")
    flwr_logger = logging.getLogger("flwr")
    old_level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.ERROR)
    start = time.perf_counter()
    note = ""
    try:
        if engine in ("auto", "ray"):
            try:
                _start_ray(num_cpus, verbose)
            except Exception as exc:  # Ray's start-up failures are plain Exceptions
                if engine == "ray":
                    raise RuntimeError(f"Ray did not start: {exc}") from exc
                note = f"Ray did not start ({type(exc).__name__}: {exc}); ran in-process"
            else:
                import ray
                from flwr.simulation import run_simulation

                try:
                    run_simulation(
                        server_app=server_app,
                        client_app=client_app,
                        num_supernodes=num_clients,
                        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
                    )
                finally:
                    ray.shutdown()
                return FlowerRun("ray", time.perf_counter() - start, note)
        from flwr.app import Context, RecordDict
        from flwr.common.constant import SUPERLINK_NODE_ID
        from flwr.supercore.task_identity import TaskIdentity

        # what run_simulation sets for its server thread: the sender of new messages
        TaskIdentity.task_id, TaskIdentity.run_id = 1, 1
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        grid = in_process_grid(client_app, num_clients)
        context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
        server_app(grid, context)
        return FlowerRun("inprocess", time.perf_counter() - start, note)
    finally:
        flwr_logger.setLevel(old_level)


def _start_ray(num_cpus: int | None, verbose: bool) -> None:
    with _tensorflow_hidden():
        import flwr.simulation  # noqa: F401  (imports TensorFlow if it can)
        import ray
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(
        num_cpus=num_cpus or min(2, os.cpu_count() or 1),
        include_dashboard=False,
        log_to_driver=verbose,
        logging_level="WARNING" if verbose else "ERROR",
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)},
            "worker_process_setup_hook": "recbook.federated.hide_tensorflow",
        },
    )


def flower_history(result) -> pd.DataFrame:
    """Per-round federated-evaluation RMSE from a Flower ``Result``."""
    rows = [
        {"round": int(r), "rmse": math.sqrt(float(m["mse"]))}
        for r, m in sorted(result.evaluate_metrics_clientapp.items())
    ]
    return pd.DataFrame(rows).set_index("round")


__all__ = [
    "Client",
    "DPConfig",
    "EmptyRoundError",
    "FedAvgConfig",
    "FedResult",
    "FlowerRun",
    "arrays_to_state",
    "clip_update",
    "dp_epsilon",
    "fedavg",
    "federated_rmse",
    "flower_history",
    "flower_message_bytes",
    "groups_by_column",
    "groups_of_size",
    "groups_random",
    "hide_tensorflow",
    "in_process_grid",
    "init_model",
    "load_state",
    "local_only",
    "local_update",
    "make_client_app",
    "make_clients",
    "make_server_app",
    "masked_updates",
    "noise_for_epsilon",
    "non_iid_report",
    "payload_bytes",
    "pooled",
    "private_state",
    "run_flower",
    "shared_state",
    "squared_error",
    "unmask_sum",
]

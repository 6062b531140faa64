"""FedAvg from scratch (McMahan et al. 2017), with faults and DP-FedAvg.

Clients are sampled with fraction ``C``, run ``E`` local epochs of minibatch SGD with batch
``B`` and send the change of the shared tensors; the server averages the changes with weights
``n_k / n``. Faults: sampled clients that never report (dropout) and slow ones (stragglers).
With a :class:`~recbook.federated.dp.DPConfig` the run is DP-FedAvg, with the server trusted
(central DP) or not (distributed DP under secure aggregation) - see :mod:`.dp`.

Non-private runs are seeded (a client's local shuffle in round ``t`` depends only on
``(seed, t, client)``), so the Flower app in ``flower_app/`` reproduces them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from recbook import checks
from recbook.federated.clients import Client, Triples
from recbook.federated.dp import DPConfig, PrivacyReport, add_noise, clip_update, dp_epsilon
from recbook.federated.secagg import masked_updates, unmask_sum
from recbook.federated.state import (
    PrivatePredicate,
    init_model,
    load_state,
    payload_bytes,
    round_seed,
    shared_state,
    user_side,
)
from recbook.privacy.randomness import Randomness

# ----------------------------------------------------------------------------- local training


def local_update(
    model: nn.Module,
    data: Triples,
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
    checks.integer(epochs, "epochs", minimum=0)
    checks.number(lr, "lr", positive=True)
    checks.number(l2, "l2", non_negative=True)
    if batch_size is not None:
        checks.integer(batch_size, "batch_size (None = full batch)", minimum=1)
    users, items, ratings = (t.to(device) for t in data)
    n = len(users)
    bs = max(n, 1) if batch_size is None else int(batch_size)
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
def squared_error(model: nn.Module, data: Triples, device="cpu") -> tuple[float, int]:
    """Sum of squared errors and count on ``(users, items, ratings)``: what a client reports
    for federated evaluation (the server only ever sees these two numbers)."""
    model.eval()
    users, items, ratings = (t.to(device) for t in data)
    if len(users) == 0:
        return 0.0, 0
    err = model(users, items) - ratings
    return float((err.double() ** 2).sum()), len(users)


def federated_rmse(model: nn.Module, clients: Sequence[Client], device="cpu") -> float:
    """Test RMSE over all clients: the example-weighted aggregate of client-side errors
    (one pass over the concatenated test sets; the same number as summing each client's
    :func:`squared_error`, which is what the Flower clients report)."""
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


# ----------------------------------------------------------------------------- configuration


@dataclass
class FedAvgConfig:
    """FedAvg settings (names as in McMahan et al. 2017) and the fault model; every value is
    checked here, at configuration time, not after training."""

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
        checks.integer(self.rounds, "FedAvgConfig.rounds", minimum=1)
        cf = checks.number(self.client_fraction, "FedAvgConfig.client_fraction", positive=True)
        if cf > 1:
            raise ValueError(f"FedAvgConfig.client_fraction must be in (0, 1], got {cf}")
        checks.integer(self.local_epochs, "FedAvgConfig.local_epochs", minimum=1)
        if self.batch_size is not None:
            checks.integer(self.batch_size, "FedAvgConfig.batch_size (None = full)", minimum=1)
        checks.number(self.lr, "FedAvgConfig.lr", positive=True)
        checks.number(self.l2, "FedAvgConfig.l2", non_negative=True)
        checks.number(self.server_lr, "FedAvgConfig.server_lr", positive=True)
        if not 0 <= checks.number(self.dropout, "FedAvgConfig.dropout") < 1:
            raise ValueError(f"FedAvgConfig.dropout must be in [0, 1), got {self.dropout}")
        sf = checks.number(self.straggler_fraction, "FedAvgConfig.straggler_fraction")
        if not 0 <= sf <= 1:
            raise ValueError(f"FedAvgConfig.straggler_fraction must be in [0, 1], got {sf}")
        sw = checks.number(self.straggler_work, "FedAvgConfig.straggler_work", positive=True)
        if sw > 1:
            raise ValueError(f"FedAvgConfig.straggler_work must be in (0, 1], got {sw}")
        checks.one_of(self.straggler_policy, ("partial", "drop"), "straggler_policy")
        checks.one_of(self.on_empty_round, ("raise", "skip"), "on_empty_round")
        checks.seed(self.seed, "FedAvgConfig.seed")
        if self.dp is not None and not isinstance(self.dp, DPConfig):
            raise TypeError(f"FedAvgConfig.dp must be a DPConfig or None, got {self.dp!r}")
        if self.dp is not None and self.dp.mode == "distributed":
            if self.dropout or self.straggler_fraction:
                raise ValueError(
                    "distributed DP needs every sampled client to report its noise share "
                    "(a missing share leaves the sum under-noised): set dropout=0 and "
                    "straggler_fraction=0, or use DPConfig(mode='central')"
                )


class EmptyRoundError(RuntimeError):
    """No sampled client reported in a round, so there is nothing to average."""


@dataclass
class FedResult:
    """A FedAvg run: per-round history, the trained model, and privacy when DP was on."""

    history: pd.DataFrame
    model: nn.Module
    epsilon: float | None = None
    config: FedAvgConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    privacy: PrivacyReport | None = None

    def rounds_to(self, target_rmse: float) -> int | None:
        """First round whose test RMSE is at most ``target_rmse`` (None if never)."""
        hit = self.history.index[self.history["rmse"] <= target_rmse]
        return int(hit[0]) if len(hit) else None


# ----------------------------------------------------------------------------- FedAvg


def _secure_sum(updates: list[dict[str, torch.Tensor]], bound: float, rand: Randomness, rnd: int):
    """Sum of the clients' (noised, clipped) updates as the server sees it: through the
    pairwise-mask protocol, flattened into one vector per client. The masks are fresh every
    round: from the OS, or in a seeded demo from a seed derived from (seed, round)."""
    names = list(updates[0])
    shapes = [updates[0][n].shape for n in names]
    flat = [torch.cat([u[n].flatten().cpu() for n in names]).double().numpy() for u in updates]
    mask_seed = None if rand.seed is None else round_seed(rand.seed, rnd, -1)
    total = unmask_sum(masked_updates(flat, bound=bound, seed=mask_seed), bound=bound)
    out, pos = {}, 0
    for n, shape in zip(names, shapes):
        size = int(np.prod(shape))
        out[n] = torch.from_numpy(total[pos : pos + size].astype(np.float32)).reshape(shape)
        pos += size
    return out


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

    ``private`` names the tensors that never leave a client (user factors and biases). The
    history of a private run (noise > 0) holds no exact statistic of the updates; the median
    update norm is recorded only for noiseless central runs (clipping checks). A client without
    training ratings is refused (its weight would be 0, and a round of such clients 0/0).
    """
    if not clients:
        raise ValueError("fedavg needs at least one client")
    empty = [c.label or str(c.client_id) for c in clients if c.n_train == 0]
    if empty:
        raise ValueError(
            f"{len(empty)} client(s) have no training ratings (e.g. {empty[:5]}): FedAvg would "
            "average 0/0; drop them or regroup their users (make_clients refuses them too)"
        )
    cfg = config
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    k_total = len(clients)
    dp = cfg.dp
    delta = dp.delta_for(k_total) if dp is not None else None
    rand = Randomness(dp.seed) if dp is not None else None
    participation = np.zeros(k_total, dtype=int)
    global_shared = shared_state(model, private)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    rows = []
    bar = tqdm(range(1, cfg.rounds + 1), desc=desc, disable=not progress, leave=False)
    for rnd in bar:
        if dp is not None:  # Poisson sampling, as the accountant assumes
            sampled = np.flatnonzero(rand.uniform(k_total) < cfg.client_fraction)
            participation[sampled] += 1
        else:
            m = max(1, round(cfg.client_fraction * k_total))
            sampled = np.sort(rng.choice(k_total, size=m, replace=False))
        drops = rng.random(len(sampled)) < cfg.dropout
        slow = rng.random(len(sampled)) < cfg.straggler_fraction
        acc = {n: torch.zeros_like(t) for n, t in global_shared.items() if n in trainable}
        weight_sum, reported, partial, timed_out, norms, examples, up = 0.0, 0, 0, 0, [], 0, 0
        down = payload_bytes(global_shared) * len(sampled)
        shares = []  # distributed DP: what each client hands to secure aggregation
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
                seed=round_seed(cfg.seed, rnd, c.client_id),
                max_steps=max_steps,
                l2=cfg.l2,
                device=device,
            )
            now = shared_state(model, private)
            upd = {n: now[n] - global_shared[n] for n in acc}
            up += payload_bytes(upd)
            w = float(n_k)  # examples actually processed (less for a straggler)
            if dp is not None:
                upd, norm = clip_update(upd, dp.clip_norm)  # on the client or on the server
                w = 1.0
                if dp.mode == "distributed":  # the client adds its own share of the noise
                    share_sd = dp.noise_multiplier * dp.clip_norm / math.sqrt(len(sampled))
                    shares.append(add_noise(upd, share_sd, rand))
                else:
                    norms.append(norm)  # a trusted server sees each update's norm
            if dp is None or dp.mode == "central":
                for n in acc:
                    acc[n] += w * upd[n]
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
        if reported == 0 and dp is None:
            if cfg.on_empty_round == "raise":
                raise EmptyRoundError(
                    f"round {rnd}: none of the {len(sampled)} sampled clients reported "
                    f"({int(drops.sum())} dropped out, {timed_out} timed out); raise "
                    "client_fraction, lower dropout, or set on_empty_round='skip'"
                )
            row["skipped"] = True
        else:
            if dp is not None:
                denom = cfg.client_fraction * k_total
                sd = dp.noise_multiplier * dp.clip_norm
                if dp.mode == "central":  # the trusted server adds all the noise
                    acc = add_noise(acc, sd, rand)
                    if dp.noise_multiplier == 0:  # a clipping check, not private: may show it
                        row["median_update_norm"] = float(np.median(norms)) if norms else math.nan
                elif shares:  # the server learns only the sum of the shares
                    share_sd = sd / math.sqrt(len(sampled))
                    bound = dp.clip_norm + 10.0 * share_sd
                    acc = _secure_sum(shares, bound, rand, rnd)
                else:  # nobody sampled: publish pure noise, as the accountant assumes
                    acc = add_noise(acc, sd, rand)
                acc = {n: t.to(device) / denom for n, t in acc.items()}
            else:
                for n in acc:
                    acc[n] /= weight_sum
            for n in acc:
                global_shared[n] = global_shared[n] + cfg.server_lr * acc[n]
            load_state(model, global_shared)
            row["skipped"] = False
        row["rmse"] = federated_rmse(model, clients, device)
        rows.append(row)
        if dp is not None and progress:
            eps_now = dp_epsilon(dp.noise_multiplier, cfg.client_fraction, rnd, delta)
            bar.set_postfix(eps=f"{eps_now:.2f}", refresh=False)
    bar.close()
    eps = report = None
    if dp is not None:
        eps = dp_epsilon(dp.noise_multiplier, cfg.client_fraction, cfg.rounds, delta)
        vs_server = None
        if dp.mode == "distributed":
            most = int(participation.max())
            vs_server = 0.0 if most == 0 else dp_epsilon(dp.noise_multiplier, 1.0, most, delta)
        report = PrivacyReport(
            mode=dp.mode,
            unit="client",
            n_clients=k_total,
            epsilon=eps,
            delta=delta,
            epsilon_vs_server=vs_server,
            noise_multiplier=dp.noise_multiplier,
            clip_norm=dp.clip_norm,
            sample_rate=cfg.client_fraction,
            rounds=cfg.rounds,
            max_participation=int(participation.max()),
            randomness=rand.label,
            clip_source=dp.clip_source,
        )
    return FedResult(pd.DataFrame(rows).set_index("round"), model, eps, cfg, privacy=report)


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
    if not clients:
        raise ValueError("local_only needs at least one client")
    if sum(c.n_test for c in clients) == 0:
        raise ValueError(
            "no client has test ratings, so local-only RMSE is undefined; split each "
            "client's ratings into train and test first"
        )
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
                seed=round_seed(config.seed, rnd, c.client_id),
                l2=config.l2,
                device=device,
            )
            s, n = squared_error(m, c.test, device)
            sse, count = sse + s, count + n
        rows.append({"round": rnd, "rmse": math.sqrt(sse / count), "bytes_down": 0, "bytes_up": 0})
    return FedResult(pd.DataFrame(rows).set_index("round"), models[0], None, config,
                     extra={"models": models})  # fmt: skip

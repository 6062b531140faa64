"""DP-FedAvg with two trust models: a trusted server (central DP) or none (distributed DP).

User-level DP-FedAvg (McMahan et al. 2018): clients are Poisson-sampled with rate ``q``, each
update is clipped to L2 norm ``C``, Gaussian noise N(0, sigma^2 C^2) is added to the sum, and
the sum is divided by the expected number of clients ``qK``. An accountant turns
``(q, sigma, rounds, delta)`` into epsilon. The unit of privacy is the *client*; every user
belongs to one client, so the guarantee covers each user's whole contribution (user-level
when clients are single users, group-level for a region).

Who is trusted at each step:

* ``mode="central"`` - clients send raw updates; the **server is trusted**: it sees each
  update in the clear, clips it and adds the noise. The guarantee protects clients against
  everyone who sees the models the server publishes, not against the server.
* ``mode="distributed"`` - the **server is not trusted** (honest-but-curious): each sampled
  client clips its own update and adds its share of the noise, N(0, sigma^2 C^2 / m) with
  ``m`` the number of clients sampled that round, so the shares sum to N(0, sigma^2 C^2);
  the updates travel under secure aggregation (:mod:`recbook.federated.secagg`), so the
  server only ever sees the noisy sum. Against the server, which knows who was sampled,
  amplification by sampling does not apply: that epsilon is accounted without it, over the
  most rounds any client took part in. It assumes the server does not collude with clients:
  ``c`` colluding clients know their own noise shares and can subtract them, leaving noise of
  variance ``sigma^2 C^2 (m - c) / m`` on the sum, less than the accountant assumed. Every
  sampled client must report (a missing share leaves the sum under-noised), so dropout is
  refused in this mode.

The global offset ``mu`` of the model must be public (the rating scale's midpoint, see
:func:`recbook.federated.state.public_mean`) or released privately and paid from the same
budget (:func:`private_offset`, composed with the rounds by :func:`composed_epsilon`), never
the clients' exact pooled mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from recbook import checks
from recbook.federated.state import State
from recbook.privacy.randomness import Randomness

MODES = ("central", "distributed")


@dataclass
class DPConfig:
    """Client-level DP-FedAvg settings.

    ``delta`` defaults to ``1 / (10 K)`` for ``K`` clients (the unit of privacy is the
    client; a delta near ``1/K`` would allow publishing one client's data whole).
    ``seed=None`` (default) draws noise and sampling from the OS; a seed makes a labelled
    "reproducible demo, not private" run.
    """

    clip_norm: float = 0.5
    noise_multiplier: float = 1.0
    delta: float | None = None
    mode: str = "central"
    seed: int | None = None
    clip_source: str = "not stated"  # where clip_norm came from, for the privacy statement

    def __post_init__(self) -> None:
        self.clip_norm = checks.number(self.clip_norm, "DPConfig.clip_norm", positive=True)
        self.noise_multiplier = checks.number(
            self.noise_multiplier, "DPConfig.noise_multiplier", non_negative=True
        )
        if self.delta is not None:
            self.delta = checks.delta(self.delta, "DPConfig.delta")
        checks.one_of(self.mode, MODES, "DPConfig.mode")
        if self.seed is not None:
            checks.seed(self.seed, "DPConfig.seed")

    def delta_for(self, n_clients: int) -> float:
        """delta for ``n_clients`` clients: the configured one, checked < 1/K, or 1/(10 K)."""
        checks.integer(n_clients, "number of clients", minimum=1)
        if self.delta is None:
            return 0.1 / n_clients
        return checks.delta(self.delta, "DPConfig.delta", n=n_clients)


def clip_update(delta: State, clip_norm: float) -> tuple[State, float]:
    """Scale an update so its global L2 norm is at most ``clip_norm``; returns the norm before."""
    clip_norm = checks.number(clip_norm, "clip_norm", positive=True)
    norm = math.sqrt(sum(float(t.double().pow(2).sum()) for t in delta.values()))
    if not math.isfinite(norm):
        raise ValueError("the update contains NaN or infinity; lower the learning rate")
    scale = min(1.0, clip_norm / (norm + 1e-12))
    return {n: t * scale for n, t in delta.items()}, norm


def add_noise(total: State, std: float, rand: Randomness) -> State:
    """``total`` plus independent N(0, std^2) noise on every coordinate."""
    return {n: t + rand.gaussian(t.shape, std).to(t.device) for n, t in total.items()}


def dp_epsilon(noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """epsilon of DP-FedAvg: ``rounds`` Poisson-subsampled Gaussian mechanisms at the client
    level - the same mechanism as DP-SGD, so the same accountant
    (:func:`recbook.privacy.epsilon_dp_accounting`, RDP). ``inf`` without noise."""
    from recbook.privacy.accounting import epsilon_dp_accounting

    if checks.number(sample_rate, "sample_rate", positive=True) > 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    checks.integer(rounds, "rounds", minimum=1)
    checks.delta(delta)
    if checks.number(noise_multiplier, "noise_multiplier", non_negative=True) == 0:
        return math.inf
    return epsilon_dp_accounting(noise_multiplier, sample_rate, rounds, delta, method="rdp")


@dataclass
class PrivacyReport:
    """What a DP-FedAvg run guarantees, in TF Privacy's style of statement."""

    mode: str
    unit: str
    n_clients: int
    epsilon: float
    delta: float
    epsilon_vs_server: float | None
    noise_multiplier: float
    clip_norm: float
    sample_rate: float
    rounds: int
    max_participation: int
    randomness: str
    clip_source: str

    def statement(self) -> str:
        """A closing privacy statement: unit, (epsilon, delta), accountant, what is covered."""
        who = (
            "the server is trusted: it sees every clipped update in the clear"
            if self.mode == "central"
            else "the server is not trusted: clients clip and add their noise shares, and the "
            "server sees only the sum under secure aggregation; it must not collude with "
            "clients (colluders can subtract their own shares, leaving less noise)"
        )
        lines = [
            f"DP-FedAvg ({self.mode} DP): ({self.epsilon:.3g}, {self.delta:.2g})-DP per "
            f"{self.unit} ({self.n_clients} {self.unit}s) for every model the server publishes",
            f"  accountant: RDP (dp-accounting), Poisson sampling q = {self.sample_rate:g}, "
            f"{self.rounds} rounds, noise multiplier {self.noise_multiplier:.3g}, "
            f"clip norm {self.clip_norm:.3g} ({self.clip_source})",
            f"  trust: {who}",
        ]
        if self.epsilon_vs_server is not None:
            lines.append(
                f"  against the server itself (no amplification by sampling, "
                f"{self.max_participation} rounds at most per {self.unit}): "
                f"epsilon = {self.epsilon_vs_server:.3g}"
            )
        lines += [
            "  not covered: the user rows that stay on each client (never sent), the test "
            "metrics clients report, and any choice made by looking at these clients' data",
            f"  randomness: {self.randomness}",
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- private offset


def client_offsets(clients, centre: float, half_width: float) -> np.ndarray:
    """Each client's mean training rating minus ``centre``, clipped to ``[-h, h]``: one bounded
    number per client, so adding or removing a client moves their sum by at most ``h``."""
    checks.number(centre, "centre")
    h = checks.number(half_width, "half_width", positive=True)
    means = np.array([float(c.train[2].double().mean()) for c in clients])
    if not np.isfinite(means).all():
        raise ValueError("a client has no training ratings (its mean is undefined); drop it")
    return np.clip(means - centre, -h, h)


def private_offset(
    clients, *, centre: float, half_width: float, noise_multiplier: float, rand: Randomness
) -> float:
    """The model's global offset ``mu`` paid from the budget: ``centre`` plus the noisy sum of
    the clipped client offsets (:func:`client_offsets`, noise N(0, (z h)^2)) divided by the
    public number of clients ``K`` (a fixed denominator, as DP-FedAvg's ``qK``). One Gaussian
    mechanism with multiplier ``z``, composed with training in :func:`composed_epsilon`.
    ``noise_multiplier=0`` gives the exact (non-private) client-mean offset."""
    z = checks.number(noise_multiplier, "noise_multiplier", non_negative=True)
    offsets = client_offsets(clients, centre, half_width)
    noise = float(rand.gaussian((1,), z * half_width)[0]) if z > 0 else 0.0
    return float(centre + (offsets.sum() + noise) / len(offsets))


#: RDP orders of :func:`composed_epsilon`: fewer than dp-accounting's default (a search calls it
#: dozens of times), so its ε is an upper bound at most slightly above the default's.
RDP_ORDERS = [1 + k / 20 for k in range(1, 20)] + list(range(2, 13)) + [14, 16, 20, 24, 32, 64, 256]


def composed_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    rounds: int,
    delta: float,
    offset_noise: float | None = None,
) -> float:
    """ε of DP-FedAvg's ``rounds`` Poisson-sampled Gaussian rounds composed (RDP,
    dp-accounting's ``ComposedDpEvent``) with one Gaussian release of the offset at
    multiplier ``offset_noise`` (None: no offset released)."""
    import dp_accounting

    checks.integer(rounds, "rounds", minimum=1)
    checks.delta(delta)
    q = checks.number(sample_rate, "sample_rate", positive=True)
    if checks.number(noise_multiplier, "noise_multiplier", non_negative=True) == 0 or (
        offset_noise is not None and checks.number(offset_noise, "offset_noise") <= 0
    ):
        return math.inf
    train = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier)),
        rounds,
    )
    events = [train] + ([dp_accounting.GaussianDpEvent(offset_noise)] if offset_noise else [])
    acc = dp_accounting.rdp.RdpAccountant(orders=RDP_ORDERS)
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return float(acc.get_epsilon(delta))


@lru_cache(maxsize=64)  # a pure function of numbers; tuning asks the same question repeatedly
def noise_for_composed(
    epsilon: float,
    delta: float,
    sample_rate: float,
    rounds: int,
    offset_noise: float | None = None,
    tol: float = 1e-2,
) -> float:
    """The smallest training noise multiplier (to a relative ``tol``) whose
    :func:`composed_epsilon` is at most ``epsilon``: the offset is paid from the same budget,
    not added on top."""
    target = checks.epsilon(epsilon)
    if offset_noise is not None and composed_epsilon(1e6, sample_rate, rounds, delta,
                                                     offset_noise) >= target:  # fmt: skip
        raise ValueError(
            f"the offset alone (noise multiplier {offset_noise:g}) spends epsilon {target:g} or "
            "more: raise offset_noise or the target epsilon"
        )
    lo, hi = 0.0, 1.0
    while composed_epsilon(hi, sample_rate, rounds, delta, offset_noise) > target:
        lo, hi = hi, hi * 2
        if hi > 1e6:
            raise ValueError(f"no noise multiplier reaches epsilon {target:g}")
    while hi - lo > tol * hi:
        mid = (lo + hi) / 2
        if composed_epsilon(mid, sample_rate, rounds, delta, offset_noise) > target:
            lo = mid
        else:
            hi = mid
    return hi

"""Privacy accounting: validate (ε, δ), calibrate the noise multiplier σ, recompute ε with two
libraries, and state what a private model guarantees (notebooks 05 and 06).

Why each piece is here:

* :func:`default_delta` / :func:`check_budget` — δ must be far below ``1/n`` (a mechanism that
  publishes one random person's data whole is (0, 1/n)-DP); the default is ``1/(10 n)``.
* :func:`noise_multiplier_for` is the project's ONE calibrator (Opacus's search): DP-SGD
  (:mod:`recbook.privacy.mechanisms`) and DP-FedAvg both call it.
* :func:`epsilon_opacus` / :func:`epsilon_dp_accounting` / :func:`accountant_crosscheck`
  recompute ε with Opacus and with Google's ``dp-accounting``, so one library checks the other.
* :func:`group_privacy` is what example-level DP says about a user with ``k`` examples, and
  :func:`group_epsilon_rdp` the tighter RDP route for a DP-SGD run (Mironov 2017).
* :class:`PrivacyStatement` is the closing statement of a private model, in the style of
  TensorFlow Privacy's ``compute_dp_sgd_privacy_statement``: unit, ε, δ, accountant, sampling,
  randomness and what is and is not covered.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import pandas as pd

from recbook import checks

ACCOUNTANTS = ("rdp", "prv")
DELTA_RATIO = 10  # default δ = 1 / (DELTA_RATIO · n)


def default_delta(n: int) -> float:
    """δ for ``n`` privacy units (examples or users): ``1 / (10 n)``, ten times below ``1/n``.

    δ is the probability with which the guarantee may fail outright; at ``δ ≈ 1/n`` a mechanism
    that publishes one whole random record would qualify, so δ must be well below ``1/n``.
    """
    n = checks.integer(n, "n (the number of privacy units)", minimum=1)
    return 1.0 / (DELTA_RATIO * n)


def check_budget(epsilon: float, delta: float, n: int) -> tuple[float, float]:
    """``(epsilon, delta)`` as floats if ``epsilon > 0`` is finite and ``0 < delta < 1/n``
    (``n`` privacy units); a ``ValueError`` naming the bad value otherwise."""
    n = checks.integer(n, "n (the number of privacy units)", minimum=1)
    try:
        eps = checks.epsilon(epsilon)
    except ValueError as err:
        raise ValueError(
            f"{err}; for a non-private model train without dp_sgd.make_private"
        ) from None
    try:
        dlt = checks.delta(delta, n=n)
    except ValueError as err:
        raise ValueError(f"{err}; default_delta(n) = {default_delta(n):.3g}") from None
    return eps, dlt


def _check_mechanism(noise_multiplier: float, sample_rate: float, steps: int) -> None:
    checks.number(noise_multiplier, "noise_multiplier", positive=True)
    rate = checks.number(sample_rate, "sample_rate", positive=True)
    if rate > 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    checks.integer(steps, "steps", minimum=1)


def epsilon_opacus(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """ε that Opacus's accountant (``"rdp"`` or ``"prv"``) gives for Poisson-sampled Gaussian
    steps — the same computation ``PrivacyEngine.get_epsilon`` runs on its history."""
    from opacus.accountants import create_accountant

    _check_mechanism(noise_multiplier, sample_rate, steps)
    delta = checks.delta(delta)
    checks.one_of(accountant, ACCOUNTANTS, "accountant")
    acc = create_accountant(mechanism=accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(acc.get_epsilon(delta=delta))


def epsilon_dp_accounting(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    method: str = "rdp",
) -> float:
    """ε from Google's ``dp-accounting`` (an independent implementation) for the same
    mechanism: ``steps`` compositions of a Poisson-sampled Gaussian. ``method``: "rdp" or "pld"."""
    import dp_accounting

    _check_mechanism(noise_multiplier, sample_rate, steps)
    delta = checks.delta(delta)
    checks.one_of(method, ("rdp", "pld"), "method")
    if method == "rdp":
        acc = dp_accounting.rdp.RdpAccountant()
    else:
        acc = dp_accounting.pld.PLDAccountant()
    event = dp_accounting.PoissonSampledDpEvent(
        float(sample_rate), dp_accounting.GaussianDpEvent(float(noise_multiplier))
    )
    acc.compose(event, int(steps))
    return float(acc.get_epsilon(delta))


def accountant_crosscheck(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> pd.DataFrame:
    """ε of one DP-SGD run from four accountants, paired by method: Opacus RDP vs dp-accounting
    RDP, Opacus PRV vs dp-accounting PLD (both numerical, near-exact). ``rel_diff`` is each
    row's difference from its pair's Opacus value."""
    args = (noise_multiplier, sample_rate, steps, delta)
    rows = [
        ("RDP", "opacus", epsilon_opacus(*args, "rdp")),
        ("RDP", "dp-accounting", epsilon_dp_accounting(*args, "rdp")),
        ("PRV/PLD", "opacus", epsilon_opacus(*args, "prv")),
        ("PRV/PLD", "dp-accounting", epsilon_dp_accounting(*args, "pld")),
    ]
    frame = pd.DataFrame(rows, columns=["method", "library", "epsilon"])
    reference = frame[frame["library"] == "opacus"].set_index("method")["epsilon"]
    frame["rel_diff"] = frame["epsilon"] / frame["method"].map(reference) - 1.0
    return frame


def noise_multiplier_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """The Gaussian noise multiplier σ that spends exactly (ε, δ) in ``steps`` Poisson-sampled
    steps (Opacus's binary search, to within 1 % of ε). The project's one calibrator: DP-SGD
    and DP-FedAvg (with ``sample_rate`` = clients per round / clients) both use it."""
    from opacus.accountants.utils import get_noise_multiplier

    epsilon = checks.epsilon(epsilon)
    delta = checks.delta(delta)
    _check_mechanism(1.0, sample_rate, steps)
    checks.one_of(accountant, ACCOUNTANTS, "accountant")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=float(sample_rate),
                steps=int(steps),
                accountant=accountant,
            )
        )


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """(ε, δ) for a group of ``k`` examples (e.g. one user's k ratings) under example-level
    (ε, δ)-DP: ``(k ε, k e^{(k-1) ε} δ)`` (Dwork & Roth 2014, Thm 2.2 and its δ extension).
    The δ part grows so fast that the bound is vacuous beyond a few examples at ε ≥ 1; δ is
    capped at 1 (a δ of 1 promises nothing). For a DP-SGD run :func:`group_epsilon_rdp` is
    much tighter."""
    k = checks.integer(k, "k (examples in the group)", minimum=1)
    epsilon = checks.epsilon(epsilon)
    delta = checks.delta(delta)
    exponent = (k - 1) * epsilon + math.log(k) + math.log(delta)
    return k * epsilon, math.exp(min(exponent, 0.0))


def group_epsilon_rdp(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, k: int
) -> float:
    """ε at ``delta`` for a group of ``k`` examples under a Poisson-sampled Gaussian run, by RDP
    group privacy (Mironov 2017, "Rényi differential privacy", Prop. 2: (α, ε)-RDP for single
    examples gives (α / 2^c, 3^c ε)-RDP for groups of 2^c, for α ≥ 2^(c+1)); ``k`` is rounded
    up to a power of two. Same δ as the example-level statement, unlike :func:`group_privacy`;
    the 3^c factor makes it the looser of the two at large ε, so report both."""
    from opacus.accountants.analysis import rdp

    _check_mechanism(noise_multiplier, sample_rate, steps)
    delta = checks.delta(delta)
    k = checks.integer(k, "k (examples in the group)", minimum=1)
    c = math.ceil(math.log2(k))
    betas = [2.0 + 0.25 * i for i in range(33)] + [12.0, 16.0, 20.0, 24.0, 32.0, 48.0, 64.0]
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # Opacus's overflow notes at large orders, and its order hints
        single = rdp.compute_rdp(
            q=float(sample_rate),
            noise_multiplier=float(noise_multiplier),
            steps=int(steps),
            orders=[b * 2**c for b in betas],
        )
        eps, _ = rdp.get_privacy_spent(
            orders=betas, rdp=[3**c * float(r) for r in single], delta=delta
        )
    return float(eps)


# ---------------------------------------------------------------------------------------------
# The statement that goes with a private model
# ---------------------------------------------------------------------------------------------

NOT_COVERED = (
    "hyper-parameters (clip norm, learning rate, epochs, ε) chosen by looking at the same data",
    "the item catalogue and the id ranges (treated as public)",
    "the number of privacy units n (used to set q and δ; treated as public, as in Opacus)",
)


@dataclass(frozen=True)
class PrivacyStatement:
    """What one private model guarantees, printed in the style of TF Privacy's statement.

    ``epsilon`` is the total: the accountant's ε for training plus every ε in ``other_spends``
    (e.g. a noisy mean paid from the same budget), added by basic composition.
    """

    model: str
    unit: str  # "example" or "user"
    unit_description: str  # e.g. "one rating" / "all ratings of one user"
    n_units: int
    epsilon_training: float
    delta: float
    accountant: str
    sample_rate: float
    steps: int
    noise_multiplier: float
    max_grad_norm: float
    secure: bool
    other_spends: tuple[tuple[str, float], ...] = ()
    not_covered: tuple[str, ...] = NOT_COVERED
    covered: tuple[str, ...] = field(
        default=("the trained weights and anything computed from them (predictions, rankings)",)
    )

    def __post_init__(self) -> None:
        checks.integer(self.n_units, "n_units", minimum=1)
        checks.number(self.delta, "delta", non_negative=True, below=1.0)
        if not self.epsilon_training >= 0:  # NaN fails too
            raise ValueError(
                f"epsilon_training must be >= 0 (inf without noise), got {self.epsilon_training}"
            )

    @property
    def epsilon(self) -> float:
        return self.epsilon_training + sum(e for _, e in self.other_spends)

    @property
    def private(self) -> bool:
        """True only for a run whose randomness was secret (secure mode)."""
        return self.secure

    def __str__(self) -> str:
        lines = [f"Privacy statement: {self.model}"]
        if not self.secure:
            lines.append(
                "  ** SEEDED RUN: reproducible demo, NOT PRIVATE — anyone who knows the seed can"
                " recompute the noise and the batches and subtract them **"
            )
        lines.append(
            f"  guarantee    ({self.epsilon:.3g}, {self.delta:.2g})-DP at the {self.unit} level:"
            f" neighbouring datasets differ by {self.unit_description} (add/remove)"
        )
        if self.delta > 0:
            ratio = 1 / (self.delta * self.n_units)
            lines.append(
                f"  units        n = {self.n_units:,}; delta = 1/({ratio:.3g} n),"
                f" i.e. {ratio:.3g}x below 1/n"
            )
        else:
            lines.append(f"  units        n = {self.n_units:,}; delta = 0 (pure DP)")
        spends = f"training {self.epsilon_training:.3g} ({self.accountant.upper()}, Opacus)"
        for what, eps in self.other_spends:
            spends += f" + {what} {eps:.3g}"
        if self.other_spends:
            spends += " (basic composition)"
        lines.append(f"  epsilon      {spends}")
        lines.append(
            f"  mechanism    DP-SGD, Poisson sampling of {self.unit}s at"
            f" q = {self.sample_rate:.4g}, {self.steps} steps,"
            f" noise multiplier {self.noise_multiplier:.4g},"
            f" clip norm {self.max_grad_norm:g} per {self.unit}"
        )
        lines.append(
            "  randomness   "
            + (
                "secure: noise and sampling from generators re-seeded from the OS (os.urandom)"
                " every step"
                if self.secure
                else "seeded (reproducible)"
            )
        )
        lines.append("  covers       " + "; ".join(self.covered))
        lines.append("  not covered  " + "; ".join(self.not_covered))
        return "\n".join(lines)

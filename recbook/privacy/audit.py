"""Measuring what a model leaks: membership inference and an empirical lower bound on ε
(notebook 05).

Why each piece is here:

* :func:`loss_threshold_attack` (Yeom et al. 2018) on a balanced member / non-member sample
  (:func:`membership_sample`): what an attacker learns from per-example losses, as an AUC.
* :func:`max_attack_auc`: the largest AUC any attack may reach against an (ε, δ)-DP model.
* :func:`one_run_audit` — "privacy auditing with one training run" (Steinke, Nasr & Jagielski,
  NeurIPS 2023): ``m`` canaries, each put in the training set with probability 1/2; after one
  training run the auditor guesses which were in from their scores, and the number of correct
  guesses becomes a lower bound on ε that holds with the stated confidence. An accountant's ε is
  an upper bound; the audit's is a lower one, so ``lower <= upper`` is a test of the
  implementation, and a large lower bound refutes a claimed guarantee.
* :func:`row_shift_scores`: white-box canary scores (how far a canary's own embedding row
  moved), strong enough that a run without noise is caught.
* :func:`one_run_max_epsilon`: the largest bound ``m`` canaries can certify (every guess
  right). An audit whose ceiling is below the run's ε cannot fail, so it checks nothing: audit
  a run whose accountant ε is below the ceiling, and run a positive control (the same pipeline
  without noise) whose bound must come out above the ε it would have claimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn

from recbook import checks, metrics
from recbook.columns import ITEM, RATING, USER
from recbook.privacy.randomness import os_seed


def max_attack_auc(epsilon: float, delta: float = 0.0) -> float:
    """The largest membership-inference AUC any attack can reach against an (ε, δ)-DP model.

    (ε, δ)-DP confines every test's ROC curve to ``TPR <= min(1, e^ε FPR + δ,
    1 - e^{-ε} (1 - δ - FPR))`` (Kairouz et al. 2015); this integrates that envelope."""
    if epsilon == float("inf"):
        return 1.0
    epsilon = checks.epsilon(epsilon, allow_zero=True)
    if delta != 0:
        delta = checks.delta(delta)
    fpr = np.linspace(0.0, 1.0, 200_001)
    tpr = np.minimum.reduce(
        [
            np.ones_like(fpr),
            math.exp(epsilon) * fpr + delta,
            1.0 - math.exp(-epsilon) * (1.0 - delta - fpr),
        ]
    )
    return float(np.trapezoid(np.clip(tpr, 0.0, 1.0), fpr))


def membership_sample(
    members: pd.DataFrame, non_members: pd.DataFrame, n: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equal-size random samples of training rows (members) and held-out rows the model never
    saw (non-members), so that AUC 0.5 is chance and a model that memorises nothing scores it.

    ``n`` defaults to the smaller of the two; rows are drawn without replacement."""
    if members.empty or non_members.empty:
        raise ValueError("membership_sample needs non-empty member and non-member tables")
    largest = min(len(members), len(non_members))
    n = largest if n is None else n
    if not 1 <= n <= largest:
        raise ValueError(f"n must be in 1..{largest} (the smaller table's size), got {n}")
    rng = np.random.default_rng(seed)
    pick_m = rng.choice(len(members), n, replace=False)
    pick_n = rng.choice(len(non_members), n, replace=False)
    return (
        members.iloc[np.sort(pick_m)].reset_index(drop=True),
        non_members.iloc[np.sort(pick_n)].reset_index(drop=True),
    )


@dataclass
class AttackResult:
    """A loss-threshold attack's outcome: ``auc`` over all thresholds, and Yeom et al.'s
    membership ``advantage`` (TPR - FPR) at their threshold, the mean training loss."""

    auc: float
    advantage: float
    threshold: float
    n_members: int
    n_non_members: int


def loss_threshold_attack(member_losses, non_member_losses) -> AttackResult:
    """Guess "member" when an example's loss is low (Yeom et al. 2018, "Privacy risk in machine
    learning"). The score is ``-loss``; AUC 0.5 means the losses reveal nothing."""
    m = np.asarray(member_losses, dtype=float).ravel()
    o = np.asarray(non_member_losses, dtype=float).ravel()
    if m.size == 0 or o.size == 0:
        raise ValueError("loss_threshold_attack needs losses for members and for non-members")
    if not (np.isfinite(m).all() and np.isfinite(o).all()):
        raise ValueError("losses must be finite; check the model's predictions for NaN/inf")
    labels = np.r_[np.ones(m.size), np.zeros(o.size)]
    auc = metrics.auc(labels, -np.r_[m, o])
    threshold = float(m.mean())
    advantage = float((m <= threshold).mean() - (o <= threshold).mean())
    return AttackResult(auc, advantage, threshold, int(m.size), int(o.size))


@torch.no_grad()
def rating_losses(
    model: nn.Module,
    df: pd.DataFrame,
    *,
    transform=None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per-example squared error of a ``model(user, item)`` rating model on ``df`` (columns
    :data:`~recbook.columns.USER`, ``ITEM``, ``RATING``) — the loss the attacker observes.
    ``transform`` maps raw outputs to ratings (e.g. a sigmoid model's ``1 + 4 sigmoid(z)``)."""
    checks.frame(df, (USER, ITEM, RATING), "rating_losses: df")
    model.eval()
    users = torch.tensor(df[USER].to_numpy(dtype=np.int64), device=device)
    items = torch.tensor(df[ITEM].to_numpy(dtype=np.int64), device=device)
    out = model(users, items)
    pred = transform(out) if transform is not None else out
    pred = pred.float().cpu().numpy()
    return (pred - df[RATING].to_numpy(dtype=float)) ** 2


# ---------------------------------------------------------------------------------------------
# One-run auditing (Steinke, Nasr & Jagielski 2023)
# ---------------------------------------------------------------------------------------------


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability of ``>= v`` correct guesses out of ``r`` (``m`` canaries) if the training run
    were (ε, δ)-DP — Steinke et al. 2023, Theorem 3.3 / Appendix D: a Binomial(r, e^ε/(1+e^ε))
    tail plus a δ term ``2 m δ max_i P[v > B >= v - i] / i``."""
    m = checks.integer(m, "m (canaries)", minimum=1)
    r = checks.integer(r, "r (guesses)", minimum=0, maximum=m)
    v = checks.integer(v, "v (correct guesses)", minimum=0, maximum=r)
    epsilon = checks.epsilon(epsilon, allow_zero=True)
    delta = checks.number(delta, "delta", non_negative=True, below=1.0)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(scipy.stats.binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(beta, 1.0)
    i = np.arange(1, v + 1)
    window = np.cumsum(scipy.stats.binom.pmf(v - i, r, q))  # P[v > B >= v - i]
    return min(beta + float((window / i).max()) * delta * 2 * m, 1.0)


def one_run_epsilon_lower_bound(
    m: int, r: int, v: int, delta: float, confidence: float = 0.95
) -> float:
    """The largest ε such that (ε, δ)-DP is rejected at ``confidence`` after ``v`` correct
    guesses out of ``r``: every ε' below it has p-value < 1 - confidence. 0 when nothing is
    rejected."""
    alpha = 1.0 - checks.fraction(confidence, "confidence")
    if one_run_p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < alpha:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            return math.inf
    for _ in range(60):
        mid = (lo + hi) / 2
        if one_run_p_value(m, r, v, mid, delta) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


GUESS_FRACTIONS = (0.05, 0.1, 0.2, 0.5, 1.0)


def _guess_counts(m: int, guess_fractions: tuple[float, ...]) -> list[int]:
    """How many canaries the auditor guesses on ("in" plus "out") for each fraction."""
    if not guess_fractions or any(not 0 < f <= 1 for f in guess_fractions):
        raise ValueError(f"guess_fractions must be fractions in (0, 1], got {guess_fractions}")
    return [2 * max(1, int(f * m) // 2) for f in guess_fractions]


def one_run_max_epsilon(
    m: int,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fractions: tuple[float, ...] = GUESS_FRACTIONS,
) -> float:
    """The largest lower bound :func:`one_run_audit` can certify with ``m`` canaries: every
    guess right, at the best guess count. A run whose ε is above it passes the audit whatever
    it leaks, so an audit is a test only of runs with ε below this ceiling."""
    m = checks.integer(m, "m (canaries)", minimum=2)
    conf = checks.fraction(confidence, "confidence")
    per_choice = 1.0 - (1.0 - conf) / len(guess_fractions)
    return max(
        one_run_epsilon_lower_bound(m, r, r, delta, per_choice)
        for r in _guess_counts(m, guess_fractions)
    )


@dataclass(frozen=True)
class OneRunAudit:
    """Outcome of :func:`one_run_audit`: the ε lower bound, the guess that gave it, and the
    ceiling ``max_certifiable`` that ``canaries`` can reach (every guess right)."""

    epsilon_lower: float
    confidence: float
    delta: float
    canaries: int
    guesses: int
    correct: int
    choices: int  # guess counts tried (Bonferroni-corrected)
    max_certifiable: float = math.nan

    @property
    def saturated(self) -> bool:
        """Every guess of the chosen count was right: the bound is that count's ceiling, and
        the run may leak more than it says (only more canaries could show how much)."""
        return self.guesses > 0 and self.correct == self.guesses

    def can_refute(self, epsilon: float) -> bool:
        """Whether this audit could have certified a bound above ``epsilon`` at all."""
        return bool(self.max_certifiable > epsilon)

    def __str__(self) -> str:
        text = (
            f"one-run audit: {self.correct}/{self.guesses} correct guesses on {self.canaries}"
            f" canaries -> epsilon >= {self.epsilon_lower:.3g} at {self.confidence:.0%}"
            f" confidence (delta = {self.delta:.2g}; best of {self.choices} guess counts,"
            " Bonferroni-corrected)"
        )
        if math.isfinite(self.max_certifiable):
            text += f"; the most {self.canaries} canaries can certify: {self.max_certifiable:.3g}"
        if self.saturated:
            text += " [SATURATED: every guess right, the run may leak more than this bound]"
        return text


def one_run_audit(
    scores,
    included,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fractions: tuple[float, ...] = GUESS_FRACTIONS,
    seed: int = 0,
) -> OneRunAudit:
    """ε lower bound from canary ``scores`` (higher = "looks like it was trained on") and the
    secret ``included`` flags (each drawn with probability 1/2 before training).

    For each fraction ``f`` the auditor guesses "in" for the ``f m / 2`` highest scores and
    "out" for the ``f m / 2`` lowest, abstaining on the rest; each choice is tested at
    ``(1 - confidence) / len(guess_fractions)`` (Bonferroni) and the largest bound is kept, so
    the result holds at ``confidence`` overall. Ties are broken at random with ``seed``. The
    result also carries :func:`one_run_max_epsilon` for the same settings, and says when the
    bound is saturated.
    """
    s = checks.finite_array(scores, "scores").ravel()
    inc = checks.binary_labels(included, "included").ravel().astype(bool)
    checks.same_shape(s, inc, "one_run_audit: scores vs included")
    m = s.size
    if m < 2:
        raise ValueError(f"one_run_audit needs at least 2 canaries, got {m}")
    counts = _guess_counts(m, guess_fractions)
    conf = checks.fraction(confidence, "confidence")
    per_choice = 1.0 - (1.0 - conf) / len(guess_fractions)
    tiebreak = np.random.default_rng(checks.seed(seed)).random(m)
    order = np.lexsort((tiebreak, -s))  # highest score first
    best = None
    for r in counts:
        k = r // 2
        correct = int(inc[order[:k]].sum() + (~inc[order[-k:]]).sum())
        bound = one_run_epsilon_lower_bound(m, r, correct, delta, per_choice)
        if best is None or bound > best[0]:
            best = (bound, r, correct)
    ceiling = one_run_max_epsilon(
        m, delta=delta, confidence=conf, guess_fractions=tuple(guess_fractions)
    )
    return OneRunAudit(
        best[0], conf, float(delta), m, best[1], best[2], len(guess_fractions), ceiling
    )


def row_shift_scores(weight: torch.Tensor, initial: torch.Tensor, rows) -> np.ndarray:
    """White-box canary scores: how far each canary's own row of an embedding table (e.g. its
    user bias) moved from its initial value, as an L2 norm. A row no step ever sampled keeps
    its initial value up to noise and weight decay, so without noise an excluded canary scores
    exactly 0 — what a positive control needs; with noise every row moves. Any score computed
    from the final model and the (coin-independent) initial weights keeps the audit valid."""
    w = torch.as_tensor(weight).detach().cpu()
    w0 = torch.as_tensor(initial).detach().cpu()
    if w.shape != w0.shape:
        raise ValueError(
            f"weight and initial differ in shape: {tuple(w.shape)} vs {tuple(w0.shape)}"
        )
    idx = torch.from_numpy(np.array(rows, dtype=np.int64).ravel())  # a copy: writable
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(w):
        raise ValueError(f"rows must be non-empty row numbers in 0..{len(w) - 1}")
    shift = (w[idx] - w0[idx]).reshape(len(idx), -1)
    return shift.double().norm(dim=1).numpy()


def rating_canaries(
    n_users: int,
    n_items: int,
    m: int,
    *,
    rating: float = 1.0,
    one_item: bool = True,
    seed: int | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """``m`` canary ratings for a one-run audit and the secret coin flips that include them.

    Canary ``j`` is a new user ``n_users + j`` (the model needs ``n_users + m`` user rows) who
    gives ``rating`` to an item — with ``one_item`` the same random item for every canary, so
    that canaries differ only in whether their user was trained on (item biases would otherwise
    blur the guesses); each canary is included with probability 1/2. The coins and the item
    come from the OS (:func:`~recbook.privacy.randomness.os_seed`) unless a ``seed`` is given
    (reproducible demo).
    """
    n_users = checks.integer(n_users, "n_users", minimum=1)
    n_items = checks.integer(n_items, "n_items", minimum=1)
    m = checks.integer(m, "m (canaries)", minimum=2)
    rating = checks.number(rating, "rating")
    seed = os_seed() if seed is None else checks.seed(seed)
    rng = np.random.default_rng(seed)
    items = np.full(m, rng.integers(0, n_items)) if one_item else rng.integers(0, n_items, m)
    canaries = pd.DataFrame({USER: n_users + np.arange(m), ITEM: items, RATING: np.full(m, rating)})
    return canaries, rng.random(m) < 0.5

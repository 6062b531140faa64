"""Comparisons that carry their uncertainty: several seeds, 95 % intervals, paired differences,
and one way to say whether a claim holds.

Why: one seed of one split can put a model ahead by less than its own noise. Every notebook
runs its models over a few seeds (a new split, initialisation and tie-break each time), reports
mean and interval, and decides "A beats B" on the *paired* difference -- the same split and seed
on both sides -- with :func:`verdict`, which says "inconclusive" when the interval holds the
threshold.

Intervals are Student-t over seeds: with n seeds the half-width is ``t(0.975, n-1)·sd/√n``, wide
for n = 3 on purpose. They describe run-to-run variation of the whole pipeline (split, training,
tie-break), not the sampling error of the shop itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from recbook import checks, metrics

Result = Mapping[str, Mapping[str, float]]
VERDICTS = ("confirmed", "not confirmed", "inconclusive")


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` runs with its two-sided interval ``[lo, hi]`` (infinite when n < 2)."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float = 0.95

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def format(self, spec: str = ".4f") -> str:
        if self.n < 2:
            return f"{self.mean:{spec}} (n=1, no interval)"
        return f"{self.mean:{spec}} [{self.lo:{spec}}, {self.hi:{spec}}]"

    def __str__(self) -> str:
        return self.format()


def interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of independent runs (e.g. one value per seed)."""
    v = checks.finite_array(list(values), "interval: values").ravel()
    if v.size == 0:
        raise ValueError("interval: no values; run at least one seed")
    confidence = checks.fraction(confidence, "confidence")
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, -np.inf, np.inf, 1, confidence)
    half = stats.t.ppf((1 + confidence) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return Interval(mean, mean - half, mean + half, int(v.size), confidence)


class Comparison:
    """Results of several models over several seeds (tidy: seed, model, metric, value)."""

    def __init__(self, runs: pd.DataFrame):
        checks.frame(runs, ("seed", "model", "metric", "value"), "runs")
        checks.non_empty(runs, "runs")
        if runs.duplicated(["seed", "model", "metric"]).any():
            raise ValueError("runs hold a (seed, model, metric) twice; each run reports once")
        self.runs = runs.reset_index(drop=True)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.runs["model"]))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(self.runs["metric"]))

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs["seed"].unique().tolist())

    def values(self, model: str, metric: str) -> pd.Series:
        """The per-seed values of one model's metric, indexed by seed."""
        self._known(model, metric)
        rows = self.runs[(self.runs["model"] == model) & (self.runs["metric"] == metric)]
        return rows.set_index("seed")["value"].sort_index()

    def interval(self, model: str, metric: str, confidence: float = 0.95) -> Interval:
        return interval(self.values(model, metric), confidence)

    def difference(self, a: str, b: str, metric: str, confidence: float = 0.95) -> Interval:
        """Paired difference ``a - b`` over the seeds both ran (same split on both sides)."""
        va, vb = self.values(a, metric), self.values(b, metric)
        if set(va.index) != set(vb.index):
            raise ValueError(
                f"{a!r} ran seeds {sorted(va.index)} but {b!r} ran {sorted(vb.index)}; a paired "
                "difference needs the same seeds on both sides"
            )
        return interval(va - vb.loc[va.index], confidence)

    def table(self, metrics: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
        """Mean and interval per model (rows, in run order) and metric (column groups)."""
        chosen = list(metrics) if metrics is not None else self.metrics
        data = {}
        for metric in chosen:
            for model in self.models:
                if ((self.runs["model"] == model) & (self.runs["metric"] == metric)).any():
                    iv = self.interval(model, metric, confidence)
                    data[(metric, "mean"), model] = iv.mean
                    data[(metric, "lo"), model] = iv.lo
                    data[(metric, "hi"), model] = iv.hi
        table = pd.Series(data).unstack(0)
        table.columns = pd.MultiIndex.from_tuples(table.columns)
        return table.loc[self.models, chosen]

    def summary(self, metrics: Sequence[str] | None = None, spec: str = ".4f") -> pd.DataFrame:
        """The same as :meth:`table` as printable strings ``mean [lo, hi]``."""
        chosen = list(metrics) if metrics is not None else self.metrics
        out = pd.DataFrame(index=pd.Index(self.models, name="model"), columns=chosen, dtype=object)
        for metric in chosen:
            for model in self.models:
                if ((self.runs["model"] == model) & (self.runs["metric"] == metric)).any():
                    out.loc[model, metric] = self.interval(model, metric).format(spec)
        return out.fillna("")

    def differences(self, reference: str, metric: str) -> pd.DataFrame:
        """Every other model minus ``reference`` on ``metric``: mean, lo, hi (paired)."""
        rows = {
            model: self.difference(model, reference, metric)
            for model in self.models
            if model != reference and not self.values(model, metric).empty
        }
        return pd.DataFrame(
            {m: {"mean": d.mean, "lo": d.lo, "hi": d.hi, "n": d.n} for m, d in rows.items()}
        ).T.rename_axis(f"{metric}: model - {reference}")

    def _known(self, model: str, metric: str) -> None:
        if model not in self.models:
            raise KeyError(f"unknown model {model!r}; the runs hold {self.models}")
        if metric not in self.metrics:
            raise KeyError(f"unknown metric {metric!r}; the runs hold {self.metrics}")


def compare(
    run: Callable[[int], Result], seeds: Sequence[int] = (0, 1, 2), desc: str = "seeds"
) -> Comparison:
    """Call ``run(seed)`` for each seed; it returns ``{model: {metric: value}}``.

    ``run`` should redo everything that depends on the seed -- the split, the initialisation,
    negative sampling and the metric tie-break -- so that the interval covers all of it.
    """
    seeds = [checks.seed(s) for s in seeds]
    if not seeds:
        raise ValueError("compare: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"compare: seeds repeat: {seeds}")
    rows = []
    for seed in tqdm(seeds, desc=desc, leave=False):
        result = run(seed)
        if not isinstance(result, Mapping) or not result:
            raise TypeError(f"run({seed}) must return {{model: {{metric: value}}}}, got {result!r}")
        for model, values in result.items():
            if not isinstance(values, Mapping):
                raise TypeError(f"run({seed})[{model!r}] must map metric names to numbers")
            for metric, value in values.items():
                value = checks.number(value, f"run({seed})[{model!r}][{metric!r}]")
                rows.append({"seed": seed, "model": model, "metric": metric, "value": value})
    return Comparison(pd.DataFrame(rows))


def verdict(claim: str, difference: Interval, threshold: float = 0.0, spec: str = ".4f") -> str:
    """Print and return the verdict on "``difference`` > ``threshold``".

    Orient the difference so that positive supports the claim (for "A has lower RMSE than B"
    pass ``difference(B, A, "rmse")``). "confirmed" when the whole interval lies above the
    threshold, "not confirmed" when it lies below, "inconclusive" when it holds the threshold.
    """
    if not isinstance(difference, Interval):
        raise TypeError("verdict needs an Interval (e.g. Comparison.difference(...))")
    threshold = checks.number(threshold, "threshold")
    if difference.lo > threshold:
        word = "confirmed"
    elif difference.hi < threshold:
        word = "not confirmed"
    else:
        word = "inconclusive"
    ci = int(round(difference.confidence * 100))
    print(
        f"{claim}: {word} -- difference {difference.format(spec)} "
        f"({ci} % interval, {difference.n} runs; needs > {threshold:{spec}})"
    )
    return word


RELATIONS = {
    "confirmed": "beats",
    "not confirmed": "loses to",
    "inconclusive": "cannot be told apart from",
}


def in_words(word: str, a: str, b: str, what: str) -> str:
    """A verdict as a sentence, "A beats B (what; verdict: confirmed)", so that a notebook's
    conclusions are printed from its verdicts, never typed."""
    if word not in RELATIONS:
        raise ValueError(f"unknown verdict {word!r}; verdict() returns one of {VERDICTS}")
    return f"{a} {RELATIONS[word]} {b} ({what}; verdict: {word})"


def full_catalogue_metrics(
    scores: np.ndarray,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Top-k metrics over the whole catalogue with each user's training items removed (the
    default protocol), ties broken at random with ``seed``: precision, recall, hit_rate, ndcg,
    map at ``k`` over users with at least one test item."""
    per_user = full_catalogue_per_user(scores, train, test, k, seed)
    return {name: float(v) for name, v in per_user.mean().items()}


def full_catalogue_per_user(
    scores: np.ndarray,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`full_catalogue_metrics` for each evaluated user (rows: user ids)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"scores must be a (users x items) matrix, got shape {s.shape}")
    relevant = metrics.relevance_matrix(test, *s.shape)
    masked = metrics.exclude_seen(s, train)
    return metrics.per_user_metrics(masked, relevant, k=k, seed=seed)


def compare_users(
    scores: Mapping[str, np.ndarray],
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    seed: int = 0,
) -> Comparison:
    """Fixed scorers on one fixed split: intervals over *users* (the test set is a sample of
    them), paired per-user differences. Use :func:`compare` when training or the split depends
    on a seed. The returned Comparison's ``seed`` column holds the user id (the pairing unit)."""
    if not scores:
        raise ValueError("compare_users: give at least one scorer")
    frames = []
    for model, s in scores.items():
        per_user = full_catalogue_per_user(s, train, test, k, seed)
        tidy = per_user.rename_axis("seed").reset_index().melt("seed", var_name="metric")
        frames.append(tidy.assign(model=model))
    return Comparison(pd.concat(frames, ignore_index=True)[["seed", "model", "metric", "value"]])


def tune(
    fit_score: Callable[[float], float], grid: Sequence[float], desc: str = "tune"
) -> tuple[float, pd.Series]:
    """Pick the value of ``grid`` whose validation score ``fit_score(value)`` is highest.

    ``fit_score`` must fit on training data and score on a *validation* split carved from it --
    never on test. Returns the best value and every score (for a plot)."""
    values = list(grid)
    if not values:
        raise ValueError("tune: empty grid")
    scores = pd.Series(
        [checks.number(fit_score(v), f"score at {v!r}") for v in tqdm(values, desc, leave=False)],
        index=pd.Index(values, name="value", tupleize_cols=False),
        name="validation score",
    )
    return scores.idxmax(), scores

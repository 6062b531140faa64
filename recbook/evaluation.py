"""Comparisons that carry their uncertainty -- the right one: what would change if the reader
ran it again -- and one way to say whether a claim holds.

Why: one seed of one split can put a model ahead by less than its own noise, and an interval
over training seeds on a *fixed* test set says nothing about which users happened to be in it.
So the replicate is chosen by what a rerun would draw anew (:func:`replicates` decides it):

* the **shop**: a new *world* per seed (users, items, events, split, initialisation and
  tie-break all drawn from the seed) -- the interval is over worlds ("3 shops x 2,844 users");
* **public data with a fixed test set**: the *users* (the test set is a sample of them) --
  each user's metric averaged over the training seeds, then a paired Student-t over users;
* **cold items** (a statistic pooled over rows, such as AUC): a paired bootstrap over the items
  (:func:`bootstrap_groups`).

Every :class:`Interval` names its unit, and :func:`verdict` prints it beside the numbers. A
claim "A beats B" is decided on the *paired* difference -- the same world, split or user on
both sides -- and is "inconclusive" when the interval holds the threshold.

Student-t intervals are wide for three replicates on purpose. Development (choosing settings)
uses a development world or a validation split; :func:`compare` refuses the development seed,
so evaluation never runs on what was tuned on.

The module is long on purpose: the interval, the comparison, the replicate rule and the
verdict are one vocabulary (:func:`replicates` sets an interval's unit and overlap correction,
:func:`verdict` prints them); split apart, a reader would cross modules to read one table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from recbook import checks, metrics

Result = Mapping[str, Mapping[str, float]]
VERDICTS = ("confirmed", "not confirmed", "inconclusive")


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` runs with its two-sided interval ``[lo, hi]`` (infinite when n < 2).

    Checked when built, since every verdict trusts it: ``mean`` finite, ``lo <= hi``, no NaN
    anywhere (``lo = -inf``, ``hi = +inf`` is the one-replicate "no interval"), ``n >= 1``.
    ``mean`` may lie outside ``[lo, hi]`` (a bootstrap percentile interval around the
    full-sample point estimate can miss it)."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float = 0.95
    unit: str = "runs"  # what the n replicates are: "shops", "users", "cold items (bootstrap)"

    def __post_init__(self) -> None:
        checks.number(self.mean, "Interval.mean")
        for name in ("lo", "hi"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or np.isnan(value):
                raise ValueError(f"Interval.{name} must be a number (inf allowed), got {value!r}")
        if self.lo > self.hi:
            raise ValueError(
                f"Interval: lo = {self.lo!r} > hi = {self.hi!r}; build intervals with "
                "evaluation.interval or a Comparison, which order the bounds"
            )
        checks.integer(self.n, "Interval.n", minimum=1)
        checks.fraction(self.confidence, "Interval.confidence")
        if not isinstance(self.unit, str):
            raise TypeError(f"Interval.unit must name the replicates (a str), got {self.unit!r}")

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def format(self, spec: str = ".4f") -> str:
        if self.n < 2:
            return f"{self.mean:{spec}} (n=1, no interval)"
        return f"{self.mean:{spec}} [{self.lo:{spec}}, {self.hi:{spec}}]"

    def describe(self) -> str:
        """``"95 % interval over 3 shops"``: the interval's unit, for every printed verdict."""
        return f"{int(round(self.confidence * 100))} % interval over {self.n:,} {self.unit}"

    def __str__(self) -> str:
        return self.format()


def interval(
    values: Iterable[float], confidence: float = 0.95, unit: str = "runs", overlap: float = 0.0
) -> Interval:
    """Mean and Student-t interval of independent replicates (one value per world, user, ...).

    ``overlap`` = n_test / n_train of random splits of *one* dataset: their training sets share
    most rows, so the replicates are correlated and a plain t is too narrow. Nadeau & Bengio's
    (2003) corrected resampled t widens the half-width by ``sqrt(1 + J * overlap)``."""
    v = checks.finite_array(list(values), "interval: values").ravel()
    if v.size == 0:
        raise ValueError("interval: no values; run at least one seed")
    confidence = checks.fraction(confidence, "confidence")
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, -np.inf, np.inf, 1, confidence, unit)
    overlap = checks.number(overlap, "overlap", non_negative=True)
    half = stats.t.ppf((1 + confidence) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    half *= np.sqrt(1 + v.size * overlap)
    return Interval(mean, mean - half, mean + half, int(v.size), confidence, unit)


class Comparison:
    """Results of several models over several replicates (tidy: seed, model, metric, value).

    The ``seed`` column names the replicate -- a world's seed, a user id, a bootstrap draw --
    and ``unit`` says which ("shops", "users (each the mean of 3 seeds)", ...). Intervals are
    Student-t over the replicates, or (``method="bootstrap"``) the percentiles of bootstrap
    replicates around the full-sample ``point`` estimates."""

    def __init__(
        self,
        runs: pd.DataFrame,
        unit: str = "seeds",
        *,
        method: str = "t",
        point: Mapping[str, Mapping[str, float]] | None = None,
        overlap: float = 0.0,
        groups: int | None = None,
    ):
        checks.frame(runs, ("seed", "model", "metric", "value"), "runs")
        checks.non_empty(runs, "runs")
        if runs.duplicated(["seed", "model", "metric"]).any():
            raise ValueError("runs hold a (seed, model, metric) twice; each run reports once")
        checks.one_of(method, ("t", "bootstrap"), "interval method")
        if method == "bootstrap" and (point is None or groups is None):
            raise ValueError(
                "a bootstrap comparison needs the full-sample point estimates and the number "
                "of groups resampled (the interval's n)"
            )
        if not isinstance(unit, str) or not unit:
            raise ValueError("unit must name the replicates, e.g. 'shops' or 'users'")
        self.runs = runs.reset_index(drop=True)
        self.unit, self.method, self.point = unit, method, point
        self.overlap = checks.number(overlap, "overlap", non_negative=True)
        self.groups = groups  # bootstrap: how many units each draw resamples

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
        values = self.values(model, metric)
        if self.method == "bootstrap":
            return _percentile(
                values, self.point[model][metric], confidence, self.unit, self.groups
            )
        return interval(values, confidence, self.unit, self.overlap)

    def difference(self, a: str, b: str, metric: str, confidence: float = 0.95) -> Interval:
        """Paired difference ``a - b`` over the replicates both ran (the same world, user or
        bootstrap draw on both sides)."""
        va, vb = self.values(a, metric), self.values(b, metric)
        if set(va.index) != set(vb.index):
            raise ValueError(
                f"{a!r} ran seeds {sorted(va.index)} but {b!r} ran {sorted(vb.index)}; a paired "
                "difference needs the same seeds on both sides"
            )
        paired = va - vb.loc[va.index]
        if self.method == "bootstrap":
            point = self.point[a][metric] - self.point[b][metric]
            return _percentile(paired, point, confidence, self.unit, self.groups)
        return interval(paired, confidence, self.unit, self.overlap)

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


def _percentile(
    values: pd.Series, point: float, confidence: float, unit: str, groups: int
) -> Interval:
    """Percentile interval of bootstrap draws; its n is the number of groups resampled (the
    units the interval is over), not the number of draws."""
    confidence = checks.fraction(confidence, "confidence")
    v = checks.finite_array(values.to_numpy(), "bootstrap replicates")
    lo, hi = np.quantile(v, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(point), float(lo), float(hi), groups, confidence, unit)


def _evaluation_seeds(seeds: Sequence[int], dev_seed: int | None) -> list[int]:
    seeds = [checks.seed(s) for s in seeds]
    if not seeds:
        raise ValueError("compare: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"compare: seeds repeat: {seeds}")
    if dev_seed is not None and checks.seed(dev_seed, "dev_seed") in seeds:
        raise ValueError(
            f"seed {dev_seed} is the development world, where settings were chosen; evaluate "
            "on fresh worlds (e.g. SEED, SEED + 1, ... with SEED != DEV_SEED)"
        )
    return seeds


def compare(
    run: Callable[[int], Result],
    seeds: Sequence[int] = (0, 1, 2),
    desc: str = "seeds",
    *,
    unit: str = "seeds",
    dev_seed: int | None = None,
) -> Comparison:
    """Call ``run(seed)`` for each seed; it returns ``{model: {metric: value}}``.

    ``run`` should redo everything that depends on the seed -- on the shop the world itself
    (``unit="shops"``), else the split, the initialisation, negative sampling and the metric
    tie-break -- so that the interval covers all of it. ``dev_seed`` (the world settings were
    chosen on) is refused as an evaluation seed.
    """
    seeds = _evaluation_seeds(seeds, dev_seed)
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
    return Comparison(pd.DataFrame(rows), unit=unit)


#: Which replicate a rerun draws anew, by dataset: the shop regenerates its world from a seed;
#: public data keep their users, so the users (or the random split) are resampled.
REPLICATES = {"shop": "worlds"}
#: The development world: settings are chosen on its validation data, and no comparison may
#: use it. Evaluation worlds are ``SEED, SEED + 1, ...`` (:func:`evaluation_seeds`).
DEV_SEED = 1000
SPLITS = ("fixed", "random")


def evaluation_seeds(first: int, n: int, dev_seed: int | None = DEV_SEED) -> list[int]:
    """The seeds of ``n`` evaluation replicates starting at ``first`` (a notebook's ``SEED``);
    refuses a range that reaches the development world."""
    first, n = checks.seed(first, "SEED"), checks.integer(n, "number of replicates", minimum=1)
    return _evaluation_seeds(range(first, first + n), dev_seed)


def replicates(
    run: Callable[[int], Mapping[str, pd.DataFrame | Mapping[str, float]]],
    seeds: Sequence[int],
    dataset: str,
    *,
    split: str = "fixed",
    test_share: float | None = None,
    dev_seed: int | None = DEV_SEED,
    desc: str = "replicates",
) -> Comparison:
    """The one place that decides the unit of uncertainty for a table.

    ``run(seed)`` returns, per model, its per-user metrics (a DataFrame, rows: users, e.g.
    :func:`full_catalogue_per_user`) or a ``{metric: value}`` dict for a statistic that is not
    a mean over users (RMSE, AUC). On the shop it builds the world of ``seed``
    (:func:`recbook.datasets.world`); on public data it redraws what ``split`` says: a new
    random split per seed (``split="random"``), or only the training seed on a fixed test set
    (``split="fixed"``: leave-last-out, a temporal cut, the official split).

    * shop: one replicate per world, unit "shops" (with "x ~N users" for per-user frames);
    * public, random split: one replicate per split, unit "random splits"; give the test
      share of each split (``test_share``): the splits overlap, so intervals get Nadeau &
      Bengio's correction (:func:`interval`'s ``overlap``);
    * public, fixed test set: each *user* is a replicate -- their metric averaged over the
      seeds, then a paired t over users ("943 users, each the mean of 3 seeds"); this needs
      per-user frames, since resampling users is the only way a fixed test set can vary.

    So no row ever shows a zero-width interval, and a difference carries which users (or
    worlds) happened to be tested. The development seed is refused on the shop."""
    checks.one_of(split, SPLITS, "split")
    shop = REPLICATES.get(dataset) == "worlds"
    overlap = 0.0
    if split == "random" and not shop:
        if test_share is None:
            raise ValueError(
                f"random splits of {dataset!r} overlap: pass test_share= (each split's test "
                "share) so the intervals get Nadeau & Bengio's correction"
            )
        share = checks.fraction(test_share, "test_share")
        overlap = share / (1 - share)
    seeds = _evaluation_seeds(seeds, dev_seed if shop else None)
    per_seed = {}
    for seed in tqdm(seeds, desc=desc, leave=False):
        result = run(seed)
        if not isinstance(result, Mapping) or not result:
            raise TypeError(f"run({seed}) must return {{model: per-user DataFrame or metrics}}")
        for model, values in result.items():
            if isinstance(values, pd.DataFrame):
                if values.empty:
                    raise ValueError(f"run({seed})[{model!r}] has no users")
            elif not isinstance(values, Mapping) or not values:
                raise TypeError(
                    f"run({seed})[{model!r}] must be a per-user DataFrame or {{metric: value}}"
                )
        per_seed[seed] = result
    if shop or split == "random":
        rows = [
            {"seed": seed, "model": model, "metric": metric, "value": checks.number(v, metric)}
            for seed, result in per_seed.items()
            for model, values in result.items()
            for metric, v in (values.mean() if isinstance(values, pd.DataFrame) else values).items()
        ]
        unit = "shops" if shop else "random splits"
        if overlap:
            unit += f" (Nadeau-Bengio corrected, x{np.sqrt(1 + len(seeds) * overlap):.2f})"
        frames = [v for r in per_seed.values() for v in r.values() if isinstance(v, pd.DataFrame)]
        if frames:
            unit += f" x ~{int(np.mean([len(f) for f in frames])):,} users"
        return Comparison(pd.DataFrame(rows), unit=unit, overlap=overlap)
    frames = []
    for model in per_seed[seeds[0]]:
        per_run = [per_seed[s][model] for s in seeds]
        if not all(isinstance(f, pd.DataFrame) for f in per_run):
            raise TypeError(
                f"{model!r}: a fixed test set varies only by its users, so run() must return "
                "per-user DataFrames (e.g. evaluation.full_catalogue_per_user) -- or use "
                "split='random' if each seed draws a new split"
            )
        stacked = pd.concat(per_run, keys=seeds, names=["run", "user"])
        averaged = stacked.groupby(level="user").mean()
        tidy = averaged.rename_axis("seed").reset_index().melt("seed", var_name="metric")
        frames.append(tidy.assign(model=model))
    runs = pd.concat(frames, ignore_index=True)[["seed", "model", "metric", "value"]]
    return Comparison(runs, unit=f"users, each the mean of {len(seeds)} seeds")


def bootstrap_groups(
    groups: np.ndarray,
    statistic: Callable[[np.ndarray], Result],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    unit: str = "groups",
    desc: str = "bootstrap",
) -> Comparison:
    """A paired bootstrap over groups (e.g. cold items) for a statistic pooled over rows.

    ``groups`` gives each row's group; ``statistic(rows)`` computes ``{model: {metric: value}}``
    on the row indices ``rows``. Each draw resamples the groups with replacement and takes all
    rows of the drawn groups (a group drawn twice counts twice); every model sees the same draw,
    so differences are paired. Intervals are the bootstrap percentiles around the full-sample
    estimate; an interval reads e.g. "95 % interval over 112 cold items (1,000 bootstrap
    draws)": its n is the number of groups, ``unit`` names them."""
    g = np.asarray(groups)
    if g.ndim != 1 or g.size == 0:
        raise ValueError("groups must be a non-empty 1-D array with one group per row")
    n_boot = checks.integer(n_boot, "n_boot", minimum=2)
    codes, uniques = pd.factorize(g)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques)))
    counts = np.bincount(codes, minlength=len(uniques))
    point = statistic(np.arange(g.size))
    rng = np.random.default_rng(checks.seed(seed))
    rows = []
    for draw in tqdm(range(n_boot), desc=desc, leave=False):
        chosen = rng.integers(0, len(uniques), len(uniques))
        idx = np.concatenate([order[starts[c] : starts[c] + counts[c]] for c in chosen])
        for model, values in statistic(idx).items():
            for metric, value in values.items():
                rows.append({"seed": draw, "model": model, "metric": metric, "value": value})
    return Comparison(
        pd.DataFrame(rows),
        unit=f"{unit} ({n_boot:,} bootstrap draws)",
        method="bootstrap",
        point=point,
        groups=len(uniques),
    )


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
    print(
        f"{claim}: {word} -- difference {difference.format(spec)} "
        f"({difference.describe()}; needs > {threshold:{spec}})"
    )
    return word


def observed(claim: str, holds: bool, detail: str = "") -> bool:
    """Print whether a claim held in *this* run, where there is one run and no interval (one
    world, one model): "holds in this run" or "does NOT hold in this run", with the numbers in
    ``detail``. It replaces an ``assert`` on a finding, which would stop a reader whose run went
    the other way; returns ``holds``."""
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"observed({claim!r}) needs a bool, got {type(holds).__name__}")
    word = "holds" if holds else "does NOT hold"
    print(f"{claim}: {word} in this run" + (f" ({detail})" if detail else ""))
    return bool(holds)


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
    runs = pd.concat(frames, ignore_index=True)[["seed", "model", "metric", "value"]]
    return Comparison(runs, unit="users")


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

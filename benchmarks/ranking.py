"""Benchmark: top-10 recommendation on public data, recbook's models beside the usual libraries.

    python benchmarks/ranking.py --path DIR                 # DIR: ml-100k folder or zip
    python benchmarks/ranking.py --dataset movielens-1m --path ml-1m.zip
    python benchmarks/ranking.py --dataset online-retail --path "Online Retail.xlsx"
    python benchmarks/ranking.py --self-test                # SYNTHETIC data, no download (CI)
    python benchmarks/ranking.py --path DIR --out benchmarks/results/ranking.json

The protocol is Microsoft recommenders' MovieLens benchmark: every (user, item) interaction is
a positive (binary relevance; repeated purchases count once), each user's interactions are split
at random 75/25 (``recbook.splits.per_user_split``, one split per seed), every model ranks the
*whole* catalogue with the user's training items removed, ties broken at random
(``recbook.evaluation.full_catalogue_metrics``), and nDCG@10, precision@10, recall@10 and
MAP@10 are averaged over users with a test item. Each figure is a mean over ``--seeds`` splits
with its 95 % Student-t interval (``recbook.evaluation.compare``); ``fit_s`` is the wall time of
fitting (scoring the catalogue not included), ``cpu_s`` the process CPU time of the same.

recbook's models: popularity, EASE (``l2=200``), iALS and BPR (``benchmarks.implicit_mf``),
Bayesian MF ranked by its predicted rating (notebook 03's rating model: it learns how much a
user likes what she watched, not what she watches -- the top-k lesson), the softmax two-tower
of notebook 01 (Keras; ``--no-two-tower`` skips it; in ``--self-test`` only with
``--two-tower``), and "recbook best": EASE with ``l2`` chosen on a validation split carved from
the training part (never the test part), refitted on the whole training part; its ``fit_s``
includes the search. The item models of ``recbook.item_models`` -- EDLAE and DLAE (Steck 2020)
and RP3β (Paudel et al. 2017) -- are tuned the same way with the same budget (``len(EASE_GRID)``
configurations each, grids ``EDLAE_GRID``, ``RP3_GRID``), and "blend of the best two" adds the
two tuned item models with the best validation nDCG@10, each standardised per user, with the
weight chosen on the same validation split (``BLEND_GRID``); every tuned row's ``fit_s``
includes its searches.

Peers, when installed (``pip install -e ".[peers]"``): implicit's ALS and BPR and cornac's BPR
and BiVAE, each with the library's documented settings (cornac's with Microsoft recommenders'
benchmark settings), on the same split and the same metric code. A missing peer prints "not
installed" and the run goes on.

``--self-test`` writes a SYNTHETIC MovieLens-shaped interaction set (users choose items by a
latent taste plus popularity) in the official ml-100k layout and runs the same code on it. Its
numbers check the code path, the speed and the orderings; they say nothing about MovieLens.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbook import baselines, evaluation, item_models, mf, splits
from recbook.book import results
from recbook.columns import ITEM, RATING, USER

if __package__:  # python -m benchmarks.ranking, or imported by the tests
    from benchmarks import implicit_mf
    from benchmarks.mf import write_movielens_100k
else:  # python benchmarks/ranking.py: this folder comes first on sys.path
    import implicit_mf
    from mf import write_movielens_100k

K = 10
METRICS = ("ndcg", "precision", "recall", "map")
EASE_L2 = 200.0
EASE_GRID = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
#: EDLAE / DLAE: (dropout p, ridge l2), as many configurations as EASE_GRID. A first grid,
#: p in (0.15, 0.33, 0.5) x l2 in (20, 200), was chosen at its edge (0.5, 200) on the self-test's
#: validation splits, so it was widened (validation only, never test).
EDLAE_GRID = tuple((p, l2) for p in (0.25, 0.5, 0.75) for l2 in (50.0, 500.0))
#: RP3β: (beta, neighbours kept per item; None keeps all), as many as EASE_GRID; widened from
#: beta in (0, 0.3, 0.6) for the same reason (0.6 chosen on the self-test's validation).
RP3_GRID = tuple((beta, k) for beta in (0.2, 0.5, 0.8) for k in (100, None))
#: weight of the better model in the blend of the best two, as many as EASE_GRID.
BLEND_GRID = (0.1, 0.26, 0.42, 0.58, 0.74, 0.9)
assert len(EDLAE_GRID) == len(RP3_GRID) == len(BLEND_GRID) == len(EASE_GRID)
#: Microsoft recommenders' published figures on ML-100K with this protocol (for the printout).
PUBLISHED = {"BiVAE": 0.475, "BPR (cornac)": 0.442, "NCF": 0.396, "SAR": 0.382}

Scorer = Callable[[pd.DataFrame, int, int, int], np.ndarray]


@dataclass
class Model:
    """A named way to turn (train, n_users, n_items, seed) into a full score matrix."""

    name: str
    fit: Callable[[pd.DataFrame, int, int, int], Callable[[], np.ndarray]]
    peer: bool = False
    needs_ratings: bool = False


# ----------------------------------------------------------------------------------------------
# recbook's models


def _popularity(train, n_users, n_items, seed):
    scores = baselines.popularity_scores(train, n_users, n_items)
    return lambda: scores


def _ease(l2: float):
    def fit(train, n_users, n_items, seed):
        x = baselines.interaction_matrix(train, n_users, n_items)
        b = baselines.ease_weights(x, l2)
        return lambda: np.asarray(x @ b)

    return fit


def choose_ease_l2(
    train: pd.DataFrame, n_users: int, n_items: int, seed: int, grid=EASE_GRID
) -> tuple[float, pd.Series]:
    """EASE's ``l2`` with the best validation nDCG@10 on a per-user 75/25 split *of train*."""
    fit_part, val = splits.per_user_split(train, test_size=0.25, seed=10_000 + seed)
    x = baselines.interaction_matrix(fit_part, n_users, n_items)
    gram = np.asarray((x.T @ x).todense(), dtype=np.float64)

    def score(l2: float) -> float:
        p = np.linalg.inv(gram + l2 * np.eye(n_items))
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        s = np.asarray(x @ b)
        return evaluation.full_catalogue_metrics(s, fit_part, val, k=K, seed=seed)["ndcg"]

    return evaluation.tune(score, grid, desc="EASE l2")


def _ease_best(train, n_users, n_items, seed):
    l2, _ = choose_ease_l2(train, n_users, n_items, seed)
    return _ease(l2)(train, n_users, n_items, seed)


# item models tuned on validation carved from train, shared by their rows and the blend


@dataclass
class Tuned:
    """An item model's validation-chosen setting, its validation nDCG@10 and scores, and the
    wall and CPU seconds its search took."""

    config: object
    ndcg: float
    val_scores: np.ndarray
    val_part: pd.DataFrame
    val: pd.DataFrame
    search_s: float
    search_cpu_s: float


#: name -> (weights(x, config) -> items x items, grid)
ITEM_MODELS: dict[str, tuple[Callable[[object, object], np.ndarray], tuple]] = {
    "EASE": (lambda x, l2: baselines.ease_weights(x, l2), EASE_GRID),
    "EDLAE": (lambda x, c: item_models.edlae_weights(x, p=c[0], l2=c[1]), EDLAE_GRID),
    "DLAE": (lambda x, c: item_models.dlae_weights(x, p=c[0], l2=c[1]), EDLAE_GRID),
    "RP3beta": (lambda x, c: item_models.rp3_weights(x, beta=c[0], neighbours=c[1]), RP3_GRID),
}
_TUNED: dict[tuple, Tuned] = {}


def tune_item_model(name: str, train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> Tuned:
    """``name``'s configuration with the best nDCG@10 on a per-user 75/25 split *of train* (the
    split ``choose_ease_l2`` uses), memoised per split so the blend reuses it."""
    key = (name, seed, len(train), int(train[USER].sum()), int(train[ITEM].sum()))
    if key in _TUNED:
        return _TUNED[key]
    weights, grid = ITEM_MODELS[name]
    wall, cpu = time.perf_counter(), time.process_time()
    fit_part, val = splits.per_user_split(train, test_size=0.25, seed=10_000 + seed)
    x = baselines.interaction_matrix(fit_part, n_users, n_items)
    found: dict = {}  # only the best scores so far: one users x items matrix per model

    def score(config) -> float:
        s = np.asarray(x @ weights(x, config))
        ndcg = evaluation.full_catalogue_metrics(s, fit_part, val, k=K, seed=seed)["ndcg"]
        if not found or ndcg > found["ndcg"]:
            found.update(ndcg=ndcg, config=config, scores=s)
        return ndcg

    best, scores = evaluation.tune(score, grid, desc=f"{name} on validation")
    if found["config"] != best:  # ties: tune keeps the first best, and so did we
        raise AssertionError(f"{name}: tune chose {best}, the search kept {found['config']}")
    tuned = Tuned(
        best,
        float(scores[best]),
        found["scores"],
        fit_part,
        val,
        time.perf_counter() - wall,
        time.process_time() - cpu,
    )
    _TUNED[key] = tuned
    return tuned


def _timed(score: Callable[[], np.ndarray], *searches: Tuned) -> Callable[[], np.ndarray]:
    """``score`` carrying the seconds of the searches it reused (added to its row's fit time)."""
    score.search_s = sum(t.search_s for t in searches)  # type: ignore[attr-defined]
    score.search_cpu_s = sum(t.search_cpu_s for t in searches)  # type: ignore[attr-defined]
    return score


def _tuned_item_model(name: str):
    def fit(train, n_users, n_items, seed):
        tuned = tune_item_model(name, train, n_users, n_items, seed)
        print(f"  seed {seed}: {name} chose {tuned.config} (validation nDCG@{K} {tuned.ndcg:.4f})")
        x = baselines.interaction_matrix(train, n_users, n_items)
        s = np.asarray(x @ ITEM_MODELS[name][0](x, tuned.config))
        return _timed(lambda: s, tuned)

    return fit


def _standardised(s: np.ndarray) -> np.ndarray:
    """Each user's scores with mean 0 and sd 1, so models on different scales can be added."""
    sd = s.std(axis=1, keepdims=True)
    return (s - s.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def _blend(train, n_users, n_items, seed):
    """The two item models with the best validation nDCG@10, added with the validation-chosen
    weight."""
    tuned = {name: tune_item_model(name, train, n_users, n_items, seed) for name in ITEM_MODELS}
    a, b = sorted(tuned, key=lambda name: -tuned[name].ndcg)[:2]
    ta, tb = tuned[a], tuned[b]
    za, zb = _standardised(ta.val_scores), _standardised(tb.val_scores)
    w, _ = evaluation.tune(
        lambda w: evaluation.full_catalogue_metrics(
            w * za + (1 - w) * zb, ta.val_part, ta.val, k=K, seed=seed
        )["ndcg"],
        BLEND_GRID,
        desc="blend weight",
    )
    print(f"  seed {seed}: blend chose {w:g}·{a} + {1 - w:g}·{b}")
    x = baselines.interaction_matrix(train, n_users, n_items)
    sa = _standardised(np.asarray(x @ ITEM_MODELS[a][0](x, ta.config)))
    sb = _standardised(np.asarray(x @ ITEM_MODELS[b][0](x, tb.config)))
    s = w * sa + (1 - w) * sb
    return _timed(lambda: s, *tuned.values())


def _ials(train, n_users, n_items, seed):
    model = implicit_mf.fit_ials(train, n_users, n_items, seed=seed)
    return model.score_matrix


def _bpr(train, n_users, n_items, seed):
    model = implicit_mf.fit_bpr(train, n_users, n_items, seed=seed)
    return model.score_matrix


def _bayes_mf(train, n_users, n_items, seed):
    model = mf.fit(train, n_users, n_items, seed=seed, progress=False)
    return model.score_matrix


def _two_tower(train, n_users, n_items, seed):
    """Notebook 01's softmax retrieval model (its defaults), early-stopped on a random 10 % of
    the training pairs."""
    from recbook import models_tf as M  # imports TensorFlow quietly, then Keras
    from recbook import runtime

    keras = M.keras

    runtime.seed_everything(seed)
    fit_part, val = splits.random_split(train, test_size=0.1, seed=20_000 + seed)
    model = M.retrieval_model(n_users, n_items, 32, l2=1e-4, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(0.005),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent")],
    )
    M.fit(
        model,
        M.make_dataset(
            {USER: fit_part[USER].to_numpy()},
            fit_part[ITEM],
            batch_size=512,
            shuffle=True,
            seed=seed,
        ),
        M.make_dataset({USER: val[USER].to_numpy()}, val[ITEM], batch_size=4096),
        epochs=40,
        patience=3,
        monitor="val_xent",
        progress=False,
    )
    return lambda: M.score_all(model, n_users, n_items)


# ----------------------------------------------------------------------------------------------
# peers (optional)


THREADS = 1


def threads(n: int) -> None:
    """Use ``n`` threads everywhere (BLAS, torch, the peers), so fit times compare like with
    like; on a shared 2-core machine more threads mostly add contention."""
    global THREADS
    import torch
    from threadpoolctl import threadpool_limits

    THREADS = n
    threadpool_limits(n)
    torch.set_num_threads(n)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _implicit(kind: str):
    def fit(train, n_users, n_items, seed):
        from implicit.als import AlternatingLeastSquares
        from implicit.bpr import BayesianPersonalizedRanking

        x = baselines.interaction_matrix(train, n_users, n_items).astype(np.float32)
        cls = AlternatingLeastSquares if kind == "als" else BayesianPersonalizedRanking
        # the library's defaults
        model = cls(random_state=seed, use_gpu=False, num_threads=THREADS)
        model.fit(x, show_progress=False)
        uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return lambda: (uf @ itf.T).astype(np.float64)

    return fit


def _cornac(kind: str, bivae_epochs: int = 500):
    def fit(train, n_users, n_items, seed):
        import cornac

        triples = list(zip(train[USER].astype(str), train[ITEM].astype(str), np.ones(len(train))))
        data = cornac.data.Dataset.from_uir(triples, seed=seed)
        if kind == "bpr":  # Microsoft recommenders' cornac BPR settings
            model = cornac.models.BPR(
                k=200,
                max_iter=100,
                learning_rate=0.01,
                lambda_reg=0.001,
                num_threads=THREADS,
                seed=seed,
                verbose=False,
            )
        else:  # Microsoft recommenders' BiVAE settings
            import torch

            model = cornac.models.BiVAECF(
                k=50,
                encoder_structure=[100],
                act_fn="tanh",
                likelihood="pois",
                n_epochs=bivae_epochs,
                batch_size=128,
                learning_rate=0.001,
                seed=seed,
                use_gpu=torch.cuda.is_available(),
                verbose=False,
            )
        model.fit(data)
        users = np.array([int(u) for u in data.uid_map])
        uidx = np.array(list(data.uid_map.values()))
        items = np.array([int(i) for i in data.iid_map])
        iidx = np.array(list(data.iid_map.values()))

        def scores() -> np.ndarray:
            # items the library never saw in training cannot be recommended by it: -inf
            out = np.full((n_users, n_items), -np.inf)
            block = np.stack([np.asarray(model.score(int(u)), dtype=float) for u in uidx])
            out[np.ix_(users, items)] = block[:, iidx]
            return out

        return scores

    return fit


def models(include_two_tower: bool, ratings: bool, bivae_epochs: int) -> list[Model]:
    """recbook's rows, then the installed peers' rows."""
    out = [
        Model("popularity", _popularity),
        Model(f"EASE (l2={EASE_L2:g})", _ease(EASE_L2)),
        Model("iALS (recbook)", _ials),
        Model("BPR (recbook)", _bpr),
    ]
    if ratings:
        out.append(Model("Bayesian MF, ranked by rating", _bayes_mf, needs_ratings=True))
    if include_two_tower:
        out.append(Model("two-tower softmax (notebook 01)", _two_tower))
    out.append(Model("recbook best: EASE, l2 on validation", _ease_best))
    for name in ("EDLAE", "DLAE", "RP3beta"):
        out.append(Model(f"{name}, tuned on validation", _tuned_item_model(name)))
    out.append(Model("blend of the best two, tuned on validation", _blend))
    for module, name, fit in (
        ("implicit", "ALS (implicit)", _implicit("als")),
        ("implicit", "BPR (implicit)", _implicit("bpr")),
        ("cornac", "BPR (cornac)", _cornac("bpr")),
        ("cornac", "BiVAE (cornac)", _cornac("bivae", bivae_epochs)),
    ):
        if installed(module):
            out.append(Model(name, fit, peer=True))
        else:
            print(f"{name}: not installed (pip install -e '.[peers]')")
    return out


# ----------------------------------------------------------------------------------------------
# the protocol


def interactions(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item) pair, keeping the first event's rating when there is one."""
    cols = [c for c in (USER, ITEM, RATING) if c in events.columns]
    out = events[cols].drop_duplicates([USER, ITEM]).reset_index(drop=True)
    if RATING in out and out[RATING].isna().all():
        out = out.drop(columns=RATING)
    return out


def run_benchmark(
    data: pd.DataFrame,
    n_users: int,
    n_items: int,
    model_list: list[Model],
    seeds: tuple[int, ...] = (0, 1, 2),
    test_size: float = 0.25,
) -> tuple[evaluation.Comparison, dict[str, str]]:
    """Every model on the same per-user split for each seed; returns the comparison and the
    models that failed (a peer's error never stops the run)."""
    if n_items <= K:
        raise ValueError(f"a catalogue of {n_items} items is too small to rank a top-{K}")
    failed: dict[str, str] = {}
    has_ratings = RATING in data.columns

    def run(seed: int) -> dict[str, dict[str, float]]:
        train, test = splits.per_user_split(data, test_size=test_size, seed=seed)
        out = {}
        for m in model_list:
            if m.name in failed or (m.needs_ratings and not has_ratings):
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    score = m.fit(train, n_users, n_items, seed)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                # searches done earlier for another row and reused count here too
                wall += getattr(score, "search_s", 0.0)
                cpu += getattr(score, "search_cpu_s", 0.0)
                scores = score()
            except Exception as exc:  # noqa: BLE001
                if not m.peer:
                    raise
                failed[m.name] = f"{type(exc).__name__}: {exc}"
                print(f"{m.name}: failed ({failed[m.name]}); left out")
                continue
            found = evaluation.full_catalogue_metrics(scores, train, test, k=K, seed=seed)
            out[m.name] = {f"{name}@{K}": found[name] for name in METRICS}
            out[m.name].update(fit_s=wall, cpu_s=cpu)
            print(f"  seed {seed}: {m.name}: nDCG@{K} {found['ndcg']:.4f}, fit {wall:.2f} s")
        _TUNED.clear()
        return out

    comparison = evaluation.compare(run, seeds=seeds, desc="split seeds")
    return comparison, failed


def result_rows(
    comparison: evaluation.Comparison, model_list: list[Model], dataset: str, split: str
) -> list[dict]:
    """One JSON row per model: mean and 95 % interval of every metric, mean fit seconds."""
    peers = {m.name: m.peer for m in model_list}
    rows = []
    for name in comparison.models:
        row = {"model": name, "dataset": dataset, "split": split}
        for metric in comparison.metrics:
            iv = comparison.interval(name, metric)
            row[metric] = round(iv.mean, 4 if metric.endswith(f"@{K}") else 3)
            if metric.endswith(f"@{K}"):
                row[f"{metric}_lo"], row[f"{metric}_hi"] = round(iv.lo, 4), round(iv.hi, 4)
        row["n_seeds"] = len(comparison.seeds)
        row["peer"] = peers.get(name, False)
        rows.append(row)
    return rows


def print_table(comparison: evaluation.Comparison) -> None:
    table = comparison.summary(metrics=[f"{m}@{K}" for m in METRICS], spec=".4f")
    table["fit s"] = [f"{comparison.interval(m, 'fit_s').mean:.2f}" for m in table.index]
    table["CPU s"] = [f"{comparison.interval(m, 'cpu_s').mean:.2f}" for m in table.index]
    with pd.option_context("display.width", 220, "display.max_colwidth", 40):
        print(table.to_string())


# ----------------------------------------------------------------------------------------------
# synthetic data for --self-test


def synthetic_interactions(
    seed: int = 0,
    n_users: int = 600,
    n_items: int = 900,
    n_interactions: int = 40_000,
    rank: int = 8,
    taste: float = 1.5,
) -> pd.DataFrame:
    """SYNTHETIC implicit data shaped like MovieLens: long-tailed users (each >= 20 items) and
    items; user ``u`` picks items without replacement with probability proportional to
    ``exp(popularity_i + taste * p_u . q_i)``; a 1-5 rating grows with the same affinity."""
    rng = np.random.default_rng(seed)
    extra = rng.lognormal(0.0, 1.0, n_users)
    activity = 20 + np.floor(extra * (n_interactions - 20 * n_users) / extra.sum()).astype(int)
    activity = np.minimum(activity, n_items // 2)
    pop = rng.normal(0.0, 1.0, n_items)
    p = rng.normal(0.0, 1.0, (n_users, rank)) / np.sqrt(rank)
    q = rng.normal(0.0, 1.0, (n_items, rank))
    affinity = p @ q.T
    keys = pop[None, :] + taste * affinity + rng.gumbel(size=(n_users, n_items))
    order = np.argsort(-keys, axis=1)
    chosen = np.arange(n_items)[None, :] < activity[:, None]
    u = np.repeat(np.arange(n_users), activity)
    i = order[chosen]
    latent = affinity[u, i] + 0.3 * pop[i] + rng.normal(0.0, 0.8, len(u))
    stars = 1 + np.searchsorted(np.quantile(latent, [0.06, 0.17, 0.44, 0.79]), latent)
    ts = 874_724_710 + rng.integers(0, 18_000_000, len(u))
    return pd.DataFrame({USER: u, ITEM: i, RATING: stars, "timestamp": ts})


def _load_synthetic(seed: int):
    from recbook.datasets import UnverifiedDataWarning, load_movielens

    df = synthetic_interactions(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_movielens_100k(df, os.path.join(tmp, "ml-100k"), seed=seed)
        with warnings.catch_warnings():  # the synthetic copy is unverified, by design
            warnings.simplefilter("ignore", UnverifiedDataWarning)
            return load_movielens("100k", path=folder)


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """One plain line per model and seed instead of nested bars (readable when piped): the
    bars of ``recbook.evaluation``'s loops are off while the benchmark runs."""
    bars = evaluation.tqdm
    evaluation.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        return _main(argv)
    finally:
        evaluation.tqdm = bars


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", help="the dataset's official zip, folder or file")
    parser.add_argument(
        "--dataset",
        default="movielens-100k",
        choices=("movielens-100k", "movielens-1m", "online-retail"),
    )
    parser.add_argument("--self-test", action="store_true", help="SYNTHETIC data, no download")
    parser.add_argument("--seeds", type=int, default=3, help="split seeds 0..N-1 (default 3)")
    parser.add_argument(
        "--two-tower",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include notebook 01's Keras two-tower (default: with --path yes, --self-test no)",
    )
    parser.add_argument("--no-peers", action="store_true", help="recbook's models only")
    parser.add_argument("--bivae-epochs", type=int, default=500, help="cornac BiVAE epochs")
    parser.add_argument("--out", help="write the rows as JSON here (benchmarks/results/...)")
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS, torch and peer threads (default 1)"
    )
    args = parser.parse_args(argv)
    threads(args.threads)
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 to give an interval")

    from recbook import datasets

    if args.self_test:
        ds = _load_synthetic(0)
        label = "SYNTHETIC (self-test)"
        two_tower, bivae_epochs = bool(args.two_tower), min(args.bivae_epochs, 50)
        print("SYNTHETIC data (not MovieLens): checks the code path, the speed and the orderings")
    elif args.path:
        ds = datasets.load(args.dataset, path=args.path)
        label = args.dataset
        two_tower, bivae_epochs = args.two_tower is not False, args.bivae_epochs
    else:
        parser.error("give --path (the official files) or --self-test")
    data = interactions(ds.events)
    model_list = models(two_tower, RATING in data.columns, bivae_epochs)
    if args.no_peers:
        model_list = [m for m in model_list if not m.peer]
    seeds = tuple(range(args.seeds))
    split = f"per-user random 75/25, seeds {seeds[0]}-{seeds[-1]}"
    print(
        f"{label}: {len(data)} interactions, {ds.n_users} users, {ds.n_items} items; {split}; "
        f"top-{K} over the full catalogue, training items removed"
    )
    comparison, failed = run_benchmark(data, ds.n_users, ds.n_items, model_list, seeds)
    print_table(comparison)
    if args.dataset == "movielens-100k" and not args.self_test:
        print("published (Microsoft recommenders, same protocol), nDCG@10:", PUBLISHED)
    if args.out:
        rows = result_rows(comparison, model_list, label, split)
        notes = "; ".join(f"{k} failed: {v}" for k, v in failed.items())
        path = results.write(args.out, "ranking", rows, notes=notes, argv=sys.argv)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

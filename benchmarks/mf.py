"""Benchmark: notebook 03's default matrix factorisation on MovieLens-100K's official u1 split.

    python benchmarks/mf.py --path DIR        # DIR: extracted ml-100k folder, or the zip
    python benchmarks/mf.py --self-test       # SYNTHETIC MovieLens-shaped data, no download
    python benchmarks/mf.py --path DIR --all-folds --out benchmarks/results/mf.json

Trains on ``u1.base``, evaluates on ``u1.test`` (via ``recbook.datasets.load_movielens``) with
``recbook.mf.DEFAULTS`` -- the notebook's default model and settings -- and prints
``RMSE 0.XXXX fit X.XX s`` plus the global-mean and user + item bias baselines, and -- when
the ``[peers]`` extra is installed -- Surprise's SVD and SVD++ at the library's defaults on the
same split (a missing peer prints "not installed"). ``--all-folds`` runs u1..u5 and prints each
model's mean ± sd; ``--out FILE`` writes the rows as JSON (:mod:`recbook.book.results`).
Goal on the real u1 split: RMSE <= 0.895 with fit <= 5 s on 2 CPU cores.

``--self-test`` generates a MovieLens-shaped synthetic set (943 users, 1682 items, 100,000 1-5
ratings, every user >= 20 ratings, long-tailed item popularity, the real rating histogram) from a
known low-rank model, so it can also print that model's noise floor. Its RMSEs are *synthetic*
and say nothing about the real numbers; they check the code path, the speed and that the
defaults do not overfit a data set of this shape.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from recbook import mf

# a few of MovieLens-100K's occupations, for the synthetic u.user
OCCUPATIONS = ("administrator", "artist", "educator", "engineer", "other", "programmer", "student")
# share of 1..5 stars in MovieLens-100K (u.data): 6.1 %, 11.4 %, 27.1 %, 34.2 %, 21.2 %
ML100K_STARS = np.array([0.0611, 0.1137, 0.2715, 0.3417, 0.2120])


def synthetic_movielens(
    seed: int = 0,
    n_users: int = 943,
    n_items: int = 1682,
    n_ratings: int = 100_000,
    rank: int = 8,
    noise_sd: float = 0.8,
    interaction_sd: float = 0.6,
) -> tuple[pd.DataFrame, float]:
    """SYNTHETIC ratings shaped like MovieLens-100K, and the RMSE of the true expected rating
    (the floor no model can beat on average).

    Latent score ``b_u + c_i + p_u.q_i + noise`` is cut into 1..5 stars at the quantiles of the
    real histogram; the floor is computed against the *expected* star under that noise.
    """
    rng = np.random.default_rng(seed)
    # user activity: every user >= 20, heavy right tail (ML-100K: median ~65, max 737)
    extra = rng.lognormal(3.4, 1.1, n_users)
    activity = 20 + np.floor(extra * (n_ratings - 20 * n_users) / extra.sum()).astype(int)
    activity[np.argsort(-extra)[: n_ratings - activity.sum()]] += 1
    # cap the heaviest users (ML-100K's maximum is 737) and hand their surplus to the others
    cap = min(737, n_items // 2)
    while activity.max() > cap:
        surplus = int(np.maximum(activity - cap, 0).sum())
        activity = np.minimum(activity, cap)
        room = np.flatnonzero(activity < cap)
        np.add.at(activity, rng.choice(room, surplus), 1)
    # item popularity: log-normal exposure (a few blockbusters, a long tail of rarely rated
    # films); popular films are also rated higher
    log_pop = rng.normal(0.0, 1.3, n_items)
    users, items = [], []
    for user, k in enumerate(activity):
        keys = log_pop + rng.gumbel(size=n_items)  # popularity-weighted sampling w/o replacement
        chosen = np.argpartition(-keys, k - 1)[:k]
        users.append(np.full(k, user))
        items.append(chosen)
    u = np.concatenate(users)
    i = np.concatenate(items)
    b_u = rng.normal(0, 0.45, n_users)
    c_i = 0.15 * (log_pop - log_pop.mean()) + rng.normal(0, 0.4, n_items)
    # interaction p_u.q_i with a decaying spectrum and total sd `interaction_sd`
    weight = np.linspace(1.0, 0.2, rank)
    scale = np.sqrt(weight * interaction_sd / np.sqrt((weight**2).sum()))
    P = rng.normal(0, 1, (n_users, rank)) * scale
    Q = rng.normal(0, 1, (n_items, rank)) * scale
    signal = b_u[u] + c_i[i] + np.einsum("nk,nk->n", P[u], Q[i])
    latent = signal + rng.normal(0, noise_sd, len(u))
    cuts = np.quantile(latent, np.cumsum(ML100K_STARS)[:-1])
    stars = 1 + np.searchsorted(cuts, latent)
    # expected star given the signal: sum over thresholds of P(latent > cut)
    from scipy.stats import norm

    expected = 1 + norm.sf((cuts[None, :] - signal[:, None]) / noise_sd).sum(1)
    floor = float(np.sqrt(np.mean((stars - expected) ** 2)))
    ts = 874_724_710 + rng.integers(0, 18_000_000, len(u))
    df = pd.DataFrame({"user_id": u, "item_id": i, "rating": stars, "timestamp": ts})
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True), floor


def write_movielens_100k(df: pd.DataFrame, folder: str, seed: int = 0) -> str:
    """Write ratings in the official ml-100k layout (u.data; u1..u5.base/test: five disjoint
    random 20 % test folds; u.item with random genres, u.user with random age, gender,
    occupation and zip code), 1-based ids, so
    ``load_movielens(path=folder)`` reads them exactly as it reads the real files."""
    os.makedirs(folder, exist_ok=True)
    out = df.assign(user_id=df["user_id"] + 1, item_id=df["item_id"] + 1)
    cols = ["user_id", "item_id", "rating", "timestamp"]

    def write(frame: pd.DataFrame, name: str) -> None:
        frame[cols].to_csv(os.path.join(folder, name), sep="\t", header=False, index=False)

    write(out, "u.data")
    # five disjoint 20 % test folds like u1..u5 (u1's is the same sample as before)
    first = out.sample(frac=0.2, random_state=seed)
    rest = out.drop(first.index).sample(frac=1.0, random_state=seed + 1)
    folds = [first.index] + [rest.index[k::4] for k in range(4)]
    for k, fold in enumerate(folds, start=1):
        write(out.drop(fold).sort_values(["user_id", "item_id"]), f"u{k}.base")
        write(out.loc[fold].sort_values(["user_id", "item_id"]), f"u{k}.test")
    n_users, n_items = int(out["user_id"].max()), int(out["item_id"].max())
    rng = np.random.default_rng(seed)
    with open(os.path.join(folder, "u.item"), "w", encoding="latin-1") as f:
        for item in range(1, n_items + 1):
            flags = np.zeros(19, dtype=int)  # one or two of the 18 named genres
            flags[1 + rng.choice(18, size=rng.integers(1, 3), replace=False)] = 1
            day = 1 + item % 28
            f.write(f"{item}|Synthetic film {item} (1995)|{day:02d}-Jan-1995||")
            f.write(f"http://example.org/{item}|" + "|".join(map(str, flags)) + "\n")
    with open(os.path.join(folder, "u.user"), "w", encoding="latin-1") as f:
        for user in range(1, n_users + 1):
            age, gender = int(rng.integers(15, 70)), "MF"[int(rng.integers(0, 2))]
            job = OCCUPATIONS[int(rng.integers(0, len(OCCUPATIONS)))]
            f.write(f"{user}|{age}|{gender}|{job}|{int(rng.integers(0, 100_000)):05d}\n")
    return folder


def rmse(model, test: pd.DataFrame) -> float:
    return float(np.sqrt(np.mean((model.predict_df(test) - test["rating"].to_numpy()) ** 2)))


class SurpriseModel:
    """A fitted Surprise algorithm behind recbook's ``predict_df``."""

    def __init__(self, algo):
        self.algo = algo

    def predict_df(self, df: pd.DataFrame) -> np.ndarray:
        return np.array(
            [self.algo.predict(int(u), int(i)).est for u, i in zip(df["user_id"], df["item_id"])]
        )


def _surprise(kind: str):
    def fit(train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> SurpriseModel:
        from surprise import SVD, Dataset, Reader, SVDpp

        data = Dataset.load_from_df(
            train[["user_id", "item_id", "rating"]], Reader(rating_scale=(1, 5))
        )
        algo = (SVD if kind == "svd" else SVDpp)(random_state=seed)  # the library's defaults
        algo.fit(data.build_full_trainset())
        return SurpriseModel(algo)

    return fit


def _recbook(name: str | None):
    def fit(train: pd.DataFrame, n_users: int, n_items: int, seed: int) -> mf.MFModel:
        return mf.fit(train, n_users, n_items, model=name, progress=False)

    return fit


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def models(peers: bool = True) -> list[tuple[str, bool, object]]:
    """(name, is_peer, fit) for the baselines, the default model and the installed peers."""
    out: list[tuple[str, bool, object]] = [
        ("global mean", False, _recbook("mean")),
        ("user + item biases", False, _recbook("biases")),
        (f"recbook default ({mf.DEFAULTS['model']})", False, _recbook(None)),
    ]
    if not peers:
        return out
    if not installed("surprise"):
        print("Surprise SVD, SVD++: not installed (pip install -e '.[peers]')")
        return out
    return out + [
        ("SVD (Surprise)", True, _surprise("svd")),
        ("SVD++ (Surprise)", True, _surprise("svdpp")),
    ]


def run(
    train: pd.DataFrame,
    test: pd.DataFrame,
    n_users: int,
    n_items: int,
    label: str,
    model_list: list | None = None,
) -> dict[str, dict[str, float]]:
    """Fit every model on one split; print one line each; return ``{model: {rmse, fit_s,
    cpu_s}}``. A peer that fails is reported and left out; recbook's own errors propagate."""
    print(
        f"{label}: {len(train)} train / {len(test)} test ratings, {n_users} users, {n_items} items"
    )
    print(f"default model: {mf.DEFAULTS}")
    found: dict[str, dict[str, float]] = {}
    for name, peer, fit in model_list if model_list is not None else models():
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            model = fit(train, n_users, n_items, 0)
        except Exception as exc:  # noqa: BLE001
            if not peer:
                raise
            print(f"  {name}: failed ({type(exc).__name__}: {exc}); left out")
            continue
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        score = rmse(model, test)
        found[name] = {"rmse": score, "fit_s": wall, "cpu_s": cpu}
        if name.startswith("recbook default"):
            print(f"RMSE {score:.4f} fit {wall:.2f} s  ({model.method}; {cpu:.2f} s of CPU time)")
        elif peer:
            print(f"  peer {name:<24s} RMSE {score:.4f} fit {wall:.2f} s ({cpu:.2f} s CPU)")
        else:
            print(f"  baseline {name:<20s} RMSE {score:.4f} fit {wall:.2f} s")
    return found


def result_rows(
    per_split: dict[str, dict[str, dict[str, float]]], peers: set[str], dataset: str
) -> list[dict]:
    """One JSON row per model: RMSE and fit seconds, mean and sd over the splits run."""
    names = list(dict.fromkeys(m for found in per_split.values() for m in found))
    split = ", ".join(per_split) if len(per_split) > 1 else next(iter(per_split))
    rows = []
    for name in names:
        vals = [found[name] for found in per_split.values() if name in found]
        row = {"model": name, "dataset": dataset, "split": split}
        for key in ("rmse", "fit_s", "cpu_s"):
            v = np.array([x[key] for x in vals])
            row[key] = round(float(v.mean()), 4 if key == "rmse" else 2)
            if len(v) > 1:
                row[f"{key}_sd"] = round(float(v.std(ddof=1)), 4 if key == "rmse" else 2)
        row["n_splits"] = len(vals)
        row["peer"] = name in peers
        rows.append(row)
    return rows


def print_folds(rows: list[dict]) -> None:
    print("mean ± sd over the folds:")
    for r in rows:
        print(
            f"  {r['model']:<28s} RMSE {r['rmse']:.4f} ± {r.get('rmse_sd', 0):.4f}  "
            f"fit {r['fit_s']:.2f} ± {r.get('fit_s_sd', 0):.2f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", help="extracted ml-100k folder or ml-100k.zip")
    parser.add_argument("--split", default="u1", help="official split name (default: u1)")
    parser.add_argument("--all-folds", action="store_true", help="u1..u5: mean ± sd")
    parser.add_argument("--self-test", action="store_true", help="SYNTHETIC MovieLens-shaped data")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--no-peers", action="store_true", help="recbook's models only")
    parser.add_argument("--out", help="write the rows as JSON here (benchmarks/results/...)")
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (default 1: the solves are tiny)"
    )
    args = parser.parse_args(argv)
    threadpool_limits(args.threads)
    from recbook.datasets import UnverifiedDataWarning, load_movielens

    split_names = [f"u{k}" for k in range(1, 6)] if args.all_folds else [args.split]
    model_list = models(peers=not args.no_peers)
    peers = {name for name, peer, _ in model_list if peer}
    per_split: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.self_test:
            df, floor = synthetic_movielens(args.seed)
            print(f"SYNTHETIC data (not MovieLens); noise floor of the generator: RMSE {floor:.4f}")
            path = write_movielens_100k(df, os.path.join(tmp, "ml-100k"), seed=args.seed)
            dataset = "SYNTHETIC MovieLens-shaped (self-test)"
        elif args.path:
            path, dataset = args.path, "movielens-100k"
        else:
            parser.error("give --path DIR (the ml-100k folder or zip) or --self-test")
        for split in split_names:
            with warnings.catch_warnings():
                if args.self_test:  # the synthetic copy is unverified, by design
                    warnings.simplefilter("ignore", UnverifiedDataWarning)
                ds = load_movielens("100k", split=split, path=path)
            if ds.train is None or ds.test is None:
                raise SystemExit(f"load_movielens returned no official {split!r} train/test split")
            label = f"{dataset} {split}"
            per_split[split] = run(ds.train, ds.test, ds.n_users, ds.n_items, label, model_list)
    rows = result_rows(per_split, peers, dataset)
    if args.all_folds:
        print_folds(rows)
    if args.out:
        from recbook.book import results

        notes = f"generator noise floor RMSE {floor:.4f}" if args.self_test else ""
        print(f"wrote {results.write(args.out, 'mf', rows, notes=notes, argv=sys.argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

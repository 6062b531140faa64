"""Benchmark: notebook 03's default matrix factorisation on MovieLens-100K's official u1 split.

    python benchmarks/mf.py --path DIR        # DIR: extracted ml-100k folder, or the zip
    python benchmarks/mf.py --self-test       # SYNTHETIC MovieLens-shaped data, no download

Trains on ``u1.base``, evaluates on ``u1.test`` (via ``recbook.datasets.load_movielens``) with
``recbook.mf.DEFAULTS`` -- the notebook's default model and settings -- and prints
``RMSE 0.XXXX fit X.XX s`` plus the global-mean and user + item bias baselines.
Goal on the real u1 split: RMSE <= 0.915 with fit <= 5 s on 2 CPU cores.

``--self-test`` generates a MovieLens-shaped synthetic set (943 users, 1682 items, 100,000 1-5
ratings, every user >= 20 ratings, long-tailed item popularity, the real rating histogram) from a
known low-rank model, so it can also print that model's noise floor. Its RMSEs are *synthetic*
and say nothing about the real numbers; they check the code path, the speed and that the
defaults do not overfit a data set of this shape.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from recbook import mf  # noqa: E402

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
    cap = 737
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
    """Write ratings in the official ml-100k layout (u.data, u1.base/u1.test split at random
    80/20, minimal u.item / u.user), 1-based ids, so ``load_movielens(path=folder)`` reads them
    exactly as it reads the real files."""
    os.makedirs(folder, exist_ok=True)
    out = df.assign(user_id=df["user_id"] + 1, item_id=df["item_id"] + 1)
    cols = ["user_id", "item_id", "rating", "timestamp"]

    def write(frame: pd.DataFrame, name: str) -> None:
        frame[cols].to_csv(os.path.join(folder, name), sep="\t", header=False, index=False)

    write(out, "u.data")
    test = out.sample(frac=0.2, random_state=seed)
    write(out.drop(test.index).sort_values(["user_id", "item_id"]), "u1.base")
    write(test.sort_values(["user_id", "item_id"]), "u1.test")
    n_users, n_items = int(out["user_id"].max()), int(out["item_id"].max())
    genre_flags = "|".join(["1"] + ["0"] * 18)  # the 19 genre flags: all "unknown"
    with open(os.path.join(folder, "u.item"), "w", encoding="latin-1") as f:
        for item in range(1, n_items + 1):
            f.write(f"{item}|Synthetic film {item} (1995)|01-Jan-1995||http://example.org/{item}|")
            f.write(genre_flags + "\n")
    with open(os.path.join(folder, "u.user"), "w", encoding="latin-1") as f:
        for user in range(1, n_users + 1):
            f.write(f"{user}|30|M|other|00000\n")
    return folder


def rmse(model: mf.MFModel, test: pd.DataFrame) -> float:
    return float(np.sqrt(np.mean((model.predict_df(test) - test["rating"].to_numpy()) ** 2)))


def run(train: pd.DataFrame, test: pd.DataFrame, n_users: int, n_items: int, label: str) -> float:
    """Fit the baselines and the default model; print one line each; return the model's RMSE."""
    print(
        f"{label}: {len(train)} train / {len(test)} test ratings, {n_users} users, {n_items} items"
    )
    print(f"default model: {mf.DEFAULTS}")
    for name in ("mean", "biases"):
        t0 = time.perf_counter()
        base = mf.fit(train, n_users, n_items, model=name, progress=False)
        seconds = time.perf_counter() - t0
        print(f"  baseline {base.method:<22s} RMSE {rmse(base, test):.4f} fit {seconds:.2f} s")
    wall, cpu = time.perf_counter(), time.process_time()
    model = mf.fit(train, n_users, n_items, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    score = rmse(model, test)
    print(f"RMSE {score:.4f} fit {wall:.2f} s  ({model.method}; {cpu:.2f} s of CPU time)")
    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", help="extracted ml-100k folder or ml-100k.zip")
    parser.add_argument("--split", default="u1", help="official split name (default: u1)")
    parser.add_argument("--self-test", action="store_true", help="SYNTHETIC MovieLens-shaped data")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (default 1: the solves are tiny)"
    )
    args = parser.parse_args(argv)
    threadpool_limits(args.threads)
    from recbook.datasets import UnverifiedDataWarning, load_movielens

    if args.self_test:
        df, floor = synthetic_movielens(args.seed)
        print(f"SYNTHETIC data (not MovieLens); noise floor of the generator: RMSE {floor:.4f}")
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_movielens_100k(df, os.path.join(tmp, "ml-100k"), seed=args.seed)
            with warnings.catch_warnings():  # the synthetic copy is unverified, by design
                warnings.simplefilter("ignore", UnverifiedDataWarning)
                ds = load_movielens("100k", split="u1", path=folder)
        run(
            ds.train, ds.test, ds.n_users, ds.n_items, "SYNTHETIC MovieLens-shaped, random 80/20 u1"
        )
        return 0
    if not args.path:
        parser.error("give --path DIR (the ml-100k folder or zip) or --self-test")
    ds = load_movielens("100k", split=args.split, path=args.path)
    if ds.train is None or ds.test is None:
        raise SystemExit(f"load_movielens returned no official {args.split!r} train/test split")
    run(ds.train, ds.test, ds.n_users, ds.n_items, f"MovieLens-100K {args.split}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (recbook)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Matrix factorisation: the article's example, checked, and MF that works
#
# **Article.** "improving UX with large models" (`002_5cfa0efa0575e5ed.txt`): §4.1–§4.2 the model
# $R = UV^\top$, §4.3 a worked toy example, §5.2 a numpy listing, §5.3 its explanation and §5.4 its
# printed output (`RMSE: 0.8374534175374184` and ten recommended item ids).
#
# **What you will learn**
#
# 1. to recompute every number of the toy example, and why the printed factors do not produce it;
# 2. what the §5.2 listing does when run: a syntax error first, and after the smallest fix, shape
#    errors, a split that puts different *people* in train and test, missing ratings treated as 0,
#    and a "recommendation" that cannot return ten items;
# 3. matrix factorisation done right, three ways in numpy (SGD on the observed ratings, ALS-WR
#    with closed-form updates, Bayesian MF by Gibbs sampling) and once in PyTorch with the shared
#    fit loop, against the global-mean and bias baselines and the shop's oracle row: every
#    setting chosen on a separate development world with the same budget for every model, the
#    verdicts decided over fresh shop worlds with 95 % intervals;
# 4. how rank and regularisation move the error, top-k lists from the factors, and what each
#    method costs per epoch on CPU (and GPU when there is one).
#
# **Run time.** About a minute at the defaults (the runner's measured wall time on 2 idle CPU cores is in the README's notebook table);
# the numpy models dominate. A GPU changes little: only the small PyTorch model uses it.
# `benchmarks/mf.py` runs the default model on MovieLens-100K's official `u1` split.

# %%
import re
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

import recbook
from recbook import (
    baselines,
    datasets,
    evaluation,
    metrics,
    mf,
    models_torch,
    runtime,
    splits,
    training,
)

# %% tags=["parameters"]
DATASET = "shop"  # or "movielens-100k" (official u1 split; downloaded once)
DATA_PATH = None  # local copy (zip or folder) of the public data, if it cannot be downloaded
SEED = 0  # the first evaluation world (shop) or training seed (public data): replicates use SEED, SEED + 1, ...
DEV_SEED = (
    1000  # the development world: settings are chosen on its validation data, never evaluated there
)
SHOP_REGIME = "matched"  # how the shop is generated: one of recbook.datasets.shop.REGIMES ("matched", "misspecified")
DEVICE = "auto"  # torch device for the PyTorch model: "auto" picks cuda, then mps, then cpu
THREADS = 1  # BLAS and torch threads; these models are small, one thread is fastest on a busy CPU
RANK = 10  # the default model (recbook.mf.DEFAULTS): Bayesian MF, rank 10,
BURN_IN = 20  # 20 discarded sweeps,
SAMPLES = 100  # 100 averaged sweeps (benchmarks/mf.py uses exactly these)
TEST_SHARE = 0.2  # share of each world's ratings held out as its test set
VAL_FRACTION = 0.1  # validation ratings carved out of the development training part
# the tuning budget: every tuned model tries 6 settings on the same validation ratings
BIAS_PENALTIES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)  # the biases' damping
FACTOR_RANKS = (2, 10)  # ranks tried by SGD, ALS-WR and PyTorch, each with 3 penalties:
SGD_PENALTIES = (0.05, 0.1, 0.2)
ALS_PENALTIES = (0.1, 0.2, 0.4)
TORCH_DECAYS = (1e-4, 3e-4, 1e-3)
SVD_RANKS = (2, 5, 10, 20)  # top-k models: PureSVD's rank and EASE's penalty, 4 settings each
REGS = (0.05, 0.1, 0.2, 0.4, 0.8)  # ALS-WR penalties and ranks of the landscape plot (6.3)
RANKS = (1, 2, 5, 10, 20)
EPOCHS = 60  # upper limit for SGD / PyTorch; early stopping ends them sooner
PATIENCE = 3
LISTING_USERS = 300  # users kept when running the article's dense listing (1000 full passes)
TOP_K = 10
SEEDS = 3  # evaluation replicates: shop worlds SEED, SEED + 1, ... (public data: random splits)

# %%
dev = runtime.start(DEVICE, SEED, threads=THREADS)

# %% [markdown]
# ## 1. What the article says
#
# §4.1 writes the user–item rating matrix as a product of a user-feature and an item-feature
# matrix, and §4.2 reads one entry off it:
#
# $$R = U V^\top, \qquad r_{ij} = u_i^\top v_j .$$
#
# §4.3 applies this to four ratings — $(1, 100, 5)$, $(1, 200, 4)$, $(2, 100, 3)$, $(3, 200, 5)$ —
# which it "normalises" to $1, 0.8, 0.6, 1$, then prints
# $U = \begin{bmatrix}0.5&0.4\\0.6&0.5\\0.7&0.6\end{bmatrix}$ and
# $V = \begin{bmatrix}0.4&0.5&0.6\\0.5&0.6&0.7\end{bmatrix}$ and three predictions,
# $0.5\cdot0.4+0.4\cdot0.5 = 0.3$, $0.6\cdot0.5+0.5\cdot0.6=0.55$ and $0.7\cdot0.4+0.6\cdot0.7=0.78$.
#
# §5.2 implements it in numpy: `MinMaxScaler` on the user × item pivot table with missing ratings
# filled by 0, `train_test_split(R, test_size=0.2, random_state=42)`, 1000 update iterations of
# `U` and `V` (rank `n_components=10`, `regularization=0.01`), an RMSE, and a recommendation by
# `cosine_similarity` of the mean user and item profiles. §5.4 reports `RMSE: 0.8374534175374184`.
#
# What a working model fits instead (Koren, Bell & Volinsky 2009) is the biased factorisation on
# the **observed** ratings $\mathcal{O}$ only:
#
# $$\hat r_{ui} = \mu + b_u + c_i + p_u^\top q_i, \qquad
# \min \sum_{(u,i)\in\mathcal{O}} (r_{ui}-\hat r_{ui})^2
#   + \lambda\big(\lVert p_u\rVert^2 + \lVert q_i\rVert^2 + b_u^2 + c_i^2\big).$$

# %% [markdown]
# ## 2. Reproduced as written: the §4.3 toy example
#
# ### 2.1 Which "normalisation" gives 1, 0.8, 0.6, 1?
#
# Four candidates: dividing by the top of the scale; min–max over the four ratings; min–max per
# item over the observed ratings; and what the §5.2 listing does — `MinMaxScaler` (per column) on
# the pivot table in which the missing ratings are 0.

# %%
# NBVAL_CHECK_OUTPUT
toy = pd.DataFrame(
    {"user_id": [1, 1, 2, 3], "item_id": [100, 200, 100, 200], "rating": [5, 4, 3, 5]}
)
claimed_scaled = np.array([1.0, 0.8, 0.6, 1.0])
r = toy["rating"].to_numpy(dtype=float)
pivot = toy.pivot(index="user_id", columns="item_id", values="rating").fillna(0)
scaled_pivot = pd.DataFrame(
    MinMaxScaler().fit_transform(pivot.values), index=pivot.index, columns=pivot.columns
)
by_item = toy.groupby("item_id")["rating"]
candidates = {
    "r / 5": r / 5,
    "min-max over all ratings": (r - r.min()) / (r.max() - r.min()),
    "min-max per item, observed only": (
        (toy["rating"] - by_item.transform("min"))
        / (by_item.transform("max") - by_item.transform("min"))
    ).to_numpy(),
    "MinMaxScaler on zero-filled pivot (§5.2)": scaled_pivot.values[
        pivot.index.get_indexer(toy["user_id"]), pivot.columns.get_indexer(toy["item_id"])
    ],
}
scaling = pd.DataFrame(candidates).round(3)
scaling.insert(0, "claimed", claimed_scaled)
scaling.index = [f"user {a}, item {b}" for a, b in zip(toy["user_id"], toy["item_id"])]
print(scaling.T.to_string())
print()
print({name: bool(np.allclose(v, claimed_scaled)) for name, v in candidates.items()})

# %% [markdown]
# Two scalings give the article's numbers: $r/5$, and the listing's own `MinMaxScaler` on the
# zero-filled pivot — because every item has a user who did not rate it, each column's minimum is
# the fill value 0 and its maximum is 5, so min–max becomes $r/5$. A real min–max of the ratings
# gives 1, 0.5, 0, 1. The agreement is an accident of the zeros: the same code scales an item that
# *everyone* rated differently from one that somebody skipped (shown on real data in §3).
#
# ### 2.2 The printed factors and the three predictions

# %%
# NBVAL_CHECK_OUTPUT
U_toy = np.array([[0.5, 0.4], [0.6, 0.5], [0.7, 0.6]])
V_printed = np.array([[0.4, 0.5, 0.6], [0.5, 0.6, 0.7]])
print("U:", U_toy.shape, " V as printed:", V_printed.shape, " U @ V ->", (U_toy @ V_printed).shape)
print("the toy has", toy["user_id"].nunique(), "users and", toy["item_id"].nunique(), "items")
written = {  # the three expressions exactly as §4.3 writes them, and the value it prints
    "0.5*0.4 + 0.4*0.5": (0.5 * 0.4 + 0.4 * 0.5, 0.3),
    "0.6*0.5 + 0.5*0.6": (0.6 * 0.5 + 0.5 * 0.6, 0.55),
    "0.7*0.4 + 0.6*0.7": (0.7 * 0.4 + 0.6 * 0.7, 0.78),
}
arith = pd.DataFrame(
    [(expr, claimed, round(value, 4)) for expr, (value, claimed) in written.items()],
    columns=["expression in §4.3", "claimed", "recomputed"],
)
arith["confirmed"] = np.isclose(arith["claimed"], arith["recomputed"])
print(arith.to_string(index=False))
print()
print("U @ V (every user x every column of V):")
print(
    pd.DataFrame(
        U_toy @ V_printed, index=["user 1", "user 2", "user 3"], columns=["v1", "v2", "v3"]
    )
    .round(2)
    .to_string()
)

# %% [markdown]
# None of the three sums is right (0.4, 0.6 and 0.7, not 0.3, 0.55 and 0.78), and the third mixes
# the first entry of column 1 of $V$ with the second entry of column 3. $V$ has **three** columns
# although the table has two items (100 and 200) — and the text says 100 users and 1000 items.
# Do the printed factors reproduce the normalised ratings at all? Read item 100 as column 1 and
# item 200 as column 2 (or column 3; neither helps):

# %%
# NBVAL_CHECK_OUTPUT
user_row = {1: 0, 2: 1, 3: 2}
rows = []
for item_col in ({100: 0, 200: 1}, {100: 0, 200: 2}):
    pred = [
        U_toy[user_row[u]] @ V_printed[:, item_col[i]]
        for u, i in zip(toy["user_id"], toy["item_id"])
    ]
    rows.append(np.round(pred, 2))
fit_check = pd.DataFrame(rows, index=["items -> v1, v2", "items -> v1, v3"], columns=scaling.index)
fit_check.loc["normalised rating (target)"] = claimed_scaled
print(fit_check.to_string())
print(
    "largest error of the printed factors:", np.abs(np.array(rows) - claimed_scaled).max().round(2)
)

# %% [markdown]
# The printed $U, V$ miss every target, by 0.11 to 0.6. A rank-2 factorisation *can* reproduce the
# four ratings exactly — it has 10 parameters for 4 numbers. Gradient descent on the observed
# cells only, written out (this is the method §5.2 intends, done on the right cells):


# %%
def fit_toy(
    ratings: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    rank: int = 2,
    lr: float = 0.1,
    steps: int = 5000,
    seed: int = 0,
):
    """Plain gradient descent on sum over observed (r - u.v)^2 (no regulariser: fit exactly)."""
    rng = np.random.default_rng(seed)
    U = rng.uniform(0.1, 1.0, (n_users, rank))
    V = rng.uniform(0.1, 1.0, (n_items, rank))
    for _ in range(steps):
        err = ratings - np.einsum("nk,nk->n", U[users], V[items])
        gU, gV = np.zeros_like(U), np.zeros_like(V)
        np.add.at(gU, users, err[:, None] * V[items])
        np.add.at(gV, items, err[:, None] * U[users])
        U += lr * gU
        V += lr * gV
    return U, V


toy_users = toy["user_id"].map(user_row).to_numpy()
toy_items = toy["item_id"].map({100: 0, 200: 1}).to_numpy()
U_fit, V_fit = fit_toy(claimed_scaled, toy_users, toy_items, 3, 2)
toy_pred = np.einsum("nk,nk->n", U_fit[toy_users], V_fit[toy_items])

# %%
# NBVAL_CHECK_OUTPUT
print("fitted rank-2 predictions:", np.round(toy_pred, 3), " targets:", claimed_scaled)
print("max |error| < 0.001:", bool(np.abs(toy_pred - claimed_scaled).max() < 1e-3))
assert np.abs(toy_pred - claimed_scaled).max() < 1e-3

# %% [markdown]
# ## 3. The §5.2 listing, run
#
# ### 3.1 As written: it does not compile
#
# Below is the listing re-typed line for line — same imports, calls, shapes and hyper-parameters;
# only the comments are translated. Python is asked to compile it.

# %%
LISTING = """\
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import MinMaxScaler

# data preprocessing
def preprocess_data(data):
    # min-max normalisation
    scaler = MinMaxScaler()
    scaled_data = scaler.fit_transform(data)
    return scaled_data

# matrix factorisation
def matrix_factorization(R, n_components, regularization=0.01):
    U = np.random.rand(R.shape[0], n_components)
    V = np.random.rand(R.shape[1], n_components)
    for i in range(1000):
        # predicted ratings
        predicted Ratings = np.dot(U, V.T)
        # residuals
        error = R - predicted Ratings
        # update the feature vectors
        U = U - (1 / (R.shape[0] * regularization)) * np.dot(error * V, np.diag(np.square(V.T.dot(U))))
        V = V - (1 / (R.shape[1] * regularization)) * np.dot(U.T * error, np.diag(np.square(U.T.dot(V))))
    return U, V

# main function
def main():
    # load the data
    data = pd.read_csv("ratings.csv")
    ratings = data.pivot(index="user_id", columns="item_id", values="rating").fillna(0)
    R = preprocess_data(ratings.values)

    # split the data set
    train_data, test_data = train_test_split(R, test_size=0.2, random_state=42)

    # factorise
    U, V = matrix_factorization(train_data, n_components=10)

    # evaluate the model
    predicted_ratings = np.dot(U, V.T)
    print("RMSE:", np.sqrt(np.mean((predicted_ratings - test_data) ** 2)))

    # generate the recommendation list
    user_profile = U.mean(axis=1)
    item_profile = V.mean(axis=0)
    similarity = cosine_similarity(user_profile.reshape(1, -1), item_profile.reshape(1, -1))
    top_items = np.argsort(similarity[0])[::-1][1:]
    print("Recommended items:", ratings.columns[top_items])

if __name__ == "__main__":
    main()
"""
try:
    compile(LISTING, "listing_5_2.py", "exec")
    syntax_error = None
except SyntaxError as exc:
    syntax_error = exc
    print(f"SyntaxError: {exc.msg} (listing line {exc.lineno})")
    print("   ", exc.text.rstrip())

# %%
# NBVAL_CHECK_OUTPUT
print(
    "compiles:",
    syntax_error is None,
    "| offending line:",
    syntax_error.lineno,
    "|",
    syntax_error.text.strip(),
)
assert syntax_error is not None and "predicted Ratings" in syntax_error.text

# %% [markdown]
# A variable name cannot contain a space, so the listing can never have printed anything. The
# smallest fix renames `predicted Ratings` to `predicted_ratings` (the name `main` already uses).
# Then we load the listing's functions and walk through `main` one step at a time, on this
# notebook's data instead of the unspecified `ratings.csv`.

# %%
fixed_listing = LISTING.replace("predicted Ratings", "predicted_ratings")
listing = {}
exec(
    compile(
        fixed_listing.replace('if __name__ == "__main__":\n    main()\n', ""),
        "listing_fixed.py",
        "exec",
    ),
    listing,
)

official_split = {"split": "u1"} if DATASET == "movielens-100k" else {}
ds = datasets.world(DATASET, SEED, DATA_PATH, regime=SHOP_REGIME, **official_split)
ratings_df = ds.ratings()
print(ds)

# %% [markdown]
# ### 3.2 Step by step after the syntax fix
#
# **Pivot and scale.** Every unrated cell becomes a rating of 0, then `MinMaxScaler` scales each
# item column: with a 0 in the column the scaled rating is $r/\max_j$, $\max_j$ being the item's
# best rating, so 4 stars become 0.8 on an item somebody gave 5 stars and 1.0 on an item whose best
# rating is 4 (and an item everybody rated would get $(r-\min_j)/(\max_j-\min_j)$).

# %%
# NBVAL_CHECK_OUTPUT
ratings_pivot = ratings_df.pivot(index="user_id", columns="item_id", values="rating").fillna(0)
R_all = listing["preprocess_data"](ratings_pivot.values)
print(
    "pivot:",
    ratings_pivot.shape,
    f"| share of cells that are 'rating 0': {(ratings_pivot.values == 0).mean():.3f}",
)
print(
    "scaled value of a 4-star rating, min / max over items:",
    round(float(R_all[ratings_pivot.values == 4].min()), 3),
    "/",
    round(float(R_all[ratings_pivot.values == 4].max()), 3),
)

# %% [markdown]
# **Split.** `train_test_split` on the matrix splits its *rows*: whole users go to test.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(SEED)
keep_users = np.sort(rng.choice(len(R_all), size=min(LISTING_USERS, len(R_all)), replace=False))
R = R_all[keep_users]  # a sample of users keeps 1000 dense passes fast; the split is the same kind
user_ids = ratings_pivot.index.to_numpy()[keep_users]
train_data, test_data, train_users, test_users = train_test_split(
    R, user_ids, test_size=0.2, random_state=42
)
print("train_data:", train_data.shape, " test_data:", test_data.shape)
print("users in both train and test:", len(np.intersect1d(train_users, test_users)))

# %% [markdown]
# **The update.** `matrix_factorization(train_data, n_components=10)` fails on its first update.
# The shapes of each operand show why: `error * V` multiplies an (users × items) matrix
# elementwise by an (items × 10) one, and `V.T.dot(U)` needs items = users.

# %%
np.random.seed(SEED)
try:
    listing["matrix_factorization"](train_data, n_components=10)
    update_error = None
except ValueError as exc:
    update_error = exc
    print("ValueError:", exc)

# %%
# NBVAL_CHECK_OUTPUT
m, n, k = train_data.shape[0], train_data.shape[1], 10
shape_rows = [
    ("error = R - U V^T", f"({m}, {n})", "ok"),
    ("error * V", f"({m}, {n}) * ({n}, {k})", "no: elementwise, shapes differ"),
    ("V.T.dot(U)", f"({k}, {n}) . ({m}, {k})", f"no: inner sizes {n} != {m}"),
    ("U.T * error", f"({k}, {m}) * ({m}, {n})", "no: elementwise, shapes differ"),
    ("np.diag(square(.)) of a (k, k) matrix", "(k, k) -> (k,)", "a vector: diag extracts"),
]
print(pd.DataFrame(shape_rows, columns=["expression", "shapes", "valid?"]).to_string(index=False))
assert isinstance(update_error, ValueError)

# %% [markdown]
# The update runs only when users = items = `n_components` (then every operand is 10 × 10). On
# such a matrix it does not descend — it overflows:

# %%
np.random.seed(SEED)
square = np.random.default_rng(SEED).random((10, 10)) * (
    np.random.default_rng(1).random((10, 10)) < 0.5
)
with np.errstate(all="ignore"):
    U_sq, V_sq = listing["matrix_factorization"](square, n_components=10)

# %%
# NBVAL_CHECK_OUTPUT
print("10 x 10 input: U finite after 1000 updates?", bool(np.isfinite(U_sq).all()))

# %% [markdown]
# The closest runnable reading keeps everything else — the zero-filled scaled matrix, rank 10,
# `regularization=0.01`, 1000 full passes, `np.random.rand` starts — and replaces the update with
# a real gradient step on $\lVert R-UV^\top\rVert^2 + \lambda(\lVert U\rVert^2+\lVert V\rVert^2)$
# over **all** cells, zeros included. The step size is 0.001: the listing's factor $1/(m\lambda)$
# as a step size overflows within a few passes (checked below).


# %%
def listing_gradient_mf(R, n_components, regularization=0.01, iters=1000, lr=1e-3):
    """§5.2 with its update replaced by gradient descent on every cell of the zero-filled R."""
    U = np.random.rand(R.shape[0], n_components)
    V = np.random.rand(R.shape[1], n_components)
    for _ in range(iters):
        error = R - U @ V.T
        U, V = (
            U + lr * (error @ V - regularization * U),
            V + lr * (error.T @ U - regularization * V),
        )
    return U, V


np.random.seed(SEED)
with np.errstate(all="ignore"):
    U_big, _ = listing_gradient_mf(train_data, 10, iters=20, lr=1 / (train_data.shape[0] * 0.01))
print(
    f"step 1/(m*0.01) = {1 / (train_data.shape[0] * 0.01):.3f}: U finite after 20 passes?",
    bool(np.isfinite(U_big).all()),
)
assert not np.isfinite(U_big).all()

np.random.seed(SEED)
t0 = time.perf_counter()
U_l, V_l = listing_gradient_mf(train_data, n_components=10)
print(f"1000 dense passes on {train_data.shape}: {time.perf_counter() - t0:.1f} s")
pred_l = U_l @ V_l.T

# %% [markdown]
# **What the zeros do.** The model is asked to reproduce the 0s as faithfully as the ratings, and
# since almost every cell is a 0 it predicts small numbers everywhere — including for the cells
# that hold real ratings.

# %%
# NBVAL_CHECK_OUTPUT
obs_train = train_data > 0
print(f"mean scaled rating on rated cells:     {train_data[obs_train].mean():.2f}")
print(f"mean prediction on those rated cells:  {pred_l[obs_train].mean():.2f}")
print(f"mean prediction on unrated cells:      {pred_l[~obs_train].mean():.2f}")

# %% [markdown]
# **The RMSE line.** `predicted_ratings - test_data` subtracts a (train users × items) matrix from a
# (test users × items) one:

# %%
try:
    np.sqrt(np.mean((pred_l - test_data) ** 2))
    rmse_error = None
except ValueError as exc:
    rmse_error = exc
    print("ValueError:", exc)
assert isinstance(rmse_error, ValueError)

# %% [markdown]
# Forcing it to run (first rows of the prediction against the test rows) compares the predictions
# for some *training* users with the ratings of *other* people. That number does not measure
# personalisation: predicting 0 for everything, or shuffling which training user is compared with
# which test user, gives about the same value.

# %%
# NBVAL_CHECK_OUTPUT
n_test = len(test_data)
forced = np.sqrt(np.mean((pred_l[:n_test] - test_data) ** 2))
zeros = np.sqrt(np.mean(test_data**2))
shuffled = np.sqrt(
    np.mean(
        (pred_l[np.random.default_rng(SEED).permutation(len(pred_l))[:n_test]] - test_data) ** 2
    )
)
listing_rmse = pd.DataFrame(
    {"RMSE (0-1 scale, all cells)": [forced, shuffled, zeros]},
    index=["listing, forced to run", "same, other users paired", "predict 0 everywhere"],
).round(2)
print(listing_rmse.to_string())
bound = np.sqrt((R_all > 0).mean())
print(
    f"bound for predicting 0 on the whole scaled matrix: sqrt(share of rated cells) = {bound:.2f}"
)

# %% [markdown]
# So what could "RMSE 0.837" be? On the listing's scale every value lies in [0, 1] and almost all
# of them are 0: predicting 0 everywhere already scores at most $\sqrt{\text{share of rated
# cells}}$, far below 0.837. The listing's own update either fails or overflows, so no run of
# it ends at 0.837 either. Verdict: the reported RMSE is not the output of this program.
#
# **The recommendation.** `U.mean(axis=1)` averages each *user's* factors (one number per training
# user) and `V.mean(axis=0)` averages each *factor* over items (10 numbers): two vectors of
# different length, which `cosine_similarity` rejects.

# %%
user_profile = U_l.mean(axis=1)
item_profile = V_l.mean(axis=0)
print("user_profile:", user_profile.shape, " item_profile:", item_profile.shape)
try:
    cosine_similarity(user_profile.reshape(1, -1), item_profile.reshape(1, -1))
    cosine_error = None
except ValueError as exc:
    cosine_error = exc
    print("ValueError:", exc)
assert isinstance(cosine_error, ValueError)

# %% [markdown]
# Even with equal lengths, the similarity of one row with one row is a 1 × 1 matrix; `argsort` of
# its single entry is `[0]`, and `[::-1][1:]` drops it. The list is always empty — the ten ids of
# §5.4 cannot come from this code.

# %%
# NBVAL_CHECK_OUTPUT
similarity = cosine_similarity(np.ones((1, 10)), np.ones((1, 10)))
top_items = np.argsort(similarity[0])[::-1][1:]
print(
    "similarity shape:",
    similarity.shape,
    "| top_items:",
    top_items,
    "| items returned:",
    len(top_items),
)

# %% [markdown]
# ## 4. What goes wrong, in one table

# %%
# NBVAL_CHECK_OUTPUT
verdict = pd.DataFrame(
    [
        (
            "§4.3 normalised ratings 1, 0.8, 0.6, 1",
            "confirmed: r/5 (= MinMaxScaler on zero-filled pivot)",
        ),
        ("§4.3 prediction 0.3", "not confirmed: the written sum is 0.4"),
        ("§4.3 prediction 0.55", "not confirmed: the written sum is 0.6"),
        ("§4.3 prediction 0.78", "not confirmed: the written sum is 0.7 (and mixes columns)"),
        ("§4.3 printed U, V fit the ratings", "no: errors up to 0.6; a rank-2 fit reaches 0"),
        ("§5.2 listing runs", "no: SyntaxError ('predicted Ratings')"),
        ("§5.2 update after the fix", "no: shape error; on 10x10 it overflows"),
        ("§5.2 split", "users, not ratings: test users have no factors"),
        ("§5.2 RMSE line", "shape error; forced, it compares different people"),
        ("§5.2 recommendation", "shape error; fixed, always an empty list"),
        ("§5.4 RMSE 0.837", "not reproducible: the code cannot print an RMSE"),
        ("§5.4 ten recommended items", "not reproducible: the code returns none"),
    ],
    columns=["claim", "verdict (by execution above)"],
)
print(verdict.to_string(index=False))

# %% [markdown]
#
# %% [markdown]
# ## 5. A working version
#
# **Development and evaluation are kept apart.** Every setting below — penalties, ranks, epochs —
# is chosen on validation ratings of a *development world*: on the shop, a separate shop
# generated from `DEV_SEED` that no verdict ever uses. Its ratings are split like every world's:
# a random `TEST_SHARE` is its test part (never looked at), and `VAL_FRACTION` of the rest is the
# validation set; the models are fitted on the remainder. Section 6 refits the chosen settings on
# the training ratings of `SEEDS` fresh worlds (`SEED`, `SEED + 1`, ...) and scores their test
# ratings. Public data are a single world: there the development split is the official `u1.base`
# (MovieLens-100K) or a random split, and section 6 repeats the same tuning inside each of its
# evaluation splits (6.1 says why).
#
# **Equal budgets.** Every model with something to tune tries the same number of settings on the
# same validation ratings: the biases six penalties, SGD, ALS-WR and PyTorch three penalties at
# each of two ranks. Bayesian MF learns its penalties and runs at the package default (one
# setting: it gets *less* tuning than its rivals, not more); the global mean has nothing to tune.

# %%
dev_ds = datasets.world(DATASET, DEV_SEED, DATA_PATH, regime=SHOP_REGIME, **official_split)
n_users, n_items = dev_ds.n_users, dev_ds.n_items
if dev_ds.train is not None and dev_ds.test is not None:
    dev_train = dev_ds.train
else:
    dev_train, _ = splits.random_split(dev_ds.ratings(), test_size=TEST_SHARE, seed=DEV_SEED)
fit_part, val = splits.random_split(dev_train, test_size=VAL_FRACTION, seed=DEV_SEED + 1)
print(
    f"development world ({dev_ds.name}, seed {DEV_SEED}): {len(fit_part)} fit + {len(val)} "
    f"validation ratings; {n_users} users, {n_items} items"
)


def val_rmse(model, vl: pd.DataFrame) -> float:
    return metrics.rmse(vl["rating"].to_numpy(), model.predict_df(vl))


def grid_search(fit_one, grid, desc: str, score: str = "val RMSE") -> tuple[dict, pd.DataFrame]:
    """Fit every setting of ``grid`` on the fit part and score it on the validation ratings
    (``evaluation.tune``); keep the lowest RMSE (or the highest NDCG). ``fit_one(*setting)``
    returns the setting's row: its parameters, its score and, where it stops early, its epochs.
    Returns the chosen row and the table of every setting tried."""
    rows = {}

    def objective(setting: tuple) -> float:
        rows[setting] = fit_one(*setting)
        return -rows[setting][score] if score.endswith("RMSE") else rows[setting][score]

    best, _ = evaluation.tune(objective, [tuple(s) for s in grid], desc=desc)
    return rows[best], pd.DataFrame(list(rows.values()))


dev_tuning: dict[str, tuple[dict, pd.DataFrame]] = {}  # model -> (chosen row, every row tried)

# %% [markdown]
# ### 5.1 Baselines
#
# The global mean, and user + item biases: each bias a damped mean (Koren 2010's baseline
# predictor) whose damping is tuned like every other model's penalty.


# %%
def tune_biases(fp: pd.DataFrame, vl: pd.DataFrame, seed: int):
    def fit_one(reg):
        model = mf.fit_biases(fp, n_users, n_items, reg=reg, progress=False)
        return {"reg": reg, "val RMSE": val_rmse(model, vl)}

    return grid_search(fit_one, [(r,) for r in BIAS_PENALTIES], "biases")


dev_tuning["user + item biases"] = tune_biases(fit_part, val, DEV_SEED)
mean_val = val_rmse(mf.fit(fit_part, n_users, n_items, model="mean", progress=False), val)
print(f"global mean: validation RMSE {mean_val:.4f}")
dev_tuning["user + item biases"][1].set_index("reg").round(4)

# %% [markdown]
# ### 5.2 SGD on the observed ratings (numpy)
#
# Per rating, with $e = r_{ui}-\hat r_{ui}$: $b_u \mathrel{+}= \eta(e-\lambda b_u)$,
# $c_i \mathrel{+}= \eta(e-\lambda c_i)$, $p_u \mathrel{+}= \eta(e\,q_i-\lambda p_u)$,
# $q_i \mathrel{+}= \eta(e\,p_u-\lambda q_i)$. Written as a plain loop it reads like the formula;
# `recbook.mf.fit_sgd` applies the same updates a mini-batch at a time. With `batch_size=1` and
# the same start they agree to rounding:


# %%
def sgd_epoch(u, i, r, mu, bu, bi, P, Q, lr, reg):
    """One epoch of textbook SGD, one rating at a time (in the given order)."""
    for uu, ii, rr in zip(u, i, r):
        e = rr - (mu + bu[uu] + bi[ii] + P[uu] @ Q[ii])
        bu[uu] += lr * (e - reg * bu[uu])
        bi[ii] += lr * (e - reg * bi[ii])
        P[uu], Q[ii] = (
            P[uu] + lr * (e * Q[ii] - reg * P[uu]),
            Q[ii] + lr * (e * P[uu] - reg * Q[ii]),
        )


small = fit_part.head(500)
rng = np.random.default_rng(SEED)  # fit_sgd draws P, Q, then the epoch's order, from this seed
P0, Q0 = rng.normal(0, 0.1, (n_users, 5)), rng.normal(0, 0.1, (n_items, 5))
order = rng.permutation(len(small))
bu0, bi0 = np.zeros(n_users), np.zeros(n_items)
s_u, s_i, s_r = (small[c].to_numpy()[order] for c in ("user_id", "item_id", "rating"))
sgd_epoch(s_u, s_i, s_r.astype(float), small["rating"].mean(), bu0, bi0, P0, Q0, 0.01, 0.05)
pkg = mf.fit_sgd(
    small,
    n_users,
    n_items,
    rank=5,
    lr=0.01,
    reg=0.05,
    epochs=1,
    batch_size=1,
    seed=SEED,
    progress=False,
)
assert np.allclose(pkg.user_factors, P0) and np.allclose(pkg.item_bias, bi0)
print("inline loop == recbook.mf.fit_sgd(batch_size=1):", np.allclose(pkg.user_factors, P0))

# %% [markdown]
# Tuning: each rank of `FACTOR_RANKS` with each penalty of `SGD_PENALTIES`, early stopping on the
# validation ratings; the epoch of the best validation RMSE is the number of epochs the refit uses.


# %%
def tune_sgd(fp: pd.DataFrame, vl: pd.DataFrame, seed: int):
    def fit_one(rank, reg):
        run = mf.fit_sgd(fp, n_users, n_items, rank=rank, lr=0.01, reg=reg, batch_size=128,
                         epochs=EPOCHS, val=vl, patience=PATIENCE, seed=seed,
                         progress=False)  # fmt: skip
        best = int(run.history["val_rmse"].idxmin())
        return {"rank": rank, "reg": reg, "val RMSE": run.history["val_rmse"].min(),
                "epochs": best + 1, "curve": run.history}  # fmt: skip

    return grid_search(fit_one, [(k, r) for k in FACTOR_RANKS for r in SGD_PENALTIES], "SGD")


def show(tuning: tuple[dict, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """A tuning table without the learning curves, the chosen setting marked."""
    chosen, table = tuning
    table = table.drop(columns="curve", errors="ignore").set_index(keys)
    table["chosen"] = [
        "<-" if all(chosen[k] == v for k, v in zip(keys, idx if len(keys) > 1 else [idx])) else ""
        for idx in table.index
    ]
    return table.round(4)


dev_tuning["numpy SGD"] = tune_sgd(fit_part, val, DEV_SEED)
show(dev_tuning["numpy SGD"], ["rank", "reg"])

# %% [markdown]
# ### 5.3 ALS-WR: closed-form updates (numpy)
#
# With the items fixed, each user's $w_u = [b_u, p_u]$ is a ridge regression on the items they
# rated, $x_j = [1, q_j]$, $t_j = r_{uj}-\mu-c_j$:
#
# $$w_u = \Big(\textstyle\sum_j x_j x_j^\top + \mathrm{diag}(\beta, \lambda n_u, \dots, \lambda n_u)\Big)^{-1} \sum_j t_j x_j ,$$
#
# where $n_u$ is the user's rating count — the "weighted-λ" regularisation of ALS-WR (Zhou et al.
# 2008) — and the bias has a constant penalty $\beta = 5$ (a count-scaled one would leave the bias
# of a user with one rating almost raw); then the same for items. Here is one user step written
# as a loop over users, against the package's version, which builds all the small systems with
# one sparse product and solves them together:


# %%
def als_user_step(df, item_bias, item_factors, mu, reg, bias_reg=5.0):
    """Closed-form [b_u, p_u] of every user, one small ridge regression each."""
    out = np.zeros((n_users, 1 + item_factors.shape[1]))
    for user, rows in df.groupby("user_id"):
        items = rows["item_id"].to_numpy()
        X = np.hstack([np.ones((len(items), 1)), item_factors[items]])
        t = rows["rating"].to_numpy() - mu - item_bias[items]
        penalty = np.diag([bias_reg] + [reg * len(items)] * item_factors.shape[1])
        out[user] = np.linalg.solve(X.T @ X + penalty, X.T @ t)
    return out


start = mf.fit_als(fit_part, n_users, n_items, rank=RANK, reg=0.1, iters=1, progress=False)
t0 = time.perf_counter()
loop = als_user_step(fit_part, start.item_bias, start.item_factors, start.global_mean, 0.1)
loop_s = time.perf_counter() - t0
t0 = time.perf_counter()
batched = mf.als_user_step(fit_part, start, reg=0.1)
batched_s = time.perf_counter() - t0
rated = np.bincount(fit_part["user_id"], minlength=n_users) > 0
assert np.allclose(batched[rated], loop[rated], atol=1e-8)
print(
    "batched normal equations == per-user loop:",
    np.allclose(batched[rated], loop[rated], atol=1e-8),
)
print(f"loop over {rated.sum()} users: {loop_s:.3f} s; batched: {batched_s:.3f} s")

# %% [markdown]
# Tuning: the same budget as SGD — each rank of `FACTOR_RANKS` with each penalty of
# `ALS_PENALTIES`, early stopping on the validation ratings.


# %%
def tune_als(fp: pd.DataFrame, vl: pd.DataFrame, seed: int):
    def fit_one(rank, reg):
        run = mf.fit_als(fp, n_users, n_items, rank=rank, reg=reg, iters=25, val=vl,
                         patience=PATIENCE, seed=seed, progress=False)  # fmt: skip
        best = int(run.history["val_rmse"].idxmin())
        return {"rank": rank, "reg": reg, "val RMSE": run.history["val_rmse"].min(),
                "epochs": best + 1, "curve": run.history}  # fmt: skip

    return grid_search(fit_one, [(k, r) for k in FACTOR_RANKS for r in ALS_PENALTIES], "ALS-WR")


dev_tuning["numpy ALS-WR"] = tune_als(fit_part, val, DEV_SEED)
show(dev_tuning["numpy ALS-WR"], ["rank", "reg"])

# %% [markdown]
# ### 5.4 Bayesian MF by Gibbs sampling (numpy) — the default model
#
# The ALS step computes the *mode* of each user's Gaussian conditional. Drawing from that
# Gaussian instead (precision $\alpha\sum_j x_jx_j^\top+\mathrm{diag}(\lambda)$), drawing the
# penalties $\lambda$ and the noise precision $\alpha$ from their Gamma conditionals, and averaging
# the predictions of many draws gives Bayesian MF (Salakhutdinov & Mnih 2008; the
# per-coordinate priors follow libFM's MCMC, Rendle 2012). Nothing is tuned: the penalties are
# learnt with the factors, so it needs no validation split. The curve shows the validation RMSE
# of the running average.

# %%
bayes_dev = mf.fit_bayes(
    fit_part, n_users, n_items, rank=RANK, burn_in=BURN_IN, samples=SAMPLES, val=val, seed=DEV_SEED
)
bayes_curve = bayes_dev.history
print(
    f"validation RMSE {bayes_curve['val_rmse'].iloc[-1]:.4f}; "
    f"noise sd learnt {bayes_curve['noise_sd'].iloc[-SAMPLES:].mean():.3f}"
)

# %% [markdown]
# ### 5.5 PyTorch: `models_torch.BiasedMF` with the shared fit loop
#
# Minibatches of ratings, Adam, mean squared error, weight decay on the factors (a tenth of it on
# the biases), early stopping; the device is the one `runtime.start(DEVICE, SEED)` chose. Tuned
# with the same budget: each rank of `FACTOR_RANKS` with each decay of `TORCH_DECAYS`.


# %%
def tensors(df, device):
    return (
        torch.tensor(df["user_id"].to_numpy(), device=device),
        torch.tensor(df["item_id"].to_numpy(), device=device),
        torch.tensor(df["rating"].to_numpy(), dtype=torch.float32, device=device),
    )


def train_torch(
    df, device, weight_decay, epochs, val_df=None, dim=RANK, lr=0.01, batch_size=512,
    progress=True, seed=SEED,
):  # fmt: skip
    runtime.seed_everything(seed)
    net = models_torch.BiasedMF(n_users, n_items, dim, global_mean=float(df["rating"].mean()))
    groups = [
        {
            "params": [net.user_factors.weight, net.item_factors.weight],
            "weight_decay": weight_decay,
        },
        {"params": [net.user_bias.weight, net.item_bias.weight], "weight_decay": weight_decay / 10},
    ]
    batches = training.TensorBatches(*tensors(df, device), batch_size=batch_size, seed=seed)
    val_batches = (
        training.TensorBatches(*tensors(val_df, device), batch_size=8192, shuffle=False)
        if val_df is not None
        else None
    )
    history = training.fit(
        net,
        batches,
        torch.nn.functional.mse_loss,
        optimizer=torch.optim.Adam(groups, lr=lr),
        epochs=epochs,
        device=device,
        val_batches=val_batches,
        patience=PATIENCE if val_df is not None else None,
        desc=f"BiasedMF wd={weight_decay:g}",
        progress=progress,
    )
    return net, history


def tune_torch(fp: pd.DataFrame, vl: pd.DataFrame, seed: int):
    def fit_one(rank, wd):
        _, hist = train_torch(fp, dev, wd, EPOCHS, val_df=vl, dim=rank, progress=False, seed=seed)
        curve = hist.frame.assign(val_rmse=np.sqrt(hist.frame["val_loss"]))
        return {"rank": rank, "weight decay": wd, "val RMSE": float(curve["val_rmse"].min()),
                "epochs": hist.best_epoch, "curve": curve}  # fmt: skip

    grid = [(k, wd) for k in FACTOR_RANKS for wd in TORCH_DECAYS]
    return grid_search(fit_one, grid, "BiasedMF")


dev_tuning["PyTorch BiasedMF (Adam)"] = tune_torch(fit_part, val, DEV_SEED)
show(dev_tuning["PyTorch BiasedMF (Adam)"], ["rank", "weight decay"])


# %%
class TorchMF:
    """The trained BiasedMF seen through the numpy models' predict interface."""

    method = "PyTorch BiasedMF (Adam)"

    def __init__(self, net, history, lo, hi):
        self.net, self.lo, self.hi = net.cpu().eval(), lo, hi
        self.history, self.fit_seconds = history.frame.reset_index(), history.seconds

    def predict_df(self, df):
        with torch.no_grad():
            u, i, _ = tensors(df, "cpu")
            return self.net(u, i).clamp(self.lo, self.hi).numpy().astype(float)

    def score_matrix(self):
        return self.net.score_all().numpy().astype(float)


# %% [markdown]
# ### 5.6 Settings for the top-k lists of section 6.4
#
# Section 6.4 also ranks the catalogue with two implicit-feedback models that need a setting:
# PureSVD's rank and EASE's penalty, each chosen among four values by validation NDCG@`TOP_K`,
# where a validation rating of 4 or more is a relevant item (the relevance 6.4 scores).

# %%
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import svds

RELEVANT_RATING = 4  # a rating of 4 or more makes a relevant item for the top-k lists


def puresvd_scores(tr: pd.DataFrame, rank: int, seed: int) -> np.ndarray:
    """Truncated SVD of the zero-filled 0/1 matrix of who rated what (Cremonesi et al. 2010)."""
    who_rated = csr_matrix((np.ones(len(tr)), (tr["user_id"], tr["item_id"])),
                           shape=(n_users, n_items))  # fmt: skip
    left, sing, right_t = svds(who_rated, k=rank, random_state=seed)
    return (left * sing) @ right_t


def tune_puresvd(fp: pd.DataFrame, vl: pd.DataFrame, seed: int):
    liked = vl[vl["rating"] >= RELEVANT_RATING]

    def fit_one(rank):
        ndcg = evaluation.full_catalogue_metrics(puresvd_scores(fp, rank, seed), fp, liked,
                                                 k=TOP_K, seed=seed)["ndcg"]  # fmt: skip
        return {"rank": rank, "val NDCG": ndcg}

    return grid_search(fit_one, [(k,) for k in SVD_RANKS], "PureSVD", score="val NDCG")


def tune_ease(fp: pd.DataFrame, vl: pd.DataFrame, seed: int):
    l2, scores = baselines.tuned_ease(
        fp, vl[vl["rating"] >= RELEVANT_RATING], n_users, n_items, k=TOP_K, seed=seed
    )
    table = scores.rename("val NDCG").rename_axis("l2").reset_index()
    return {"l2": l2, "val NDCG": float(scores.loc[l2])}, table


PURESVD = "PureSVD on who-rated-what (zeros kept)"
EASE = "EASE (item-item)"
dev_tuning[PURESVD] = tune_puresvd(fit_part, val, DEV_SEED)
dev_tuning[EASE] = tune_ease(fit_part, val, DEV_SEED)
pd.concat(
    {
        "PureSVD rank": show(dev_tuning[PURESVD], ["rank"])["val NDCG"],
        "EASE penalty": show(dev_tuning[EASE], ["l2"])["val NDCG"],
    },
    names=["setting", "value"],
).to_frame()

# %% [markdown]
# ### 5.7 What development chose
#
# One table of every model's budget and choice. `develop` is the whole procedure as one
# function: on public data section 6 runs it again inside each evaluation split.

# %%
BAYES = "numpy Bayesian MF (Gibbs)"
SETTING_KEYS = ("rank", "reg", "weight decay", "l2", "epochs")


def develop(train_part: pd.DataFrame, seed: int) -> dict[str, dict]:
    """Carve validation ratings out of ``train_part`` and tune every model on them."""
    fp, vl = splits.random_split(train_part, test_size=VAL_FRACTION, seed=seed + 1)
    tuners = {"user + item biases": tune_biases, "numpy SGD": tune_sgd,
              "numpy ALS-WR": tune_als, "PyTorch BiasedMF (Adam)": tune_torch,
              PURESVD: tune_puresvd, EASE: tune_ease}  # fmt: skip
    return {name: tuner(fp, vl, seed)[0] for name, tuner in tuners.items()}


CHOSEN = {name: chosen for name, (chosen, _) in dev_tuning.items()}
CONFIGS = {name: len(table) for name, (_, table) in dev_tuning.items()}
CONFIGS |= {"global mean": 0, BAYES: 1, "random": 0, "popularity": 0}


def validation(row: dict) -> str:
    return " ".join(f"{k[4:]} {row[k]:.4f}" for k in ("val RMSE", "val NDCG") if k in row)


chosen_table = pd.DataFrame(
    [("global mean", 0, "", f"RMSE {mean_val:.4f}")]
    + [(name, CONFIGS[name], ", ".join(f"{k} {row[k]:g}" for k in SETTING_KEYS if k in row),
        validation(row)) for name, row in CHOSEN.items()]
    + [(BAYES, 1, f"rank {RANK}, {BURN_IN} + {SAMPLES} sweeps (defaults)",
        f"RMSE {bayes_curve['val_rmse'].iloc[-1]:.4f}")],
    columns=["model", "configs tried", "chosen", "validation"],
).set_index("model")  # fmt: skip
chosen_table

# %% [markdown]
# ## 6. Measured
#
# ### 6.1 Test RMSE over fresh worlds, every method
#
# `evaluation.replicates` runs `run(seed)` once per evaluation seed. On the shop each seed is a
# new world — new users, items, events and split — generated in `SHOP_REGIME`; its training
# ratings (a random `1 - TEST_SHARE`) refit every model at the settings development chose, and
# its test ratings are scored, together with the oracle row: the shop's Bayes-optimal
# prediction $\mathbb E[r \mid u, i]$ of the same test ratings. On public data each seed draws a
# new random split of the same ratings (the official `u1` split is kept for development above);
# because any rating may fall into a later split's test set, tuning on one split and reusing the
# settings would leak, so there `run` repeats `develop` on each split's own training ratings.
# The same fits then rank the catalogue (section 6.4).

# %%
fitted: dict[int, dict] = {}


def fit_all(tr: pd.DataFrame, chosen: dict[str, dict], seed: int) -> dict[str, object]:
    """Every rating model refitted on ``tr`` at the chosen settings."""
    sgd, als, net_cfg = (
        chosen[k] for k in ("numpy SGD", "numpy ALS-WR", "PyTorch BiasedMF (Adam)")
    )
    net, hist = train_torch(tr, dev, net_cfg["weight decay"], net_cfg["epochs"],
                            dim=net_cfg["rank"], progress=False, seed=seed)  # fmt: skip
    return {
        "global mean": mf.fit(tr, n_users, n_items, model="mean", progress=False),
        "user + item biases": mf.fit_biases(
            tr, n_users, n_items, reg=chosen["user + item biases"]["reg"], progress=False
        ),
        "numpy SGD": mf.fit_sgd(
            tr,
            n_users,
            n_items,
            rank=sgd["rank"],
            lr=0.01,
            reg=sgd["reg"],
            batch_size=128,
            epochs=sgd["epochs"],
            seed=seed,
            progress=False,
        ),  # fmt: skip
        "numpy ALS-WR": mf.fit_als(
            tr,
            n_users,
            n_items,
            rank=als["rank"],
            reg=als["reg"],
            iters=als["epochs"],
            seed=seed,
            progress=False,
        ),  # fmt: skip
        "PyTorch BiasedMF (Adam)": TorchMF(net, hist, tr["rating"].min(), tr["rating"].max()),
        BAYES: mf.fit_bayes(
            tr,
            n_users,
            n_items,
            rank=RANK,
            burn_in=BURN_IN,
            samples=SAMPLES,
            seed=seed,
            progress=False,
        ),  # fmt: skip
    }


def run(seed: int) -> dict:
    """One evaluation world: split, refit every model, RMSE on its test ratings."""
    w = datasets.world(DATASET, seed, DATA_PATH, regime=SHOP_REGIME)
    assert (w.n_users, w.n_items) == (n_users, n_items)  # code: every world has the same sizes
    tr, te = splits.random_split(w.ratings(), test_size=TEST_SHARE, seed=seed)
    chosen = CHOSEN if DATASET == "shop" else develop(tr, seed)
    fits = fit_all(tr, chosen, seed)
    fitted[seed] = {"world": w, "train": tr, "test": te, "models": fits, "chosen": chosen}
    out = {name: {"RMSE": val_rmse(m, te)} for name, m in fits.items()}
    if w.truth is not None:
        exact = w.truth.expected_rating(te["user_id"], te["item_id"])
        out["oracle (truth)"] = {"RMSE": metrics.rmse(te["rating"], exact)}
    return out


EVAL_SEEDS = evaluation.evaluation_seeds(SEED, SEEDS)
rmse_cmp = evaluation.replicates(
    run, EVAL_SEEDS, DATASET, split="random", test_share=TEST_SHARE, desc="worlds"
)
rmse_table = rmse_cmp.summary()
rmse_table["configs tried"] = [
    CONFIGS.get(m, 0) if DATASET == "shop" else f"{CONFIGS.get(m, 0)} per split"
    for m in rmse_table.index
]
where = "on the development world" if DATASET == "shop" else "inside each split"
print(f"unit: {rmse_cmp.unit}; settings chosen {where}")
rmse_table

# %%
# the per-model means are the recorded values; the headline is the default model's, the one
# benchmarks/mf.py measures
rmse_means = rmse_cmp.table()["RMSE"]["mean"]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


recbook.record("rmse_test", round(float(rmse_means[BAYES]), 4))
for name, value in rmse_means.items():
    recbook.record(f"rmse_test_{slug(name)}", round(float(value), 4))

# %% [markdown]
# ### 6.2 The claim that matters: does factorisation beat the biases?
#
# Each difference is paired — the same world, split and test ratings on both sides — and
# oriented so that a positive number favours the factor model. On the shop the worlds are
# independent draws, so a Student-t over them is the right interval. On public data the random
# splits of one dataset overlap (any two training sets share most of their ratings), so a plain t
# over splits is too narrow; there every interval uses Nadeau & Bengio's (2003) corrected
# resampled t (`evaluation.replicates(..., test_share=TEST_SHARE)` applies it), which widens
# the half-width by $\sqrt{1 + J\,n_\text{test}/n_\text{train}}$ (about 1.3 for $J = 3$
# splits of 20 %).


# %%
def gain(a: str, b: str) -> evaluation.Interval:
    """RMSE of ``a`` minus RMSE of ``b``: positive when ``b`` predicts better."""
    return rmse_cmp.difference(a, b, "RMSE")


BIASES = "user + item biases"
FACTOR_MODELS = ("numpy SGD", "numpy ALS-WR", "PyTorch BiasedMF (Adam)", BAYES)
words = {
    m: evaluation.verdict(f"{m} has a lower RMSE than the biases (biases - model)", gain(BIASES, m))
    for m in FACTOR_MODELS
}
mf_gain = gain(BIASES, BAYES)
evaluation.verdict("... the default MF by at least 0.03 RMSE", mf_gain, threshold=0.03)
bayes_vs_als = evaluation.verdict(
    "sampling beats the mode: Bayesian MF has a lower RMSE than ALS-WR (ALS - Bayes)",
    gain("numpy ALS-WR", BAYES),
)
recbook.record("mf_gain_over_biases_rmse", round(mf_gain.mean, 4))
recbook.record("mf_gain_over_biases_rmse_lo", round(mf_gain.lo, 4))
if "oracle (truth)" in rmse_means:
    closed = mf_gain.mean / (rmse_means[BIASES] - rmse_means["oracle (truth)"])
    print(f"share of the biases-to-oracle gap closed by the default MF: {closed:.0%}")
    recbook.record("mf_share_of_gap_closed", round(closed, 3))

# %%
means = rmse_cmp.table()["RMSE"].sort_values("mean", ascending=False)
fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(means.index, means["mean"], xerr=means["hi"] - means["mean"], color="tab:blue")
ax.set_xlim(0, means["hi"].max() * 1.05)  # from zero: bar lengths are comparable
ax.set(
    xlabel=f"test RMSE (95 % interval over {rmse_cmp.unit})", title=f"{DATASET}: rating prediction"
)
plt.show()

# %% [markdown]
# How many ratings each user has decides how much factorisation can add: the biases need a
# couple of ratings per user, factors need more.

# %%
first = fitted[EVAL_SEEDS[0]]
per_user = first["train"].groupby("user_id").size()
print(
    f"{'world' if DATASET == 'shop' else 'split'} {EVAL_SEEDS[0]}, training ratings per rating user: median {per_user.median():.0f}, "
    f"mean {per_user.mean():.1f}, share with fewer than 5: {(per_user < 5).mean():.0%}"
)
print(
    f"events of any kind per rating: {len(first['world'].events) / len(first['world'].ratings()):.1f}"
)
if first["world"].truth is not None:
    print("latent dimensions of the shop's truth:", first["world"].truth.user_factors.shape[1])

# %% [markdown]
# **What this shop makes easy.** In the matched regime (`SHOP_REGIME = "matched"`) the shop's
# ratings *are* biased low-rank factorisation plus rounded Gaussian noise — the very family
# fitted here, and the shop's defaults were chosen so that factorisation beats the biases by a
# visible margin (notebook 00, box "What this shop makes easy", lists which generator choice
# matches which model). A factor model's gain over the biases on the matched shop is therefore the
# expected case, not evidence that real ratings are low-rank; rerun with
# `SHOP_REGIME = "misspecified"` (ratings drawn from a model no notebook fits), or on MovieLens,
# to see whether the verdicts above hold where the data are not drawn from the model.
#
# ### 6.3 Learning curves, and RMSE against rank and regularisation
#
# On the development world: the validation curves of the chosen settings, and ALS-WR's
# validation RMSE against its penalty and its rank on `SEEDS` validation splits of the
# development training ratings, with the band of the 95 % interval and the biases' validation
# RMSE as a reference, so the axis shows how large the differences are next to what
# factorisation adds at all (each point early-stopped, as in tuning). These sweeps only look at
# the landscape; they choose nothing.

# %%
als_dev = CHOSEN["numpy ALS-WR"]
sweep_rows = []
for k in range(SEEDS):
    fp, vl = splits.random_split(dev_train, test_size=VAL_FRACTION, seed=DEV_SEED + 1 + k)
    base = mf.fit_biases(fp, n_users, n_items, reg=CHOSEN[BIASES]["reg"], progress=False)
    base_rmse = val_rmse(base, vl)
    for kind, values in (("reg", REGS), ("rank", RANKS)):
        for v in values:
            m = mf.fit_als(fp, n_users, n_items, rank=RANK if kind == "reg" else v,
                           reg=v if kind == "reg" else als_dev["reg"], iters=25, val=vl,
                           patience=PATIENCE, seed=DEV_SEED, progress=False)  # fmt: skip
            sweep_rows.append({"split": k, "kind": kind, "value": v, "biases": base_rmse,
                               "val RMSE": m.history["val_rmse"].min()})  # fmt: skip
sweeps = pd.DataFrame(sweep_rows)


def band(kind: str) -> pd.DataFrame:
    rows = sweeps[sweeps["kind"] == kind].groupby("value")["val RMSE"]
    bands = {v: evaluation.interval(g) for v, g in rows}
    return pd.DataFrame({v: {"mean": i.mean, "lo": i.lo, "hi": i.hi} for v, i in bands.items()}).T


def chosen_curve(name: str) -> pd.DataFrame:
    """The validation curve of the setting development chose for ``name``."""
    chosen, table = dev_tuning[name]
    keys = [k for k in ("rank", "reg", "weight decay") if k in chosen]
    row = table.loc[(table[keys] == pd.Series({k: chosen[k] for k in keys})).all(axis=1)].iloc[0]
    return row["curve"]


fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
ax = axes[0]
for name, label in (("numpy SGD", "numpy SGD"), ("numpy ALS-WR", "numpy ALS-WR"),
                    ("PyTorch BiasedMF (Adam)", "PyTorch BiasedMF")):  # fmt: skip
    curve = chosen_curve(name)
    ax.plot(np.arange(1, len(curve) + 1), curve["val_rmse"], ".-", label=label)
ax.plot(bayes_curve["epoch"], bayes_curve["val_rmse"], "-", label="Bayesian MF (running mean)")
biases_dev = CHOSEN[BIASES]["val RMSE"]
ax.axhline(biases_dev, color="grey", ls=":", label="biases")
ax.set_ylim(None, mean_val + 0.05)
ax.set(xlabel="epoch / sweep", ylabel="validation RMSE", title="learning curves (development)")
ax.legend(fontsize=7)
biases_val = evaluation.interval(sweeps.groupby("split")["biases"].first()).mean
for a, kind, ticks, title in ((axes[1], "reg", REGS, f"ALS-WR penalty λ (rank {RANK})"),
                              (axes[2], "rank", RANKS, f"rank (λ = {als_dev['reg']:g})")):  # fmt: skip
    b = band(kind)
    a.plot(b.index, b["mean"], "o-", label="ALS-WR")
    a.fill_between(b.index, b["lo"], b["hi"], alpha=0.25, label="95 % interval")
    a.axhline(biases_val, color="grey", ls=":", label="biases")
    lo, hi = min(b["lo"].min(), biases_val), max(b["hi"].max(), biases_val)
    a.set_ylim(lo - 0.2 * (hi - lo) - 0.01, hi + 0.2 * (hi - lo) + 0.01)
    a.set(xscale="log", xlabel=title, ylabel="validation RMSE")
    a.set_xticks(ticks, [f"{t:g}" for t in ticks])
    a.minorticks_off()
    a.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### 6.4 Top-k recommendations from the factors, and what to use instead
#
# Score every (user, item) pair, remove what the user already rated in training, keep the top
# `TOP_K`; an item is relevant if the user rated it 4 or more in the test set. The rating models
# rank by predicted rating. Beside them: popularity (training ratings per item); PureSVD, a
# truncated SVD of the zero-filled 0/1 matrix of *who rated what* (Cremonesi et al. 2010) — a
# twist on §5.2's zeros; EASE (Steck 2019), an implicit-feedback item-item model; both with the
# settings of 5.6. The shop's truth gives a reference row built for this relevance: a relevant
# test item is one the user bought (ratings come from purchases) *and* rated 4 or more, so it
# scores each pair by the chance that the user buys the item
# (`truth.oracle_scores("interaction-purchase")`) times the chance that their rating reaches 4
# (`truth.rating_at_least(u, i, 4)`). It is called a reference, not an oracle: it ranks by a
# per-impression rate rather than by the exact chance that the pair lands in this test set, so a
# model could beat it without luck. The purchase score alone, which ignores the rating, is shown
# beside it. Predicting the rating a user would give is not the same task as predicting what they
# pick.


# %%
def rated_at_least(truth, stars: int) -> np.ndarray:
    """Dense (users x items) P(rating >= stars), a block of users at a time."""
    items = np.arange(truth.n_items)
    blocks = np.array_split(np.arange(truth.n_users), 10)
    return np.vstack([
        truth.rating_at_least(np.repeat(b, len(items)), np.tile(items, len(b)), stars)
        .reshape(len(b), len(items)) for b in blocks
    ])  # fmt: skip


REFERENCE = "reference (truth)"
PURCHASE_ONLY = "purchase score alone (truth)"


def topk_run(seed: int) -> dict:
    """The top-k metrics per test user on the world, split and fits of ``run(seed)``."""
    f = fitted[seed]
    tr, te, fits, w, chosen = f["train"], f["test"], f["models"], f["world"], f["chosen"]
    score_sets = {
        "random": np.random.default_rng(seed).random((n_users, n_items)),
        "popularity": baselines.popularity_scores(tr, n_users, n_items),
        PURESVD: puresvd_scores(tr, chosen[PURESVD]["rank"], seed),
        EASE: baselines.ease_scores(tr, n_users, n_items, l2=chosen[EASE]["l2"]),
        "numpy ALS-WR": fits["numpy ALS-WR"].score_matrix(),
        BAYES: fits[BAYES].score_matrix(),
    }
    if w.truth is not None:
        purchase = w.truth.oracle_scores("interaction-purchase")
        score_sets[PURCHASE_ONLY] = purchase
        score_sets[REFERENCE] = purchase * rated_at_least(w.truth, RELEVANT_RATING)
    liked = te[te["rating"] >= RELEVANT_RATING]
    item_counts = np.bincount(tr["item_id"], minlength=n_items)
    out = {}
    for name, s in score_sets.items():
        per_user = evaluation.full_catalogue_per_user(s, tr, liked, k=TOP_K, seed=seed)
        top = metrics.top_k(metrics.exclude_seen(s, tr), TOP_K, seed=seed)
        listed = np.median(item_counts[top], axis=1)
        out[name] = per_user.assign(**{"ratings of listed items": listed[per_user.index]})
    return out


topk_cmp = evaluation.replicates(
    topk_run, EVAL_SEEDS, DATASET, split="random", test_share=TEST_SHARE, desc="top-k"
)
topk_table = topk_cmp.summary(["ndcg", "hit_rate", "ratings of listed items"], spec=".3f")
topk_table["configs tried"] = [
    f"{CONFIGS[m]} (for RMSE)" if m in FACTOR_MODELS else CONFIGS.get(m, 0)
    for m in topk_table.index
]
print(f"unit: {topk_cmp.unit}; 'ratings of listed items': median training ratings of a user's list")
topk_table

# %%
ndcg = topk_cmp.table(["ndcg"])["ndcg"].sort_values("mean")
for name in ndcg.index:
    recbook.record(f"ndcg_at_{TOP_K}_{slug(name)}", round(float(ndcg.loc[name, "mean"]), 4))


def ndcg_gain(a: str, b: str) -> evaluation.Interval:
    return topk_cmp.difference(a, b, "ndcg")


what = f"NDCG@{TOP_K} over {topk_cmp.unit}"
pop_vs_bayes = evaluation.verdict(
    "popularity ranks better than the default rating model (NDCG, pop - Bayes)",
    ndcg_gain("popularity", BAYES),
)
ease_vs_pop = ndcg_gain(EASE, "popularity")
ease_word = evaluation.verdict(
    "EASE, an implicit-feedback model, ranks better than popularity (NDCG)", ease_vs_pop
)
recbook.record("ndcg10_ease_gain_over_popularity_lo", round(ease_vs_pop.lo, 4))
if REFERENCE in topk_cmp.models:
    evaluation.verdict(
        "the rating >= 4 factor raises the reference's NDCG over the purchase score alone",
        ndcg_gain(REFERENCE, PURCHASE_ONLY),
    )
fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(ndcg.index, ndcg["mean"], xerr=ndcg["hi"] - ndcg["mean"], color="tab:green")
ax.set(xlabel=f"NDCG@{TOP_K} (test ratings >= 4 relevant; 95 % interval)",
       title="top-k: rating models vs implicit models")  # fmt: skip
plt.show()

# %% [markdown]
# Why rating models can rank badly: a predicted rating says how much a user would like an item
# *if* they rated it, not whether they will pick it at all; popularity, PureSVD and EASE use
# exactly that second signal, who rated what. The "ratings of listed items" column shows one
# symptom to look for: a high predicted rating is easy to reach for an item with few ratings, so
# a point estimate such as ALS-WR can fill its lists with obscure items, while the Bayesian
# average keeps the uncertainty of such items and is pulled that way less. The verdicts above
# say how the rankings came out in these worlds.
#
# ### 6.5 What each method costs
#
# Seconds per epoch (one pass over the training ratings; for ALS one user and one item step; for
# Bayesian MF one sweep) and to convergence (the epochs used), measured on the first evaluation
# world's refits. These cells are not compared by the tests: timings vary with the machine and
# its load.

# %%
first_fits = first["models"]
timing_rows = [
    (name, first_fits[name].history, first_fits[name].fit_seconds)
    for name in ("numpy SGD", "numpy ALS-WR", BAYES)
]
torch_cfg = first["chosen"]["PyTorch BiasedMF (Adam)"]
net_model = first_fits["PyTorch BiasedMF (Adam)"]
timing_rows.append((f"PyTorch BiasedMF ({dev.type})", net_model.history, net_model.fit_seconds))
if dev.type != "cpu":  # the same PyTorch model on the CPU, for comparison
    _, cpu_hist = train_torch(first["train"], torch.device("cpu"), torch_cfg["weight decay"],
                              torch_cfg["epochs"], dim=torch_cfg["rank"], progress=False,
                              seed=EVAL_SEEDS[0])  # fmt: skip
    timing_rows.append(("PyTorch BiasedMF (cpu)", cpu_hist.frame.reset_index(), cpu_hist.seconds))
timing_table = pd.DataFrame(
    [
        {
            "method": name,
            "s / epoch": float(h["seconds"].diff().fillna(h["seconds"]).median()),
            "epochs": len(h),
            "s to convergence": total,
        }
        for name, h, total in timing_rows
    ]
).set_index("method")
timing_table.round(3)

# %% [markdown]
# ## 7. Takeaways
#
# - The §4.3 arithmetic is wrong in all three predictions and the printed factors do not fit the
#   ratings they are said to come from; a rank-2 fit on the four observed cells does.
# - The §5.2 listing cannot run (a space in a variable name). After that, its update has
#   inconsistent shapes, its split holds out *users* so the RMSE compares different people, its
#   zero-filled matrix teaches the model that unrated means "rated 0", and its recommendation step
#   can only return an empty list. The §5.4 output (RMSE 0.837, ten items) is not what this code
#   produces.
# - Fit the observed ratings only, with biases and a penalty, and choose every setting on a
#   development world with the same budget for every model. Which factor models beat the bias
#   baseline, and whether Bayesian MF — which learns its penalties and averages over its
#   uncertainty, the default here and in `benchmarks/mf.py` — beats its point-estimate twin ALS-WR,
#   is printed below from the verdicts of 6.2, decided over fresh worlds, not one split. On the
#   matched shop the ratings are drawn from this model family (see the box in 6.2).
# - Rating accuracy and top-k quality are different goals: for top-k, who rated what (the zeros
#   the article mishandles for RMSE) is the signal the implicit-feedback models use; the verdicts
#   of 6.4, repeated below, say how they compared here.

# %%
rmse_what = f"test RMSE over {rmse_cmp.unit}"
for m in FACTOR_MODELS:
    print("-", evaluation.in_words(words[m], m, "the user + item biases", rmse_what))
print("-", evaluation.in_words(bayes_vs_als, "Bayesian MF", "ALS-WR", rmse_what))
print("-", evaluation.in_words(pop_vs_bayes, "popularity", "Bayesian MF ranked by rating", what))
print("-", evaluation.in_words(ease_word, "EASE", "popularity", what))

# %% [markdown]
# ## 8. Exercises
#
# 1. Run with `DATASET = "movielens-100k"` (official `u1` split for development, random splits
#    for the verdicts) and compare the table with the bias baseline and with published results on
#    the `u1` split (GC-MC, van den Berg et al. 2017: RMSE 0.910).
# 2. Change `SAMPLES` to 20 and 200: how does the Bayesian model's test RMSE move, and its time?
# 3. Add the implicit signal (SVD++, Koren 2008): let each user's factor include the mean of
#    factors of the items they viewed or clicked in the shop. Does it close part of the gap to
#    the oracle?
# 4. In `listing_gradient_mf`, count only the observed cells in the error (a 0/1 mask). How close
#    does it get to `mf.fit_als` with `rank=10`?

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
# # 00 · Set-up and data: the machine, the shop, public data, splits and metrics
#
# **Articles.** Every source article opens its §5 with a development environment (§5.1): Python
# 3.7 or 3.8 and later, TensorFlow 2.0 ("personalisation vs privacy balance", "interest exploration
# and exploitation", the latter with Keras 2.0+) or 2.5 and later ("real-time personalisation",
# with scikit-learn 0.22+ and Pandas 1.1+), or "TensorFlow or PyTorch" with NumPy, Pandas and
# Matplotlib ("improving UX with large models"; "search + recommendation fusion" adds a BERT model
# library). Two of them say how a recommender should be judged without defining the measures:
# "personalisation vs privacy balance" §9 (Q4) names accuracy, recall and NDCG, and "improving UX
# with large models" §9.3 names accuracy, recall and F1. The matrix-factorisation listing of
# "improving UX with large models" §5.2 evaluates after a
# `train_test_split(..., test_size=0.2, random_state=42)`.
#
# **What you will learn**
#
# 1. whether this machine is ready (versions, threads, the torch device the notebooks will use);
# 2. the synthetic shop every notebook uses by default, and why it knows how good a model *can* be;
# 3. how the public datasets (MovieLens, Online Retail) are loaded, verified and what happens offline;
# 4. the train/test splits, how each one can leak, and the checks that prove it does not;
# 5. precision, recall, hit rate, NDCG and MAP at k, on an example small enough to check by hand.
#
# **Run time.** Well under a minute (the runner's measured wall time on 2 idle CPU cores is in
# the README's notebook table), most of it spent on the shops of section 6 (a development world
# and `SEEDS` evaluation worlds) and on importing the libraries. About the same on a GPU
# machine, since nothing here trains on the device.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pooch
from packaging.version import Version
from sklearn.metrics import ndcg_score, roc_auc_score

import recbook
from recbook import baselines, datasets, evaluation, metrics, mf, plots, runtime, splits

# %% tags=["parameters"]
DATASET = "shop"  # or "movielens-100k", "movielens-1m", "online-retail" (downloaded once)
DATA_PATH = None  # a local copy of the public data (zip, folder or workbook) if the download fails
SEED = 0  # the first evaluation world (shop) or training seed (public data): replicates use SEED, SEED + 1, ...
DEV_SEED = 1000  # the development world: settings are chosen on its validation data only
SHOP_REGIME = "matched"  # how the shop is generated (recbook.datasets.shop.REGIMES)
SEEDS = 3  # evaluation replicates of the baseline table (shops SEED, SEED + 1, ...)
DEVICE = "auto"  # "auto" picks cuda > mps > cpu; $RECBOOK_DEVICE overrides
SHOP_SCALE = 1.0  # multiplies the shop's users, items and events
K = 10  # cut-off of the ranking metrics in "Measured"

# %% [markdown]
# ## 1. The machine
#
# `runtime.environment_report()` lists what a stored run should be compared against: versions,
# cores, threads and devices. `runtime.start(DEVICE, SEED)` is every notebook's first step: it
# seeds Python, numpy and the frameworks, sets small plots, and picks the device by one rule for
# PyTorch and TensorFlow (`$RECBOOK_DEVICE`, then `DEVICE`, then cuda > mps > cpu); asking for a
# device that is absent (`DEVICE="cuda"` on a laptop) is an error, not a silent fall-back to the
# CPU. It records the device, so the runner (`python -m recbook run`) can show where a run went.

# %%
dev = runtime.start(DEVICE, SEED)
runtime.environment_report()

# %% [markdown]
# The articles' stated minimums, checked against this machine. Every installed package must meet
# its minimum; a package that is not installed is named with the notebooks that need it (a GPU
# image without TensorFlow, say, still runs every notebook except 01 and 02). Note that Keras is a
# major version past the Keras 2 that "interest exploration and exploitation" assumes (Keras 3
# is what TensorFlow 2.16 and later ship), so the Keras listings of notebooks 01 and 02 run on
# Keras 3.

# %%
stated = [  # (package, minimum version stated in an article's §5.1, where)
    ("python", "3.8", "personalisation vs privacy balance; interest exploration"),
    ("tensorflow", "2.5", "real-time personalisation"),
    ("keras", "2.0", "interest exploration and exploitation"),
    ("scikit-learn", "0.22", "real-time personalisation"),
    ("pandas", "1.1", "real-time personalisation"),
    ("numpy", "any", "improving UX with large models"),
    ("matplotlib", "any", "improving UX with large models"),
    ("torch", "any", "improving UX; search + recommendation fusion"),
]
needed_by = {"tensorflow": "01, 02", "keras": "01, 02"}  # packages only some notebooks import


rows = []
for package, minimum, source in stated:
    installed = runtime.installed_version(package)  # None: absent
    if installed is None:
        ok = f"not installed: notebooks {needed_by.get(package, 'all')} cannot run"
    else:
        ok = minimum == "any" or Version(installed) >= Version(minimum)
    rows.append((package, minimum, source, installed or "-", ok))
requirements = pd.DataFrame(
    rows, columns=["package", "article minimum", "stated in", "installed", "ok"]
)
too_old = requirements[requirements["ok"].map(lambda ok: ok is False)]
assert too_old.empty, too_old
missing_core = [
    p for p, *_ in stated if runtime.installed_version(p) is None and p not in needed_by
]
assert not missing_core, f"install recbook's dependencies first (`make setup`): {missing_core}"
requirements

# %% [markdown]
# ## 2. What the articles say about evaluation
#
# The articles name the measures; here they are written out, with the conventions `recbook.metrics`
# uses everywhere. For one user, let $\mathrm{rel}_j \in \{0, 1\}$ be whether the item at rank
# $j$ of the top-$k$ list is relevant (a held-out positive), and $R$ the number of relevant items:
#
# $$\mathrm{P@}k = \frac{1}{k}\sum_{j=1}^{k}\mathrm{rel}_j, \qquad
#   \mathrm{R@}k = \frac{1}{R}\sum_{j=1}^{k}\mathrm{rel}_j, \qquad
#   \mathrm{HR@}k = \mathbb{1}\Big[\sum_{j=1}^{k}\mathrm{rel}_j > 0\Big],$$
#
# $$\mathrm{DCG@}k = \sum_{j=1}^{k}\frac{\mathrm{rel}_j}{\log_2(j+1)}, \qquad
#   \mathrm{NDCG@}k = \frac{\mathrm{DCG@}k}{\sum_{j=1}^{\min(k,R)} 1/\log_2(j+1)}, \qquad
#   \mathrm{AP@}k = \frac{1}{\min(k,R)}\sum_{j=1}^{k}\mathrm{rel}_j\,\mathrm{P@}j .$$
#
# Each is averaged over the users that have at least one relevant item (a user with none is
# excluded, not counted as zero). For ratings, $\mathrm{RMSE} = \sqrt{\tfrac1n\sum (r-\hat r)^2}$
# and $\mathrm{MAE} = \tfrac1n\sum |r-\hat r|$; AUC is the probability that a random positive
# scores above a random negative (ties count one half).
#
# ### A worked example you can check by hand
#
# Three users, five items, a score matrix and the relevant items (the held-out positives):

# %%
# NBVAL_CHECK_OUTPUT
scores = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5],  # user 0
        [0.1, 0.4, 0.3, 0.9, 0.2],  # user 1
        [0.5, 0.1, 0.9, 0.3, 0.7],  # user 2
    ]
)
relevant = np.array(
    [
        [1, 0, 1, 0, 0],  # user 0 likes items 0 and 2
        [0, 0, 0, 0, 1],  # user 1 likes item 4
        [1, 1, 0, 0, 1],  # user 2 likes items 0, 1 and 4
    ],
    dtype=bool,
)
top3 = metrics.top_k(scores, 3)
hits = np.take_along_axis(relevant, top3, axis=1)
print("top-3 items per user:", top3.tolist())
print("hit at each rank:    ", hits.astype(int).tolist())
per_user = pd.DataFrame(
    [
        metrics.ranking_report(scores[[u]], relevant[[u]], ks=(3,)).iloc[0].rename(f"user {u}")
        for u in range(3)
    ]
)
per_user.loc["mean"] = metrics.ranking_report(scores, relevant, ks=(3,)).iloc[0]
per_user.round(4)

# %% [markdown]
# **By hand.** The top-3 lists are user 0: items 0, 1, 2 (hits at ranks 1 and 3); user 1: items
# 3, 1, 2 (no hit: item 4 is ranked last); user 2: items 2, 4, 0 (hits at ranks 2 and 3).
#
# | | P@3 | R@3 | HR@3 | NDCG@3 | AP@3 |
# |---|---|---|---|---|---|
# | user 0 ($R=2$) | 2/3 | 2/2 = 1 | 1 | $\dfrac{1 + 1/\log_2 4}{1 + 1/\log_2 3} = \dfrac{1.5}{1.6309} = 0.9197$ | $\tfrac12(1/1 + 2/3) = 0.8333$ |
# | user 1 ($R=1$) | 0 | 0 | 0 | 0 | 0 |
# | user 2 ($R=3$) | 2/3 | 2/3 | 1 | $\dfrac{1/\log_2 3 + 1/\log_2 4}{1 + 1/\log_2 3 + 1/\log_2 4} = \dfrac{1.1309}{2.1309} = 0.5307$ | $\tfrac13(1/2 + 2/3) = 0.3889$ |
# | mean | 0.4444 | 0.5556 | 0.6667 | 0.4835 | 0.4074 |
#
# The code below writes the same arithmetic out and checks the package against it, and against
# scikit-learn's `ndcg_score` and `roc_auc_score`.

# %%
# NBVAL_CHECK_OUTPUT
by_hand = {
    "precision": (2 / 3 + 0 + 2 / 3) / 3,
    "recall": (1 + 0 + 2 / 3) / 3,
    "hit_rate": (1 + 0 + 1) / 3,
    "ndcg": (
        (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
        + 0
        + (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3) + 1 / np.log2(4))
    )
    / 3,
    "map": ((1 / 1 + 2 / 3) / 2 + 0 + (1 / 2 + 2 / 3) / 3) / 3,
}
for name, value in by_hand.items():
    assert np.isclose(per_user.loc["mean", name], value), name
assert np.isclose(per_user.loc["mean", "ndcg"], ndcg_score(relevant, scores, k=3))

# a fourth user with nothing relevant is excluded from the mean, not counted as a zero
scores4 = np.vstack([scores, [0.2, 0.4, 0.6, 0.8, 1.0]])
relevant4 = np.vstack([relevant, np.zeros(5, dtype=bool)])
assert np.allclose(metrics.ranking_report(scores4, relevant4, ks=(3,)), per_user.loc[["mean"]])

# rating and click metrics on numbers small enough to do in your head
y, y_hat = np.array([4, 3, 5, 1]), np.array([3.5, 3, 4, 2])
labels, probs = np.array([1, 0, 1, 0, 1]), np.array([0.8, 0.4, 0.35, 0.1, 0.9])
print(f"RMSE = sqrt((0.25 + 0 + 1 + 1) / 4) = {metrics.rmse(y, y_hat):.4f}")
print(f"MAE  = (0.5 + 0 + 1 + 1) / 4       = {metrics.mae(y, y_hat):.4f}")
print(f"AUC  = 5 of 6 positive-negative pairs in order = {metrics.auc(labels, probs):.4f}")
assert np.isclose(metrics.auc(labels, probs), roc_auc_score(labels, probs))
print("package == hand arithmetic == scikit-learn")

# %% [markdown]
# ## 3. A tour of the shop
#
# Public data cannot tell how good a model *could* be. The synthetic shop can: it is generated
# from latent user tastes and item factors (see the docstring of `recbook.datasets.shop`), so it knows the
# best achievable error. `datasets.world(DATASET, seed, ...)` gives the data of one replicate: on
# the shop a whole world (users, items, events) generated from `seed` in the regime `SHOP_REGIME`
# (`SHOP_SCALE` grows it); on public data the data itself, whatever the seed. The world of `SEED`
# is the one this notebook tours; section 6 compares over the worlds `SEED`, `SEED + 1`, ... and
# chooses its settings on a separate development world, `DEV_SEED`.


# %%
loaded: dict[int, datasets.Dataset] = {}


def load_world(seed: int) -> datasets.Dataset:
    """The data of replicate ``seed``: a new shop per seed, or the public data itself (the
    same whatever the seed). Each is loaded once and kept for reuse."""
    key = seed if DATASET == "shop" else 0
    if key not in loaded:
        size = {"scale": SHOP_SCALE} if DATASET == "shop" else {}
        loaded[key] = datasets.world(DATASET, seed, DATA_PATH, regime=SHOP_REGIME, **size)
    return loaded[key]


ds = load_world(SEED)
is_shop = ds.truth is not None
print(ds)
ds.events.head()

# %%
# NBVAL_CHECK_OUTPUT
events = ds.events
ratings = ds.ratings()
has_ratings = not ratings.empty  # Online Retail has purchases only, no ratings
summary = pd.Series(
    {
        "users": ds.n_users,
        "items": ds.n_items,
        "events": len(events),
        "rated events": len(ratings),
        "density of user x item": round(
            events[["user_id", "item_id"]].drop_duplicates().shape[0] / (ds.n_users * ds.n_items),
            4,
        ),
    },
    dtype=object,
)
if has_ratings:
    summary["mean rating"] = round(ratings["rating"].mean(), 3)
if "event" in events:
    summary = pd.concat([summary, events["event"].value_counts().sort_index().astype(object)])
summary.to_frame("value")

# %% [markdown]
# > **What this shop makes easy.** In the `"matched"` regime (the default) the shop is generated
# > by the very model families the notebooks then fit:
# >
# > - a user's affinity for an item is the global mean + a user bias + an item bias + the user's
# >   preference for the item's category + a latent dot product (8 latent dimensions, with the 12
# >   category preferences a rank-20 biased matrix factorisation); a rating is that affinity plus
# >   Gaussian noise, rounded and clipped to 1–5 stars;
# > - a click is a sigmoid of the same affinity, and a purchase a second sigmoid of it that also
# >   falls with the item's price;
# > - a large share of impressions end in a purchase and every first purchase of a pair is rated,
# >   so ratings are plentiful (the cell below prints both shares for the world loaded);
# > - the generator's defaults were chosen so that matrix factorisation beats the biases by a
# >   visible margin (`tests/test_shop.py` pins it);
# > - the `"new"` title vocabulary names the late items with synonyms that a pretrained text
# >   encoder already knows.
# >
# > So matrix factorisation, dot-product and sigmoid click models are the generator's own family,
# > and lessons such as "matrix factorisation beats the biases" or "the dot product suffices"
# > hold here partly by construction. The check is a world that no notebook model matches:
# > `SHOP_REGIME = "misspecified"` (where `recbook.datasets.shop.REGIMES` lists it; the cell below
# > prints the regimes this installation has) draws taste as the best of a few interest vectors
# > (a mixture no single dot product is), heavy-tailed activity, a click probability that
# > saturates, purchases on a few per cent of the impressions and ratings on part of them (its
# > story is in the generator's docstring). Notebooks 03 and 04 point back here; run any of
# > 00–04 with `-p SHOP_REGIME=misspecified` to see which of their lessons survive.

# %%
if is_shop:
    purchased = events.loc[events["event"] == "purchase", ["user_id", "item_id"]]
    rated = events.loc[events["rating"].notna(), ["user_id", "item_id"]]
    print(f"regime {SHOP_REGIME!r} (available: {', '.join(datasets.shop.REGIMES)})")
    print(f"impressions that end in a purchase: {len(purchased) / len(events):.1%}")
    print(
        "purchased (user, item) pairs that are rated: "
        f"{len(rated.drop_duplicates()) / len(purchased.drop_duplicates()):.1%}"
    )
else:
    print(f"{DATASET} is recorded data: no generator, nothing made easy by construction")

# %% [markdown]
# Four views of the data: the long tail of item popularity (on log-log axes a Zipf-like catalogue
# is close to a straight line), the distribution of ratings, how each region's taste differs
# from the average, and the events over time (traffic grows as users sign up; the late-released
# items, the shop's cold-start items, appear after the dashed line).

# %%
item_counts = np.bincount(events["item_id"], minlength=ds.n_items)
fig, axes = plt.subplots(2, 2, figsize=(10, 7))
plots.long_tail(item_counts, ax=axes[0, 0])
top_share = np.sort(item_counts)[::-1][: max(1, ds.n_items // 10)].sum() / item_counts.sum()
axes[0, 0].text(
    0.05, 0.05, f"top 10% of items: {top_share:.0%} of events", transform=axes[0, 0].transAxes
)

if has_ratings:
    ratings["rating"].value_counts().sort_index().plot.bar(ax=axes[0, 1], color="tab:orange")
    axes[0, 1].set(
        title="ratings (purchases only)" if is_shop else "ratings", xlabel="rating", ylabel="count"
    )
else:
    axes[0, 1].set_axis_off()
    axes[0, 1].text(0.1, 0.5, f"{DATASET} has no ratings")

day = (events["timestamp"] - events["timestamp"].min()) // 86_400
week = (day // 7).rename("week")
days_in_week = day.groupby(week).nunique()  # the last week may be partial: average per day
if "event" in events:
    per_week = events.groupby([week, events["event"]], observed=True).size().unstack()
else:
    per_week = events.groupby(week).size().to_frame("events")
per_week.div(days_in_week, axis=0).plot(ax=axes[1, 1], marker=".")
axes[1, 1].set(title="events per day (weekly mean)", xlabel="week", ylabel="events per day")
if is_shop:
    axes[1, 1].axvline(
        ds.truth.cold_start_day / 7, color="k", ls="--", lw=1, label="late items appear"
    )
    axes[1, 1].legend(fontsize=8)
    with_meta = events.merge(ds.users[["user_id", "region"]], on="user_id").merge(
        ds.items[["item_id", "category"]], on="item_id"
    )
    share = pd.crosstab(with_meta["region"], with_meta["category"], normalize="index")
    lift = np.log(share / with_meta["category"].value_counts(normalize=True)[share.columns])
    plots.heatmap(lift, ax=axes[1, 0], title="observed: log(region share / overall share)")
else:
    axes[1, 0].set_axis_off()
    axes[1, 0].text(0.1, 0.5, "regions exist only in the shop")
fig.tight_layout()

# %% [markdown]
# The heatmap was computed from events only. The generator's own region tastes
# (`ds.truth.region_taste`) are the cause, so the two should agree; the cell below measures how
# far they do. Regions whose tastes differ are what makes them naturally non-IID clients for the
# federated notebook.

# %%
if is_shop:
    truth_taste = ds.truth.region_taste.loc[lift.index, lift.columns]
    agreement = np.corrcoef(truth_taste.to_numpy().ravel(), lift.to_numpy().ravel())[0, 1]
    evaluation.observed(
        "the observed region tastes follow the generator's (correlation > 0.5)",
        bool(agreement > 0.5),
        f"correlation between true region tastes and observed lift: {agreement:.2f}",
    )

# %% [markdown]
# ### Oracle rows: how good a model could be, on *your* split
#
# Ratings are drawn as $\mathrm{clip}(\mathrm{round}(x + \varepsilon), 1, 5)$ with
# $\varepsilon \sim \mathcal N(0, \sigma^2)$, where $x$ is the user-item affinity; clicks are
# coin flips with the true click probability; which item an impression shows follows the user's
# category tastes and the items' popularity. Because the generator knows all of it, `ds.truth`
# scores any (user, item) pair for each task the notebooks measure:
#
# | task | `ds.truth` | the best possible prediction of ... |
# |---|---|---|
# | `"rating"` | `expected_rating` | a rating, under squared error: $\mathbb E[r \mid u, i]$ |
# | `"click"` | `click_probability` | a click on an item that is shown |
# | `"purchase"` | `purchase_probability` | a purchase of an item that is shown |
# | `"interaction-click"` | `interaction_probability` | *which* items the user will click next |
#
# A table's **oracle row** scores exactly the test rows (or candidate items) the models score,
# with the truth instead of a model — for the same task *and* the same window: a top-$k$ task on
# a temporal split asks which items the user will click *after the cut*, so its oracle counts
# only the impressions from the cut's day on (`ds.truth.oracle_scores("interaction-click",
# from_day=...)`). Scored that way it is the table's ceiling in expectation: a model can beat it
# on one test set only by luck. A row that scores the truth for another task or window (exposure
# averaged over the user's whole life, say) is not a ceiling and is named **reference**, not
# oracle. The **baselines** are the floor: the training mean and user + item biases for ratings,
# popularity and an item-item model for rankings. A model is worth something where it sits
# between the two, and how far it closes the gap is the measure.

# %%
# NBVAL_CHECK_OUTPUT
if has_ratings:
    rating_train, rating_test = splits.per_user_split(ratings, test_size=0.2, seed=SEED)
    biases = mf.fit(rating_train, ds.n_users, ds.n_items, model="biases", progress=False)
    predictions = {
        "training mean": np.full(len(rating_test), rating_train["rating"].mean()),
        "user + item biases": biases.predict(rating_test["user_id"], rating_test["item_id"]),
    }
    if is_shop:
        predictions["oracle (truth.expected_rating)"] = ds.truth.expected_rating(
            rating_test["user_id"], rating_test["item_id"]
        )
    rating_rows = pd.Series(
        {name: metrics.rmse(rating_test["rating"], p) for name, p in predictions.items()},
        name="test RMSE",
    )
    rmse_mean = rating_rows["training mean"]
    if is_shop:
        evaluation.observed(
            "the oracle beats the biases, which beat the training mean (test RMSE)",
            bool(rating_rows.iloc[-1] < rating_rows["user + item biases"] < rmse_mean),
            f"{rating_rows.iloc[-1]:.4f} < {rating_rows['user + item biases']:.4f} "
            f"< {rmse_mean:.4f}",
        )
else:
    rating_rows = pd.Series(dtype=float, name="test RMSE")
    print(f"{DATASET} has no ratings: no rating rows")
rating_rows.round(3).to_frame()

# %% [markdown]
# The gap between the biases row and the oracle row is what personalisation can still win on
# these ratings; notebooks 01 and 03 measure how much of it their models close.
#
# ## 4. Public data: loading, checksums, and what happens offline
#
# `datasets.load("movielens-100k")` downloads the GroupLens archive once with pooch, checks its
# sha256 against `recbook/data/registry.txt`, and caches it in `data/` (or in `$RECBOOK_DATA`). A file
# whose checksum differs is never used. To show what a reader without network sees, the next cell
# is a *demonstration*: it points `$RECBOOK_DATA` at a new, empty folder (removed afterwards) and
# tries to load. Offline, the message below is what you would get — it names the URL, the
# expected checksum and where to put a copy. (If this machine *is* online, the download succeeds
# instead and the cell says so.) pooch's own retry messages are silenced here, because the
# loader's error says everything they would.

# %%
previous = os.environ.get("RECBOOK_DATA")
pooch_log = pooch.get_logger()
pooch_level = pooch_log.level
with tempfile.TemporaryDirectory(prefix="recbook-offline-demo-", dir=".") as empty_cache:
    os.environ["RECBOOK_DATA"] = empty_cache  # a relative path: nothing of this machine shows
    pooch_log.setLevel("ERROR")
    try:
        online = datasets.load("movielens-100k")
        print("online: downloaded and verified:", online)
    except Exception as err:  # show whatever the loader raises, whatever its type
        print(f"offline demo -> {type(err).__name__}: {err}")
    finally:
        pooch_log.setLevel(pooch_level)
        if previous is None:
            os.environ.pop("RECBOOK_DATA")
        else:
            os.environ["RECBOOK_DATA"] = previous

# %% [markdown]
# With a copy obtained elsewhere, `path=` skips the download. The project ships tiny *fixture*
# files written in the exact public formats (invented rows, real layouts), so the parsers are
# tested offline; loading them shows what the parsers produce: contiguous ids, the original ids
# kept, the shop's column names and the item side information. A copy that is not the official
# file is used with a warning and `info["verified"] = False`, so nobody mistakes it for the real
# data. Online Retail's cleaning is explicit: the table says how many rows each rule removed.

# %%
FIXTURES = Path("../data/fixtures")  # the checkout's fixture files, seen from notebooks/
ml = datasets.load("movielens-100k", path=FIXTURES / "ml-100k")
print(ml, "| verified:", ml.info["verified"])
ml.ratings().head()

# %%
ml.items.head(3)

# %%
retail = datasets.load("online-retail", path=FIXTURES / "online_retail_sample.xlsx")
print(retail)
retail.info["cleaning"]

# %% [markdown]
# ## 5. Splits: what each one tests, what goes wrong, and a working version
#
# A split decides which question the test set asks. The implicit positives (clicks and
# purchases) are split five ways; the table reports, for each, what the test set contains and
# one leak indicator: the share of test events that happened *before* the same user's last
# training event — the model has seen that user's future.


# %%
def temporal_cut(
    data: datasets.Dataset, rows: pd.DataFrame, quantile: float = 0.8
) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """The temporal split at the ``quantile`` of ``rows``' times. On the shop the cut moves back
    to the start of its day, so the test window is whole days: returns (train, test, the cut's
    day) -- the day the window's oracle starts from; None on public data."""
    cutoff = int(np.quantile(rows["timestamp"].to_numpy(), quantile))
    if data.truth is None:
        return (*splits.temporal_split(rows, cutoff=cutoff), None)
    start = data.info["start_timestamp"]  # day d of the shop starts at start + d * 86,400 s
    day = (cutoff - start) // 86_400
    return (*splits.temporal_split(rows, cutoff=start + day * 86_400), int(day))


positives = ds.positives()
if is_shop:
    late_items = ds.items.loc[
        ds.items["release_day"] >= ds.truth.cold_start_day, "item_id"
    ].to_numpy()
    late_items = np.intersect1d(late_items, positives["item_id"])
    cold = splits.cold_start_items(positives, items=late_items)
else:
    cold = splits.cold_start_items(positives, item_fraction=0.1, seed=SEED)
split_results = {
    "random": splits.random_split(positives, test_size=0.2, seed=SEED),
    "per user": splits.per_user_split(positives, test_size=0.2, seed=SEED),
    "leave last out": splits.leave_last_out(positives),
    "temporal (80% cut)": temporal_cut(ds, positives)[:2],
    "cold-start items": cold[:2],
}


def describe_split(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Sizes of a split and the ways its test set relates to its training set."""
    last_train = train.groupby("user_id")["timestamp"].max()
    before = (
        test["timestamp"].to_numpy() < test["user_id"].map(last_train).fillna(-np.inf).to_numpy()
    )
    train_pairs = pd.MultiIndex.from_frame(train[["user_id", "item_id"]])
    test_pairs = pd.MultiIndex.from_frame(test[["user_id", "item_id"]])
    return {
        "train rows": len(train),
        "test rows": len(test),
        "test share": round(len(test) / (len(train) + len(test)), 3),
        "test users": test["user_id"].nunique(),
        "test users unseen in train": int(
            (~test["user_id"].drop_duplicates().isin(train["user_id"])).sum()
        ),
        "test items unseen in train": int(
            (~test["item_id"].drop_duplicates().isin(train["item_id"])).sum()
        ),
        "test pairs already in train": round(float(test_pairs.isin(train_pairs).mean()), 3),
        "test events before user's last train event": round(float(before.mean()), 3),
    }


split_table = pd.DataFrame.from_dict(
    {name: describe_split(*parts) for name, parts in split_results.items()}, orient="index"
)
split_table

# %% [markdown]
# **What goes wrong.** In the random and per-user splits a test event can happen *before* that
# user's last training event (last column; the next cell prints how often): the model is then
# trained on each user's future and tested on their past, and it also learns which items become
# popular later. The cold-start split, which holds out items rather than a period, can do the
# same. The leave-last-out and temporal splits cannot, by construction. The column "test pairs already in train" counts
# repeats — a user clicking or buying the same item again. The cold-start split has none by
# construction (its test items never appear in training), and data where each (user, item) pair
# occurs once, such as MovieLens ratings, has none in any split. Repeats are not a leak but a
# choice to make explicitly: the ranking evaluation below removes training items from each
# user's candidates, so those repeats never count as hits.
#
# The checks below prove each split's promise on this data, and that no row was lost or
# duplicated.

# %%
for name, (train, test) in split_results.items():
    assert len(train) + len(test) == len(positives), f"{name}: rows lost or duplicated"
future = split_table["test events before user's last train event"]
assert future["leave last out"] == 0 and future["temporal (80% cut)"] == 0  # by construction
evaluation.observed(
    "random and per-user splits put most test events before the user's last training event",
    bool(future["random"] > 0.5 and future["per user"] > 0.5),
    f"random {future['random']:.1%}, per user {future['per user']:.1%}",
)
repeats = split_table["test pairs already in train"]
warm_splits = repeats.drop("cold-start items")
print(
    f"test pairs already in train: {warm_splits.min():.1%} to {warm_splits.max():.1%} of the "
    f"test events outside the cold-start split, {repeats['cold-start items']:.1%} in it"
)
train, test = split_results["temporal (80% cut)"]
assert train["timestamp"].max() < test["timestamp"].min(), "temporal: test must be after train"
train, test = split_results["leave last out"]
last_train = train.groupby("user_id")["timestamp"].max()
assert (test["timestamp"].to_numpy() >= test["user_id"].map(last_train).to_numpy()).all()
assert test["user_id"].is_unique, "leave last out: one test event per user"
train, test = split_results["per user"]
assert test["user_id"].isin(train["user_id"]).all(), "per user: every test user is known"
train, test = split_results["cold-start items"]
assert not test["item_id"].isin(train["item_id"]).any(), "cold start: no test item in train"

negatives = splits.sample_negatives(positives, ds.n_items, n_neg=4, seed=SEED)
seen = pd.MultiIndex.from_frame(positives[["user_id", "item_id"]])
assert not pd.MultiIndex.from_frame(negatives).isin(seen).any(), "a negative was a positive"
print(f"all split checks passed; {len(negatives)} sampled negatives, none of them a seen pair")

# %% [markdown]
# ### Ties must never pay
#
# The sampled protocol of many papers (NCF; Rendle et al. 2020) ranks each held-out item among
# 99 sampled items, and `splits.sample_eval_candidates` puts the held-out item in column 0. If
# ties were broken by position, a model that gives every candidate *the same* score would find
# the held-out item first every time. `recbook.metrics` breaks ties uniformly at random (seeded),
# so such a scorer gets the chance rate, $10/100$ for HR@10:

# %%
# NBVAL_CHECK_OUTPUT
if has_ratings:
    held_out, seen_pairs = rating_test.drop_duplicates("user_id"), ratings
else:  # purchases only: each user's last purchase is the held-out item
    held_out, seen_pairs = splits.leave_last_out(positives)[1], positives
cands = splits.sample_eval_candidates(held_out, seen_pairs, ds.n_items, n_neg=99, seed=SEED)
in_column_0 = np.zeros(cands.shape, dtype=bool)
in_column_0[:, 0] = True
constant = np.zeros(cands.shape)
by_position = np.argsort(-constant, axis=1, kind="stable")[:, :K]  # what a naive sort does
print(f"constant scorer, ties by position: HR@{K} = "
      f"{np.take_along_axis(in_column_0, by_position, axis=1).any(axis=1).mean():.3f}")  # fmt: skip
print(f"constant scorer, recbook.metrics:  HR@{K} = "
      f"{metrics.hit_rate_at_k(constant, in_column_0, K):.3f} (chance {K / cands.shape[1]:.3f})")  # fmt: skip

# %% [markdown]
# One more leak, easy to commit by accident: computing item popularity on the *whole* log
# (train and test) instead of on the training part. The next section measures whether that
# flatters the simplest recommender here (it need not: on a temporal split the test period's
# hits are partly new items that the leaked counts push up and partly items users already had).
#
# ## 6. Measured: the baselines and the oracle every later table carries
#
# On the temporal split, every test user gets a top-$k$ list over the *whole catalogue*, without
# the items they interacted with in training. Rows: random scores (the floor), popularity counted
# on training only and — the leak — on everything, EASE (an item-item ridge regression in closed
# form, Steck 2019: the strong simple model every ranking table in recbook carries), and, on the
# shop, the **oracle**: each item scored by the truth's probability that the user's next
# impression *in the test window* shows it and ends in a click
# (`truth.oracle_scores("interaction-click", from_day=<the cut's day>)`; the shop's cut sits at the
# start of a day, so the window is exactly the days scored). Items the user clicked before the
# cut are removed from every row's candidates alike, and given the truth the later clicks do not
# depend on them, so ranking by that probability maximises the expected number of hits and the
# expected DCG: in expectation no model beats it. Beside it a **reference** row scores the same
# truth with exposure averaged over each user's whole life — not the window scored, so not a
# ceiling — to show what the window is worth.
#
# **Development and evaluation.** EASE's penalty is the one setting here. It is chosen on the
# development world (`DEV_SEED`): its training part is cut once more in time, EASE is fitted on
# the earlier part and scored on the later one (`baselines.tuned_ease`), never on a test set.
# Random, popularity and the truth rows have nothing to tune; the "configs tried" column says so.
# The verdicts are computed over the evaluation worlds `SEED`, `SEED + 1`, ...
# (`evaluation.replicates`): on the shop each replicate is a new shop — users, items, events and
# split drawn anew — so the interval covers what a reader's rerun would change, and each claim is
# judged on the paired difference, the same world on both sides. On public data the temporal cut
# is fixed, so the users are resampled instead (each user's metric averaged over the seeds, which
# redraw only tie-breaks and the random scores).
#
# **Warm and cold users.** A temporal cut leaves some test users with no training event at all:
# their whole history falls after the cut. EASE scores every item zero for them, so its top-$k$
# is a random tie-break, while popularity and the oracle need no history. Mixing them in would
# blur the comparison by however many such users the data has, so they are reported apart: the
# verdicts are on the **warm** users (at least one training event), and a second table shows the
# **cold** ones, for whom a deployed system needs a fallback such as popularity. The cell prints
# how many of each every world has.

# %%
# development: EASE's penalty on the development world's validation cut (never a test set)
dev_ds = load_world(DEV_SEED)  # on public data the same data: its training part is all it sees
dev_train = temporal_cut(dev_ds, dev_ds.positives())[0]
fit_part, val_part, _ = temporal_cut(dev_ds, dev_train, quantile=0.85)
development = f"world {DEV_SEED}'s training part" if is_shop else "the training part"
EASE_L2, ease_curve = baselines.tuned_ease(fit_part, val_part, dev_ds.n_users, dev_ds.n_items, k=K)
print(
    f"EASE penalty chosen on the validation cut of {development}: l2 = {EASE_L2:g} "
    f"({len(ease_curve)} configs tried; validation NDCG@{K}: "
    + ", ".join(f"{l2:g}: {v:.4f}" for l2, v in ease_curve.items())
    + ")"
)
ORACLE = "oracle (truth, test window)"
REFERENCE = "reference (truth, whole-life exposure)"
configs_tried = {
    "random": 0,
    "popularity (train counts)": 0,
    "popularity (leak: all counts)": 0,
    "EASE (item-item)": len(ease_curve),
    ORACLE: 0,
    REFERENCE: 0,
}
cold_users, user_counts = {}, {}  # per world: cold users' per-user metrics; warm/cold counts


def run(seed: int) -> dict[str, pd.DataFrame]:
    """One evaluation replicate: world ``seed``, its temporal cut, every row's per-user metrics
    on the warm test users (the cold ones are kept apart in ``cold_users``)."""
    w = load_world(seed)
    pos = w.positives()
    train, test, cut_day = temporal_cut(w, pos)
    scores = {
        "random": np.random.default_rng(seed).random((w.n_users, w.n_items)),
        "popularity (train counts)": baselines.popularity_scores(train, w.n_users, w.n_items),
        "popularity (leak: all counts)": baselines.popularity_scores(pos, w.n_users, w.n_items),
        "EASE (item-item)": baselines.ease_scores(train, w.n_users, w.n_items, l2=EASE_L2),
    }
    if w.truth is not None:
        scores[ORACLE] = w.truth.oracle_scores("interaction-click", from_day=cut_day)
        scores[REFERENCE] = w.truth.oracle_scores("interaction-click")
    per_user = {
        model: evaluation.full_catalogue_per_user(s, train, test, K, seed)
        for model, s in scores.items()
    }
    warm = per_user["random"].index.isin(train["user_id"].unique())
    cold_users[seed] = {model: frame[~warm] for model, frame in per_user.items()}
    user_counts[seed] = {"warm test users": int(warm.sum()), "cold test users": int((~warm).sum())}
    return {model: frame[warm] for model, frame in per_user.items()}


seeds = evaluation.evaluation_seeds(SEED, SEEDS)
baseline_cmp = evaluation.replicates(run, seeds, DATASET, split="fixed", desc="worlds")
print(pd.DataFrame(user_counts).rename_axis(columns="world" if is_shop else "seed").to_string())
print(
    f"warm users; metrics at k = {K}, mean [{baseline_cmp.interval('random', 'ndcg').describe()}]"
)
baseline_cmp.summary(["hit_rate", "ndcg", "recall", "precision"]).assign(
    **{"configs tried": lambda t: t.index.map(configs_tried)}
)

# %%
means = baseline_cmp.table()
fig, ax = plt.subplots(figsize=(6, 3))
order = means[("ndcg", "mean")].sort_values().index
ax.barh(order, means.loc[order, ("ndcg", "mean")],
        xerr=(means.loc[order, ("ndcg", "hi")] - means.loc[order, ("ndcg", "mean")]),
        color="tab:blue")  # fmt: skip
ax.set(xlabel=f"NDCG@{K} (full catalogue, temporal split, warm users)",
       title="floor, baselines, ceiling")  # fmt: skip
fig.tight_layout()

# %%
honest = means.loc["popularity (train counts)"]
evaluation.observed(
    "popularity scores more than twice random's NDCG (means over the replicates)",
    bool(honest[("ndcg", "mean")] > 2 * means.loc["random", ("ndcg", "mean")]),
    f"{honest[('ndcg', 'mean')]:.4f} vs {means.loc['random', ('ndcg', 'mean')]:.4f}",
)
leak_word = evaluation.verdict(
    "counting test events flatters popularity (HR@10, leak - honest)",
    baseline_cmp.difference("popularity (leak: all counts)", "popularity (train counts)",
                            "hit_rate"),
)  # fmt: skip
ease_word = evaluation.verdict(
    "EASE beats popularity (NDCG@10, warm users)",
    baseline_cmp.difference("EASE (item-item)", "popularity (train counts)", "ndcg"),
)
if is_shop:
    oracle_word = evaluation.verdict(
        "the oracle beats EASE (NDCG@10, warm users)",
        baseline_cmp.difference(ORACLE, "EASE (item-item)", "ndcg"),
    )
    window_word = evaluation.verdict(
        "the test window's oracle beats the whole-life reference (NDCG@10, warm users)",
        baseline_cmp.difference(ORACLE, REFERENCE, "ndcg"),
    )

# %% [markdown]
# How firm are these verdicts? Rerun through the runner with `SEED=1` and `SEED=2` (worlds 1–3
# and 2–4, never the development world): "EASE beats popularity" and "the oracle beats EASE"
# came out confirmed both times; the test window's edge over the whole-life reference was
# confirmed at `SEED=1` but inconclusive at `SEED=2` — a small gain beside the differences
# between worlds, so read it as likely rather than settled.

# %% [markdown]
# The cold users, apart: the same rows on the test users without a single training event. EASE
# has nothing to go on for them (its list is a random tie-break), so the row to compare with is
# popularity — the fallback a deployed recommender gives a newcomer.

# %%
if min(len(frames["random"]) for frames in cold_users.values()) > 0:
    cold_cmp = evaluation.replicates(
        lambda seed: cold_users[seed], seeds, DATASET, split="fixed", desc="cold users"
    )
    cold_word = evaluation.verdict(
        "on cold users, popularity beats EASE (NDCG@10)",
        cold_cmp.difference("popularity (train counts)", "EASE (item-item)", "ndcg"),
    )
    print(
        f"cold users; metrics at k = {K}, mean [{cold_cmp.interval('random', 'ndcg').describe()}]"
    )
    cold_table = cold_cmp.summary(["hit_rate", "ndcg"])
else:
    cold_word = None
    print("a world without cold test users: nothing to report apart")
    cold_table = pd.DataFrame()
cold_table

# %%
recbook.record("n_events", len(events))
recbook.record("n_users", ds.n_users)
recbook.record("n_items", ds.n_items)
if has_ratings:
    recbook.record("rmse_global_mean", round(rmse_mean, 4))
    recbook.record("rmse_biases", round(rating_rows["user + item biases"], 4))
recbook.record(f"pop_hr_at_{K}", round(honest[("hit_rate", "mean")], 4))
recbook.record(f"pop_ndcg_at_{K}", round(honest[("ndcg", "mean")], 4))
recbook.record(f"ease_ndcg_at_{K}", round(means.loc["EASE (item-item)", ("ndcg", "mean")], 4))
if is_shop:
    recbook.record("rmse_oracle", round(rating_rows.iloc[-1], 4))
    recbook.record(f"oracle_ndcg_at_{K}", round(means.loc[ORACLE, ("ndcg", "mean")], 4))
pd.Series(runtime.recorded(), dtype=object).to_frame("recorded")

# %% [markdown]
# ## Takeaways
#
# What this run measured, printed from its verdicts:

# %%
print("-", evaluation.in_words(ease_word, "EASE", "popularity", f"NDCG@{K}, warm users"))
if is_shop:
    print("-", evaluation.in_words(oracle_word, "the oracle", "EASE", f"NDCG@{K}, warm users"))
    print(
        "-",
        evaluation.in_words(
            window_word, "the test window's oracle", "the whole-life reference", f"NDCG@{K}"
        ),
    )
print(
    "-",
    evaluation.in_words(
        leak_word, "popularity counted on all events", "popularity counted on training", f"HR@{K}"
    ),
)
if cold_word is not None:
    print("-", evaluation.in_words(cold_word, "popularity", "EASE", f"NDCG@{K}, cold users"))

# %% [markdown]
# And what holds whatever the numbers:
#
# - Check the machine first: the environment table and the device line are what to compare when
#   a result differs from the stored one; `python -m recbook run` does the same headless.
# - An error figure means little without its scale: every table in recbook carries baselines
#   (the floor) and, on the shop, an oracle row computed for the same task and window (the
#   ceiling, in expectation); truth scored for another window is a "reference", not an oracle.
# - The shop's default regime is generated by the model families the notebooks fit ("What this
#   shop makes easy", section 3); `SHOP_REGIME = "misspecified"` is the check.
#   ("improving UX with large models" §5.4 reports "RMSE 0.837" on min-max-scaled ratings;
#   notebook 03 examines it.)
# - Ties never pay: a constant scorer gets the chance rate, wherever the held-out item sits.
# - Comparisons report a 95 % interval over what a reader's rerun would change
#   (`evaluation.replicates`): new shop worlds, or the users of a fixed public test set; settings
#   are chosen on a development world (`DEV_SEED`) that is never evaluated; a claim is
#   "confirmed" only when the interval of the paired difference excludes zero
#   (`evaluation.verdict`).
# - A temporal cut creates cold users with no training event; report them apart (or give them a
#   fallback), or they blur every comparison of models that need a history.
# - Public data is verified by checksum; offline, the error says where to put the file.
# - The split is part of the question. Random and per-user splits let the model see each user's
#   future; leave-last-out and temporal splits do not; the checks above prove it for this data.
# - Ranking metrics have conventions (binary relevance, log2 discount, users without positives
#   excluded, AP divided by min(k, R)); the worked example pins them down.
#
# ## Exercises
#
# 1. Move item 4 of user 1 in the worked example to rank 1 (give it score 1.0). Predict every
#    number of the per-user table before you run the cell.
# 2. Re-run with `SHOP_SCALE = 0.3`. Which numbers of the split table change, and which do not?
# 3. Measure the popularity leak on the leave-last-out split. Is it larger or smaller than on the
#    temporal split, and why?
# 4. Run `python -m recbook run notebooks/00_setup_and_data.ipynb -p DATASET=movielens-100k` on a
#    machine with network. Which sections still apply, and which are shop-only?
# 5. Re-run with `SHOP_REGIME = "misspecified"`. Which verdicts of section 6 keep their word, and
#    how far does EASE get towards the oracle there?

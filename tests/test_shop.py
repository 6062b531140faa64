import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from recbook import metrics
from recbook.datasets import load
from recbook.datasets.shop import (
    CATEGORIES,
    DEFAULT_EVENTS,
    LATENT_DIM,
    N_INTERESTS,
    NEW_WORDS,
    REGIMES,
    REGIONS,
    TASKS,
)


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """``DataFrame.equals`` (values, NaNs in place, dtypes): fast on the misspecified shop's
    events, where ``assert_frame_equal`` takes seconds; that one only reports a difference."""
    if not a.equals(b):
        pd.testing.assert_frame_equal(a, b)
        raise AssertionError("the frames differ (in dtype or exact values)")


# The tests that check the truth against the generator's draws run in every regime: each
# regime's oracles must be exact for its own story.


@pytest.fixture(scope="module", params=REGIMES)
def regime(request):
    return request.param


@pytest.fixture(scope="module")
def shop(regime):
    return load("shop", scale=0.3, seed=0, regime=regime)


@pytest.fixture(scope="module")
def shared(regime):
    return load("shop", scale=0.3, seed=0, title_vocabulary="shared", regime=regime)


def test_deterministic_from_seed(shop, regime):
    again = load("shop", scale=0.3, seed=0, regime=regime)
    _assert_same(shop.events, again.events)
    _assert_same(shop.items, again.items)
    other = load("shop", scale=0.3, seed=1, regime=regime)
    assert not shop.events.item_id.equals(other.events.item_id)
    assert shop.info["regime"] == regime
    assert len(shop.events) == round(DEFAULT_EVENTS[regime] * 0.3)


def _digest(ds) -> str:
    """A hash of a shop's three frames and its truth's factors and biases."""
    h = hashlib.sha256()
    for frame in (ds.events, ds.items, ds.users):
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        h.update(",".join(map(str, frame.columns)).encode())
        h.update(",".join(map(str, frame.dtypes)).encode())
    t = ds.truth
    for a in (t.user_factors, t.item_factors, t.user_bias, t.item_bias):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(
    ("kwargs", "digest"),
    [
        ({"scale": 0.3, "seed": 0}, "33f54e2e4900ec2f"),
        (
            {"scale": 0.2, "seed": 3, "title_vocabulary": "shared", "review_probability": 0.5},
            "4229987558befafa",
        ),
        ({"seed": 0}, "c61d751c492e467b"),
        ({"seed": 1, "regime": "matched"}, "361e7a826cf83984"),
    ],
)
def test_the_matched_shop_is_the_one_every_recorded_value_came_from(kwargs, digest):
    """The matched regime is bit for bit the shop generated before the misspecified regime
    existed (digests computed with that generator): every notebook's recorded value and every
    test above depends on it. A change here changes every shop."""
    assert _digest(load("shop", **kwargs)) == digest


def test_schema(shop):
    assert list(shop.events.columns[:5]) == ["user_id", "item_id", "timestamp", "day", "event"]
    assert shop.users.region.nunique() == len(REGIONS) >= 8
    assert shop.items.category.nunique() == len(CATEGORIES) >= 10
    assert shop.events.rating.dropna().isin([1, 2, 3, 4, 5]).all()
    assert (shop.events.loc[shop.events.rating.notna(), "event"] == "purchase").all()
    assert not shop.ratings().duplicated(["user_id", "item_id"]).any()
    assert shop.items.title.str.len().min() > 10
    assert shop.info["title_vocabulary"] == "new"


def test_items_appear_only_after_release(shop):
    release = shop.items.release_day.to_numpy()[shop.events.item_id]
    assert (shop.events.day.to_numpy() >= release).all()
    late = shop.items.release_day >= shop.truth.cold_start_day
    assert 0.05 < late.mean() < 0.25


def test_long_tail_popularity(shop):
    counts = shop.events.item_id.value_counts()
    top_share = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 0.3


def test_regions_differ_in_taste(shop):
    joined = shop.events.merge(shop.users, on="user_id").merge(shop.items, on="item_id")
    share = pd.crosstab(joined.region, joined.category, normalize="index")
    assert share.max(axis=0).min() > 1.5 * share.min(axis=0).min()


# --- per-task oracles -----------------------------------------------------------------------


def _pairs(ds, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, ds.n_users, n), rng.integers(0, ds.n_items, n)


def test_oracle_ranges_and_order(shop):
    t = shop.truth
    u, i = _pairs(shop)
    rating = t.score("rating", u, i)
    assert rating.shape == (len(u),) and (rating >= 1).all() and (rating <= 5).all()
    click, buy = t.click_probability(u, i), t.purchase_probability(u, i)
    assert ((click > 0) & (click < 1)).all() and (buy < click).all() and (buy > 0).all()
    exposure = t.exposure_probability(u, i)
    assert (exposure >= 0).all() and (exposure < 1).all()
    np.testing.assert_allclose(t.interaction_probability(u, i), exposure * click)
    np.testing.assert_allclose(t.interaction_probability(u, i, event="purchase"), exposure * buy)
    np.testing.assert_allclose(t.score("interaction-purchase", u, i), exposure * buy)
    assert t.expected_rating(u, i) == pytest.approx(rating)
    # the oracle is monotone in the affinity for every pointwise task
    x = t.affinity(u, i)
    assert (np.diff(t.click_probability(u, i)[np.argsort(x)]) >= 0).all()
    assert (np.diff(rating[np.argsort(x)]) >= -1e-12).all()


def test_dense_oracle_matches_pairwise(shop):
    t = shop.truth
    u, i = _pairs(shop, 300)
    for task in TASKS:
        dense = t.oracle_scores(task, shop.n_users, shop.n_items)
        assert dense.shape == (shop.n_users, shop.n_items)
        np.testing.assert_allclose(dense[u, i], t.score(task, u, i), rtol=1e-10, atol=1e-15)


def test_exposure_sums_to_one_per_user(shop):
    t = shop.truth
    users = np.repeat(np.arange(50), shop.n_items)
    items = np.tile(np.arange(shop.n_items), 50)
    per_user = t.exposure_probability(users, items).reshape(50, shop.n_items).sum(axis=1)
    np.testing.assert_allclose(per_user, 1.0, rtol=1e-9)
    late = shop.items.release_day.to_numpy() >= t.cold_start_day
    exposure = t.exposure_probability(users, items).reshape(50, shop.n_items)
    assert (exposure[:, late].sum(axis=1) < 0.2).all()  # late items are on sale a short while


def test_exposure_predicts_impression_counts(shop):
    """The exposure oracle is the generator's item draw: expected counts match the events."""
    t = shop.truth
    n = np.bincount(shop.events.user_id, minlength=shop.n_users)
    exposure = np.zeros(shop.n_items)
    for start in range(0, shop.n_users, 300):
        block = np.arange(start, min(start + 300, shop.n_users))
        u = np.repeat(block, shop.n_items)
        i = np.tile(np.arange(shop.n_items), len(block))
        p = t.exposure_probability(u, i).reshape(len(block), shop.n_items)
        exposure += n[block] @ p
    observed = np.bincount(shop.events.item_id, minlength=shop.n_items)
    chi2 = ((observed - exposure) ** 2 / exposure).sum()
    assert chi2 < shop.n_items * 1.3  # about n_items for a correct model
    late = shop.items.release_day.to_numpy() >= t.cold_start_day
    assert observed[late].sum() == pytest.approx(exposure[late].sum(), rel=0.1)


def test_window_exposure_predicts_the_window_and_sums_to_one(shop):
    """``from_day`` restricts exposure to a test window: per user it still sums to one, and
    its expected counts match the impressions drawn on or after the cut."""
    t, cut = shop.truth, 120
    window = shop.events[shop.events["day"] >= cut]
    n = np.bincount(window.user_id, minlength=shop.n_users)
    click = t.oracle_scores("click")
    per_task = t.oracle_scores("interaction-click", from_day=cut)
    exposure = per_task / click
    np.testing.assert_allclose(exposure.sum(axis=1), 1.0, rtol=1e-9)
    expected = n @ exposure
    observed = np.bincount(window.item_id, minlength=shop.n_items)
    seen = expected > 0
    chi2 = ((observed[seen] - expected[seen]) ** 2 / expected[seen]).sum()
    assert chi2 < seen.sum() * 1.3 and observed[~seen].sum() == 0
    whole_life = t.oracle_scores("interaction-click")
    assert not np.allclose(whole_life, per_task)  # the window changes the ranking's scores
    with pytest.raises(ValueError, match="interaction task"):
        t.oracle_scores("click", from_day=cut)
    with pytest.raises(ValueError, match="window"):
        t.oracle_scores("interaction-click", from_day=t.n_days)


def test_rating_at_least_is_calibrated(shop):
    rated = shop.ratings()
    p = shop.truth.rating_at_least(rated.user_id, rated.item_id, 4)
    observed = (rated.rating >= 4).to_numpy()
    assert abs(p.mean() - observed.mean()) < 0.02
    assert observed[p > 0.7].mean() > observed[p < 0.3].mean() + 0.4
    with pytest.raises(ValueError, match="stars"):
        shop.truth.rating_at_least(rated.user_id, rated.item_id, 6)


def test_purchase_oracle_is_calibrated(shop):
    ev = shop.events
    p = shop.truth.purchase_probability(ev.user_id, ev.item_id)
    bought = (ev.event == "purchase").to_numpy()
    assert p.mean() == pytest.approx(bought.mean(), abs=0.01)
    assert metrics.auc(bought, p) > 0.7


def test_click_oracle_beats_popularity_on_held_out_impressions(shop, regime):
    ev = shop.events
    rng = np.random.default_rng(0)
    test = rng.random(len(ev)) < 0.2
    clicked = (ev.event != "view").to_numpy()
    clicks_per_item = np.bincount(ev.item_id[~test & clicked], minlength=shop.n_items)
    popularity = clicks_per_item / np.maximum(
        np.bincount(ev.item_id[~test], minlength=shop.n_items), 1
    )
    oracle = shop.truth.click_probability(ev.user_id[test], ev.item_id[test])
    auc_oracle = metrics.auc(clicked[test], oracle)
    auc_pop = metrics.auc(clicked[test], popularity[ev.item_id[test]])
    # the misspecified shop's click saturates (a ceiling of 0.5): less to separate
    low, high = {"matched": (0.75, 0.85), "misspecified": (0.7, 0.8)}[regime]
    assert low < auc_oracle < high
    assert auc_oracle > auc_pop + 0.05


def test_interaction_oracle_ranks_next_clicks(shop):
    """Top-k: the interaction oracle finds the items users click better than popularity."""
    ev = shop.events[shop.events.event != "view"]
    last = ev.groupby("user_id").tail(1)
    dense = shop.truth.oracle_scores("interaction-click")
    rel = np.zeros_like(dense)
    rel[last.user_id, last.item_id] = 1.0
    pop = np.broadcast_to(np.bincount(ev.item_id, minlength=shop.n_items), dense.shape)
    users = last.user_id.to_numpy()
    hr_oracle = metrics.hit_rate_at_k(dense[users], rel[users], 10)
    hr_pop = metrics.hit_rate_at_k(pop[users].astype(float), rel[users], 10)
    assert hr_oracle > hr_pop + 0.05


def test_oracle_errors(shop):
    t = shop.truth
    with pytest.raises(ValueError, match="unknown task 'ctr'"):
        t.score("ctr", [0], [0])
    with pytest.raises(ValueError, match="item_ids must lie in"):
        t.click_probability([0], [shop.n_items])
    with pytest.raises(ValueError, match="whole-number"):
        t.expected_rating([0.5], [0])
    with pytest.raises(ValueError, match="shapes differ"):
        t.purchase_probability([0, 1], [0])
    with pytest.raises(ValueError, match="unknown event"):
        t.interaction_probability([0], [0], event="view")
    with pytest.raises(ValueError, match="n_items=5 but the shop has"):
        t.oracle_scores("click", shop.n_users, 5)


# --- title vocabularies ---------------------------------------------------------------------


def _tokens(titles, brands):
    drop = {b.lower() for b in brands} | {"by"}
    return {w for t in titles for w in re.findall(r"\w+", t.lower())} - drop


def _warm_cold(ds):
    late = ds.items.release_day >= ds.truth.cold_start_day
    brands = ds.items.brand.unique()
    return _tokens(ds.items.title[~late], brands), _tokens(ds.items.title[late], brands)


def test_new_vocabulary_names_late_items_with_unseen_words(shop):
    warm, cold = _warm_cold(shop)
    assert not warm & cold
    assert len(cold) > 50
    # brands phrase the same noun differently: several headphone words among warm items
    electronics = shop.items.title[shop.items.category == "electronics"].str.lower()
    synonyms = NEW_WORDS["electronics"][0][0][0]
    assert sum(electronics.str.contains(w).any() for w in synonyms) >= 2


def test_late_items_come_from_late_brands(shop):
    late = shop.items.release_day >= shop.truth.cold_start_day
    assert not set(shop.items.brand[late]) & set(shop.items.brand[~late])
    per_category = shop.items[late].groupby("category", observed=True).brand.nunique()
    assert per_category.max() <= 2


def test_shared_vocabulary_reuses_words(shared):
    warm, cold = _warm_cold(shared)
    assert len(cold - warm) <= 0.05 * len(cold)  # a rare word may turn up only late, by chance
    assert shared.info["title_vocabulary"] == "shared"


def test_vocabularies_differ_only_in_titles(shop, shared):
    _assert_same(shop.events, shared.events)
    _assert_same(shop.items.drop(columns="title"), shared.items.drop(columns="title"))
    assert (shop.items.title != shared.items.title).mean() > 0.5


# --- knobs and their errors -----------------------------------------------------------------


def test_review_probability_thins_ratings():
    full = load("shop", scale=0.2, seed=3)
    half = load("shop", scale=0.2, seed=3, review_probability=0.5)
    assert len(half.ratings()) == pytest.approx(len(full.ratings()) / 2, rel=0.1)
    _assert_same(full.events.drop(columns="rating"), half.events.drop(columns="rating"))


def test_taste_sd_zero_leaves_only_biases_and_categories():
    ds = load("shop", scale=0.1, taste_sd=0.0)
    assert np.abs(ds.truth.user_factors[:, len(CATEGORIES) :]).max() == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_users": 2}, ValueError, "too small"),
        ({"scale": 0}, ValueError, "scale must be > 0"),
        ({"scale": float("nan")}, ValueError, "scale must be a finite number"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
        ({"n_events": 10.5}, TypeError, "n_events must be an integer"),
        ({"late_item_fraction": 1.0}, ValueError, "late_item_fraction must be < 1"),
        ({"rating_noise_sd": 0}, ValueError, "rating_noise_sd must be > 0"),
        ({"taste_sd": -0.1}, ValueError, "taste_sd must be >= 0"),
        ({"review_probability": 0}, ValueError, "review_probability must be > 0"),
        ({"review_probability": 1.5}, ValueError, r"review_probability must be in \(0, 1\]"),
        ({"title_vocabulary": "old"}, ValueError, "unknown title_vocabulary 'old'"),
        ({"regime": "wild"}, ValueError, "unknown regime 'wild'"),
        ({"regime": "misspecified", "n_events": 10.5}, TypeError, "n_events must be an integer"),
        ({"regime": "misspecified", "review_probability": 0}, ValueError, "must be > 0"),
    ],
)
def test_bad_knobs(kwargs, error, match):
    with pytest.raises(error, match=match):
        load("shop", **kwargs)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'shopp'"):
        load("shopp")


# --- the misspecified regime ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pair():
    """The same seed in both regimes."""
    return {r: load("shop", scale=0.3, seed=0, regime=r) for r in REGIMES}


def test_regimes_share_users_and_items_and_differ_in_behaviour(pair):
    matched, mis = pair["matched"], pair["misspecified"]
    _assert_same(matched.users, mis.users)
    _assert_same(matched.items, mis.items)
    # the first interest is the matched shop's taste; the others are new
    np.testing.assert_array_equal(matched.truth.user_factors, mis.truth.user_factors)
    assert matched.truth.user_interests is None
    width = matched.truth.item_factors.shape[1]
    assert mis.truth.user_interests.shape == (mis.n_users, N_INTERESTS, width)
    np.testing.assert_array_equal(mis.truth.user_interests[:, 0], mis.truth.user_factors)
    assert len(mis.events) > 3 * len(matched.events)


def _interaction(t):
    """The dense (users x items) affinity without its global mean and biases."""
    users, items = (
        np.repeat(np.arange(t.n_users), t.n_items),
        np.tile(np.arange(t.n_items), t.n_users),
    )
    x = t.affinity(users, items).reshape(t.n_users, t.n_items)
    return x - t.global_mean - t.user_bias[:, None] - t.item_bias[None, :]


def test_misspecified_taste_is_the_best_of_several_interests(pair):
    """The affinity's interaction term is the category preference plus the best of the user's
    interests, each winning about a third of the pairs -- not a fixed-rank dot product: the
    matched term has rank 12 + 8 exactly, the misspecified one a long tail of singular values."""
    t, n_cat = pair["misspecified"].truth, len(CATEGORIES)
    u, i = _pairs(pair["misspecified"])
    cat = t.item_category[i]
    pref = t.user_factors[u, cat]
    taste = np.einsum("nmk,nk->nm", t.user_interests[u, :, n_cat:], t.item_factors[i, n_cat:])
    expected = t.global_mean + t.user_bias[u] + t.item_bias[i] + pref + taste.max(axis=1)
    np.testing.assert_allclose(t.affinity(u, i), expected - t.interest_offset, rtol=1e-12)
    assert (t.user_interests[:, :, :n_cat] == t.user_factors[:, None, :n_cat]).all()
    shares = np.bincount(taste.argmax(axis=1), minlength=N_INTERESTS) / len(u)
    assert (shares > 0.25).all()
    rank = n_cat + LATENT_DIM
    matched_sv = np.linalg.svd(_interaction(pair["matched"].truth), compute_uv=False)
    mis_sv = np.linalg.svd(_interaction(t), compute_uv=False)
    assert matched_sv[rank] < 1e-12 * matched_sv[0]
    assert mis_sv[rank] > 0.05 * mis_sv[0]
    # centred: the best match is about 0 over the catalogue on average
    assert abs(_interaction(t).mean() - _interaction(pair["matched"].truth).mean()) < 0.3


def test_misspecified_funnel_is_thin_and_activity_heavy_tailed(pair):
    """A few % of impressions end in a purchase (about 29 % in the matched shop) with a similar
    number of clicks; half the first purchases are rated; the heaviest 1 % of users see twice
    the matched shop's share of impressions; a click saturates at 1/2."""
    out = {}
    for r, ds in pair.items():
        ev = ds.events
        per_user = np.sort(np.bincount(ev.user_id, minlength=ds.n_users))[::-1]
        bought = ev[ev.event == "purchase"].drop_duplicates(["user_id", "item_id"])
        out[r] = {
            "clicks": (ev.event != "view").sum(),
            "purchase_rate": (ev.event == "purchase").mean(),
            "rated_share": len(ds.ratings()) / len(bought),
            "top_share": per_user[: ds.n_users // 100].sum() / len(ev),
        }
    matched, mis = out["matched"], out["misspecified"]
    assert 0.25 < matched["purchase_rate"] < 0.35 and 0.03 < mis["purchase_rate"] < 0.1
    assert 0.5 < mis["clicks"] / matched["clicks"] < 1.5
    assert matched["rated_share"] == 1 and 0.45 < mis["rated_share"] < 0.55
    assert mis["top_share"] > 1.8 * matched["top_share"]
    click = pair["misspecified"].truth.oracle_scores("click")
    assert 0.45 < click.max() <= 0.5 and pair["matched"].truth.oracle_scores("click").max() > 0.9


def test_misspecified_review_probability_is_the_callers_when_given():
    half = load("shop", scale=0.2, seed=3, regime="misspecified")
    every = load("shop", scale=0.2, seed=3, regime="misspecified", review_probability=1.0)
    bought = half.events[half.events.event == "purchase"].drop_duplicates(["user_id", "item_id"])
    assert len(every.ratings()) == len(bought)
    _assert_same(half.events.drop(columns="rating"), every.events.drop(columns="rating"))


def test_best_match_is_the_same_from_the_table_and_in_blocks():
    from recbook.datasets.shop.generator import _best_match

    rng = np.random.default_rng(0)
    interests, latent = rng.normal(size=(40, 3, 8)), rng.normal(size=(30, 8))
    u, i = rng.integers(0, 40, 70_000), rng.integers(0, 30, 70_000)  # two blocks
    table = _best_match(interests, latent, u, i, dense=True)
    blocks = _best_match(interests, latent, u, i, dense=False)
    np.testing.assert_allclose(table, blocks, rtol=1e-12)
    np.testing.assert_allclose(table, np.max(interests[u] @ latent[i][:, :, None], axis=1)[:, 0])


def test_misspecified_density_leaves_a_per_user_split_and_room_to_learn():
    """At the defaults the misspecified shop has about a third of the matched shop's ratings:
    a median user rates a handful, most users fewer than five, yet a per-user split still tests
    over a thousand users, and the oracle is far ahead of user + item biases."""
    from recbook import mf
    from recbook.splits import per_user_split

    ds = load("shop", seed=0, regime="misspecified")
    ratings = ds.ratings()
    per_user = np.bincount(ratings.user_id, minlength=ds.n_users)
    assert 15_000 < len(ratings) < 30_000 and np.median(per_user) >= 3
    assert 0.4 < np.mean(per_user < 5) < 0.7
    train, test = per_user_split(ratings, 0.2, seed=0)
    assert test.user_id.nunique() > 1000
    biases = mf.fit(train, ds.n_users, ds.n_items, model="biases", progress=False)
    rmse_biases = metrics.rmse(test.rating, biases.predict(test.user_id, test.item_id))
    oracle = metrics.rmse(test.rating, ds.truth.expected_rating(test.user_id, test.item_id))
    assert oracle < rmse_biases - 0.1


# --- density: collaborative filtering has something to learn at the defaults ----------------


def test_defaults_let_matrix_factorisation_beat_biases():
    """At the defaults, Bayesian MF (and tuned ALS) beat user + item biases on a per-user
    random split, while a tail of light users remains (the density the notebooks rely on)."""
    from recbook import mf
    from recbook.splits import per_user_split

    ds = load("shop", seed=0)
    ratings = ds.ratings()
    per_user = np.bincount(ratings.user_id, minlength=ds.n_users)
    assert 0.05 < np.mean(per_user < 5) < 0.3 and np.median(per_user) >= 10
    assert 3.5 < ratings.rating.mean() < 4.1
    assert (np.bincount(ratings.rating.astype(int), minlength=6)[1:] > 0.01 * len(ratings)).all()
    train, test = per_user_split(ratings, 0.2, seed=0)

    def test_rmse(model):
        return metrics.rmse(test.rating, model.predict(test.user_id, test.item_id))

    biases = test_rmse(mf.fit(train, ds.n_users, ds.n_items, model="biases", progress=False))
    bayes = test_rmse(mf.fit(train, ds.n_users, ds.n_items, progress=False))
    als = test_rmse(
        mf.fit(train, ds.n_users, ds.n_items, model="als", rank=5, reg=0.2, progress=False)
    )
    oracle = metrics.rmse(test.rating, ds.truth.expected_rating(test.user_id, test.item_id))
    assert biases - bayes > 0.04
    assert biases - als > 0.025
    assert oracle < bayes - 0.1  # and the gap to the oracle stays visible


# --- layers ---------------------------------------------------------------------------------


def test_shop_modules_keep_to_their_layer():
    """titles and truth import nothing of the shop, generator imports both, and nothing of the
    shop reaches beyond recbook.datasets.base and the ground floor (checks, columns)."""
    import ast
    from pathlib import Path

    import recbook.datasets.shop as shop_package

    ground = {"recbook.checks", "recbook.columns", "recbook.datasets.base"}
    siblings = {
        "__init__": {"generator", "titles", "truth"},
        "generator": {"titles", "truth"},
        "titles": set(),
        "truth": set(),
    }
    folder = Path(shop_package.__file__).parent
    assert {p.stem for p in folder.glob("*.py")} == set(siblings)
    for name, allowed in siblings.items():
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: use absolute imports"
                names = [f"{node.module}.{a.name}" for a in node.names]
                imported |= {n if n in ground else node.module for n in names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        ours = {m for m in imported if m == "recbook" or m.startswith("recbook.")}
        shop = {m.rpartition(".")[2] for m in ours if m.startswith("recbook.datasets.shop.")}
        assert shop == allowed, name
        assert ours - {f"recbook.datasets.shop.{s}" for s in shop} <= ground, name

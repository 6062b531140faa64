"""The synthetic shop: an e-commerce world generated from a seed, that knows its own truth.

Why synthetic: public data cannot say how good a model *could* be. The shop's generator knows
every user's and item's latent factors, so it reports the noise floor — the RMSE of the
Bayes-optimal rating prediction and the AUC of the true click probability — and notebooks show
how close a model gets.

The generative story (all vectorised):

* users live in one of 8 regions; each region has its own category tastes, each user deviates
  from it (``pref``), and has a latent taste vector ``u``;
* items have a category (12), brand, tier (budget/standard/premium), style and colour; their
  latent vector ``v`` is built from style, tier and colour, so the generated title carries it;
* an impression picks a user (long-tailed activity), a day, a category from the user's
  preferences, and an item within it by Zipf-like popularity (among items already released);
* affinity ``x = mu + b_u + b_i + s * pref[u, cat] + u . v``; the user clicks with probability
  ``sigmoid(a + c * (x - mu))``, buys a clicked item with a second sigmoid, and rates a purchase
  ``clip(round(x + noise), 1, 5)`` (only the first purchase of a pair is rated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from recbook.datasets import Dataset

REGIONS = ("north", "south", "east", "west", "central", "coastal", "mountain", "island")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_WEIGHTS = (0.16, 0.27, 0.22, 0.16, 0.11, 0.08)
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    # category: (nouns, styles, median price)
    "clothing": (
        ("shirt", "jacket", "dress", "jeans", "sweater"),
        ("slim", "relaxed", "linen", "wool"),
        35.0,
    ),
    "electronics": (
        ("headphones", "charger", "speaker", "tablet", "camera"),
        ("wireless", "compact", "smart", "hd"),
        90.0,
    ),
    "books": (
        ("novel", "cookbook", "guide", "biography", "atlas"),
        ("hardcover", "paperback", "illustrated", "annotated"),
        15.0,
    ),
    "home": (
        ("lamp", "cushion", "rug", "vase", "blanket"),
        ("nordic", "rustic", "modern", "vintage"),
        40.0,
    ),
    "beauty": (
        ("serum", "lipstick", "shampoo", "moisturiser", "perfume"),
        ("organic", "matte", "hydrating", "floral"),
        22.0,
    ),
    "sports": (
        ("yoga mat", "dumbbell", "running shoes", "bottle", "backpack"),
        ("lightweight", "grip", "trail", "insulated"),
        45.0,
    ),
    "toys": (
        ("puzzle", "building set", "doll", "board game", "kite"),
        ("wooden", "educational", "plush", "magnetic"),
        25.0,
    ),
    "grocery": (
        ("coffee", "tea", "olive oil", "chocolate", "granola"),
        ("roasted", "herbal", "extra virgin", "dark"),
        9.0,
    ),
    "garden": (
        ("planter", "hose", "shears", "seed kit", "lantern"),
        ("ceramic", "expandable", "solar", "heirloom"),
        30.0,
    ),
    "jewelry": (
        ("necklace", "ring", "bracelet", "earrings", "watch"),
        ("silver", "gold plated", "minimalist", "gemstone"),
        60.0,
    ),
    "pets": (
        ("dog bed", "cat toy", "leash", "pet food", "aquarium"),
        ("orthopedic", "interactive", "reflective", "grain free"),
        28.0,
    ),
    "automotive": (
        ("phone mount", "seat cover", "dash cam", "tyre inflator", "car vacuum"),
        ("magnetic", "leather", "night vision", "cordless"),
        50.0,
    ),
}
TIERS = (
    ("basic", "value", "essential"),
    ("classic", "everyday", "standard"),
    ("premium", "deluxe", "pro"),
)
COLOURS = ("black", "white", "navy", "red", "green", "grey", "beige", "blue", "pink", "brown")
_SYLLABLES = (
    "nor",
    "vik",
    "al",
    "dera",
    "lu",
    "mio",
    "ka",
    "ren",
    "so",
    "tal",
    "ve",
    "ro",
    "zen",
    "ix",
    "ba",
    "lo",
)
START_TIMESTAMP = 1_704_067_200  # 2024-01-01 00:00 UTC
N_DAYS = 180
LATENT_DIM = 8


@dataclass
class ShopTruth:
    """What the generator knows and a model can only estimate.

    ``user_factors``/``item_factors`` are the full-rank truth: each row concatenates the user's
    category preferences (scaled) with the latent taste, so that
    ``expected affinity = global_mean + user_bias + item_bias + user_factors @ item_factors.T``.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float
    rating_noise_sd: float
    click_intercept: float
    click_slope: float
    region_taste: pd.DataFrame
    cold_start_day: int
    rmse_floor: float
    auc_floor: float

    def affinity(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Noise-free affinity ``x`` of each (user, item) pair."""
        u, i = np.asarray(user_ids), np.asarray(item_ids)
        dot = np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
        return self.global_mean + self.user_bias[u] + self.item_bias[i] + dot

    def expected_rating(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """E[rating | user, item]: the Bayes-optimal prediction under squared error."""
        return _rating_moments(self.affinity(user_ids, item_ids), self.rating_noise_sd)[0]

    def click_probability(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """True probability that the user clicks the item when shown it."""
        x = self.affinity(user_ids, item_ids)
        return expit(self.click_intercept + self.click_slope * (x - self.global_mean))


def _rating_moments(x: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of clip(round(x + N(0, sd)), 1, 5), exactly, from the normal CDF."""
    edges = np.array([1.5, 2.5, 3.5, 4.5])
    cdf = norm.cdf((edges[None, :] - x[:, None]) / sd)
    probs = np.diff(
        np.concatenate([np.zeros((len(x), 1)), cdf, np.ones((len(x), 1))], axis=1), axis=1
    )
    levels = np.arange(1, 6, dtype=float)
    mean = probs @ levels
    var = probs @ levels**2 - mean**2
    return mean, var


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        parts = rng.choice(len(_SYLLABLES), size=rng.integers(2, 4))
        names.add("".join(_SYLLABLES[p] for p in parts).capitalize())
    return sorted(names)


def _check_sizes(n_users: int, n_items: int, n_events: int) -> None:
    if n_users < 10 or n_items < len(CATEGORIES) * 2 or n_events < n_users:
        raise ValueError(
            f"shop too small: n_users={n_users} (>= 10), n_items={n_items} "
            f"(>= {len(CATEGORIES) * 2}), n_events={n_events} (>= n_users); "
            "raise the sizes or scale"
        )


def load_shop(
    n_users: int = 3000,
    n_items: int = 1000,
    n_events: int = 200_000,
    seed: int = 0,
    scale: float = 1.0,
    late_item_fraction: float = 0.12,
    rating_noise_sd: float = 0.85,
) -> Dataset:
    """Generate the shop deterministically from ``seed``.

    ``scale`` multiplies the three sizes (the benchmark uses 100k users, 10k items, 2M events).
    ``late_item_fraction`` of the items are released in the last third of the period: they are
    the cold-start items (``truth.cold_start_day``).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if not 0 <= late_item_fraction < 1:
        raise ValueError(f"late_item_fraction must be in [0, 1), got {late_item_fraction}")
    if rating_noise_sd <= 0:
        raise ValueError(f"rating_noise_sd must be positive, got {rating_noise_sd}")
    n_users, n_items, n_events = (int(round(n * scale)) for n in (n_users, n_items, n_events))
    _check_sizes(n_users, n_items, n_events)
    rng = np.random.default_rng(seed)
    cats = list(CATEGORIES)
    n_cat = len(cats)

    # --- regions and users --------------------------------------------------------------
    region_taste = rng.normal(0.0, 1.0, size=(len(REGIONS), n_cat))
    user_region = rng.integers(0, len(REGIONS), size=n_users)
    pref = region_taste[user_region] + rng.normal(0.0, 0.6, size=(n_users, n_cat))
    user_latent = rng.normal(0.0, 0.45, size=(n_users, LATENT_DIM))
    user_bias = rng.normal(0.0, 0.4, size=n_users)
    signup_day = np.minimum(rng.exponential(40.0, size=n_users), N_DAYS - 30).astype(int)
    age_band = rng.choice(len(AGE_BANDS), size=n_users, p=AGE_WEIGHTS)

    # --- items: attributes -> latent vector, price, title ----------------------------------
    item_cat = rng.integers(0, n_cat, size=n_items)
    tier = rng.choice(3, size=n_items, p=(0.3, 0.45, 0.25))
    style = rng.integers(0, 4, size=n_items)
    noun = rng.integers(0, 5, size=n_items)
    colour = rng.integers(0, len(COLOURS), size=n_items)
    style_vec = rng.normal(0.0, 0.6, size=(n_cat, 4, LATENT_DIM))
    tier_vec = rng.normal(0.0, 0.5, size=(3, LATENT_DIM))
    colour_vec = rng.normal(0.0, 0.25, size=(len(COLOURS), LATENT_DIM))
    item_latent = (
        style_vec[item_cat, style]
        + tier_vec[tier]
        + colour_vec[colour]
        + rng.normal(0.0, 0.2, size=(n_items, LATENT_DIM))
    )
    brands = _brand_names(rng, 6 * n_cat)
    brand_of = (item_cat * 6 + rng.integers(0, 6, size=n_items)).astype(int)
    brand_quality = rng.normal(0.0, 0.2, size=len(brands))
    item_bias = brand_quality[brand_of] + 0.15 * (tier - 1) + rng.normal(0.0, 0.15, size=n_items)
    medians = np.array([CATEGORIES[c][2] for c in cats])
    price = np.round(
        medians[item_cat] * np.exp(0.35 * (tier - 1) + rng.normal(0.0, 0.3, n_items)), 2
    )
    tier_word = rng.integers(0, 3, size=n_items)
    words = [CATEGORIES[c] for c in cats]
    titles = [
        f"{brands[b]} {TIERS[t][w]} {words[c][1][s]} {words[c][0][n]}, {COLOURS[k]}"
        for b, t, w, c, s, n, k in zip(brand_of, tier, tier_word, item_cat, style, noun, colour)
    ]
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    cold_start_day = int(N_DAYS * 2 / 3)
    release_day = np.zeros(n_items, dtype=int)
    late = rng.random(n_items) < late_item_fraction
    release_day[late] = rng.integers(cold_start_day, N_DAYS - 10, size=late.sum())

    # --- impressions: user -> day -> category -> item --------------------------------------
    activity = rng.lognormal(0.0, 0.8, size=n_users)
    ev_user = rng.choice(n_users, size=n_events, p=activity / activity.sum())
    ev_day = signup_day[ev_user] + (rng.random(n_events) * (N_DAYS - signup_day[ev_user])).astype(
        int
    )
    cat_prob = np.exp(pref - pref.max(axis=1, keepdims=True))
    cat_cum = np.cumsum(cat_prob / cat_prob.sum(axis=1, keepdims=True), axis=1)
    ev_cat = (rng.random(n_events)[:, None] > cat_cum[ev_user]).sum(axis=1).clip(max=n_cat - 1)
    order = np.argsort(item_cat, kind="stable")
    sorted_cat = item_cat[order]
    pop_sorted = popularity[order]
    mass = np.bincount(sorted_cat, weights=pop_sorted, minlength=n_cat)
    cum = sorted_cat + np.cumsum(pop_sorted) - np.concatenate([[0.0], np.cumsum(mass)])[sorted_cat]
    ev_item = np.empty(n_events, dtype=np.int64)
    todo = np.arange(n_events)
    for _ in range(30):  # resample items not yet released on the impression's day
        draw = ev_cat[todo] + rng.random(len(todo))
        pick = order[np.searchsorted(cum, draw).clip(max=n_items - 1)]
        ev_item[todo] = pick
        todo = todo[release_day[pick] > ev_day[todo]]
        if len(todo) == 0:
            break
    if len(todo):  # an impression of a late item that kept being drawn moves after its release
        ev_day[todo] = release_day[ev_item[todo]] + rng.integers(0, 5, size=len(todo))
        ev_day[todo] = np.minimum(ev_day[todo], N_DAYS - 1)

    # --- outcomes -------------------------------------------------------------------------
    pref_scale = 0.35
    user_factors = np.hstack([pref * pref_scale, user_latent])
    item_factors = np.hstack([np.eye(n_cat)[item_cat], item_latent])
    global_mean, click_a, click_c = 3.0, -0.5, 1.3
    truth = ShopTruth(
        user_factors=user_factors,
        item_factors=item_factors,
        user_bias=user_bias,
        item_bias=item_bias,
        global_mean=global_mean,
        rating_noise_sd=rating_noise_sd,
        click_intercept=click_a,
        click_slope=click_c,
        region_taste=pd.DataFrame(region_taste, index=list(REGIONS), columns=cats),
        cold_start_day=cold_start_day,
        rmse_floor=float("nan"),
        auc_floor=float("nan"),
    )
    # the affinity of truth.affinity, computed without gathering 20-wide factor rows
    x = (
        global_mean
        + user_bias[ev_user]
        + item_bias[ev_item]
        + pref_scale * pref[ev_user, item_cat[ev_item]]
        + np.einsum("nk,nk->n", user_latent[ev_user], item_latent[ev_item])
    )
    p_click = expit(click_a + click_c * (x - global_mean))
    clicked = rng.random(n_events) < p_click
    log_price = np.log(price[ev_item] / medians[item_cat[ev_item]])
    p_buy = expit(-0.7 + 0.6 * (x - global_mean) - 0.8 * log_price)
    bought = clicked & (rng.random(n_events) < p_buy)
    seconds = rng.integers(0, 86_400, size=n_events)
    timestamp = START_TIMESTAMP + ev_day.astype(np.int64) * 86_400 + seconds
    idx = np.lexsort((ev_user, timestamp))  # chronological, then by user
    events = pd.DataFrame(
        {
            "user_id": ev_user[idx],
            "item_id": ev_item[idx],
            "timestamp": timestamp[idx],
            "day": ev_day[idx],
        },
        index=idx,
    )
    events["event"] = pd.Categorical(
        np.where(bought[idx], "purchase", np.where(clicked[idx], "click", "view")),
        categories=["view", "click", "purchase"],
    )
    noisy = x[idx] + rng.normal(0.0, rating_noise_sd, size=n_events)
    rating = np.clip(np.round(noisy), 1, 5)
    # only the first purchase of a pair carries a rating: one rating per (user, item)
    bought_rows = np.flatnonzero(bought[idx])
    pair_code = ev_user[idx][bought_rows].astype(np.int64) * n_items + ev_item[idx][bought_rows]
    _, first = np.unique(pair_code, return_index=True)
    is_rated = np.zeros(n_events, dtype=bool)
    is_rated[bought_rows[first]] = True
    events["rating"] = np.where(is_rated, rating, np.nan)
    events = events.reset_index(drop=True)

    # --- noise floors ---------------------------------------------------------------------
    from recbook.metrics import auc, rmse

    rated = events["rating"].notna().to_numpy()
    mean_r, _ = _rating_moments(x[idx][rated], rating_noise_sd)
    truth.rmse_floor = rmse(events["rating"].to_numpy()[rated], mean_r)
    truth.auc_floor = auc(events["event"].to_numpy() != "view", p_click[idx])

    users = pd.DataFrame(
        {
            "user_id": np.arange(n_users),
            "region": pd.Categorical(np.array(REGIONS)[user_region], categories=list(REGIONS)),
            "age_band": pd.Categorical(np.array(AGE_BANDS)[age_band], categories=list(AGE_BANDS)),
            "signup_day": signup_day,
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items),
            "category": pd.Categorical(np.array(cats)[item_cat], categories=cats),
            "brand": np.array(brands)[brand_of],
            "tier": np.array(["budget", "standard", "premium"])[tier],
            "price": price,
            "title": titles,
            "release_day": release_day,
            "popularity": popularity / popularity.sum(),
        }
    )
    return Dataset(
        name="shop",
        users=users,
        items=items,
        events=events,
        truth=truth,
        info={"seed": seed, "n_days": N_DAYS, "start_timestamp": START_TIMESTAMP},
    )

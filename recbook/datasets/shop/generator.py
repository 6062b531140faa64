"""The shop's generator: :func:`load_shop` draws users, items, impressions and their outcomes.

The generative story (all vectorised), in the default ``"matched"`` regime:

* users live in one of 8 regions; each region has its own category tastes, each user deviates
  from it (``pref``), and has a latent taste vector ``u`` (scale ``taste_sd``, a few dominant
  axes: :data:`TASTE_SPECTRUM`);
* items have a category, brand, tier (budget/standard/premium), style and colour; their
  latent vector ``v`` is built from category, style, tier and colour, so the title
  (:mod:`recbook.datasets.shop.titles`) carries it;
* an impression picks a user (long-tailed activity: a user's share is lognormal with sigma
  0.8), a day (uniform from sign-up to the end), a category from the user's preferences
  (softmax of ``pref``), and an item within it by Zipf-like popularity among the items
  already released that day;
* affinity ``x = mu + b_u + b_i + s * pref[u, cat] + u . v``; the user clicks with probability
  ``sigmoid(a + c * (x - mu))``, buys a clicked item with a second sigmoid that also falls with
  the price (relative to the category's median), and rates the first purchase of a pair
  (with probability ``review_probability``, default 1) ``clip(round(x + noise), 1, 5)``.

That is exactly the family the notebooks fit: ratings are biased matrix factorisation of rank
12 + 8 (categories + latent) plus rounded noise, and clicks a sigmoid of the same score.

The ``"misspecified"`` regime keeps the users and items (the same frames at the same seed) and
changes how they behave, so that no notebook model is the truth:

* taste is a mixture of interests: each user has :data:`N_INTERESTS` latent vectors ``w_m``
  (the first is the matched shop's ``u``, the others drawn the same way from their own
  stream), and the taste term is the best match, ``max_m w_m . v - 1.85 * taste_sd`` (the
  constant centres it): a user likes an item if it matches any one of her interests. No
  fixed-rank dot product represents that exactly (``x`` minus its biases has a long tail of
  singular values where the matched one has rank 20);
* heavy-tailed activity: a user's share of the impressions is lognormal with sigma 1.2, so the
  busiest 1 % see about 15 % of the impressions (7 % in the matched shop) and many users see a
  handful;
* a saturating click: ``P(click) = 0.5 * sigmoid(a' + c * (x - mu))`` -- even a perfect match
  is clicked at most half the time, which a logistic model cannot express (its calibration
  suffers, not its ranking);
* a realistic funnel: about 16 % of impressions are clicked and 7 % end in a purchase (29 % in
  the matched shop), and a pair's first purchase is rated with probability 0.5 by default. To
  keep the clicks near the matched shop's (about 125,000 at scale 1), the default number of
  impressions is 800,000 instead of 250,000 (:data:`DEFAULT_EVENTS`).

The same quantities, in closed form, are the :class:`~recbook.datasets.shop.truth.ShopTruth`
the dataset carries, in either regime.

Density. In the matched shop about a fifth of the impressions end in a rated purchase, so a
user has a median of a dozen ratings while about a tenth have fewer than five (the long tail
stays), and users' tastes have a few dominant axes (:data:`TASTE_SPECTRUM`). That is what lets
matrix factorisation beat user + item biases by a margin a reader can see, with the oracle still
clearly ahead (``tests/test_shop.py::test_defaults_let_matrix_factorisation_beat_biases``). The
misspecified shop has about 20,000 ratings at scale 1 (a third as many): a median user rates 3
or 4 items, more than half rate fewer than five and about one in seven none; a per-user split
still tests some 1,300 users, and the oracle stays far ahead of the biases
(``tests/test_shop.py::test_misspecified_density_leaves_a_per_user_split_and_room_to_learn``).

Every draw comes from one generator seeded with ``seed``, in a fixed order (users, items,
impressions, outcomes), except the titles, which have their own stream so that both title
vocabularies share everything else, and the misspecified shop's extra interests, which have
theirs so that both regimes share the users and items. Reordering a step changes every shop:
the steps below are split for reading, never reordered. The module is long on purpose: the
draws are one sequence from one stream, for both regimes, and the steps share the private
user and item records; split across modules, a reader could no longer check their order.

The matched regime is bit for bit the shop every notebook's recorded values came from
(``tests/test_shop.py::test_the_matched_shop_is_the_one_every_recorded_value_came_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy.special import expit

from recbook import checks
from recbook.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from recbook.datasets.base import Dataset
from recbook.datasets.shop.titles import (
    CATEGORIES,
    COLOURS,
    TITLE_VOCABULARIES,
    brand_names,
    product_titles,
)
from recbook.datasets.shop.truth import ShopTruth

REGIONS = ("north", "south", "east", "west", "central", "coastal", "mountain", "island")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_WEIGHTS = (0.16, 0.27, 0.22, 0.16, 0.11, 0.08)
START_TIMESTAMP = 1_704_067_200  # 2024-01-01 00:00 UTC
N_DAYS = 180
LATENT_DIM = 8
#: How outcomes are generated: ``"matched"`` draws them from the model family the notebooks fit
#: (biased low-rank taste, a logistic click); ``"misspecified"`` from one no notebook model is
#: (the best of several interests, heavy-tailed activity, a saturating click, a thin funnel).
REGIMES = ("matched", "misspecified")
#: Interests per user in the misspecified regime: the taste term is the best match among them.
N_INTERESTS = 3
#: Relative scale of the latent taste coordinates: a few dominant axes of taste and a tail of
#: minor ones, as the singular values of real rating matrices fall. Coordinate k of a user's
#: taste has standard deviation ``taste_sd * TASTE_SPECTRUM[k]``.
TASTE_SPECTRUM = (2.4, 1.5, 0.8, 0.4, 0.3, 0.2, 0.15, 0.1)

# generator constants that are not knobs (module-level so the docstring can name them)
_PREF_SCALE = 0.35  # weight of the category preference in the affinity
_GLOBAL_MEAN = 3.0
_CLICK = (-0.5, 1.3)  # intercept, slope on x - mu
_BUY = (-0.2, 0.6, 0.8)  # intercept, slope on x - mu, slope on log(price / category median)
_USER_BIAS_SD = 0.4
_BRANDS, _LATE_BRANDS = 6, 2  # brands per category: on sale from the start / arriving late
_STYLE_SD, _TIER_SD, _COLOUR_SD, _ITEM_NOISE_SD = 0.6, 0.5, 0.25, 0.2
_TIER_NAMES = ("budget", "standard", "premium")
_EVENTS = ("view", "click", "purchase")  # the funnel; an event code counts the steps passed


@dataclass(frozen=True)
class _Regime:
    """What differs between the regimes (everything else is shared)."""

    n_events: int  # default impressions at scale 1
    activity_sd: float  # sigma of the lognormal activity (impression share) of a user
    review_probability: float  # default chance that a pair's first purchase is rated
    click: tuple[float, float]  # intercept, slope on x - mu
    click_ceiling: float  # P(click) = click_ceiling * sigmoid(...)
    buy: tuple[float, float, float]  # intercept, slope on x - mu, slope on log relative price
    n_interests: int  # 1: one taste vector, u . v; more: the best of them, max_m w_m . v


_REGIMES = {
    "matched": _Regime(
        n_events=250_000,
        activity_sd=0.8,
        review_probability=1.0,
        click=_CLICK,
        click_ceiling=1.0,
        buy=_BUY,
        n_interests=1,
    ),
    "misspecified": _Regime(
        n_events=800_000,
        activity_sd=1.2,
        review_probability=0.5,
        click=(-1.4, 1.3),
        click_ceiling=0.5,
        buy=(-0.85, 0.6, 0.8),
        n_interests=N_INTERESTS,
    ),
}
#: Default impressions (``n_events`` at ``scale=1``) of each regime: the misspecified shop's
#: thinner funnel needs more impressions for a similar number of clicks. To keep a notebook's
#: own ``n_events`` comparable across regimes, scale it by the ratio of these.
DEFAULT_EVENTS = MappingProxyType({name: r.n_events for name, r in _REGIMES.items()})
#: The misspecified taste term is ``max_m w_m . v - _INTEREST_CENTRE * taste_sd``: the constant
#: centres it near 0 over the catalogue (the best of several matches is positive on average).
_INTEREST_CENTRE = 1.85


def load_shop(
    n_users: int = 3000,
    n_items: int = 1000,
    n_events: int | None = None,
    seed: int = 0,
    scale: float = 1.0,
    late_item_fraction: float = 0.12,
    rating_noise_sd: float = 0.85,
    *,
    taste_sd: float = 0.45,
    review_probability: float | None = None,
    title_vocabulary: str = "new",
    regime: str = "matched",
) -> Dataset:
    """Generate the shop deterministically from ``seed``.

    Sizes: ``n_users``, ``n_items``, ``n_events`` (impressions), each multiplied by ``scale``;
    ``n_events=None`` is the regime's default, :data:`DEFAULT_EVENTS` (250,000 matched,
    800,000 misspecified: its thinner funnel needs more impressions for as many clicks).
    ``late_item_fraction`` of the items are released in the last third of the period: they are
    the cold-start items (``truth.cold_start_day``).
    ``rating_noise_sd``: standard deviation of the noise added to the affinity before it is
    rounded to 1-5 stars (the oracle RMSE is a little below it).
    ``taste_sd``: scale of a user's latent taste (coordinate k has standard deviation
    ``taste_sd * TASTE_SPECTRUM[k]``) -- how much users disagree beyond their biases, i.e. how
    much collaborative filtering can learn; 0 leaves biases and category preferences only.
    ``review_probability``: the chance that a user rates a (user, item) pair's first purchase;
    ``None`` is the regime's default (1 matched, 0.5 misspecified).
    ``title_vocabulary``: ``"new"`` (brands use their own synonyms and late items are named
    with words no early item uses) or ``"shared"`` (one word list for every item).
    ``regime``: how users behave, one of :data:`REGIMES` (the module docstring tells both
    stories). ``"matched"`` (the default, and the shop of every recorded headline): ratings are
    biased rank-20 matrix factorisation plus rounded noise and clicks a sigmoid of the same
    score -- the family the notebooks fit. ``"misspecified"``: the same users and items, but
    taste is the best of :data:`N_INTERESTS` interests (not a dot product), activity is heavier
    tailed, a click saturates at 1/2, 7 % rather than 29 % of impressions end in a purchase,
    and half the pairs bought are rated. Its oracles (``truth``) are as exact as the matched ones.

    Every knob is validated through :mod:`recbook.checks`. ``recbook.datasets.load("shop", ...)``
    and ``recbook.datasets.load_shop`` are this function.
    """
    seed = checks.seed(seed)
    checks.one_of(regime, REGIMES, "regime")
    how = _REGIMES[regime]
    if n_events is None:
        n_events = how.n_events
    if review_probability is None:
        review_probability = how.review_probability
    scale = checks.number(scale, "scale", positive=True)
    n_users, n_items, n_events = (
        int(round(checks.integer(n, what, minimum=1) * scale))
        for n, what in ((n_users, "n_users"), (n_items, "n_items"), (n_events, "n_events"))
    )
    late_item_fraction = checks.number(
        late_item_fraction, "late_item_fraction", non_negative=True, below=1.0
    )
    rating_noise_sd = checks.number(rating_noise_sd, "rating_noise_sd", positive=True)
    taste_sd = checks.number(taste_sd, "taste_sd", non_negative=True)
    review_probability = checks.number(review_probability, "review_probability", positive=True)
    if review_probability > 1:
        raise ValueError(f"review_probability must be in (0, 1], got {review_probability}")
    checks.one_of(title_vocabulary, TITLE_VOCABULARIES, "title_vocabulary")
    _check_sizes(n_users, n_items, n_events)

    rng = np.random.default_rng(seed)
    users = _draw_users(rng, n_users, taste_sd)
    items = _draw_items(rng, n_items, late_item_fraction)
    titles = product_titles(
        np.random.default_rng([seed, 1]),  # own stream: both vocabularies share everything else
        title_vocabulary,
        items.brands,
        items.brand,
        items.category,
        items.noun,
        items.style,
        items.tier,
        items.tier_word,
        items.colour,
        items.late,
    )
    if how.n_interests > 1:  # own stream: the users and items stay those of the matched shop
        users.interests = _draw_interests(
            np.random.default_rng([seed, 2]), users.latent, how.n_interests, taste_sd
        )
        users.interest_offset = _INTEREST_CENTRE * taste_sd
    ev_user, ev_day, ev_item = _draw_impressions(rng, users, items, n_events, how.activity_sd)
    events = _draw_outcomes(
        rng, users, items, ev_user, ev_day, ev_item, rating_noise_sd, review_probability, how
    )
    return Dataset(
        name="shop",
        users=_users_frame(users),
        items=_items_frame(items, titles),
        events=events,
        truth=_truth(users, items, rating_noise_sd, how),
        info={
            "seed": seed,
            "n_days": N_DAYS,
            "start_timestamp": START_TIMESTAMP,
            "title_vocabulary": title_vocabulary,
            "regime": regime,
        },
    )


def _check_sizes(n_users: int, n_items: int, n_events: int) -> None:
    if n_users < 10 or n_items < len(CATEGORIES) * 2 or n_events < n_users:
        raise ValueError(
            f"shop too small: n_users={n_users} (>= 10), n_items={n_items} "
            f"(>= {len(CATEGORIES) * 2}), n_events={n_events} (>= n_users); "
            "raise the sizes or scale"
        )


# --- users ---------------------------------------------------------------------------------


@dataclass
class _Users:
    region: np.ndarray  # code into REGIONS
    region_taste: np.ndarray  # (regions, categories)
    pref: np.ndarray  # (users, categories): the region's taste plus the user's own
    latent: np.ndarray  # (users, LATENT_DIM)
    bias: np.ndarray
    signup_day: np.ndarray
    age_band: np.ndarray  # code into AGE_BANDS
    category_probability: np.ndarray  # (users, categories): P(category | impression), softmax
    # misspecified regime only: (users, N_INTERESTS, LATENT_DIM), the first being ``latent``
    interests: np.ndarray | None = None
    interest_offset: float = 0.0


def _draw_users(rng: np.random.Generator, n_users: int, taste_sd: float) -> _Users:
    n_cat = len(CATEGORIES)
    region_taste = rng.normal(0.0, 1.0, size=(len(REGIONS), n_cat))
    region = rng.integers(0, len(REGIONS), size=n_users)
    pref = region_taste[region] + rng.normal(0.0, 0.6, size=(n_users, n_cat))
    latent = rng.normal(0.0, taste_sd, size=(n_users, LATENT_DIM)) * np.asarray(TASTE_SPECTRUM)
    bias = rng.normal(0.0, _USER_BIAS_SD, size=n_users)
    signup_day = np.minimum(rng.exponential(40.0, size=n_users), N_DAYS - 30).astype(int)
    age_band = rng.choice(len(AGE_BANDS), size=n_users, p=AGE_WEIGHTS)
    category_probability = np.exp(pref - pref.max(axis=1, keepdims=True))
    category_probability /= category_probability.sum(axis=1, keepdims=True)
    return _Users(
        region, region_taste, pref, latent, bias, signup_day, age_band, category_probability
    )


def _draw_interests(
    rng: np.random.Generator, latent: np.ndarray, n_interests: int, taste_sd: float
) -> np.ndarray:
    """A user's interests: her taste vector and ``n_interests - 1`` more, each drawn as it
    was (the same spectrum), so that she may like items of several unrelated kinds."""
    n_users = len(latent)
    more = rng.normal(0.0, taste_sd, size=(n_users, n_interests - 1, LATENT_DIM))
    return np.concatenate([latent[:, None, :], more * np.asarray(TASTE_SPECTRUM)], axis=1)


def _users_frame(users: _Users) -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER: np.arange(len(users.bias)),
            "region": pd.Categorical(np.array(REGIONS)[users.region], categories=list(REGIONS)),
            "age_band": pd.Categorical(
                np.array(AGE_BANDS)[users.age_band], categories=list(AGE_BANDS)
            ),
            "signup_day": users.signup_day,
        }
    )


# --- items ---------------------------------------------------------------------------------


@dataclass
class _Items:
    category: np.ndarray  # code into CATEGORIES
    tier: np.ndarray  # 0 budget, 1 standard, 2 premium
    style: np.ndarray
    noun: np.ndarray
    colour: np.ndarray
    latent: np.ndarray  # (items, LATENT_DIM)
    popularity: np.ndarray  # within-category draw weight (not normalised)
    late: np.ndarray  # released on or after the cold-start day
    release_day: np.ndarray
    cold_start_day: int
    brands: list[str]
    brand: np.ndarray  # index into brands
    bias: np.ndarray
    price: np.ndarray
    log_price: np.ndarray  # log(price / category median price)
    tier_word: np.ndarray  # which tier word a warm title uses


def _draw_items(rng: np.random.Generator, n_items: int, late_item_fraction: float) -> _Items:
    """Attributes -> latent vector, release day, brand, bias and price."""
    cats = list(CATEGORIES)
    n_cat = len(cats)
    category = rng.permutation(np.arange(n_items) % n_cat)  # every category has items
    tier = rng.choice(3, size=n_items, p=(0.3, 0.45, 0.25))
    style = rng.integers(0, 4, size=n_items)
    noun = rng.integers(0, 5, size=n_items)
    colour = rng.integers(0, len(COLOURS), size=n_items)
    style_vec = rng.normal(0.0, _STYLE_SD, size=(n_cat, 4, LATENT_DIM))
    tier_vec = rng.normal(0.0, _TIER_SD, size=(3, LATENT_DIM))
    colour_vec = rng.normal(0.0, _COLOUR_SD, size=(len(COLOURS), LATENT_DIM))
    latent = (
        style_vec[category, style]
        + tier_vec[tier]
        + colour_vec[colour]
        + rng.normal(0.0, _ITEM_NOISE_SD, size=(n_items, LATENT_DIM))
    )
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    cold_start_day = int(N_DAYS * 2 / 3)
    release_day = np.zeros(n_items, dtype=int)
    late = rng.random(n_items) < late_item_fraction
    # every category keeps its most popular item on sale from day 0, so no draw finds it empty
    top = pd.Series(popularity).groupby(category).idxmax().to_numpy()
    late[top] = False
    release_day[late] = rng.integers(cold_start_day, N_DAYS - 10, size=late.sum())
    # each category has _BRANDS brands from the start and _LATE_BRANDS that arrive with the
    # late items: new sellers, whose names no early title carries
    brands = brand_names(rng, (_BRANDS + _LATE_BRANDS) * n_cat)
    early_brand = category * _BRANDS + rng.integers(0, _BRANDS, size=n_items)
    late_brand = _BRANDS * n_cat + category * _LATE_BRANDS + rng.integers(0, _LATE_BRANDS, n_items)
    brand = np.where(late, late_brand, early_brand).astype(int)
    brand_quality = rng.normal(0.0, 0.2, size=len(brands))
    bias = brand_quality[brand] + 0.15 * (tier - 1) + rng.normal(0.0, 0.15, size=n_items)
    medians = np.array([CATEGORIES[c][2] for c in cats])
    price = np.round(
        medians[category] * np.exp(0.35 * (tier - 1) + rng.normal(0.0, 0.3, n_items)), 2
    )
    tier_word = rng.integers(0, 3, size=n_items)
    return _Items(
        category=category,
        tier=tier,
        style=style,
        noun=noun,
        colour=colour,
        latent=latent,
        popularity=popularity,
        late=late,
        release_day=release_day,
        cold_start_day=cold_start_day,
        brands=brands,
        brand=brand,
        bias=bias,
        price=price,
        log_price=np.log(price / medians[category]),
        tier_word=tier_word,
    )


def _items_frame(items: _Items, titles: list[str]) -> pd.DataFrame:
    cats = list(CATEGORIES)
    return pd.DataFrame(
        {
            ITEM: np.arange(len(items.category)),
            "category": pd.Categorical(np.array(cats)[items.category], categories=cats),
            "brand": np.array(items.brands)[items.brand],
            "tier": np.array(_TIER_NAMES)[items.tier],
            "price": items.price,
            "title": titles,
            "release_day": items.release_day,
            "popularity": items.popularity / items.popularity.sum(),
        }
    )


# --- impressions: user -> day -> category -> item ------------------------------------------


def _draw_impressions(
    rng: np.random.Generator, users: _Users, items: _Items, n_events: int, activity_sd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, day, item) of each impression, in the order drawn; a user's share of the
    impressions is lognormal with sigma ``activity_sd``."""
    n_users = len(users.bias)
    activity = rng.lognormal(0.0, activity_sd, size=n_users)
    ev_user = rng.choice(n_users, size=n_events, p=activity / activity.sum())
    signup = users.signup_day[ev_user]
    ev_day = signup + (rng.random(n_events) * (N_DAYS - signup)).astype(int)
    # the category: how many of the user's cumulative category shares the uniform draw passes,
    # counted one category at a time (no (impressions x categories) array)
    cat_cum = np.cumsum(users.category_probability, axis=1).T.copy()
    n_cat = len(cat_cum)
    draw = rng.random(n_events)
    ev_cat = np.zeros(n_events, dtype=np.int64)
    for share in cat_cum:
        ev_cat += draw > share[ev_user]
    ev_cat = ev_cat.clip(max=n_cat - 1)
    ev_item = _draw_released_items(rng, items, ev_cat, ev_day)
    return ev_user, ev_day, ev_item


def _draw_released_items(
    rng: np.random.Generator, items: _Items, ev_cat: np.ndarray, ev_day: np.ndarray
) -> np.ndarray:
    """An item of each impression's category, by popularity among the items released by its
    day: draw among all the category's items, redraw the unreleased ones (a few rounds), and
    draw the rare leftovers directly among the released items (exact, slower)."""
    category, popularity, release_day = items.category, items.popularity, items.release_day
    n_items, n_cat = len(category), len(CATEGORIES)
    order = np.argsort(category, kind="stable")
    sorted_cat = category[order]
    pop_sorted = popularity[order]
    mass = np.bincount(sorted_cat, weights=pop_sorted, minlength=n_cat)
    # within category c the cumulative share runs over (c, c + 1], so c + U(0, 1) picks an item
    # of c with probability proportional to its popularity
    within = np.cumsum(pop_sorted) - np.concatenate([[0.0], np.cumsum(mass)])[sorted_cat]
    cum = sorted_cat + within / mass[sorted_cat]
    ev_item = np.empty(len(ev_cat), dtype=np.int64)
    todo = np.arange(len(ev_cat))
    for _ in range(30):
        draw = ev_cat[todo] + rng.random(len(todo))
        pick = order[np.searchsorted(cum, draw).clip(max=n_items - 1)]
        ev_item[todo] = pick
        todo = todo[release_day[pick] > ev_day[todo]]
        if len(todo) == 0:
            break
    for e in todo:
        ok = np.flatnonzero((category == ev_cat[e]) & (release_day <= ev_day[e]))
        ev_item[e] = rng.choice(ok, p=popularity[ok] / popularity[ok].sum())
    return ev_item


# --- outcomes: click, purchase, rating -----------------------------------------------------


def _draw_outcomes(
    rng: np.random.Generator,
    users: _Users,
    items: _Items,
    ev_user: np.ndarray,
    ev_day: np.ndarray,
    ev_item: np.ndarray,
    rating_noise_sd: float,
    review_probability: float,
    how: _Regime,
) -> pd.DataFrame:
    """The events table: each impression's furthest funnel step and rating, sorted by time
    (then user)."""
    n_events, n_items = len(ev_user), len(items.category)
    # the affinity of ShopTruth.affinity, computed without gathering 20-wide factor rows
    if users.interests is None:
        taste = np.einsum("nk,nk->n", users.latent[ev_user], items.latent[ev_item])
    else:  # the best-matching interest
        taste = _best_match(users.interests, items.latent, ev_user, ev_item)
        taste -= users.interest_offset
    x = (
        _GLOBAL_MEAN
        + users.bias[ev_user]
        + items.bias[ev_item]
        + _PREF_SCALE * users.pref[ev_user, items.category[ev_item]]
        + taste
    )
    p_click = expit(how.click[0] + how.click[1] * (x - _GLOBAL_MEAN))
    if how.click_ceiling < 1:
        p_click *= how.click_ceiling
    clicked = rng.random(n_events) < p_click
    buy = how.buy
    p_buy = expit(buy[0] + buy[1] * (x - _GLOBAL_MEAN) - buy[2] * items.log_price[ev_item])
    bought = clicked & (rng.random(n_events) < p_buy)
    seconds = rng.integers(0, 86_400, size=n_events)
    timestamp = START_TIMESTAMP + ev_day.astype(np.int64) * 86_400 + seconds
    # chronological, then by user, ties in the order drawn: a stable sort of one combined key
    idx = np.argsort(timestamp * len(users.bias) + ev_user, kind="stable")
    user, item, bought = ev_user[idx], ev_item[idx], bought[idx]
    events = pd.DataFrame(
        {USER: user, ITEM: item, TIMESTAMP: timestamp[idx], "day": ev_day[idx]},
    )
    events[EVENT] = pd.Categorical.from_codes(
        clicked[idx].astype(np.int8) + bought, categories=list(_EVENTS)
    )
    noisy = x[idx] + rng.normal(0.0, rating_noise_sd, size=n_events)
    rating = np.clip(np.round(noisy), 1, 5)
    # a pair's first purchase is rated with probability review_probability: one rating per pair
    reviews = rng.random(n_events) < review_probability
    bought_rows = np.flatnonzero(bought)
    pair_code = user[bought_rows].astype(np.int64) * n_items + item[bought_rows]
    _, first = np.unique(pair_code, return_index=True)
    is_rated = np.zeros(n_events, dtype=bool)
    is_rated[bought_rows[first]] = True
    is_rated &= reviews
    events[RATING] = np.where(is_rated, rating, np.nan)
    return events


def _best_match(
    interests: np.ndarray,
    item_latent: np.ndarray,
    ev_user: np.ndarray,
    ev_item: np.ndarray,
    dense: bool | None = None,
) -> np.ndarray:
    """max over the user's interests of interest . item latent, for each impression: read from
    the (users x items) table of best matches where that table is smaller than the interest rows
    the impressions would gather (``dense=None`` decides), else gathered in blocks."""
    n_users, n_interests, dim = interests.shape
    if dense is None:
        dense = n_users * len(item_latent) <= len(ev_user) * n_interests * dim
    if dense:
        best = interests[:, 0] @ item_latent.T
        for m in range(1, n_interests):
            np.maximum(best, interests[:, m] @ item_latent.T, out=best)
        return best[ev_user, ev_item]
    out = np.empty(len(ev_user))
    for start in range(0, len(ev_user), 1 << 16):
        u, i = ev_user[start : start + (1 << 16)], ev_item[start : start + (1 << 16)]
        out[start : start + len(u)] = np.einsum("nmk,nk->nm", interests[u], item_latent[i]).max(1)
    return out


# --- the truth -----------------------------------------------------------------------------


def _truth(users: _Users, items: _Items, rating_noise_sd: float, how: _Regime) -> ShopTruth:
    """The generator's parameters as a :class:`ShopTruth`: the category preference (scaled)
    joins the latent taste in one factor row, so the oracles need no region or category. In
    the misspecified regime every interest gets the category preference in front, so that the
    best interest's row times the item's row is the whole affinity's interaction term."""
    n_cat = len(CATEGORIES)
    pref = users.pref * _PREF_SCALE
    interests = None
    if users.interests is not None:
        m = users.interests.shape[1]
        interests = np.concatenate([np.repeat(pref[:, None, :], m, axis=1), users.interests], 2)
    return ShopTruth(
        user_factors=np.hstack([pref, users.latent]),
        item_factors=np.hstack([np.eye(n_cat)[items.category], items.latent]),
        user_bias=users.bias,
        item_bias=items.bias,
        global_mean=_GLOBAL_MEAN,
        rating_noise_sd=rating_noise_sd,
        click_intercept=how.click[0],
        click_slope=how.click[1],
        buy_intercept=how.buy[0],
        buy_slope=how.buy[1],
        buy_price_slope=how.buy[2],
        item_log_price=items.log_price,
        category_probability=users.category_probability,
        item_category=items.category,
        item_popularity=items.popularity,
        item_release_day=items.release_day,
        user_signup_day=users.signup_day,
        n_days=N_DAYS,
        region_taste=pd.DataFrame(
            users.region_taste, index=list(REGIONS), columns=list(CATEGORIES)
        ),
        cold_start_day=items.cold_start_day,
        user_interests=interests,
        interest_offset=users.interest_offset,
        click_ceiling=how.click_ceiling,
    )

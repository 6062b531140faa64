"""The synthetic shop: an e-commerce world generated from a seed, that knows its own truth.

Why synthetic: public data cannot say how good a model *could* be. The shop's generator knows
every user's and item's latent factors, so for each task a notebook measures it scores the same
(user, item) pairs a model scores -- an "oracle" row on the model's own split and candidates:

* ``truth.expected_rating(u, i)`` -- E[rating], the best RMSE predictor;
* ``truth.click_probability(u, i)`` -- P(click | shown);
* ``truth.purchase_probability(u, i)`` -- P(purchase | shown) = P(click) * P(buy | click);
* ``truth.exposure_probability(u, i)`` -- P(an impression of user u shows item i);
* ``truth.interaction_probability(u, i, event)`` -- exposure * P(event | shown), the oracle
  score for top-k "which items will this user click / buy next";
* ``truth.score(task, u, i)`` and ``truth.oracle_scores(task)`` (a dense users x items matrix
  for full-catalogue ranking), ``task`` one of :data:`TASKS`.

``truth.rmse_floor`` and ``truth.auc_floor`` are legacy global floors (all rated events / all
impressions of the whole shop); prefer the per-task oracles on your own split.

The generative story (all vectorised):

* users live in one of 8 regions; each region has its own category tastes, each user deviates
  from it (``pref``), and has a latent taste vector ``u`` (scale ``taste_sd``, a few dominant
  axes: :data:`TASTE_SPECTRUM`);
* items have a category (12), brand, tier (budget/standard/premium), style and colour; their
  latent vector ``v`` is built from category, style, tier and colour, so the title carries it;
* an impression picks a user (long-tailed activity), a day (uniform from sign-up to the end), a
  category from the user's preferences (softmax of ``pref``), and an item within it by Zipf-like
  popularity among the items already released that day;
* affinity ``x = mu + b_u + b_i + s * pref[u, cat] + u . v``; the user clicks with probability
  ``sigmoid(a + c * (x - mu))``, buys a clicked item with a second sigmoid that also falls with
  the price (relative to the category's median), and rates the first purchase of a pair
  (with probability ``review_probability``) ``clip(round(x + noise), 1, 5)``.

Titles (``title_vocabulary``): ``"shared"`` draws every title from one word list per category.
``"new"`` (default) gives each noun, style, tier and colour two to five English synonyms: each
brand picks its own synonyms and title template (brands phrase things differently), and items
released late -- new product lines -- are named only with synonyms no early item uses
(earbuds for headphones, cardigan for sweater, crimson for red). In both regimes the late items
come from brands that arrive late (two new sellers per category), so with the "new" vocabulary
a bag-of-words fitted on warm titles knows nothing about a cold title, while a pretrained
sentence encoder still reads its meaning. Both regimes draw the same world: only the titles
differ (``ds.info["title_vocabulary"]`` says which).

Density. At the defaults (3,000 users, 1,000 items, 250,000 impressions) about a fifth of
the impressions end in a rated purchase, so a user has a median of a dozen ratings while about
a tenth have fewer than five (the long tail stays), and users' tastes have a few dominant axes
(:data:`TASTE_SPECTRUM`). That is what lets matrix factorisation beat user + item biases by a
margin a reader can see, with the oracle still clearly ahead
(``tests/test_shop.py::test_defaults_let_matrix_factorisation_beat_biases``).

Knobs of :func:`load_shop` (all validated through :mod:`recbook.checks`): ``n_users``,
``n_items``, ``n_events`` and ``scale`` (sizes), ``seed``, ``late_item_fraction`` (share of
cold-start items), ``rating_noise_sd`` (noise of the stars), ``taste_sd`` (how much users'
tastes differ beyond their biases: what collaborative filtering can learn),
``review_probability`` (share of first purchases that get rated) and ``title_vocabulary``.
:func:`load_shop` is the one way to make the shop: ``recbook.datasets.load("shop", ...)`` and
``recbook.datasets.load_shop`` are this function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from recbook import checks
from recbook.datasets.base import Dataset

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
#: The "new" title vocabulary: for every noun and style of :data:`CATEGORIES` (same order), the
#: synonyms warm (early) items may use -- each brand picks its own -- and the disjoint synonyms
#: reserved for late items: new product lines get new names that mean the same thing.
NEW_WORDS: dict[str, tuple[tuple[tuple[tuple[str, ...], tuple[str, ...]], ...], ...]] = {
    "clothing": (
        (
            (("shirt", "blouse", "oxford shirt"), ("tee", "tunic")),
            (("jacket", "coat", "blazer"), ("overcoat", "windbreaker")),
            (("dress", "gown"), ("sundress", "frock")),
            (("jeans", "denims"), ("trousers", "slacks")),
            (("sweater", "jumper", "pullover"), ("cardigan", "knitwear")),
        ),
        (
            (("slim", "fitted", "tailored"), ("skinny", "narrow")),
            (("relaxed", "loose"), ("comfort fit", "slouchy")),
            (("linen", "breathable"), ("summer weave", "cool weave")),
            (("wool", "woollen"), ("knit", "cashmere")),
        ),
    ),
    "electronics": (
        (
            (("headphones", "headset", "earphones"), ("earbuds", "earpieces")),
            (("charger", "adapter"), ("powerbank", "charging brick")),
            (("speaker", "loudspeaker"), ("soundbar", "boombox")),
            (("tablet", "touchscreen tablet"), ("ipad", "slate")),
            (("camera", "camcorder"), ("webcam", "dslr")),
        ),
        (
            (("wireless", "wifi"), ("bluetooth", "cableless")),
            (("compact", "mini", "portable"), ("pocket", "handheld")),
            (("smart", "connected"), ("intelligent", "programmable")),
            (("hd", "high definition"), ("4k", "uhd")),
        ),
    ),
    "books": (
        (
            (("novel", "fiction book"), ("saga", "romance")),
            (("cookbook", "recipe book"), ("cookery", "recipes")),
            (("guide", "handbook"), ("manual", "companion")),
            (("biography", "memoir"), ("autobiography", "chronicle")),
            (("atlas", "map book"), ("gazetteer", "cartography")),
        ),
        (
            (("hardcover", "hardback"), ("hardbound", "clothbound")),
            (("paperback", "softcover"), ("pocketbook", "pocket edition")),
            (("illustrated", "picture"), ("pictorial", "graphic")),
            (("annotated", "commented"), ("footnoted", "scholarly")),
        ),
    ),
    "home": (
        (
            (("lamp", "light"), ("lighting", "torchiere")),
            (("cushion", "pillow"), ("bolster",)),
            (("rug", "carpet"), ("floor covering", "floorcloth")),
            (("vase",), ("vessel", "bud jar")),
            (("blanket", "throw"), ("quilt", "duvet")),
        ),
        (
            (("nordic", "scandinavian"), ("swedish", "danish")),
            (("rustic", "farmhouse"), ("cottage", "countryside")),
            (("modern", "contemporary"), ("futuristic", "sleek")),
            (("vintage", "retro"), ("antique", "nostalgic")),
        ),
    ),
    "beauty": (
        (
            (("serum", "essence"), ("booster", "concentrate")),
            (("lipstick", "lip colour"), ("rouge",)),
            (("shampoo", "hair wash"), ("haircare", "cleanser")),
            (("moisturiser", "face cream"), ("lotion", "emollient")),
            (("perfume", "fragrance"), ("cologne", "scent")),
        ),
        (
            (("organic", "natural"), ("botanical", "vegan")),
            (("matte", "velvet"), ("powdery", "satin")),
            (("hydrating", "moisturising"), ("nourishing", "quenching")),
            (("floral", "flowery"), ("rose", "blossom")),
        ),
    ),
    "sports": (
        (
            (("yoga mat", "exercise mat"), ("pilates pad",)),
            (("dumbbell", "hand weight"), ("kettlebell", "barbell")),
            (("running shoes", "trainers"), ("sneakers", "joggers")),
            (("bottle", "water bottle"), ("flask", "canteen")),
            (("backpack", "rucksack"), ("daypack", "knapsack")),
        ),
        (
            (("lightweight", "featherweight"), ("ultralight", "weightless")),
            (("grip", "nonslip"), ("grippy", "anti slip")),
            (("trail", "outdoor"), ("hiking", "mountain")),
            (("insulated", "thermal"), ("heatproof", "frostproof")),
        ),
    ),
    "toys": (
        (
            (("puzzle", "jigsaw"), ("brainteaser",)),
            (("building set", "construction kit"), ("bricks", "blocks")),
            (("doll", "figure"), ("figurine", "puppet")),
            (("board game", "tabletop game"), ("chess", "boardgame")),
            (("kite",), ("glider", "windsock")),
        ),
        (
            (("wooden", "timber"), ("oak", "carved")),
            (("educational", "learning"), ("stem", "montessori")),
            (("plush", "soft"), ("cuddly", "fluffy")),
            (("magnetic", "magnet"), ("magnetized",)),
        ),
    ),
    "grocery": (
        (
            (("coffee", "espresso"), ("brew", "cappuccino")),
            (("tea", "infusion"), ("teabags", "chai")),
            (("olive oil", "cooking oil"), ("dressing",)),
            (("chocolate", "cocoa bar"), ("cacao", "truffles")),
            (("granola", "muesli"), ("cereal", "oats")),
        ),
        (
            (("roasted", "toasted"), ("charred", "smoky")),
            (("herbal", "herb"), ("herbaceous", "peppermint")),
            (("extra virgin", "cold pressed"), ("pure", "unrefined")),
            (("dark", "bittersweet"), ("intense", "bitter")),
        ),
    ),
    "garden": (
        (
            (("planter", "flower pot"), ("plant container", "window box")),
            (("hose", "hosepipe"), ("watering tube",)),
            (("shears", "pruners"), ("secateurs", "clippers")),
            (("seed kit", "seed pack"), ("germination tray",)),
            (("lantern", "garden light"), ("torch", "lamplight")),
        ),
        (
            (("ceramic", "terracotta"), ("porcelain", "stoneware")),
            (("expandable", "extendable"), ("extending", "stretchy")),
            (("solar", "sun powered"), ("photovoltaic",)),
            (("heirloom", "heritage"), ("old fashioned", "traditional")),
        ),
    ),
    "jewelry": (
        (
            (("necklace", "pendant"), ("choker", "chain")),
            (("ring", "band"), ("solitaire", "signet")),
            (("bracelet", "bangle"), ("cuff", "wristlet")),
            (("earrings", "studs"), ("ear cuffs", "hoops")),
            (("watch", "wristwatch"), ("smartwatch", "timepiece")),
        ),
        (
            (("silver", "sterling"), ("silvertone",)),
            (("gold plated", "gilded"), ("golden", "gilt")),
            (("minimalist", "simple"), ("minimal", "delicate")),
            (("gemstone", "jewelled"), ("crystal", "birthstone")),
        ),
    ),
    "pets": (
        (
            (("dog bed", "dog cushion"), ("puppy lounger",)),
            (("cat toy", "kitten toy"), ("feline teaser",)),
            (("leash", "lead"), ("tether", "harness")),
            (("pet food", "kibble"), ("chow", "feed")),
            (("aquarium", "fish tank"), ("terrarium", "vivarium")),
        ),
        (
            (("orthopedic", "supportive"), ("ergonomic", "medical grade")),
            (("interactive", "engaging"), ("playful",)),
            (("reflective", "high visibility"), ("glowing", "luminous")),
            (("grain free", "gluten free"), ("grainless", "wheatless")),
        ),
    ),
    "automotive": (
        (
            (("phone mount", "phone holder"), ("smartphone cradle",)),
            (("seat cover", "seat protector"), ("upholstery wrap",)),
            (("dash cam", "dashcam"), ("driving recorder",)),
            (("tyre inflator", "tire pump"), ("air compressor",)),
            (("car vacuum", "auto vacuum"), ("dustbuster",)),
        ),
        (
            (("magnetic", "magnet"), ("magnetized",)),
            (("leather", "leatherette"), ("cowhide", "suede")),
            (("night vision", "low light"), ("infrared",)),
            (("cordless", "battery"), ("rechargeable",)),
        ),
    ),
}
#: Tier words for late items in the "new" vocabulary (warm items use :data:`TIERS`).
NEW_TIERS = (("entry level", "budget"), ("regular", "mainstream"), ("exclusive", "luxury"))
#: Colour names for late items in the "new" vocabulary (warm items use :data:`COLOURS`).
NEW_COLOURS = (
    ("ebony", "noir"),
    ("ivory", "pearl"),
    ("marine", "nautical"),
    ("burgundy", "crimson"),
    ("lime", "emerald"),
    ("gray", "charcoal"),
    ("khaki", "taupe"),
    ("turquoise", "cobalt"),
    ("magenta", "blush"),
    ("tan", "chestnut"),
)
#: How brands phrase a title in the "new" vocabulary (each brand keeps one template).
TEMPLATES = (
    "{brand} {tier} {style} {noun}, {colour}",
    "{style} {noun} by {brand}, {tier}, {colour}",
    "{brand} {noun} ({style}, {colour}) {tier}",
    "{colour} {style} {noun} | {brand} {tier}",
)

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
#: Relative scale of the latent taste coordinates: a few dominant axes of taste and a tail of
#: minor ones, as the singular values of real rating matrices fall. Coordinate k of a user's
#: taste has standard deviation ``taste_sd * TASTE_SPECTRUM[k]``.
TASTE_SPECTRUM = (2.4, 1.5, 0.8, 0.4, 0.3, 0.2, 0.15, 0.1)


#: The task names :meth:`ShopTruth.score` and :meth:`ShopTruth.oracle_scores` understand.
TASKS = ("rating", "click", "purchase", "interaction-click", "interaction-purchase")
#: The title regimes of ``load_shop(title_vocabulary=...)``.
TITLE_VOCABULARIES = ("new", "shared")


@dataclass
class ShopTruth:
    """What the generator knows and a model can only estimate: per-task oracles.

    ``user_factors``/``item_factors`` are the full-rank truth: each row concatenates the user's
    category preferences (scaled) with the latent taste, so that
    ``affinity = global_mean + user_bias + item_bias + user_factors @ item_factors.T``.
    Every oracle is vectorised over aligned id arrays and checks its ids; score a model's split
    with the oracle of the same task to get the "oracle" row of a table.

    ``rmse_floor`` and ``auc_floor`` are legacy: global floors on all rated events / all
    impressions of the whole shop. Prefer the per-task oracles on your own split and candidates.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float
    rating_noise_sd: float
    click_intercept: float
    click_slope: float
    buy_intercept: float
    buy_slope: float
    buy_price_slope: float
    item_log_price: np.ndarray  # log(price / category median price)
    category_probability: np.ndarray  # (users, categories): P(category | impression of user)
    item_category: np.ndarray
    item_popularity: np.ndarray  # within-category draw weight (not normalised)
    item_release_day: np.ndarray
    user_signup_day: np.ndarray
    n_days: int
    region_taste: pd.DataFrame
    cold_start_day: int
    rmse_floor: float
    auc_floor: float

    @property
    def n_users(self) -> int:
        return len(self.user_bias)

    @property
    def n_items(self) -> int:
        return len(self.item_bias)

    def _ids(self, user_ids: Any, item_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        u = checks.ids(user_ids, self.n_users, "user_ids")
        i = checks.ids(item_ids, self.n_items, "item_ids")
        checks.same_shape(u, i, "user_ids and item_ids")
        return u, i

    def affinity(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Noise-free affinity ``x`` of each (user, item) pair."""
        return self._affinity(*self._ids(user_ids, item_ids))

    def expected_rating(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """E[rating | user, item]: the Bayes-optimal prediction under squared error."""
        return self._task("rating", *self._ids(user_ids, item_ids))

    def click_probability(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(click | the item is shown to the user): the oracle for click-through tasks."""
        return self._task("click", *self._ids(user_ids, item_ids))

    def purchase_probability(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(purchase | shown) = P(click | shown) * P(buy | click); the second factor falls
        with the item's price relative to its category's median."""
        return self._task("purchase", *self._ids(user_ids, item_ids))

    def exposure_probability(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(an impression of the user shows this item), exactly as the generator draws it.

        The generator picks a day uniformly from the user's sign-up to the end, a category
        from the user's preferences, then an item of that category by popularity among the
        items already released that day. Release days are handled: the probability averages
        over the user's days, so a late item counts only on the days it was on sale. Over
        all items it sums to 1 for every user.
        """
        return self._exposure(*self._ids(user_ids, item_ids))

    def interaction_probability(
        self, user_ids: Any, item_ids: Any, event: str = "click"
    ) -> np.ndarray:
        """P(the user's next impression is this item and ends in ``event``) =
        exposure * P(event | shown): the oracle score for "which items will this user click
        (``event="click"``; a purchase counts as a click) or buy next" -- top-k tasks."""
        checks.one_of(event, ("click", "purchase"), "event")
        return self._task(f"interaction-{event}", *self._ids(user_ids, item_ids))

    def score(self, task: str, user_ids: Any, item_ids: Any) -> np.ndarray:
        """The oracle of ``task`` (one of :data:`TASKS`) for each (user, item) pair."""
        checks.one_of(task, TASKS, "task")
        return self._task(task, *self._ids(user_ids, item_ids))

    def oracle_scores(
        self, task: str, n_users: int | None = None, n_items: int | None = None
    ) -> np.ndarray:
        """Dense (users x items) oracle scores for full-catalogue ranking, in the shape of
        :mod:`recbook.baselines`' scorers. ``n_users``/``n_items``, when given, must match
        the shop's sizes (a guard against scoring the wrong catalogue)."""
        checks.one_of(task, TASKS, "task")
        for given, actual, what in (
            (n_users, self.n_users, "n_users"),
            (n_items, self.n_items, "n_items"),
        ):
            if given is not None and checks.integer(given, what) != actual:
                raise ValueError(
                    f"{what}={given} but the shop has {actual}; pass the dataset's own sizes"
                )
        users = np.arange(self.n_users)[:, None]
        items = np.arange(self.n_items)[None, :]
        return self._task(task, users, items)

    # -- the formulas, on checked ids that are aligned 1-D arrays or a (users, 1) x (1, items)
    #    grid (the dense case multiplies the factor matrices instead of gathering rows)

    def _affinity(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        if u.ndim == 2:
            dot = self.user_factors[u[:, 0]] @ self.item_factors[i[0]].T
        else:
            dot = np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
        return self.global_mean + self.user_bias[u] + self.item_bias[i] + dot

    def _task(self, task: str, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        x = self._affinity(u, i)
        if task == "rating":
            return _rating_mean(x, self.rating_noise_sd)
        x = x - self.global_mean
        p = expit(self.click_intercept + self.click_slope * x)
        if task.endswith("purchase"):
            p *= expit(
                self.buy_intercept
                + self.buy_slope * x
                - self.buy_price_slope * self.item_log_price[i]
            )
        if task.startswith("interaction"):
            p *= self._exposure(u, i)
        return p

    def _exposure(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        s = self.user_signup_day[u]
        start = np.maximum(s, self.item_release_day[i])
        cat = self.item_category[i]
        days_share = self._release_tail()[start, cat] / (self.n_days - s)
        return self.category_probability[u, cat] * self.item_popularity[i] * days_share

    def _release_tail(self) -> np.ndarray:
        """(n_days + 1, categories): sum over days d' >= d of 1 / (popularity mass of the
        category's items released by d'), the per-day normaliser of the item draw."""
        n_cat = self.category_probability.shape[1]
        mass = np.zeros((self.n_days, n_cat))
        day = np.minimum(self.item_release_day, self.n_days - 1)
        np.add.at(mass, (day, self.item_category), self.item_popularity)
        mass = np.cumsum(mass, axis=0)
        inv = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)
        tail = np.zeros((self.n_days + 1, n_cat))
        tail[:-1] = np.cumsum(inv[::-1], axis=0)[::-1]
        return tail


def _rating_mean(x: np.ndarray, sd: float) -> np.ndarray:
    """E[clip(round(x + N(0, sd)), 1, 5)], exactly: 1 + sum over k = 1..4 of P(rating > k)."""
    edges = np.array([1.5, 2.5, 3.5, 4.5]).reshape((4,) + (1,) * np.ndim(x))
    return 1.0 + ndtr((x - edges) / sd).sum(axis=0)


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


def _titles(
    rng: np.random.Generator,
    vocabulary: str,
    brands: list[str],
    brand_of: np.ndarray,
    item_cat: np.ndarray,
    noun: np.ndarray,
    style: np.ndarray,
    tier: np.ndarray,
    tier_word: np.ndarray,
    colour: np.ndarray,
    late: np.ndarray,
) -> list[str]:
    """Product titles. ``shared``: one word list for every item. ``new``: each brand picks its
    own synonyms and template, and late items use only the words reserved for new lines."""
    cats = list(CATEGORIES)
    if vocabulary == "shared":
        words = [CATEGORIES[c] for c in cats]
        return [
            f"{brands[b]} {TIERS[t][w]} {words[c][1][s]} {words[c][0][n]}, {COLOURS[k]}"
            for b, t, w, c, s, n, k in zip(brand_of, tier, tier_word, item_cat, style, noun, colour)
        ]
    # one uniform draw per (brand, slot) decides that brand's synonym; a late item of the same
    # brand draws again among the reserved words, so brands phrase new lines differently too
    n_brands = len(brands)
    pick = rng.random((n_brands, 6))  # noun, style, tier, colour, template, late-item choice
    template_of = (pick[:, 4] * len(TEMPLATES)).astype(int)
    out = []
    for b, t, w, c, s, n, k, is_late in zip(
        brand_of, tier, tier_word, item_cat, style, noun, colour, late
    ):
        nouns, styles = NEW_WORDS[cats[c]]
        side = 1 if is_late else 0
        r = pick[b]
        jitter = r[5] if is_late else 0.0
        noun_options = nouns[n][side]
        style_options = styles[s][side]
        tier_options = NEW_TIERS[t] if is_late else TIERS[t]
        colour_options = NEW_COLOURS[k] if is_late else (COLOURS[k],)
        out.append(
            TEMPLATES[template_of[b]].format(
                brand=brands[b],
                noun=noun_options[int(((r[0] + jitter) % 1) * len(noun_options))],
                style=style_options[int(((r[1] + jitter) % 1) * len(style_options))],
                tier=tier_options[(w + int(r[2] * 3)) % len(tier_options)],
                colour=colour_options[int(((r[3] + jitter) % 1) * len(colour_options))],
            )
        )
    return out


# generator constants that are not knobs (module-level so the docstring can name them)
_PREF_SCALE = 0.35  # weight of the category preference in the affinity
_GLOBAL_MEAN = 3.0
_CLICK = (-0.5, 1.3)  # intercept, slope on x - mu
_BUY = (-0.2, 0.6, 0.8)  # intercept, slope on x - mu, slope on log(price / category median)
_USER_BIAS_SD = 0.4
_BRANDS, _LATE_BRANDS = 6, 2  # brands per category: on sale from the start / arriving late
_STYLE_SD, _TIER_SD, _COLOUR_SD, _ITEM_NOISE_SD = 0.6, 0.5, 0.25, 0.2


def load_shop(
    n_users: int = 3000,
    n_items: int = 1000,
    n_events: int = 250_000,
    seed: int = 0,
    scale: float = 1.0,
    late_item_fraction: float = 0.12,
    rating_noise_sd: float = 0.85,
    *,
    taste_sd: float = 0.45,
    review_probability: float = 1.0,
    title_vocabulary: str = "new",
) -> Dataset:
    """Generate the shop deterministically from ``seed``.

    Sizes: ``n_users``, ``n_items``, ``n_events`` (impressions), each multiplied by ``scale``
    (the benchmark uses 100k users, 10k items, 2M events).
    ``late_item_fraction`` of the items are released in the last third of the period: they are
    the cold-start items (``truth.cold_start_day``).
    ``rating_noise_sd``: standard deviation of the noise added to the affinity before it is
    rounded to 1-5 stars (the oracle RMSE is a little below it).
    ``taste_sd``: scale of a user's latent taste (coordinate k has standard deviation
    ``taste_sd * TASTE_SPECTRUM[k]``) -- how much users disagree beyond their biases, i.e. how
    much collaborative filtering can learn; 0 leaves biases and category preferences only.
    ``review_probability``: the chance that a user rates a (user, item) pair's first purchase.
    ``title_vocabulary``: ``"new"`` (brands use their own synonyms and late items are named
    with words no early item uses) or ``"shared"`` (one word list for every item).
    """
    seed = checks.seed(seed)
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
    cats = list(CATEGORIES)
    n_cat = len(cats)

    # --- regions and users --------------------------------------------------------------
    region_taste = rng.normal(0.0, 1.0, size=(len(REGIONS), n_cat))
    user_region = rng.integers(0, len(REGIONS), size=n_users)
    pref = region_taste[user_region] + rng.normal(0.0, 0.6, size=(n_users, n_cat))
    user_latent = rng.normal(0.0, taste_sd, size=(n_users, LATENT_DIM)) * np.asarray(TASTE_SPECTRUM)
    user_bias = rng.normal(0.0, _USER_BIAS_SD, size=n_users)
    signup_day = np.minimum(rng.exponential(40.0, size=n_users), N_DAYS - 30).astype(int)
    age_band = rng.choice(len(AGE_BANDS), size=n_users, p=AGE_WEIGHTS)

    # --- items: attributes -> latent vector, price, title ----------------------------------
    item_cat = rng.permutation(np.arange(n_items) % n_cat)  # every category has items
    tier = rng.choice(3, size=n_items, p=(0.3, 0.45, 0.25))
    style = rng.integers(0, 4, size=n_items)
    noun = rng.integers(0, 5, size=n_items)
    colour = rng.integers(0, len(COLOURS), size=n_items)
    style_vec = rng.normal(0.0, _STYLE_SD, size=(n_cat, 4, LATENT_DIM))
    tier_vec = rng.normal(0.0, _TIER_SD, size=(3, LATENT_DIM))
    colour_vec = rng.normal(0.0, _COLOUR_SD, size=(len(COLOURS), LATENT_DIM))
    item_latent = (
        style_vec[item_cat, style]
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
    top = pd.Series(popularity).groupby(item_cat).idxmax().to_numpy()
    late[top] = False
    release_day[late] = rng.integers(cold_start_day, N_DAYS - 10, size=late.sum())
    # each category has 6 brands from the start and 2 that arrive with the late items: new
    # sellers, whose names no early title carries
    brands = _brand_names(rng, (_BRANDS + _LATE_BRANDS) * n_cat)
    early_brand = item_cat * _BRANDS + rng.integers(0, _BRANDS, size=n_items)
    late_brand = _BRANDS * n_cat + item_cat * _LATE_BRANDS + rng.integers(0, _LATE_BRANDS, n_items)
    brand_of = np.where(late, late_brand, early_brand).astype(int)
    brand_quality = rng.normal(0.0, 0.2, size=len(brands))
    item_bias = brand_quality[brand_of] + 0.15 * (tier - 1) + rng.normal(0.0, 0.15, size=n_items)
    medians = np.array([CATEGORIES[c][2] for c in cats])
    price = np.round(
        medians[item_cat] * np.exp(0.35 * (tier - 1) + rng.normal(0.0, 0.3, n_items)), 2
    )
    tier_word = rng.integers(0, 3, size=n_items)
    titles = _titles(
        np.random.default_rng([seed, 1]),  # own stream: both vocabularies share everything else
        title_vocabulary,
        brands,
        brand_of,
        item_cat,
        noun,
        style,
        tier,
        tier_word,
        colour,
        late,
    )

    # --- impressions: user -> day -> category -> item --------------------------------------
    activity = rng.lognormal(0.0, 0.8, size=n_users)
    ev_user = rng.choice(n_users, size=n_events, p=activity / activity.sum())
    ev_day = signup_day[ev_user] + (rng.random(n_events) * (N_DAYS - signup_day[ev_user])).astype(
        int
    )
    cat_prob = np.exp(pref - pref.max(axis=1, keepdims=True))
    cat_prob /= cat_prob.sum(axis=1, keepdims=True)
    cat_cum = np.cumsum(cat_prob, axis=1)
    ev_cat = (rng.random(n_events)[:, None] > cat_cum[ev_user]).sum(axis=1).clip(max=n_cat - 1)
    order = np.argsort(item_cat, kind="stable")
    sorted_cat = item_cat[order]
    pop_sorted = popularity[order]
    mass = np.bincount(sorted_cat, weights=pop_sorted, minlength=n_cat)
    # within category c the cumulative share runs over (c, c + 1], so c + U(0, 1) picks an item
    # of c with probability proportional to its popularity
    within = np.cumsum(pop_sorted) - np.concatenate([[0.0], np.cumsum(mass)])[sorted_cat]
    cum = sorted_cat + within / mass[sorted_cat]
    ev_item = np.empty(n_events, dtype=np.int64)
    todo = np.arange(n_events)
    for _ in range(30):  # redraw items not yet released on the impression's day
        draw = ev_cat[todo] + rng.random(len(todo))
        pick = order[np.searchsorted(cum, draw).clip(max=n_items - 1)]
        ev_item[todo] = pick
        todo = todo[release_day[pick] > ev_day[todo]]
        if len(todo) == 0:
            break
    for e in todo:  # the rare leftovers: draw directly among the released items (exact)
        ok = np.flatnonzero((item_cat == ev_cat[e]) & (release_day <= ev_day[e]))
        ev_item[e] = rng.choice(ok, p=popularity[ok] / popularity[ok].sum())

    # --- outcomes -------------------------------------------------------------------------
    user_factors = np.hstack([pref * _PREF_SCALE, user_latent])
    item_factors = np.hstack([np.eye(n_cat)[item_cat], item_latent])
    log_price = np.log(price / medians[item_cat])
    truth = ShopTruth(
        user_factors=user_factors,
        item_factors=item_factors,
        user_bias=user_bias,
        item_bias=item_bias,
        global_mean=_GLOBAL_MEAN,
        rating_noise_sd=rating_noise_sd,
        click_intercept=_CLICK[0],
        click_slope=_CLICK[1],
        buy_intercept=_BUY[0],
        buy_slope=_BUY[1],
        buy_price_slope=_BUY[2],
        item_log_price=log_price,
        category_probability=cat_prob,
        item_category=item_cat,
        item_popularity=popularity,
        item_release_day=release_day,
        user_signup_day=signup_day,
        n_days=N_DAYS,
        region_taste=pd.DataFrame(region_taste, index=list(REGIONS), columns=cats),
        cold_start_day=cold_start_day,
        rmse_floor=float("nan"),
        auc_floor=float("nan"),
    )
    # the affinity of truth.affinity, computed without gathering 20-wide factor rows
    x = (
        _GLOBAL_MEAN
        + user_bias[ev_user]
        + item_bias[ev_item]
        + _PREF_SCALE * pref[ev_user, item_cat[ev_item]]
        + np.einsum("nk,nk->n", user_latent[ev_user], item_latent[ev_item])
    )
    p_click = expit(_CLICK[0] + _CLICK[1] * (x - _GLOBAL_MEAN))
    clicked = rng.random(n_events) < p_click
    p_buy = expit(_BUY[0] + _BUY[1] * (x - _GLOBAL_MEAN) - _BUY[2] * log_price[ev_item])
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
    events["event"] = pd.Categorical.from_codes(
        clicked[idx].astype(np.int8) + bought[idx], categories=["view", "click", "purchase"]
    )
    noisy = x[idx] + rng.normal(0.0, rating_noise_sd, size=n_events)
    rating = np.clip(np.round(noisy), 1, 5)
    # a pair's first purchase is rated with probability review_probability: one rating per pair
    reviews = rng.random(n_events) < review_probability
    bought_rows = np.flatnonzero(bought[idx])
    pair_code = ev_user[idx][bought_rows].astype(np.int64) * n_items + ev_item[idx][bought_rows]
    _, first = np.unique(pair_code, return_index=True)
    is_rated = np.zeros(n_events, dtype=bool)
    is_rated[bought_rows[first]] = True
    is_rated &= reviews
    events["rating"] = np.where(is_rated, rating, np.nan)
    events = events.reset_index(drop=True)

    # --- legacy global floors -------------------------------------------------------------
    from recbook.metrics import auc, rmse

    rated = events["rating"].notna().to_numpy()
    mean_r = _rating_mean(x[idx][rated], rating_noise_sd)
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
        info={
            "seed": seed,
            "n_days": N_DAYS,
            "start_timestamp": START_TIMESTAMP,
            "title_vocabulary": title_vocabulary,
        },
    )

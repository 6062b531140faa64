"""The shop's words: categories, brands and the two title regimes.

Titles (``load_shop(title_vocabulary=...)``, one of :data:`TITLE_VOCABULARIES`):

* ``"shared"`` draws every title from one word list per category (:data:`CATEGORIES`,
  :data:`TIERS`, :data:`COLOURS`);
* ``"new"`` (the default) gives each noun, style, tier and colour two to five English synonyms
  (:data:`NEW_WORDS`, :data:`NEW_TIERS`, :data:`NEW_COLOURS`): each brand picks its own synonyms
  and title template (brands phrase things differently), and items released late -- new
  product lines -- are named only with synonyms no early item uses (earbuds for headphones,
  cardigan for sweater, crimson for red).

In both regimes the late items come from brands that arrive late (two new sellers per
category), so with the "new" vocabulary a bag-of-words fitted on warm titles knows nothing
about a cold title, while a pretrained sentence encoder still reads its meaning. The titles
draw from their own random stream, so both regimes share the rest of the world exactly.

This module imports nothing of recbook: the generator (:mod:`recbook.datasets.shop.generator`)
hands it the drawn attributes and gets strings back.
"""

from __future__ import annotations

import numpy as np

#: The categories: their nouns, styles (each with its own taste direction) and median
#: price. Both vocabularies name items after these slots; the order fixes the category codes.
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
#: Tier words of warm titles, by tier (budget, standard, premium).
TIERS = (
    ("basic", "value", "essential"),
    ("classic", "everyday", "standard"),
    ("premium", "deluxe", "pro"),
)
#: Colours of warm titles (late titles in the "new" vocabulary use :data:`NEW_COLOURS`).
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

# brand names are made of these
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
#: The title regimes of ``load_shop(title_vocabulary=...)``.
TITLE_VOCABULARIES = ("new", "shared")


def brand_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct made-up brand names (two or three syllables), sorted."""
    names: set[str] = set()
    while len(names) < n:
        parts = rng.choice(len(_SYLLABLES), size=rng.integers(2, 4))
        names.add("".join(_SYLLABLES[p] for p in parts).capitalize())
    return sorted(names)


def product_titles(
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

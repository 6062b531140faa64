"""The synthetic shop: an e-commerce world generated from a seed, that knows its own truth.

Why synthetic: public data cannot say how good a model *could* be. The shop's generator knows
every user's and item's latent factors, so for each task a notebook measures it scores the same
(user, item) pairs a model scores -- an "oracle" row on the model's own split and candidates.

Three modules, each with one job:

* :mod:`~recbook.datasets.shop.titles` -- the words: categories, tiers, colours, the "new"
  vocabulary's synonyms, brand names and product titles;
* :mod:`~recbook.datasets.shop.truth` -- :class:`ShopTruth`, the per-task oracles
  (expected rating, click, purchase, exposure, interaction) in closed form;
* :mod:`~recbook.datasets.shop.generator` -- :func:`load_shop`, which draws users, items,
  impressions and outcomes and hands back a :class:`~recbook.datasets.base.Dataset` carrying
  its :class:`ShopTruth`; the generative story is its docstring.

Layers: ``titles`` and ``truth`` import nothing of the shop (nor each other); ``generator``
imports both; this package only re-exports. Outside the shop, its modules import only
:mod:`recbook.datasets.base` and the ground floor (:mod:`recbook.checks`,
:mod:`recbook.columns`) -- never :mod:`recbook.datasets` itself, which imports the shop.

:func:`load_shop` is the one way to make the shop: ``recbook.datasets.load("shop", ...)`` and
``recbook.datasets.load_shop`` are this function.
"""

from __future__ import annotations

from recbook.datasets.shop.generator import (
    AGE_BANDS,
    LATENT_DIM,
    N_DAYS,
    REGIMES,
    REGIONS,
    START_TIMESTAMP,
    TASTE_SPECTRUM,
    load_shop,
)
from recbook.datasets.shop.titles import (
    CATEGORIES,
    COLOURS,
    NEW_COLOURS,
    NEW_TIERS,
    NEW_WORDS,
    TEMPLATES,
    TIERS,
    TITLE_VOCABULARIES,
)
from recbook.datasets.shop.truth import TASKS, ShopTruth

__all__ = [
    "AGE_BANDS",
    "CATEGORIES",
    "COLOURS",
    "LATENT_DIM",
    "NEW_COLOURS",
    "NEW_TIERS",
    "NEW_WORDS",
    "N_DAYS",
    "REGIMES",
    "REGIONS",
    "START_TIMESTAMP",
    "TASKS",
    "TASTE_SPECTRUM",
    "TEMPLATES",
    "TIERS",
    "TITLE_VOCABULARIES",
    "ShopTruth",
    "load_shop",
]

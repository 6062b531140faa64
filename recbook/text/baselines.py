"""Content vectors that need no pretrained model: a bag of words of the title and the category.

Why: a pretrained encoder earns its cost only if it beats what a word count already gives.
Both functions return an ``(n_items, d)`` float32 table for
:class:`recbook.text.two_tower.CachedTitleVectors`, so they go through the *same* two-tower head
as the encoder's vectors and the comparison isolates the item representation.

The bag of words learns its vocabulary from the ``fit_items`` only (the warm items, whose
titles exist when the model is trained): a word that appears only in later titles has no
column, so a cold item named with new words keeps only the words it shares with older items.
That is the honest set-up -- a column for an unseen word would get no training signal anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recbook import checks
from recbook.text.encoder import check_titles

WEIGHTINGS = ("tfidf", "binary")


def bag_of_words(
    titles: Sequence[Any],
    fit_items: Any = None,
    weighting: str = "tfidf",
) -> tuple[np.ndarray, list[str]]:
    """Bag-of-words vectors of every title, vocabulary learned from ``titles[fit_items]``.

    ``weighting="tfidf"``: sublinear TF-IDF with L2-normalised rows (scikit-learn's
    ``TfidfVectorizer``); ``"binary"``: 1 where the word occurs. Words are lower-cased runs of
    two or more letters or digits. Returns ``(vectors, vocabulary)``. A title with no known
    word gets a zero row (it is counted, never dropped); titles must not be missing
    (:func:`recbook.text.check_titles`).
    """
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    checks.one_of(weighting, WEIGHTINGS, "weighting")
    texts = check_titles(titles)
    fit = (
        np.arange(len(texts))
        if fit_items is None
        else checks.ids(fit_items, len(texts), "fit_items (positions in titles)")
    )
    if fit.size == 0:
        raise ValueError("fit_items is empty: the vocabulary needs at least one title")
    if weighting == "tfidf":
        vectorizer: Any = TfidfVectorizer(sublinear_tf=True)
    else:
        vectorizer = CountVectorizer(binary=True)
    try:
        vectorizer.fit([texts[i] for i in fit])
    except ValueError as exc:  # scikit-learn: "empty vocabulary"
        raise ValueError(
            "the titles of fit_items hold no word (a run of two or more letters or digits), "
            f"so there is no vocabulary to learn ({exc})"
        ) from None
    vectors = vectorizer.transform(texts).toarray().astype(np.float32)
    return vectors, vectorizer.get_feature_names_out().tolist()


def unknown_word_share(
    titles: Sequence[Any], vocabulary: Sequence[str], items: Any = None
) -> float:
    """Share of the words of ``titles[items]`` (all when None) that ``vocabulary`` lacks --
    how much of a cold title a bag of words fitted on warm titles cannot read."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = check_titles(titles)
    if isinstance(vocabulary, str):
        raise TypeError("vocabulary must be a sequence of words, not one string")
    chosen = (
        np.arange(len(texts))
        if items is None
        else checks.ids(items, len(texts), "items (positions in titles)")
    )
    if chosen.size == 0:
        raise ValueError("items is empty: no titles to count words in")
    analyzer = CountVectorizer().build_analyzer()
    words = [w for i in chosen for w in analyzer(texts[i])]
    if not words:
        raise ValueError("the chosen titles hold no words")
    known = set(vocabulary)
    return float(np.mean([w not in known for w in words]))


def one_hot(values: Any) -> tuple[np.ndarray, list[str]]:
    """One-hot float32 rows of a categorical column (e.g. ``items["category"]``) and the level
    names. Missing values raise: an item without a category is not silently all-zero."""
    series = pd.Series(values)
    if series.isna().any():
        raise ValueError(
            f"{int(series.isna().sum())} values are missing; fill them (e.g. 'unknown') first"
        )
    if series.empty:
        raise ValueError("no values to encode")
    codes, levels = pd.factorize(series, sort=True)
    out = np.zeros((len(series), len(levels)), dtype=np.float32)
    out[np.arange(len(series)), codes] = 1.0
    return out, [str(v) for v in levels]

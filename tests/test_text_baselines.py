"""Tests of recbook.text.baselines: bag-of-words vectors, unknown-word share, one-hot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recbook import text

TITLES = ["red wool sweater", "blue wool jumper", "red cotton shirt", "green cardigan"]


def test_bag_of_words_vocabulary_comes_from_fit_items_only() -> None:
    vectors, vocab = text.bag_of_words(TITLES, fit_items=[0, 1, 2])
    assert "cardigan" not in vocab and "green" not in vocab
    assert vectors.shape == (4, len(vocab))
    assert vectors.dtype == np.float32
    assert not vectors[3].any()  # only unseen words: a zero row, kept
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-6)


def test_bag_of_words_binary_and_tfidf() -> None:
    binary, vocab = text.bag_of_words(TITLES, weighting="binary")
    assert set(np.unique(binary)) == {0.0, 1.0}
    assert binary[0, vocab.index("wool")] == 1.0
    tfidf, _ = text.bag_of_words(TITLES)
    # "wool" is in two titles, "sweater" in one: the rarer word weighs more
    assert tfidf[0, vocab.index("sweater")] > tfidf[0, vocab.index("wool")]


def test_bag_of_words_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="weighting"):
        text.bag_of_words(TITLES, weighting="counts")
    with pytest.raises(ValueError, match="missing or blank"):
        text.bag_of_words(["a b", None])
    with pytest.raises(ValueError, match="0..3"):
        text.bag_of_words(TITLES, fit_items=[4])
    with pytest.raises(ValueError, match="empty"):
        text.bag_of_words(TITLES, fit_items=np.array([], dtype=int))


def test_unknown_word_share() -> None:
    _, vocab = text.bag_of_words(TITLES, fit_items=[0, 1, 2])
    assert text.unknown_word_share(TITLES, vocab, items=[3]) == 1.0
    assert text.unknown_word_share(TITLES, vocab, items=[0, 1]) == 0.0
    assert text.unknown_word_share(TITLES, vocab) == pytest.approx(2 / 11)
    with pytest.raises(ValueError, match="empty"):
        text.unknown_word_share(TITLES, vocab, items=np.array([], dtype=int))


def test_one_hot() -> None:
    table, levels = text.one_hot(pd.Series(["toys", "books", "toys"]))
    assert levels == ["books", "toys"]
    np.testing.assert_array_equal(table, [[0, 1], [1, 0], [0, 1]])
    with pytest.raises(ValueError, match="missing"):
        text.one_hot(["toys", None])
    with pytest.raises(ValueError, match="no values"):
        text.one_hot([])

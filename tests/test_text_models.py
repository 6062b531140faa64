"""Tests of recbook.text.two_tower: tokenised titles, title towers, grouped batches, user AUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertModel

from recbook import text
from recbook.text import two_tower


@pytest.fixture(scope="module")
def encoder() -> text.TextEncoder:
    return text.load_encoder()


def tiny_bert(vocab_size: int = 30522) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    return BertModel(config)


def test_title_tokens_from_titles(encoder) -> None:
    tokens = two_tower.TitleTokens.from_titles(encoder, ["red shirt", "blue wool jacket"], 8)
    assert len(tokens) == 2
    assert tokens.lengths().tolist() == [4, 5]
    ids, mask = tokens[1]
    assert ids.shape == mask.shape == (5,)


def test_title_tokens_missing_titles(encoder) -> None:
    with pytest.raises(ValueError, match="missing or blank"):
        two_tower.TitleTokens.from_titles(encoder, pd.Series(["a", np.nan]))
    with pytest.warns(UserWarning, match="replaced"):
        tokens = two_tower.TitleTokens.from_titles(
            encoder, pd.Series(["a", np.nan]), missing="placeholder"
        )
    assert len(tokens) == 2


def test_title_tokens_checks_shapes() -> None:
    with pytest.raises(ValueError, match="alike"):
        two_tower.TitleTokens(torch.zeros(2, 3), torch.zeros(2, 4))


def test_cached_vectors_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        two_tower.CachedTitleVectors(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="non-empty"):
        two_tower.CachedTitleVectors(np.zeros(3))


def test_encoded_vectors_equal_frozen_embeddings(encoder) -> None:
    titles = ["red shirt", "blue wool jacket", "olive oil"]
    tokens = two_tower.TitleTokens.from_titles(encoder, titles, 16)
    tower = two_tower.EncodedTitleVectors(encoder.model, tokens).eval()
    with torch.no_grad():
        got = tower(torch.tensor([2, 0, 2, 1])).numpy()
    want = encoder.embed(titles, max_length=16)
    np.testing.assert_allclose(got, want[[2, 0, 2, 1]], atol=1e-5)


def test_two_tower_trains_the_encoder_when_asked() -> None:
    ids = torch.randint(1000, 2000, (5, 6))
    tokens = two_tower.TitleTokens(ids, torch.ones_like(ids))
    bert = tiny_bert()
    model = two_tower.TextTwoTower(3, two_tower.EncodedTitleVectors(bert, tokens), dim=4)
    before = bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    logits = model(torch.tensor([0, 1, 2]), torch.tensor([4, 4, 1]))
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(3)).backward()
    opt.step()
    assert not torch.equal(before, bert.encoder.layer[0].attention.self.query.weight)


def test_frozen_two_tower_scores_and_matrix_agree() -> None:
    torch.manual_seed(0)
    vectors = np.random.default_rng(0).normal(size=(6, 10)).astype("float32")
    model = two_tower.TextTwoTower(4, two_tower.CachedTitleVectors(vectors), dim=3)
    model.eval()
    users = np.array([0, 3])
    items = np.array([5, 1, 2])
    matrix = model.score_matrix(users, items)
    with torch.no_grad():
        pairwise = model(
            torch.tensor(np.repeat(users, 3)), torch.tensor(np.tile(items, 2))
        ).reshape(2, 3)
    np.testing.assert_allclose(matrix, pairwise.numpy(), atol=1e-5)
    assert sum(p.numel() for p in model.titles.parameters()) == 0  # the table is not trained


def test_two_tower_scores_unseen_items_from_text() -> None:
    """Items with the same title vector get the same score, trained or not: cold items work."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(4, 8)).astype("float32")
    vectors[3] = vectors[0]  # item 3 (never trained) has item 0's title
    model = two_tower.TextTwoTower(2, two_tower.CachedTitleVectors(vectors), dim=4).eval()
    scores = model.score_matrix(np.arange(2), np.arange(4))
    np.testing.assert_allclose(scores[:, 3], scores[:, 0])


def test_two_tower_rejects_mismatched_batches() -> None:
    model = two_tower.TextTwoTower(2, two_tower.CachedTitleVectors(np.eye(3)), dim=2)
    with pytest.raises(ValueError, match="differ in shape"):
        model(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"user ids must lie in 0\.\.1, found 0\.\.2"):
        model(torch.tensor([0, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"item ids must lie in 0\.\.2, found -1\.\.1"):
        model(torch.tensor([0, 1]), torch.tensor([-1, 1]))  # -1 silently read the last title


def test_item_grouped_batches_cover_and_bound() -> None:
    rng = np.random.default_rng(0)
    items = rng.integers(0, 50, size=2000)
    users = rng.integers(0, 30, size=2000)
    labels = rng.random(2000) < 0.5
    batches = two_tower.ItemGroupedBatches(users, items, labels, 8, rows_per_item=None)
    seen = []
    for u, i, y in batches:
        assert len(torch.unique(i)) <= 8
        seen.append(np.stack([u.numpy(), i.numpy(), y.numpy()], 1))
    assert len(seen) == len(batches) == -(-len(np.unique(items)) // 8)
    got = np.concatenate(seen)
    want = np.stack([users, items, labels.astype("float32")], 1)
    # every row exactly once per epoch when rows_per_item is None
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))


def test_item_grouped_batches_cap_rows_per_item() -> None:
    items = np.array([0] * 100 + [1] * 3)
    batches = two_tower.ItemGroupedBatches(np.zeros(103), items, np.ones(103), 2, 10)
    (only,) = list(batches)
    counts = np.bincount(only[1].numpy())
    assert counts.tolist() == [10, 3]


def test_item_grouped_batches_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        two_tower.ItemGroupedBatches(np.zeros(2), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="must be >= 1"):
        two_tower.ItemGroupedBatches(np.zeros(2), np.zeros(2), np.zeros(2), 0)


class _Fake:
    def __init__(self, events: pd.DataFrame, n_items: int) -> None:
        self.events, self.n_items = events, n_items

    def positives(self) -> pd.DataFrame:
        ev = self.events
        if "event" in ev:
            ev = ev[ev["event"] != "view"]
        return ev[["user_id", "item_id"]].reset_index(drop=True)


def test_labelled_pairs_from_impressions() -> None:
    events = pd.DataFrame(
        {"user_id": [0, 0, 1], "item_id": [1, 2, 1], "event": ["view", "click", "purchase"]}
    )
    pairs = two_tower.labelled_pairs(_Fake(events, 3))
    assert pairs["label"].tolist() == [0.0, 1.0, 1.0]


def test_labelled_pairs_from_purchases_only() -> None:
    events = pd.DataFrame({"user_id": [0, 1, 1], "item_id": [0, 1, 1]})
    pairs = two_tower.labelled_pairs(_Fake(events, 10), n_neg=2)
    assert (pairs["label"] == 1).sum() == 2  # the repeated purchase counts once
    assert (pairs["label"] == 0).sum() == 4
    negatives = pairs[pairs["label"] == 0]
    assert not ((negatives["user_id"] == 0) & (negatives["item_id"] == 0)).any()


def test_item_titles_picks_the_text_column() -> None:
    items = pd.DataFrame({"item_id": [1, 0], "description": ["b", None]})
    titles = two_tower.item_titles(items)
    assert pd.isna(titles[0]) and titles[1] == "b"  # kept, for check_titles to refuse
    with pytest.raises(KeyError, match="no text column"):
        two_tower.item_titles(pd.DataFrame({"item_id": [0]}))
    with pytest.raises(ValueError, match="contiguous"):
        two_tower.item_titles(pd.DataFrame({"item_id": [0, 5], "title": ["a", "b"]}))

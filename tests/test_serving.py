"""The index wrapper, recall against exact search, and fold-in recommendations."""

import numpy as np
import pytest
import torch

from recbook import sequences as sq
from recbook import serving


@pytest.fixture(scope="module")
def vectors():
    base = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    return serving.grow_catalogue(base, 2000, groups=np.arange(40) % 4, seed=1)


def test_exact_search_is_the_brute_force_answer(vectors):
    q = np.random.default_rng(2).normal(size=(5, 8))
    scores, ids = serving.ItemIndex(vectors).search(q, 10)
    brute = np.argsort(-(q @ vectors.T), axis=1)[:, :10]
    assert (ids == brute).all()
    assert np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_index_recall_on_a_small_exact_case(vectors, kind):
    q = np.random.default_rng(3).normal(size=(50, 8))
    _, exact = serving.ItemIndex(vectors).search(q, 10)
    index = serving.ItemIndex(vectors, kind=kind, ef_search=128, nprobe=64, nlist=32)
    _, found = index.search(q, 10)
    assert serving.recall_at_k(found, exact) >= 0.95
    index.set_search(ef_search=5, nprobe=1)  # a cheap search finds less
    _, rough = index.search(q, 10)
    assert serving.recall_at_k(rough, exact) < serving.recall_at_k(found, exact)


def test_search_never_returns_a_padding_id(vectors):
    """faiss pads unfilled slots with id -1, which numpy reads as the last item: refused."""
    q = np.random.default_rng(3).normal(size=(20, 8)).astype(np.float32)
    ivf = serving.ItemIndex(vectors, kind="ivf", nprobe=1, nlist=32)
    with pytest.raises(ValueError, match=r"fewer than k=200 .*nprobe=1 of nlist=32.*raise nprobe"):
        ivf.search(q, 200)
    ivf.set_search(nprobe=32)
    _, ids = ivf.search(q, 200)
    assert ids.shape == (20, 200) and (ids >= 0).all()


def test_recall_at_k_counts_shared_ids():
    assert serving.recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 2, 9]])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="shapes differ"):
        serving.recall_at_k(np.zeros((1, 2)), np.zeros((1, 3)))


def test_index_input_errors(vectors):
    with pytest.raises(ValueError, match="unknown index kind"):
        serving.ItemIndex(vectors, kind="annoy")
    with pytest.raises(ValueError, match="dimension 3, the index has 8"):
        serving.ItemIndex(vectors).search(np.zeros((1, 3)), 5)
    with pytest.raises(ValueError, match="NaN"):
        serving.ItemIndex(np.full((3, 2), np.nan))


def test_latency_and_growing_a_catalogue():
    t = serving.latency_ms(lambda i: i, 20)
    assert t.shape == (20,) and (t >= 0).all()
    rng = np.random.default_rng(0)
    base = np.c_[rng.normal(size=(200, 2)), np.zeros((200, 1))] + np.repeat(
        [[5, 0, 1], [-5, 0, 2]], 100, axis=0
    )
    grown = serving.grow_catalogue(base, 5000, groups=np.repeat([0, 1], 100), seed=0)
    assert grown.shape == (5000, 3) and np.allclose(grown[:200], base)
    # the new items keep each group's mean, spread and subspace (third coordinate constant)
    assert np.allclose(np.sort(np.unique(grown[:, 2].round(4))), [1, 2])
    assert abs(grown[:, 0].mean() - base[:, 0].mean()) < 0.5
    assert 0.8 < grown[grown[:, 2].round() == 1, 1].std() < 1.2
    with pytest.raises(ValueError, match="one label per base row"):
        serving.grow_catalogue(base, 10, groups=[0, 1])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return sq.SequenceModel(n_items=30, dim=8, heads=2, layers=1, max_len=5, dropout=0.0).eval()


def test_recommend_folds_in_each_click(model):
    ids1, s1 = serving.recommend(model, [1, 2], k=5)
    ids2, _ = serving.recommend(model, [1, 2, 17], k=5)
    assert len(ids1) == 5 and np.all(np.diff(s1) <= 0)
    assert not np.array_equal(ids1, ids2)  # the new click changed the list
    expected = np.argsort(-sq.score_next(model, [[1, 2]])[0])[:5]
    assert np.array_equal(ids1, expected)
    hnsw = serving.ItemIndex(model.item_vectors().detach().numpy(), kind="hnsw", ef_search=64)
    ids3, _ = serving.recommend(model, [1, 2], k=5, index=hnsw)
    assert set(ids3) == set(ids1)
    ids4, _ = serving.recommend(model, [1, 2], k=5, exclude=ids1[:2])
    assert not set(ids1[:2]) & set(ids4) and len(ids4) == 5


def test_recommend_empty_history_and_unknown_items(model):
    with pytest.raises(ValueError, match="empty history: pass fallback"):
        serving.recommend(model, [], k=3)
    pop = np.arange(30, dtype=float)
    ids, _ = serving.recommend(model, [], k=3, fallback=pop, exclude=[29])
    assert ids.tolist() == [28, 27, 26]
    with pytest.raises(ValueError, match="must lie in 0..29"):
        serving.recommend(model, [1, 30], k=3)

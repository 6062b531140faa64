"""Sequence batches, the causal self-attention model and cloze pre-training."""

import numpy as np
import pandas as pd
import pytest
import torch

from recbook import sequences as sq


@pytest.fixture(autouse=True)
def one_thread():
    """Small models: one thread is fastest and keeps a busy machine usable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = sq.SequenceModel(n_items=20, dim=8, heads=2, layers=2, max_len=6, dropout=0.0)
    return m.eval()


def test_user_sequences_orders_by_time_and_keeps_empty_users():
    ev = pd.DataFrame({"user_id": [1, 0, 1, 1], "item_id": [5, 2, 3, 4], "timestamp": [3, 1, 1, 2]})
    seqs = sq.user_sequences(ev, n_users=3, n_items=6)
    assert [s.tolist() for s in seqs] == [[2], [3, 4, 5], []]


def test_unknown_ids_and_empty_histories_are_clear_errors(model):
    with pytest.raises(ValueError, match=r"history 1 must lie in 0\.\.19"):
        sq.pad_left([[1], [25]], n_items=20, max_len=4)
    with pytest.raises(ValueError, match="history 0 is empty.*fallback"):
        sq.score_next(model, [[]])
    with pytest.raises(ValueError, match="must hold integer ids"):
        sq.score_next(model, [["a", "b"]])


def test_windows_cover_every_transition_once():
    x, y = sq.next_item_windows([np.arange(8), np.array([3])], n_items=10, max_len=3)
    targets = y[y != sq.IGNORE].tolist()
    assert sorted(targets) == list(range(1, 8))  # the length-1 sequence has no transition
    assert (x[y != sq.IGNORE] > 0).all()  # every target has a real input before it
    with pytest.raises(ValueError, match="nothing to learn"):
        sq.next_item_windows([[1], []], n_items=10, max_len=3)


def test_causal_mask_later_items_never_change_earlier_outputs(model):
    a = torch.tensor([[1, 5, 7, 9, 2, 4]])
    b = a.clone()
    b[0, 4:] = torch.tensor([11, 13])
    with torch.no_grad():
        ha, hb = model.hidden(a), model.hidden(b)
    assert torch.allclose(ha[0, :4], hb[0, :4], atol=1e-6)
    assert not torch.allclose(ha[0, 4:], hb[0, 4:], atol=1e-4)
    # the bidirectional (cloze) mode does see the future
    with torch.no_grad():
        assert not torch.allclose(
            model.hidden(a, causal=False)[0, :4], model.hidden(b, causal=False)[0, :4], atol=1e-4
        )


def test_padding_does_not_change_scores(model):
    short = sq.score_next(model, [[3, 4]])
    batch = sq.score_next(model, [[3, 4], [1, 2, 3, 4, 5, 6]])  # padded to length 6
    assert np.allclose(short[0], batch[0], atol=1e-5)
    # a history longer than max_len uses its last max_len items
    long = sq.score_next(model, [list(range(10))])
    assert np.allclose(long, sq.score_next(model, [list(range(4, 10))]), atol=1e-6)


def test_length_one_history_scores_the_catalogue(model):
    s = sq.score_next(model, [[7]])
    assert s.shape == (1, 20) and np.isfinite(s).all()
    vec = model.item_vectors().detach().numpy()
    state = sq.user_states(model, [[7]]).numpy()
    assert np.allclose(np.c_[state, np.ones(1)] @ vec.T, s, atol=1e-5)


def test_cloze_mask_hides_real_tokens_only():
    tok = torch.tensor([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]])
    masked, target = sq.cloze_mask(tok, n_items=10, mask_prob=0.5, generator=torch.Generator())
    hidden = masked == 11
    assert hidden.any(dim=1).all()  # at least one per row
    assert (tok[hidden] > 0).all() and (target[hidden] == tok[hidden] - 1).all()
    assert (target[~hidden] == sq.IGNORE).all()


def test_training_learns_a_deterministic_cycle():
    """On sequences 0,1,2,...,9,0,1,... the next item is the successor: a trained model and
    one fine-tuned after cloze pre-training both find it."""
    rng = np.random.default_rng(0)
    seqs = [(np.arange(12) + rng.integers(10)) % 10 for _ in range(60)]
    train = [s[:-2] for s in seqs]
    val_h, val_t = [s[:-1] for s in train], [s[-1] for s in train]
    for pre in (False, True):
        torch.manual_seed(0)
        m = sq.SequenceModel(n_items=10, dim=16, heads=2, layers=1, max_len=12, dropout=0.0)
        if pre:
            h = sq.pretrain_cloze(m, train, epochs=5, batch_size=16, progress=False)
            assert len(h.frame) == 5
        hist = sq.train_next_item(
            m, train, val_h, val_t, epochs=40, patience=3, batch_size=32, lr=2e-2, progress=False
        )
        assert hist.frame["val_loss"].min() < 0.2
        pred = sq.score_next(m, [s[:-1] for s in seqs]).argmax(axis=1)
        assert (pred == np.array([s[-1] for s in seqs])).mean() > 0.95


def test_model_refuses_bad_settings():
    with pytest.raises(ValueError, match="divisible"):
        sq.SequenceModel(n_items=5, dim=10, heads=3)
    m = sq.SequenceModel(n_items=5, dim=8, heads=2, max_len=3, causal=False)
    with pytest.raises(ValueError, match="causal"):
        sq.train_next_item(m, [[1, 2, 3]], [[1]], [2], progress=False)
    with pytest.raises(ValueError, match="exceeds max_len"):
        m.hidden(torch.ones(1, 4, dtype=torch.long))


def test_attention_maps_are_causal_rows_that_sum_to_one(model):
    maps = model.attention([1, 2, 3, 4])
    assert len(maps) == 2 and maps[0].shape == (2, 4, 4)
    assert np.allclose(maps[0].sum(axis=-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(maps[1], 1), 0.0)


def test_every_position_read_at_serving_was_trained():
    """Leave-last-out serves histories longer than any training window (the last two items
    are held back): the trained model reads only positions training reached, each of which
    moved, and a longer history is read as its latest ``window`` events."""
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 12, size=n) for n in rng.integers(3, 9, size=40)]
    train = [s[:-2] for s in seqs]
    serve = [s[:-1] for s in seqs]
    torch.manual_seed(0)
    m = sq.SequenceModel(n_items=12, dim=8, heads=2, layers=1, max_len=10, dropout=0.0)
    before = m.position.weight.detach().clone()
    sq.train_next_item(
        m, train, train, [s[-2] for s in seqs], epochs=2, patience=2, lr=1e-2, progress=False
    )
    assert m.window == max(len(t) for t in train) - 1 < max(len(h) for h in serve)
    moved = (m.position.weight.detach() - before).abs().sum(dim=1) > 0
    read = min(m.window, max(len(h) for h in serve))  # positions 0 .. read-1 at serving
    assert moved[:read].all() and not moved[m.window :].any()
    long = [h for h in serve if len(h) > m.window]
    assert np.allclose(
        sq.score_next(m, long), sq.score_next(m, [h[-m.window :] for h in long]), atol=1e-5
    )


def test_left_padding_keeps_the_last_items_shifts_ids_and_puts_the_latest_last():
    tok, lengths = sq.pad_left([[1, 2, 3, 4], [0]], n_items=5, max_len=3)
    assert tok.tolist() == [[3, 4, 5], [0, 0, 1]] and lengths.tolist() == [3, 1]
    x, y = sq.next_item_windows([np.arange(5)], n_items=10, max_len=3)
    # windows are cut from the end: the latest transitions fill a whole window
    assert x.tolist() == [[2, 3, 4], [0, 0, 1]] and y.tolist() == [[2, 3, 4], [-100, -100, 1]]

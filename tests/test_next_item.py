"""Next-item baselines: hand-worked scores on tiny histories, and tuning on validation."""

import numpy as np
import pytest

from recbook import next_item as ni


def test_history_counts_decay_from_the_latest_event():
    c = ni.history_counts([[0, 2, 0], [1]], n_items=3, decay=0.5).toarray()
    # user 0: item 0 at ages 2 and 0 -> 0.25 + 1; item 2 at age 1 -> 0.5
    assert np.allclose(c, [[1.25, 0.0, 0.5], [0.0, 1.0, 0.0]])
    assert np.allclose(ni.history_counts([[0, 2, 0]], 3).toarray(), [[2, 0, 1]])
    with pytest.raises(ValueError, match="decay must lie in"):
        ni.history_counts([[0]], 3, decay=0.0)


def test_personal_scores_put_own_items_first_then_popularity():
    pop = np.array([1.0, 9.0, 5.0, 0.0])
    s = ni.personal_scores([[3, 0, 3]], 4, pop, decay=0.9)[0]
    assert list(np.argsort(-s)) == [3, 0, 1, 2]  # own: 3 (twice), 0; then by popularity


def test_transitions_count_only_within_a_sequence():
    t = ni.transitions([[0, 1, 2], [2, 0], [1]], n_items=3).toarray()
    expected = np.zeros((3, 3))
    expected[0, 1] = expected[1, 2] = expected[2, 0] = 1
    assert np.array_equal(t, expected)


def test_markov_repeat_blend_is_a_mix_of_two_distributions():
    counts = ni.transitions([[0, 1], [0, 1], [0, 2]], n_items=3)
    pop = np.ones(3)
    chain = ni.markov_repeat_scores(counts, [[2, 0]], pop, blend=0.0, smoothing=0.0)[0]
    assert np.allclose(chain, [0, 2 / 3, 1 / 3])
    mixed = ni.markov_repeat_scores(counts, [[2, 0]], pop, blend=0.5, decay=0.5, smoothing=0.0)
    own = np.array([1.0, 0.0, 0.5]) / 1.5  # item 0 latest (1), item 2 one step back (0.5)
    assert np.allclose(mixed[0], 0.5 * chain + 0.5 * own)
    with pytest.raises(ValueError, match="history 0 is empty"):
        ni.markov_repeat_scores(counts, [[]], pop)


def test_sknn_votes_with_neighbours_and_skips_the_user_itself():
    train = [[0, 1], [0, 2], [3]]
    pop = np.ones(4)
    s = ni.sknn_scores(train, [[0]], 4, pop, k=1, self_rows=[0])[0]
    assert (
        np.argmax(s) in (0, 2) and s[1] < 1e-6
    )  # row 0 (itself) excluded: its item 1 gets no vote
    both = ni.sknn_scores(train, [[0]], 4, pop, k=2)[0]
    assert both[1] > 0.5 and both[2] > 0.5 and both[3] < 1e-6


def test_tune_picks_the_best_validation_settings():
    def score(shift):
        s = np.zeros((2, 4))
        s[[0, 1], [(1 + shift) % 4, (2 + shift) % 4]] = 1.0
        return s

    best, table = ni.tune(score, [dict(shift=0), dict(shift=1)], val_target=[1, 2], k=1)
    assert best == dict(shift=0) and table.iloc[0] == 1.0 and len(table) == 2
    with pytest.raises(ValueError, match="empty grid"):
        ni.tune(score, [], val_target=[1, 2])

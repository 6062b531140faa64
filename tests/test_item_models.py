"""recbook.item_models: EDLAE/DLAE closed forms and the RP3β walk against their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recbook import baselines, item_models


@pytest.fixture(scope="module")
def x() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 12)) < 0.3).astype(float)
    dense[np.arange(12), np.arange(12)] = 1.0  # every item chosen at least once
    return sp.csr_matrix(dense)


def test_edlae_without_dropout_is_ease(x):
    np.testing.assert_allclose(
        item_models.edlae_weights(x, p=0.0, l2=7.0), baselines.ease_weights(x, 7.0), atol=1e-12
    )


def test_edlae_has_a_zero_diagonal_and_penalises_popular_items_more(x):
    b = item_models.edlae_weights(x, p=0.3, l2=1.0)
    assert np.allclose(np.diag(b), 0.0)
    assert not np.allclose(b, item_models.edlae_weights(x, p=0.0, l2=1.0))


def test_dlae_solves_its_normal_equations(x):
    p, l2 = 0.25, 3.0
    b = item_models.dlae_weights(x, p=p, l2=l2)
    g = (x.T @ x).toarray()
    lam = np.diag(p / (1 - p) * np.diag(g) + l2)
    np.testing.assert_allclose((g + lam) @ b, g, atol=1e-9)


def _p3(x: sp.csr_matrix) -> np.ndarray:
    d = x.toarray()
    p_ui = d / d.sum(axis=1, keepdims=True)
    p_iu = d.T / d.T.sum(axis=1, keepdims=True)
    return p_iu @ p_ui


def test_rp3_with_beta_zero_is_the_p3_walk(x):
    np.testing.assert_allclose(item_models.rp3_weights(x, beta=0.0), _p3(x), atol=1e-12)
    # a walk's rows are probabilities
    np.testing.assert_allclose(_p3(x).sum(axis=1), 1.0)


def test_rp3_beta_divides_columns_by_popularity(x):
    pop = np.asarray(x.sum(axis=0)).ravel()
    np.testing.assert_allclose(
        item_models.rp3_weights(x, beta=0.5), _p3(x) / pop[None, :] ** 0.5, atol=1e-12
    )


def test_rp3_pruning_keeps_the_largest_and_normalise_rescales_rows(x):
    full = item_models.rp3_weights(x, beta=0.3)
    pruned = item_models.rp3_weights(x, beta=0.3, neighbours=3, normalise=True)
    assert ((pruned > 0).sum(axis=1) <= 3).all()
    np.testing.assert_allclose(pruned.sum(axis=1), 1.0)
    for row_full, row in zip(full, pruned):
        kept = row > 0
        assert row_full[kept].min() >= np.sort(row_full)[-3] - 1e-12
        np.testing.assert_allclose(row[kept], row_full[kept] / row_full[kept].sum())


def test_scores_are_x_times_b():
    train = pd.DataFrame({"user_id": [0, 0, 1, 2, 2], "item_id": [0, 1, 1, 2, 0]})
    got = item_models.scores(train, 3, 3, "rp3", beta=0.0)
    x = baselines.interaction_matrix(train, 3, 3)
    np.testing.assert_allclose(got, x @ item_models.rp3_weights(x, beta=0.0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: item_models.edlae_weights(x, p=1.0), "p"),
        (lambda x: item_models.dlae_weights(x, p=-0.1), "p"),
        (lambda x: item_models.edlae_weights(x, l2=-1.0), "l2"),
        (lambda x: item_models.dlae_weights(x, p=0.0, l2=0.0), "l2 > 0"),
        (lambda x: item_models.rp3_weights(x, beta=-0.5), "beta"),
        (lambda x: item_models.rp3_weights(x, neighbours=0), "neighbours"),
        (lambda x: item_models.edlae_weights(x, max_bytes=10), "max_bytes"),
    ],
)
def test_bad_hyper_parameters_are_refused_clearly(x, call, message):
    with pytest.raises(ValueError, match=message):
        call(x)


def test_bad_inputs_are_refused(x):
    with pytest.raises(TypeError, match="sparse"):
        item_models.edlae_weights(x.toarray())
    with pytest.raises(ValueError, match="no interactions"):
        item_models.rp3_weights(sp.csr_matrix((3, 3)))
    with pytest.raises(ValueError, match="model must be one of"):
        item_models.scores(pd.DataFrame({"user_id": [0], "item_id": [0]}), 1, 1, "slim")

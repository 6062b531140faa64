"""Property-based tests: random shapes, NaNs and id ranges give a correct result or a clear error.

"Clear" means ValueError, KeyError or TypeError with a message that names what was wrong; an
IndexError, a numpy broadcasting error or a silently wrong result is a bug. Each test keeps its
examples small so the whole file runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recbook import checks, metrics, splits

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
CLEAR = (ValueError, KeyError, TypeError)


def clear(exc: BaseException) -> bool:
    """A clear error: one of the documented types, with a message of some substance."""
    return isinstance(exc, CLEAR) and len(str(exc)) >= 15


def attempt(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, error)``; any error that is not clear fails the test."""
    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - the point is to look at every error
        assert clear(exc), f"obscure error {type(exc).__name__}: {exc}"
        return None, exc


id_values = st.one_of(
    st.integers(-3, 12),
    st.floats(-3, 12),
    st.sampled_from([0.5, 2.0, np.nan, -np.inf]),
)


# --- recbook.checks ----------------------------------------------------------------------------


@FAST
@given(values=st.lists(id_values, max_size=8), n=st.integers(1, 10))
def test_ids_are_whole_numbers_in_range_or_refused(values, n):
    arr = np.array(values, dtype=float if any(isinstance(v, float) for v in values) else int)
    out, err = attempt(checks.ids, arr, n, "ids")
    if err is None:
        assert out.dtype == np.int64 and np.array_equal(out, arr)
        assert ((out >= 0) & (out < n)).all()
    else:
        assert not (np.isfinite(arr).all() and (arr == np.round(arr)).all() and
                    ((arr >= 0) & (arr < n)).all())  # fmt: skip


@FAST
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_float_checks_accept_exactly_their_domain(arr):
    finite = np.isfinite(arr).all()
    _, err = attempt(checks.finite_array, arr, "x")
    assert (err is None) == finite
    _, err = attempt(checks.probabilities, arr, "p")
    assert (err is None) == (finite and ((arr >= 0) & (arr <= 1)).all())
    _, err = attempt(checks.binary_labels, arr, "y")
    assert (err is None) == np.isin(arr, (0.0, 1.0)).all()


@FAST
@given(value=st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.booleans(), st.text()))
def test_number_fraction_and_integer(value):
    v, err = attempt(checks.number, value, "x", positive=True)
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert (err is None) == (real and math.isfinite(value) and value > 0)
    if err is None:
        assert v == float(value)
    _, err = attempt(checks.fraction, value, "f")
    assert (err is None) == (real and math.isfinite(value) and 0 < value < 1)
    _, err = attempt(checks.integer, value, "k", minimum=0)
    assert (err is None) == (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


# --- recbook.splits ----------------------------------------------------------------------------


@st.composite
def events(draw, max_rows=30, nan_times=True):
    n = draw(st.integers(0, max_rows))
    users = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    times = draw(
        st.lists(
            st.one_of(
                st.integers(0, 50).map(float), st.just(np.nan) if nan_times else st.nothing()
            ),
            min_size=n,
            max_size=n,
        )
    )
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times})


def assert_partition(df, train, test):
    assert len(train) + len(test) == len(df)
    key = ["user_id", "item_id", "timestamp"]
    both = pd.concat([train, test])[key].sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(both, df[key].sort_values(key, ignore_index=True))


@FAST
@given(df=events(nan_times=False), size=st.floats(-0.5, 1.5), seed=st.integers(-2, 5))
def test_random_and_per_user_splits_partition_or_refuse(df, size, seed):
    for split in (splits.random_split, splits.per_user_split):
        out, err = attempt(split, df, size, seed=seed)
        if err is None:
            assert_partition(df, *out)
            assert len(df) > 0 and 0 < size < 1 and seed >= 0
        if split is splits.per_user_split and err is None:
            assert set(out[1].user_id) <= set(out[0].user_id)


@FAST
@given(df=events(), q=st.floats(0.05, 0.95))
def test_temporal_split_is_a_time_cut_or_refuses(df, q):
    out, err = attempt(splits.temporal_split, df, quantile=q)
    if df["timestamp"].isna().any():
        assert err is not None and "timestamp" in str(err)
    if err is None:
        train, test = out
        assert_partition(df, train, test)
        assert train.timestamp.max() < test.timestamp.min()


@FAST
@given(df=events(nan_times=False))
def test_leave_last_out_takes_each_users_latest(df):
    out, err = attempt(splits.leave_last_out, df)
    if err is None:
        train, test = out
        assert_partition(df, train, test)
        assert test.user_id.is_unique
        for row in test.itertuples():
            assert row.timestamp >= train.loc[train.user_id == row.user_id, "timestamp"].max()


@FAST
@given(df=events(max_rows=15, nan_times=False), n_items=st.integers(1, 12), n_neg=st.integers(1, 3))
def test_sample_negatives_are_unseen_in_range_or_refused(df, n_items, n_neg):
    for strategy in ("uniform", "popularity"):
        neg, err = attempt(splits.sample_negatives, df, n_items, n_neg, strategy, seed=0)
        if df["item_id"].ge(n_items).any() and len(df):
            assert err is not None and "item_id" in str(err)
        if err is None:
            assert len(neg) == n_neg * len(df)
            assert neg["item_id"].between(0, n_items - 1).all()
            seen = set(zip(df.user_id, df.item_id))
            assert not seen & set(zip(neg.user_id, neg.item_id))


@FAST
@given(
    test=events(max_rows=8, nan_times=False),
    seen=events(max_rows=15, nan_times=False),
    n_items=st.integers(1, 12),
    n_neg=st.integers(0, 6),
)
def test_eval_candidates_are_distinct_unseen_or_refused(test, seen, n_items, n_neg):
    out, err = attempt(splits.sample_eval_candidates, test, seen, n_items, n_neg, seed=0)
    if err is None:
        assert out.shape == (len(test), 1 + n_neg)
        assert (out[:, 0] == test.item_id.to_numpy()).all()
        assert ((out >= 0) & (out < n_items)).all()
        pairs = set(zip(seen.user_id, seen.item_id)) | set(zip(test.user_id, test.item_id))
        for user, row in zip(test.user_id, out):
            assert len(set(row)) == len(row)
            assert not {(user, i) for i in row[1:]} & pairs


# --- recbook.metrics (documented behaviour) ----------------------------------------------------

score_values = st.one_of(
    st.integers(-2, 2).map(float), st.floats(-3, 3), st.sampled_from([-np.inf, np.nan])
)


@st.composite
def rankings(draw):
    users, items = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    scores = draw(hnp.arrays(np.float64, (users, items), elements=score_values))
    relevance = draw(hnp.arrays(np.bool_, (users, items)))
    k = draw(st.integers(0, items + 1))
    return scores, relevance, k


@FAST
@given(case=rankings())
def test_ranking_metrics_are_bounded_and_never_count_excluded_items(case):
    scores, relevance, k = case
    for metric in (metrics.precision_at_k, metrics.recall_at_k, metrics.ndcg_at_k,
                   metrics.hit_rate_at_k, metrics.map_at_k):  # fmt: skip
        value, err = attempt(metric, scores, relevance, k, seed=1)
        if np.isnan(scores).any() or not 1 <= k <= scores.shape[1] or not relevance.any():
            assert err is not None
        if err is None:
            assert 0.0 <= value <= 1.0
            reachable = relevance & np.isfinite(scores)
            if not reachable.any():
                assert value == 0.0  # -inf (excluded) items are never hits


@FAST
@given(case=rankings())
def test_top_k_picks_the_k_largest(case):
    scores, _, k = case
    assume(not np.isnan(scores).any())
    top, err = attempt(metrics.top_k, scores, k, seed=3)
    if err is None:
        assert top.shape == (scores.shape[0], k)
        picked = np.sort(np.take_along_axis(scores, top, axis=1), axis=1)
        best = np.sort(scores, axis=1)[:, scores.shape[1] - k :]
        np.testing.assert_array_equal(picked, best)
        assert all(len(set(row)) == k for row in top)
        one, _ = attempt(metrics.top_k, scores[0], k, seed=3)
        assert one.shape == (k,)


def test_top_k_breaks_ties_at_random_not_by_position():
    """A constant scorer finds the one relevant item at the chance rate wherever it sits."""
    scores, relevance = np.zeros((2000, 10)), np.zeros((2000, 10), dtype=bool)
    relevance[:, 0] = True  # first column: a position tie-break would always find it
    assert abs(metrics.hit_rate_at_k(scores, relevance, 1, seed=0) - 0.1) < 0.03


@FAST
@given(
    shape_a=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
    shape_b=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
)
def test_rating_metrics_refuse_shape_mismatch(shape_a, shape_b):
    a, b = np.ones(shape_a), np.zeros(shape_b)
    for metric in (metrics.rmse, metrics.mae):
        value, err = attempt(metric, a, b)
        assert (err is None) == (shape_a == shape_b)
        if err is None:
            assert value == 1.0


@FAST
@given(
    labels=st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5, np.nan]), min_size=1, max_size=6),
    p=st.floats(0, 1),
)
def test_log_loss_needs_binary_labels_and_is_never_negative(labels, p):
    y = np.array(labels)
    value, err = attempt(metrics.log_loss, y, np.full(len(y), p))
    assert (err is None) == np.isin(y, (0.0, 1.0)).all()
    if err is None:
        assert value >= 0


@pytest.mark.parametrize("bad", [[0, 2], [-1, 1]])
def test_auc_refuses_non_binary_labels(bad):
    with pytest.raises(ValueError, match="0/1"):
        metrics.auc(bad, [0.1, 0.9])


# --- issue 24: NaN and empty values inside well-typed data --------------------------------------


@st.composite
def events_with_holes(draw, max_rows=20):
    """Events whose user or timestamp column may hold NaN or inf (a float column)."""
    df = draw(events(max_rows=max_rows, nan_times=True))
    holes = st.sampled_from([np.nan, np.inf, -np.inf])
    users = [
        draw(st.one_of(st.just(float(u)), holes)) if draw(st.booleans()) else float(u)
        for u in df["user_id"]
    ]
    return df.assign(user_id=users)


@FAST
@given(df=events_with_holes())
def test_nan_users_and_times_are_refused_with_the_column_and_rows(df):
    bad_user = ~np.isfinite(df["user_id"].to_numpy())
    bad_time = ~np.isfinite(df["timestamp"].to_numpy())
    out, err = attempt(splits.per_user_split, df, 0.5, seed=0)
    if len(df) and bad_user.any():
        assert err is not None and "'user_id'" in str(err) and "rows" in str(err)
    elif err is None:
        assert_partition(df, *out)
    out, err = attempt(splits.leave_last_out, df)
    if len(df) and (bad_user | bad_time).any():
        assert err is not None and "rows" in str(err)
        assert ("'user_id'" if bad_user.any() else "'timestamp'") in str(err)
    elif err is None:
        assert_partition(df, *out)
    labels = np.arange(len(df)) % 2
    out, err = attempt(metrics.user_aucs, labels, np.zeros(len(df)), df["user_id"].to_numpy())
    if bad_user.any():
        assert err is not None and "users" in str(err)


def test_empty_inputs_where_a_result_would_be_meaningless_are_refused():
    from recbook import baselines

    df = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [0, 1, 1, 2]})
    for call, words in (
        (lambda: splits.cold_start_items(df, items=[]), "items must be a non-empty"),
        (lambda: baselines.ease_scores(df.iloc[:0], 2, 3), "train is empty"),
        (lambda: metrics.ranking_report(np.eye(3), np.eye(3, dtype=bool), ks=()), "ks"),
    ):
        _, err = attempt(call)
        assert err is not None and words in str(err)


# --- issue 24: result objects validate themselves ----------------------------------------------

bounds = st.one_of(st.floats(-2, 2), st.sampled_from([np.nan, np.inf, -np.inf]))


@FAST
@given(mean=bounds, lo=bounds, hi=bounds, n=st.integers(-1, 4))
def test_interval_is_valid_or_refused_and_verdict_trusts_only_intervals(mean, lo, hi, n):
    import contextlib
    import io

    from recbook import evaluation

    iv, err = attempt(evaluation.Interval, mean, lo, hi, n)
    valid = math.isfinite(mean) and not (np.isnan(lo) or np.isnan(hi)) and lo <= hi and n >= 1
    assert (err is None) == valid
    with contextlib.redirect_stdout(io.StringIO()):
        if valid:
            assert evaluation.verdict("claim", iv) in evaluation.VERDICTS
        _, err = attempt(evaluation.verdict, "claim", (mean, lo, hi))
    assert err is not None and "Interval" in str(err)


@pytest.fixture(scope="module")
def ivf_index():
    from recbook import serving

    vectors = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    return serving.ItemIndex(vectors, kind="ivf", nlist=8), vectors[:5]


@FAST
@given(nprobe=st.integers(1, 8), k=st.integers(1, 300))
def test_index_search_returns_real_ids_or_names_the_knob(ivf_index, nprobe, k):
    index, queries = ivf_index
    index.set_search(nprobe=nprobe)  # the same index for every example: only the knob changes
    out, err = attempt(index.search, queries, k)
    if err is None:
        assert out[1].shape == (5, k) and ((out[1] >= 0) & (out[1] < 300)).all()
    else:
        assert "nprobe" in str(err)


# --- issue 24: no silent coercion of ids and text ----------------------------------------------


@FAST
@given(
    values=st.lists(
        st.one_of(
            st.integers(-(2**70), 2**70).map(float),
            st.floats(-1e6, 1e6),
            st.sampled_from([np.inf, -np.inf, 2.0**53 + 2, 12345.5]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_ids_are_cast_only_when_the_cast_is_exact(values):
    series = pd.Series(values, index=np.arange(len(values)) + 2)
    out, err = attempt(checks.exact_integers, series, "CustomerID")
    arr = np.asarray(values)
    exact = np.isfinite(arr).all() and (np.abs(arr) <= 2.0**53).all() and (arr == np.round(arr))
    assert (err is None) == bool(np.all(exact))
    if err is None:
        assert out.dtype == np.int64 and (out == arr).all()
    else:
        assert "CustomerID" in str(err)


@FAST
@given(title=st.one_of(st.text(max_size=4), st.binary(max_size=3), st.integers(), st.none()))
def test_titles_are_strings_that_show_something_or_refused(title):
    import unicodedata

    from recbook.text.encoder import check_titles

    out, err = attempt(check_titles, ["red shirt", title])
    if err is None:
        text = out[1]
        assert isinstance(title, str) and text == title.strip()
        folded = unicodedata.normalize("NFKC", text)
        assert any(not c.isspace() and unicodedata.category(c) != "Cf" for c in folded)


# --- issue 24: memory is estimated before it is spent ------------------------------------------


def test_memory_hungry_calls_refuse_above_the_limit_and_accept_a_raised_one():
    from recbook import baselines

    df = pd.DataFrame({"user_id": [0, 1, 1], "item_id": [0, 1, 2]})
    for call in (
        lambda **kw: splits.sample_eval_candidates(df, df, 6, n_neg=2, **kw),
        lambda **kw: baselines.ease_scores(df, 2, 6, **kw),
    ):
        _, err = attempt(call, max_bytes=64)
        assert err is not None and "GiB" in str(err) and "max_bytes=" in str(err)
        out, err = attempt(call, max_bytes=10**6)
        assert err is None and len(out) > 0


@st.composite
def valid_rankings(draw):
    users, items = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    values = st.one_of(st.integers(-2, 2).map(float), st.floats(-3, 3), st.just(-np.inf))
    scores = draw(hnp.arrays(draw(st.sampled_from([np.float32, np.float64])), (users, items),
                             elements=values))  # fmt: skip
    relevance = draw(hnp.arrays(np.bool_, (users, items)))
    relevance[0, 0] = True
    return scores, relevance, draw(st.integers(1, items))


@FAST
@given(case=valid_rankings(), cells=st.integers(1, 12))
def test_ranking_metrics_in_user_batches_equal_the_whole_matrix(case, cells):
    scores, relevance, k = case
    whole = metrics.per_user_metrics(scores, relevance, k, seed=2)
    top = metrics.top_k(scores, k, seed=2)
    saved = metrics.BATCH_CELLS
    try:
        metrics.BATCH_CELLS = cells  # one user per batch or a few
        pd.testing.assert_frame_equal(metrics.per_user_metrics(scores, relevance, k, seed=2), whole)
        np.testing.assert_array_equal(metrics.top_k(scores, k, seed=2), top)
    finally:
        metrics.BATCH_CELLS = saved


# --- issue 24: the runner never writes over a source -------------------------------------------


@FAST
@given(out=st.sampled_from(["nb", "nb/.", "nb/../nb", "link", "file.txt", "new", "nb/sub"]))
def test_runner_out_is_refused_when_it_would_damage_a_source(out, tmp_path_factory):
    import nbformat

    from recbook.book import runner

    root = tmp_path_factory.mktemp("runner")
    (root / "nb").mkdir()
    source = root / "nb" / "00_t.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), source)
    (root / "link").symlink_to(root / "nb", target_is_directory=True)
    (root / "file.txt").write_text("x")
    before = source.read_bytes()
    _, err = attempt(runner.check_out_dir, root / out, [source])
    assert (err is None) == (out in ("new", "nb/sub"))
    assert source.read_bytes() == before and (root / "file.txt").read_text() == "x"


# --- issue 24, second pass: models, training, loaders and text -----------------------------------


def _ratings() -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": [0, 1, 2, 0, 1], "item_id": [0, 1, 2, 2, 0], "rating": [1.0, 5, 3, 4, 2]}
    )


def _bad_calls():
    """``(label, call, error type, pattern the message must match)``: one case per fix."""
    import torch

    from recbook import datasets, mf, models_torch, training
    from recbook.text import baselines as text_baselines
    from recbook.text import encoder as text_encoder

    r = _ratings()
    text_r = r.astype({"rating": object})
    text_r.loc[0, "rating"] = "x"
    net = models_torch.BiasedMF(3, 3, dim=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ids = torch.tensor([0, 1])
    batches = training.TensorBatches(ids, ids, torch.tensor([1.0, 2.0]))
    fake = text_encoder.TextEncoder("fake", None, None, "test", "0" * 64)  # never runs
    mse = torch.nn.functional.mse_loss
    return [
        ("n_users", lambda: mf.fit_als(r, "3", 3, progress=False), TypeError, "n_users"),
        ("n_users=0", lambda: mf.fit_sgd(r, 0, 3, progress=False), ValueError, "n_users"),
        ("text rating", lambda: mf.fit_als(text_r, 3, 3, progress=False), TypeError, "rating"),
        ("progress", lambda: mf.fit_als(r, 3, 3, progress="no"), TypeError, "progress"),
        ("weighted", lambda: mf.fit_als(r, 3, 3, weighted="no", progress=False), TypeError,
         "weighted"),
        ("patience", lambda: mf.fit_als(r, 3, 3, val=r, patience="2", progress=False), TypeError,
         "patience"),
        ("init_sd", lambda: mf.fit_sgd(r, 3, 3, init_sd=-1.0, progress=False), ValueError,
         "init_sd"),
        ("init_sd nan", lambda: mf.fit_bayes(r, 3, 3, init="random", init_sd=float("nan"),
                                             progress=False), ValueError, "init_sd"),
        ("rank memory", lambda: mf.fit_bayes(r, 3, 3, rank=10**9, progress=False), ValueError,
         "max_bytes="),
        ("diverges", lambda: mf.fit_sgd(r, 3, 3, lr=1e6, epochs=60, progress=False), ValueError,
         "diverged.*lower lr"),
        ("als model", lambda: mf.als_user_step(r, {"n_users": 3}, reg=0.1), TypeError, "model"),
        ("fit model", lambda: training.fit(None, batches, mse, optimizer=opt, epochs=1),
         TypeError, "model"),
        ("optimizer", lambda: training.fit(net, batches, mse, optimizer=None, epochs=1),
         TypeError, "optimizer"),
        ("loss_fn", lambda: training.fit(net, batches, None, optimizer=opt, epochs=1), TypeError,
         "loss_fn"),
        ("device", lambda: training.fit(net, batches, mse, optimizer=opt, epochs=1,
                                        device="gpu9", progress=False), ValueError, "device"),
        ("batch type", lambda: training.fit(net, ids, mse, optimizer=opt, epochs=1,
                                            progress=False), TypeError, "train_batches"),
        ("list tensors", lambda: training.TensorBatches([0, 1], [1, 2]), TypeError, "tensor 0"),
        ("shuffle", lambda: training.TensorBatches(ids, shuffle="no"), TypeError, "shuffle"),
        ("repeats", lambda: training.compare_timings({"a": None}, reference="a", repeats=1.5),
         TypeError, "repeats"),
        ("global_mean", lambda: models_torch.BiasedMF(3, 3, global_mean=float("nan")),
         ValueError, "global_mean"),
        ("init_std", lambda: models_torch.BiasedMF(3, 3, init_std=-1.0), ValueError, "init_std"),
        ("sparse", lambda: models_torch.BiasedMF(3, 3, sparse="yes"), TypeError, "sparse"),
        ("hidden", lambda: models_torch.MLP(3, hidden=5), TypeError, "hidden"),
        ("list ids", lambda: net([0], [1]), TypeError, "user ids"),
        ("MLP width", lambda: models_torch.MLP(3)(torch.zeros(2, 4)), ValueError, "in_dim"),
        ("path int", lambda: datasets.load("movielens-100k", path=123), TypeError, "path"),
        ("path empty", lambda: datasets.load("movielens-100k", path=""), ValueError, "path"),
        ("fit_items", lambda: text_baselines.bag_of_words(["ab", "cd"], fit_items=[5]),
         ValueError, "fit_items"),
        ("no words", lambda: text_baselines.bag_of_words(["!!", "a b"]), ValueError, "no word"),
        ("titles None", lambda: text_baselines.bag_of_words(None), TypeError, "titles"),
        ("titles dict", lambda: text_encoder.check_titles({"a": 1}), TypeError, "titles"),
        ("vocabulary", lambda: text_baselines.unknown_word_share(["ab"], "ab"), TypeError,
         "vocabulary"),
        ("scale items", lambda: text_encoder.centre_and_scale(np.eye(3), items=[9]), ValueError,
         "items"),
        ("encoder name", lambda: text_encoder.load_encoder(""), ValueError, "name"),
        ("batch_size", lambda: fake.embed(["ab"], batch_size=0), ValueError, "batch_size"),
        ("embed device", lambda: fake.embed(["ab"], device="gpu9"), ValueError, "device"),
        ("encoder", lambda: text_encoder.cached_embeddings(None, ["ab"]), TypeError, "encoder"),
        ("directory", lambda: text_encoder.cached_embeddings(fake, ["ab"], directory=__file__),
         ValueError, "directory"),
        ("key max_length", lambda: text_encoder.embedding_key(fake, ["ab"], "x"), TypeError,
         "max_length"),
        ("mean_pool", lambda: text_encoder.mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 5)),
         ValueError, "mask"),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(40))
def test_bad_arguments_get_a_recbook_error_naming_them(index):
    """A fresh pass over mf, training, models_torch, the loaders and text: each of these was
    an AttributeError/RuntimeError from deep inside, numpy's or torch's own message, or a
    silent result (a truthy "no", NaN factors, a diverged fit) before."""
    label, call, kind, pattern = _bad_calls()[index]
    with pytest.raises(kind, match=pattern) as info:
        call()
    assert clear(info.value), label
    assert "/recbook/" in info.traceback[-1].path.as_posix(), label  # raised by recbook


def test_the_bad_call_list_is_covered_exactly():
    assert len(_bad_calls()) == 40


def test_valid_variants_of_the_new_checks_still_work():
    import torch

    from recbook import mf, models_torch
    from recbook.text import encoder as text_encoder

    r = _ratings()
    assert mf.fit_als(r, 3, 3, iters=1, progress=np.bool_(False)).n_users == 3
    mask = np.array([True, False, True])
    by_mask = text_encoder.centre_and_scale(np.eye(3), items=mask)
    by_ids = text_encoder.centre_and_scale(np.eye(3), items=[0, 2])
    np.testing.assert_array_equal(by_mask[0], by_ids[0])
    assert models_torch.MLP(3, hidden=[4])(torch.zeros(2, 3)).shape == (2,)

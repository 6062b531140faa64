"""Unit tests of recbook.models_tf: shapes, learning a tiny dataset, clear errors on bad input."""

import numpy as np
import pandas as pd
import pytest

import recbook  # noqa: F401  (quiets TensorFlow before it is imported)

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from recbook import models_tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _tiled(features, labels, times=30):
    """The same tiny dataset ``times`` over, one batch per copy: many steps per Keras epoch
    (an epoch costs far more than a step, so this keeps the tests fast)."""
    n = len(labels)
    tiled = {
        k: np.tile(np.asarray(v), (times,) + (1,) * (np.ndim(v) - 1)) for k, v in features.items()
    }
    return models_tf.make_dataset(tiled, np.tile(labels, times), batch_size=n)


def _ids(users, items):
    return {"user_id": tf.constant(users, dtype="int32"), "item_id": tf.constant(items, "int32")}


def test_shapes_of_every_model():
    batch = _ids([0, 1, 4], [2, 3, 0])
    assert models_tf.dot_product_model(5, 4, 3)(batch).shape == (3,)
    assert models_tf.retrieval_model(5, 4, 3)({"user_id": batch["user_id"]}).shape == (3, 4)
    x = tf.ones((3, 6))
    out = models_tf.per_user_sigmoid_model(5, 6)({"user_id": batch["user_id"], "item_features": x})
    assert out.shape == (3,)
    assert np.all((np.asarray(out) > 0) & (np.asarray(out) < 1))
    mlp = models_tf.mlp_click_model(5, 4, 3, user_features=np.ones((5, 2)), item_features=np.eye(4))
    assert mlp(batch).shape == (3,)
    u, v = models_tf.embedding_tables(mlp)
    assert u.shape == (5, 3) and v.shape == (4, 3)


def test_dot_product_model_is_the_dot_product_plus_biases():
    model = models_tf.dot_product_model(3, 2, 4, global_mean=3.5)
    model.get_layer("user_bias").set_weights([np.array([[0.5], [0.0], [-1.0]], "float32")])
    model.get_layer("item_bias").set_weights([np.array([[0.25], [0.0]], "float32")])
    p, q = models_tf.embedding_tables(model)
    got = models_tf.score_pairs(model, np.array([0, 2]), np.array([0, 1]))
    want = [p[0] @ q[0] + 0.5 + 0.25 + 3.5, p[2] @ q[1] - 1.0 + 3.5]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert models_tf.score_all(model, 3, 2).shape == (3, 2)


def test_dot_product_model_fits_a_tiny_rating_matrix():
    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)
    y = rng.integers(1, 6, size=12).astype("float32")
    model = models_tf.dot_product_model(4, 3, 4, global_mean=float(y.mean()), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    history = models_tf.fit(
        model, _tiled({"user_id": users, "item_id": items}, y), epochs=10, progress=False
    )
    assert history["loss"].iloc[-1] < 1e-3 < history["loss"].iloc[0]


def test_retrieval_model_learns_each_users_item():
    favourite = np.array([3, 0, 2, 1, 3])
    model = models_tf.retrieval_model(5, 4, 4, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = models_tf.fit(
        model, _tiled({"user_id": np.arange(5)}, favourite), epochs=7, progress=False
    )
    assert history["loss"].iloc[-1] < 0.05
    np.testing.assert_array_equal(models_tf.score_all(model, 5, 4).argmax(axis=1), favourite)


def test_per_user_sigmoid_separates_each_users_clicks():
    x = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], "float32")
    users = np.array([0, 0, 1, 1])
    clicks = np.array([1, 0, 0, 1], "float32")  # user 0 likes feature 0, user 1 feature 1
    model = models_tf.per_user_sigmoid_model(2, 2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="binary_crossentropy")
    ds = _tiled({"user_id": users, "item_features": x}, clicks)
    history = models_tf.fit(model, ds, epochs=10, progress=False)
    assert history["loss"].iloc[-1] < 0.05
    pred = np.asarray(model({"user_id": tf.constant(users), "item_features": tf.constant(x)}))
    np.testing.assert_array_equal(pred > 0.5, clicks.astype(bool))


def test_mlp_click_model_learns_an_interaction_a_sum_cannot():
    # click iff user parity == item parity: an XOR, not a sum of a user and an item effect
    users, items = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)
    clicks = (users % 2 == items % 2).astype("float32")
    model = models_tf.mlp_click_model(4, 4, 4, hidden=(16,), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    history = models_tf.fit(
        model, _tiled({"user_id": users, "item_id": items}, clicks), epochs=10, progress=False
    )
    assert history["loss"].iloc[-1] < 0.05
    np.testing.assert_array_equal(models_tf.score_pairs(model, users, items) > 0.5, clicks > 0.5)


def test_fit_stops_early_and_restores_the_best_weights():
    users, items = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    y = np.random.default_rng(1).normal(size=36).astype("float32")  # pure noise: overfits
    model = models_tf.dot_product_model(6, 6, 8, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    train = models_tf.make_dataset(
        {"user_id": users[:24], "item_id": items[:24]}, y[:24], batch_size=8
    )
    val = models_tf.make_dataset(
        {"user_id": users[24:], "item_id": items[24:]}, y[24:], batch_size=12
    )
    history = models_tf.fit(model, train, val, epochs=200, patience=3, progress=False)
    assert len(history) < 200
    best = history["val_loss"].min()
    assert model.evaluate(val, verbose=0) == pytest.approx(best, rel=1e-4)


def test_make_dataset_batches_named_inputs():
    inputs = {"user_id": np.arange(5), "item_id": np.arange(5)}
    ds = models_tf.make_dataset(inputs, np.ones(5), batch_size=2)
    batches = list(ds)
    assert len(batches) == 3
    features, labels = batches[0]
    assert set(features) == {"user_id", "item_id"} and labels.shape == (2,)


def test_tabular_features_encodes_and_reports_what_it_skips():
    frame = pd.DataFrame(
        {
            "item_id": [2, 0, 1],
            "category": ["a", "b", "a"],
            "price": [1.0, 2.0, np.nan],
            "is_new": [0, 1, 0],
            "title": ["x", "y", "z"],
            "raw_item_id": [10, 11, 12],
        }
    )
    x, names, skipped = models_tf.tabular_features(frame, "item_id", max_categories=2)
    assert x.shape == (3, len(names)) and x.dtype == np.float32
    assert {"category_a", "category_b", "price", "price_missing", "is_new"} <= set(names)
    assert skipped == ["title", "raw_item_id"]
    # rows follow the id: id 0 is the second input row (category "b", price 2.0)
    assert x[0, names.index("category_b")] == 1.0
    assert x[1, names.index("price_missing")] == 1.0  # id 1 has no price


@pytest.mark.parametrize(
    "build",
    [
        lambda: models_tf.dot_product_model(0, 3),
        lambda: models_tf.dot_product_model(3, 3, dim=-1),
        lambda: models_tf.retrieval_model(3, None),
        lambda: models_tf.per_user_sigmoid_model(3, 0),
        lambda: models_tf.mlp_click_model(3, 3, hidden=()),
        lambda: models_tf.mlp_click_model(3, 3, item_features=np.ones((2, 2))),
        lambda: models_tf.dot_product_model(3, 3, l2=-1.0),
    ],
)
def test_bad_model_arguments_are_refused(build):
    with pytest.raises((ValueError, TypeError), match="must be|positive|hidden|item_features"):
        build()


def test_bad_ids_and_data_give_clear_errors():
    model = models_tf.dot_product_model(3, 3, 2)
    with pytest.raises(ValueError, match=r"items must lie in 0\.\.2"):
        models_tf.score_pairs(model, np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="users must hold whole-number ids"):
        models_tf.score_pairs(model, np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="different lengths"):
        models_tf.make_dataset({"user_id": np.arange(3)}, np.ones(2))
    with pytest.raises(ValueError, match="compile the model first"):
        models_tf.fit(
            model,
            models_tf.make_dataset({"user_id": np.arange(3), "item_id": np.arange(3)}, np.ones(3)),
        )
    with pytest.raises(KeyError, match="item_id"):
        models_tf.tabular_features(pd.DataFrame({"x": [1]}), "item_id")
    with pytest.raises(ValueError, match="contiguous"):
        models_tf.tabular_features(pd.DataFrame({"item_id": [0, 2], "x": [1, 2]}), "item_id")


def test_tensorflow_device_follows_the_one_device_rule(monkeypatch, capsys):
    from recbook import runtime

    monkeypatch.delenv("RECBOOK_DEVICE", raising=False)
    assert runtime.tensorflow_device("auto") in ("/CPU:0", "/GPU:0")
    with pytest.raises(ValueError, match="unknown device"):
        runtime.tensorflow_device("tpu9")
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(RuntimeError, match="TensorFlow sees no CUDA GPU"):
            runtime.tensorflow_device("cuda")
    monkeypatch.setenv("RECBOOK_DEVICE", "cpu")
    assert runtime.start("auto", seed=3, framework="tensorflow") == "/CPU:0"
    assert runtime.recorded()["device"] == "cpu"
    assert "TensorFlow computes on /CPU:0" in capsys.readouterr().out


# --- clicks with fresh negatives, and the user as their clicked items ---------------------------


def _clicks(pairs):
    return pd.DataFrame(pairs, columns=["user_id", "item_id"])


def test_make_click_dataset_draws_fresh_unseen_negatives_every_epoch():
    clicks = _clicks([(u, i) for u in range(4) for i in (u, u + 1)])  # 8 clicks on 10 items
    ds = models_tf.make_click_dataset(clicks, 10, n_neg=3, batch_size=64, seed=0)
    epochs = []
    for _ in range(2):
        ((x, y),) = list(ds)  # one batch holds the 8 clicks and 24 non-clicks
        rows = pd.DataFrame({"user_id": x["user_id"].numpy(), "item_id": x["item_id"].numpy(),
                             "label": y.numpy()})  # fmt: skip
        assert len(rows) == 32 and rows["label"].sum() == 8
        negatives = rows[rows["label"] == 0]
        seen = set(map(tuple, clicks.to_numpy()))
        assert not any(pair in seen for pair in zip(negatives["user_id"], negatives["item_id"]))
        positives = rows[rows["label"] == 1]
        assert sorted(zip(positives["user_id"], positives["item_id"])) == sorted(seen)
        epochs.append(sorted(zip(negatives["user_id"], negatives["item_id"])))
    assert epochs[0] != epochs[1], "the non-clicks must be drawn again on the next pass"


def test_make_click_dataset_refuses_bad_input():
    with pytest.raises(KeyError, match="item_id"):
        models_tf.make_click_dataset(pd.DataFrame({"user_id": [0]}), 3)
    with pytest.raises(ValueError, match="every item"):
        models_tf.make_click_dataset(_clicks([(0, 0), (0, 1)]), 2)


def test_click_history_pools_the_other_clicked_items_and_can_be_swapped():
    clicks = _clicks([(0, 0), (0, 1), (0, 2), (1, 3)])
    model = models_tf.mlp_click_model(2, 4, 2, hidden=(3,), history=clicks, seed=0)
    layer = model.get_layer("click_history")
    e = layer.item_embedding.numpy()
    pooled = layer(tf.constant([0, 0, 1, 1]), tf.constant([0, 3, 3, 0])).numpy()
    np.testing.assert_allclose(pooled[0], (e[1] + e[2]) / np.sqrt(2), rtol=1e-5)  # own item out
    np.testing.assert_allclose(pooled[1], (e[0] + e[1] + e[2]) / np.sqrt(3), rtol=1e-5)
    np.testing.assert_allclose(pooled[2], 0, atol=1e-7)  # the only click is the scored item
    np.testing.assert_allclose(pooled[3], e[3], rtol=1e-5)
    before = models_tf.score_pairs(model, [1], [0])
    models_tf.set_click_history(model, _clicks([(0, 0), (1, 3), (1, 1)]))  # user 1 clicked item 1
    np.testing.assert_allclose(
        layer(tf.constant([1]), tf.constant([0])).numpy()[0], (e[3] + e[1]) / np.sqrt(2), rtol=1e-5
    )
    assert models_tf.score_pairs(model, [1], [0]) != before
    with pytest.raises(ValueError, match="no click history"):
        models_tf.set_click_history(models_tf.mlp_click_model(2, 4, 2), clicks)
    with pytest.raises(ValueError, match=r"clicks\[.item_id.\] must lie in"):
        models_tf.set_click_history(model, _clicks([(0, 4)]))


def test_click_history_refuses_a_table_too_large_to_hold():
    with pytest.raises(ValueError, match="dense table"):
        models_tf.ClickHistory(200_000, 1_000, 8)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_make_dataset_refuses_a_label_that_would_train_to_nan(bad):
    labels = np.array([1.0, 0.0, bad, 1.0])
    with pytest.raises(ValueError, match=r"labels contains NaN or infinity .*positions \[2\]"):
        models_tf.make_dataset({"user_id": np.arange(4), "item_id": np.arange(4)}, labels)

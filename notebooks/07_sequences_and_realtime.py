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
# # 07 · A Transformer over what the shopper just did, and recommendations in milliseconds
#
# **Articles.** "personalisation vs privacy balance" (000) §3.1–§3.2: a Transformer trained with
# self-supervised learning on browsing and purchase histories; "real-time personalisation" (004)
# §2.3 and §3.1–§3.2: self-attention, multi-head attention and positional encoding over a
# sequence of user behaviours, and §3.2.3: feed the current behaviour to the trained model and
# adjust the recommendations in real time; "search + recommendation fusion" (003) §3.2.3 on
# real-time recommendation while the user browses.
#
# **What you will learn.**
# * what the articles leave out — how items become tokens, the causal mask, the training
#   objective, how the output becomes a ranking — and a self-attention next-item model
#   (SASRec-style) that fills those gaps, in PyTorch;
# * whether self-supervised (masked-item, BERT4Rec-style) pre-training helps it, measured;
# * how it compares, on leave-last-out and the whole catalogue, with the strongest simple
#   baselines — popularity, the shopper's own items (frequency / recency), a Markov chain
#   blended with repeats, session-based nearest neighbours (SKNN), EASE — each tuned on the
#   validation item with the same budget, and with the shop's exact next-item oracle;
# * what "real time" costs: one forward pass per click, and top-k search by exact scan or a
#   faiss index (HNSW, IVF) as the catalogue grows.
#
# **Run time.** Three shop worlds, two small Transformers each; the last cell prints this
# run's wall time and the README's notebook table the runner's (2 idle CPU cores). On a GPU the
# model settings grow (printed below). On Online Retail (`DATASET="online-retail"`) users are
# sampled, sequences capped and fewer seeds run (printed below). `benchmarks/serving.py`
# measures serving up to a million items.

# %%
import time

import faiss
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import recbook
from recbook import baselines, evaluation, metrics, next_item, plots, runtime, sequences, serving
from recbook.columns import ITEM, USER
from recbook.datasets import sessions

T_START = time.perf_counter()

# %% tags=["parameters"]
DATASET = "shop"  # or "movielens-100k" / "online-retail" (downloaded once)
DATA_PATH = None  # a local copy of the public data when downloading fails
SEED = 0
SEEDS = 3  # replicates SEED .. SEED + SEEDS - 1: a new shop world each (public data: new seeds)
DEVICE = "auto"  # torch device: auto picks cuda > mps > cpu
THREADS = 1  # torch and BLAS threads; one is fastest for these small models on a busy CPU
N_USERS = 2000  # shop shoppers
MAX_LEN = 20  # events per sequence the model sees (the latest ones)
PUBLIC_USERS = 1500  # public data: a fixed random sample of users (None: all), for run time
MAX_EVENTS = 30  # public data: each user's latest events kept (shop sequences are <= MAX_LEN)
PUBLIC_SEEDS = 2  # public data: seeds (a fixed test set; the interval is over users)
DIM = 32
HEADS = 2
LAYERS = 2
EPOCHS = 20  # upper bound; early stopping on the validation item decides
PRETRAIN_EPOCHS = 5
PATIENCE = 2
LEARNING_RATE = 0.005
BATCH_SIZE = 128
TOP_K = 10
SERVING_SIZES = (1_000, 10_000, 100_000)
REQUESTS = 200
# every tuned baseline gets the same budget: 6 settings, chosen on the validation item
GRIDS = {
    "personal frequency/recency": [dict(decay=d) for d in (1.0, 0.95, 0.9, 0.8, 0.6, 0.3)],
    "Markov + repeats": [dict(blend=b, decay=d) for b in (0.2, 0.4, 0.6) for d in (0.9, 0.6)],
    "SKNN": [dict(k=k, decay=d) for k in (20, 50, 200) for d in (0.9, 0.6)],
    "EASE": [dict(l2=v) for v in (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)],
}
HNSW_EF_SEARCH = 256
IVF_NPROBE = 32

# %%
dev = runtime.start(DEVICE, SEED, threads=THREADS)
faiss.omp_set_num_threads(THREADS)
if dev.type == "cuda":  # a GPU affords a bigger model and longer sequences
    N_USERS, MAX_LEN, DIM, EPOCHS, PATIENCE = 3000, 30, 64, 60, 4
if DATASET != "shop":  # a fixed test set: seeds only vary order and training
    SEEDS = min(SEEDS, PUBLIC_SEEDS)
settings = dict(device=str(dev), n_users=N_USERS, max_len=MAX_LEN, dim=DIM, heads=HEADS,
                layers=LAYERS, epochs=EPOCHS, pretrain_epochs=PRETRAIN_EPOCHS, seeds=SEEDS)  # fmt: skip
if DATASET != "shop":  # fewer seeds, sampled users, capped sequences: said, and printed
    settings.update(public_users=PUBLIC_USERS, max_events=MAX_EVENTS)
print(settings)

# %% [markdown]
# ## 1. What the articles say, and what they leave out
#
# Article 004 (§2.3, §3.1) names three mechanisms. **Self-attention**: each element of a
# sequence $x_1..x_n$ (here: the items a shopper bought, as vectors) is rewritten as a weighted
# average of all elements, with weights from query–key similarity,
#
# $$\mathrm{Attention}(Q,K,V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{d}} + M\Big)V,
# \qquad Q = XW_Q,\; K = XW_K,\; V = XW_V ;$$
#
# **multi-head attention** runs $h$ such maps on $d/h$-dimensional projections and concatenates
# them; **positional encoding** adds a vector $p_t$ to the $t$-th element, since attention
# itself ignores order. Article 000 (§3.1–§3.2) trains such a model with **self-supervised
# learning** on browsing and purchase records, and 004 §3.2.3 feeds the current behaviour into
# the trained model to adjust what is recommended, in real time.
#
# Neither article says:
# * **what the tokens are** — here each item id is a token with its own embedding; padding is
#   token 0;
# * **the mask $M$** — to predict the *next* item, position $t$ may only look at positions
#   $\le t$ ($M_{ts} = -\infty$ for $s > t$); without it the model reads the answer;
# * **the objective** — next-item cross-entropy with a softmax over the *whole* catalogue
#   (about a thousand items here, cheap; sampled softmax with few negatives makes sequential
#   models over-confident and mis-ranked, Petrov & Macdonald 2023, gSASRec); for
#   self-supervision, BERT4Rec's cloze task: hide random items, predict them from both sides;
# * **how the output becomes a ranking** — the state at the last position is dotted with every
#   item embedding (the same table as the input: shared weights), top-$k$ of the scores.

# %% [markdown]
# ## 2. Data with an order: the shop's shopping sessions
#
# The shop's events say what each shopper likes but not in which order they buy.
# `recbook.datasets.sessions` adds that order on top of the same shoppers and products: a hidden
# **intent** (a category) that persists and drifts, **complements** (some products are followed
# by an accessory from a linked category), and **repeat purchases** of consumables (grocery,
# beauty, pets). Because the generator's intent is a small hidden Markov chain, the exact
# probability of the next item given a history is computable: the **oracle** row.

# %%
SHOP_KWARGS = dict(n_users=N_USERS)


def load_sequences(seed: int):
    """The behaviour sequences of DATASET for one seed (the shop is regenerated per seed)."""
    if DATASET == "shop":
        return sessions.load("shop", seed=seed, max_length=MAX_LEN, shop_kwargs=SHOP_KWARGS)
    return sessions.load(DATASET, path=DATA_PATH, seed=seed)


def user_split(d) -> sequences.LeaveLastOut:
    """Leave-last-out of every user's sequence; on public data a fixed sample of PUBLIC_USERS
    users (the same in every seed, so users pair across seeds) and their last MAX_EVENTS."""
    seqs = sequences.user_sequences(d.events, d.n_users, d.n_items)
    if DATASET != "shop":
        chosen = np.zeros(d.n_users, dtype=bool)
        chosen[np.random.default_rng(SEED).permutation(d.n_users)[:PUBLIC_USERS]] = True
        seqs = [s[-MAX_EVENTS:] if chosen[u] else s[:0] for u, s in enumerate(seqs)]
    return sequences.leave_last_out(seqs)


data = load_sequences(SEED)
print(data)
if data.truth is not None:
    print(data.events["source"].value_counts(normalize=True).round(3).to_string())

# %%
# NBVAL_CHECK_OUTPUT
one = data.events[data.events[USER] == data.events[USER].iloc[0]].sort_values("position")
cols = [ITEM, "position"] + (["intent", "source"] if "intent" in one else [])
label = "category" if "category" in data.items else "title"
print(one[cols].assign(item=data.items[label].to_numpy()[one[ITEM]]).head(12).to_string())

# %% [markdown]
# **Leave-last-out.** Per shopper: the last event is the test target, the one before it the
# validation target (early stopping, tuning), everything before trains. Every model scores the
# whole catalogue. **Seen items**: where shoppers buy the same item again (the shop's
# consumables, Online Retail) items already in the history stay candidates — repeat purchases
# are part of the task; where they do not (a MovieLens rating is given once) they are removed
# for every model. The rule is decided by the data (more than 1 % repeats in training).
# On public data, for run time, a fixed random sample of `PUBLIC_USERS` users keeps its latest
# `MAX_EVENTS` events, and `PUBLIC_SEEDS` seeds run (the settings printed above say so).

# %%
split = user_split(data)
repeat_share = split.repeat_share()
ALLOW_REPEATS = repeat_share > 0.01
print(f"{len(split.users)} shoppers with >= 3 events; training events that re-buy an item "
      f"already bought: {repeat_share:.1%} -> seen items "
      f"{'stay candidates' if ALLOW_REPEATS else 'are removed'}")  # fmt: skip

# %% [markdown]
# ## 3. The causal self-attention model
#
# `recbook.sequences.SequenceModel`: item embeddings plus learned position embeddings,
# `LAYERS` pre-norm blocks of `torch.nn.MultiheadAttention` (`HEADS` heads) with the causal mask
# and a feed-forward layer, and the item table again as output layer (plus an item bias).
# Which attention weights are non-zero in an untrained model, for a sequence of five events
# (1 = position $t$, the row, draws on position $s$, the column):

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
toy = sequences.SequenceModel(n_items=10, dim=8, heads=2, layers=1, max_len=5)
print((toy.attention([3, 1, 4, 1, 5])[0].mean(axis=0) > 0).astype(int))

# %% [markdown]
# **Positions, the SASRec way.** Histories are padded on the left and a position counts back
# from the latest event (0 = the event just before the prediction). Leave-last-out holds back
# each shopper's last two events, so the histories scored at validation and test time are one
# and two events longer than any training window: positions past the longest training window
# would be read through embeddings that never received a gradient (still random). So training
# sets `model.window` to its longest window and scoring reads that many latest events
# (`tests/test_sequences.py` checks that every position read at serving time moved in training).
#
# One training run on the first world, with a progress bar and early stopping on the
# validation item's loss (the best epoch's weights are kept).


# %%
def new_model(seed: int) -> sequences.SequenceModel:
    torch.manual_seed(seed)
    return sequences.SequenceModel(
        data.n_items, dim=DIM, heads=HEADS, layers=LAYERS, max_len=MAX_LEN
    )


def train(model, split, seed, desc="next-item", progress=True):
    return sequences.train_next_item(
        model.to(dev), split.train, split.val_history, split.val_target, epochs=EPOCHS,
        patience=PATIENCE, batch_size=BATCH_SIZE, lr=LEARNING_RATE, device=dev, seed=seed,
        desc=desc, progress=progress,
    )  # fmt: skip


model = new_model(SEED)
history = train(model, split, SEED)
print(f"best epoch {history.best_epoch}, {history.seconds:.1f} s; the model reads the latest "
      f"{model.window} events (longest training window; max_len {MAX_LEN})")  # fmt: skip
plots.learning_curves(history.frame, title="next-item cross-entropy (full softmax)")
plt.show()

# %% [markdown]
# ## 4. Measured: self-attention against the strongest simple baselines
#
# Each replicate is a new shop world (`evaluation.replicates`: new shoppers, items, sequences,
# initialisation and tie-break; on public data the users are the unit). In each, every model
# scores the whole catalogue for every shopper's test item:
# * **popularity** — training counts (nothing to tune);
# * **personal frequency/recency** — the shopper's own items first, by recency-decayed counts,
#   then popularity (no training; repeat-aware);
# * **Markov + repeats** — $(1-b)\,P(\text{next}\mid\text{last item}) + b\,$(the history's
#   decayed item shares): a first-order chain from the training transitions blended with
#   re-buys (two knobs, no training);
# * **SKNN** — session-based item-kNN (V-SKNN, Ludewig & Jannach 2018): the $k$ training
#   sequences most similar to the recency-weighted history vote for their items;
# * **EASE** — the item-item ridge model of the earlier notebooks (order ignored; its zero
#   diagonal can never recommend a re-buy);
# * **self-attention** — the model above; **self-attention + cloze pre-training** — the same
#   model first trained `PRETRAIN_EPOCHS` epochs on the masked-item task (bidirectional), then
#   fine-tuned on next-item exactly like the other;
# * **oracle** — the shop's exact $P(\text{next item} \mid \text{history})$ (shop only).
#
# **Equal budgets.** Each tuned baseline tries the same number of settings (`GRIDS`, 6 each)
# and keeps the best NDCG@10 on the validation item (training sequences predict their held-out
# item; test is never looked at). The self-attention models get one setting (chosen when the
# notebook was written) and early stopping on the same validation item: if anything, the
# tuning budget favours the baselines. NDCG@10 and HR@10, one relevant item per shopper, ties
# broken at random with the seed.

# %%
SA, SA_PRE = "self-attention", "self-attention + cloze pre-training"
tried: dict = {}  # model -> validation NDCG of every setting, first world
chosen: dict = {}  # (model, seed) -> the settings kept
kept: dict = {}


def with_rule(sc: np.ndarray, histories) -> np.ndarray:
    """The seen-items rule of section 2, applied to every model alike."""
    sc = np.asarray(sc, dtype=float)
    if ALLOW_REPEATS:
        return sc
    seen = next_item.history_counts(histories, sc.shape[1]).toarray() > 0
    return np.where(seen, -np.inf, sc)


def baseline_scorers(s: sequences.LeaveLastOut, n: int) -> dict:
    """Each tuned baseline as ``score(histories, **settings)``, fitted on training only."""
    pop = next_item.popularity(s.train, n)
    counts = next_item.transitions(s.train, n)
    own_row = np.arange(len(s.train))  # history b belongs to training row b (not a neighbour)
    x = (next_item.history_counts(s.train, n) > 0).astype(float)
    ease_w: dict = {}  # one inversion per penalty

    def ease(h, l2):
        if l2 not in ease_w:
            ease_w[l2] = baselines.ease_weights(x, l2)
        return (next_item.history_counts(h, n) > 0).astype(float) @ ease_w[l2]

    return {
        "personal frequency/recency": lambda h, decay: next_item.personal_scores(h, n, pop, decay),
        "Markov + repeats": lambda h, **c: next_item.markov_repeat_scores(counts, h, pop, **c),
        "SKNN": lambda h, **c: next_item.sknn_scores(s.train, h, n, pop, self_rows=own_row, **c),
        "EASE": ease,
    }, pop


def per_user(sc: np.ndarray, s: sequences.LeaveLastOut, seed: int) -> pd.DataFrame:
    relevant = np.zeros(sc.shape, dtype=bool)
    relevant[np.arange(len(s.users)), s.test_target] = True
    frame = metrics.per_user_metrics(with_rule(sc, s.test_history), relevant, TOP_K, seed=seed)
    return frame[["ndcg", "hit_rate"]].set_axis(s.users)


def run(seed: int) -> dict:
    runtime.seed_everything(seed)
    d = data if seed == SEED else load_sequences(seed)
    s = split if seed == SEED else user_split(d)
    n = d.n_items
    scorers, pop = baseline_scorers(s, n)
    out = {"popularity": per_user(np.broadcast_to(pop, (len(s.users), n)), s, seed)}
    for name, score in scorers.items():
        best, table = next_item.tune(
            lambda f=score, **c: with_rule(f(s.train, **c), s.train), GRIDS[name], s.val_target,
            TOP_K, seed,
        )  # fmt: skip
        chosen[name, seed] = best
        tried.setdefault(name, table)
        out[name] = per_user(score(s.test_history, **best), s, seed)
    m = model if seed == SEED else new_model(seed)
    if seed != SEED:
        train(m, s, seed, progress=False)
    out[SA] = per_user(sequences.score_next(m, s.test_history), s, seed)
    pre = new_model(seed)
    sequences.pretrain_cloze(pre.to(dev), s.train, epochs=PRETRAIN_EPOCHS, batch_size=BATCH_SIZE,
                      lr=LEARNING_RATE, device=dev, seed=seed, progress=False)  # fmt: skip
    train(pre, s, seed, progress=False)
    out[SA_PRE] = per_user(sequences.score_next(pre, s.test_history), s, seed)
    if d.truth is not None:
        probs = d.truth.next_item_probabilities(s.users, s.test_history)
        out["oracle"] = per_user(probs, s, seed)
    if seed == SEED:
        kept.update(pretrained=pre, popularity=pop)
    return out


EVAL_SEEDS = evaluation.evaluation_seeds(SEED, SEEDS)
t_cmp = time.perf_counter()
cmp = evaluation.replicates(run, EVAL_SEEDS, DATASET, desc="replicates")
table = cmp.table(["ndcg", "hit_rate"])
summary = cmp.summary(["ndcg", "hit_rate"])
summary["configs tried"] = [len(GRIDS.get(m, [None])) for m in summary.index]
print(f"{cmp.unit}; {time.perf_counter() - t_cmp:.0f} s")
print(summary.to_string())

# %% [markdown]
# The settings each baseline kept in each replicate (chosen on validation), and the
# validation NDCG@10 of every setting tried in the first one:

# %%
print(pd.Series({f"{m} (seed {sd})": ", ".join(f"{k}={v}" for k, v in c.items())
                 for (m, sd), c in chosen.items()}).to_string())  # fmt: skip
print(pd.concat(tried).round(4).to_string())

# %%
fig, ax = plt.subplots(figsize=(6, 3.4), dpi=90)
nd = table["ndcg"]
ax.barh(nd.index, nd["mean"], xerr=[nd["mean"] - nd["lo"], nd["hi"] - nd["mean"]], color="C0")
ax.invert_yaxis()
ax.set_xlabel(f"NDCG@{TOP_K}: mean, 95 % interval over {cmp.unit}")
ax.set_title(f"next item, leave-last-out, {DATASET}")
plt.show()

# %% [markdown]
# ### Verdicts
#
# The headline: self-attention against the **best baseline of any kind** (the baseline with
# the highest mean test NDCG; picking it on test can only favour the baseline), whatever the
# sign, decided on the paired difference over replicates. Then each baseline on its own, and
# pre-training.

# %%
BASELINES = [m for m in cmp.models if m not in (SA, SA_PRE, "oracle")]
best_base = max(BASELINES, key=lambda m: table.loc[m, ("ndcg", "mean")])
gain = cmp.difference(SA, best_base, "ndcg")
headline = evaluation.verdict(
    f"self-attention beats the best baseline of any kind ({best_base}) on NDCG@{TOP_K}", gain
)
words = {}
for other in BASELINES:
    if other != best_base:
        words[other] = evaluation.verdict(f"self-attention beats {other} on NDCG@{TOP_K}",
                                          cmp.difference(SA, other, "ndcg"))  # fmt: skip
pre_effect = cmp.difference(SA_PRE, SA, "ndcg")
pre_word = evaluation.verdict("cloze pre-training then fine-tuning beats training from scratch "
                              f"(NDCG@{TOP_K})", pre_effect)  # fmt: skip
static = max(("popularity", "EASE"), key=lambda m: table.loc[m, ("ndcg", "mean")])
static_gain = cmp.difference(SA, static, "ndcg")
print(f"self-attention minus the best non-sequential model ({static}): {static_gain} NDCG")
recbook.record("next_item_ndcg10_gain_over_best_baseline", gain.mean)
recbook.record("next_item_ndcg10_gain_over_best_baseline_lo", gain.lo)
recbook.record("next_item_best_baseline", best_base)
recbook.record("next_item_ndcg10_gain", static_gain.mean)  # over popularity / EASE only
recbook.record("next_item_ndcg10_gain_lo", static_gain.lo)
recbook.record("next_item_ndcg10_self_attention", table.loc[SA, ("ndcg", "mean")])
recbook.record("next_item_ndcg10_pretraining_effect", pre_effect.mean)
if "oracle" in cmp.models:
    gap = cmp.difference("oracle", SA, "ndcg")
    oracle_nd = table.loc["oracle", ("ndcg", "mean")]
    print(f"gap of self-attention to the oracle: {gap} NDCG ({gap.mean / oracle_nd:.0%} of the "
          "oracle's NDCG)")  # fmt: skip
    first = table.loc["Markov + repeats", ("ndcg", "mean")] / oracle_nd
    print(
        f"the first-order chain + repeats reaches {first:.0%} of the oracle's NDCG; the rest "
        "is what a model of longer range (the hidden, persisting intent) could add"
    )
    recbook.record("next_item_ndcg10_oracle", oracle_nd)

# %% [markdown]
# How to read it: if the best baseline is a counting model, a Transformer trained on these
# sequences has not earned its training cost *here* — the field's lesson too: on many
# session and next-item benchmarks, well-tuned nearest-neighbour and Markov/repeat baselines
# match or beat neural models (Ludewig & Jannach 2018; Dacrema, Cremonesi & Jannach 2019,
# "Are we really making much progress?"). The shop's sessions mix a first-order part
# (complements follow the previous item), re-buys of consumables, and a hidden intent that
# persists across events; the last printed line says how much of the oracle a first-order
# chain with repeats already reaches, i.e. how much room longer-range structure leaves.

# %% [markdown]
# Pre-training on the *same* sequences the model is then fine-tuned on gives it no data it has
# not seen; what it can add is a better starting point. Whatever the interval says above is
# the answer at this size — self-supervision pays off mostly when there is far more unlabelled
# behaviour than the fine-tuning task uses (other shops, other event types), which this
# notebook does not have.
#
# ## 5. What the model looks at
#
# The attention weights of the last layer (mean over heads) for one shopper's latest events:
# row $t$ is the state after event $t$, its columns the earlier events it draws on. Labels are
# the items' categories.

# %%
u_row = int(np.argmax([len(h) for h in split.test_history[:200]]))
events_shown = split.test_history[u_row][-10:]
att = model.cpu().attention(events_shown)[-1].mean(axis=0)
names = data.items[label].astype(str).to_numpy()[events_shown]
labels = [f"{t}:{n[:14]}" for t, n in enumerate(names)]
fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=90)
plots.heatmap(pd.DataFrame(att, index=labels, columns=labels), ax=ax, cmap="viridis", center=None,
              title="attention, last layer (rows: query position)")  # fmt: skip
plt.show()

# %% [markdown]
# ## 6. Real time (a): a new click, one forward pass
#
# No retraining: the new event is appended to the history and the history goes through the
# trained model once (004 §3.2.3's "feed the current behaviour into the trained model").
# Below, a shopper's session replayed event by event, the top 5 after each.

# %%
model = model.cpu().eval()
user_hist = split.test_history[u_row]
start = max(1, len(user_hist) - 5)
names_all = data.items[label].astype(str).to_numpy()
serving.recommend(model, user_hist[:start], k=5)  # warm-up: one-off allocations
rows = []
for t in range(start, len(user_hist) + 1):
    t0 = time.perf_counter()
    seen = [] if ALLOW_REPEATS else user_hist[:t]  # the seen-items rule of section 2
    top, _ = serving.recommend(model, user_hist[:t], k=5, exclude=seen)
    ms = (time.perf_counter() - t0) * 1e3
    rows.append({"after event": f"{t}: {names_all[user_hist[t - 1]]}",
                 "top 5 (ids)": " ".join(map(str, top)),
                 "top 5": ", ".join(n[:12] for n in names_all[top]), "ms": round(ms, 2)})  # fmt: skip
print(pd.DataFrame(rows).to_string(index=False))

# %% [markdown]
# ## 6. Real time (b): what a request costs as the catalogue grows
#
# A request is a maximum-inner-product search of the state $[h, 1]$ over the item vectors
# $[e_j, b_j]$. Exact search reads every item; faiss's HNSW graph and IVF cells read a small
# part. The catalogue grows from the learned item vectors to `SERVING_SIZES` with new items
# drawn from each category's mean and covariance of the learned vectors
# (`serving.grow_catalogue`); latency is one request at a time, p50 / p99 over `REQUESTS` requests, and
# recall@10 against exact search on the same requests. Timings depend on the machine and its
# load; `benchmarks/serving.py` runs this to a million items.

# %%
item_vecs = model.item_vectors().detach().cpu().numpy()
item_groups = data.items["category"].astype(str).to_numpy() if "category" in data.items else None
states = sequences.user_states(model, split.test_history[:REQUESTS]).cpu().numpy()
queries = np.c_[states, np.ones(len(states))].astype(np.float32)
serve_rows = []
for size in SERVING_SIZES:
    catalogue = serving.grow_catalogue(item_vecs, size, groups=item_groups, seed=SEED)
    exact = serving.ItemIndex(catalogue)
    _, exact_ids = exact.search(queries, TOP_K)
    for kind in ("exact", "hnsw", "ivf"):
        index = (
            exact
            if kind == "exact"
            else serving.ItemIndex(
                catalogue, kind=kind, ef_search=HNSW_EF_SEARCH, nprobe=IVF_NPROBE, seed=SEED
            )
        )
        ms = serving.latency_ms(
            lambda i, ix=index: ix.search(queries[i % len(queries)][None], TOP_K), REQUESTS
        )
        _, found = index.search(queries, TOP_K)
        serve_rows.append({"catalogue": size, "index": kind, "p50_ms": np.percentile(ms, 50),
                           "p99_ms": np.percentile(ms, 99),
                           "recall_at_10": serving.recall_at_k(found, exact_ids)})  # fmt: skip
serve = pd.DataFrame(serve_rows).set_index(["catalogue", "index"])
print(serve.round(3).to_string())
# a tiny catalogue grown from a few items (a test fixture) is mostly exact ties: low recall
hnsw_recall = serve.xs("hnsw", level="index")["recall_at_10"]
_ = evaluation.observed(
    f"HNSW (ef_search={HNSW_EF_SEARCH}) finds over 80 % of the exact top-{TOP_K} at every size",
    bool((hnsw_recall > 0.8).all()),
    ", ".join(f"{c:,} items: {r:.3f}" for c, r in hnsw_recall.items()),
)

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=90)
for kind, part in serve.reset_index().groupby("index"):
    ax.loglog(part["catalogue"], part["p99_ms"], marker="o", label=kind)
ax.set_xlabel("catalogue size (items)")
ax.set_ylabel("p99 latency per request (ms)")
ax.set_title("top-10 search, batch 1, CPU")
ax.legend()
plt.show()

# %% [markdown]
# ## 7. Takeaways
#
# What this run found, printed from its verdicts (another `SEED` or `DATASET` may print
# other words):

# %%
what = f"NDCG@{TOP_K} on {DATASET}, {gain.describe()}"
lines = [evaluation.in_words(headline, "self-attention", f"the best baseline ({best_base})", what)]
lines += [evaluation.in_words(w, "self-attention", other, what) for other, w in words.items()]
lines.append(evaluation.in_words(pre_word, "cloze pre-training + fine-tuning",
                                 "training from scratch", what))  # fmt: skip
print("\n".join(f"* {line}" for line in lines))

# %% [markdown]
# * A behaviour sequence is a sentence whose words are items: item + position embeddings,
#   causal multi-head self-attention, and the item table as output layer make a next-item
#   model that can use order. Whether it uses order *better than counting* is the verdict
#   above: the baselines are tuned with the same budget, and one of them is the headline's
#   comparator whatever its kind.
# * The articles' missing pieces matter: without the causal mask the model would be trained on
#   the answer; a full softmax over the catalogue is cheap at this size and avoids the
#   miscalibration of few-negative sampled losses; and positions must be counted so that
#   serving reads only positions training reached (section 3).
# * Self-supervised pre-training is a claim to measure, not to assume — see its verdict.
# * "Real time" is one forward pass per event plus a top-k search; exact search grows linearly
#   with the catalogue, and the table in section 6 (b) shows what each index costs and finds
#   on this machine (`benchmarks/serving.py` measures it at a million items).
#
# **Exercises.** (1) Drop the causal mask in training: `sequences.train_next_item(...,
# causal=False)` on a fresh `new_model(SEED)`. Predict first which curve collapses. (It is the
# *training* loss: each position now sees the very item it must predict. The validation item
# is never in its own input, so validation loss — and test NDCG — do not follow.)
# (2) Raise the shop's `complement_rate` (`sessions.load(..., complement_rate=0.5)`) and see
# which baseline gains. (3) Replace the full softmax by a sampled one with 1 negative and
# compare. (4) Tune HNSW's `ef_search` until recall@10 ≥ 0.95 and read off the latency.

# %%
print(f"total {time.perf_counter() - T_START:.0f} s")

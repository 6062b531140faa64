"""Tests of recbook.text.pretraining: the MLM head built in the open, continued pre-training,
and fine-tuning with a warm-up schedule. A tiny BERT keeps them fast; the tokenizer is the
bundled one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel

from recbook import text, training
from recbook.text import pretraining

TITLES = [
    "red wool sweater",
    "blue wool jumper",
    "red cotton shirt",
    "green linen shirt",
    "black leather jacket",
    "white cotton dress",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(text.bundled_model_dir(), local_files_only=True)


def tiny_encoder(tokenizer) -> text.TextEncoder:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = BertModel(config)  # with a pooler, like the bundled checkpoint
    return text.TextEncoder("tiny", tokenizer, model, "test", "0" * 64)


def test_masked_lm_from_encoder_reports_every_weight(tokenizer) -> None:
    encoder = tiny_encoder(tokenizer)
    mlm, report = pretraining.masked_lm_from_encoder(encoder)
    status = report.set_index("weight")["status"]
    assert sorted(status[status == "new"].index) == [
        "cls.predictions.bias",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.dense.weight",
    ]
    assert list(status[status == "tied"].index) == ["cls.predictions.decoder.weight"]
    assert sorted(status[status == "unused"].index) == ["pooler.dense.bias", "pooler.dense.weight"]
    # the encoder is a copy of the pretrained weights; the decoder is the word embeddings
    for name, value in encoder.model.state_dict().items():
        if not name.startswith("pooler"):
            torch.testing.assert_close(mlm.bert.state_dict()[name], value)
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight
    assert torch.count_nonzero(mlm.cls.predictions.bias) == 0
    with torch.no_grad():
        mlm.bert.embeddings.word_embeddings.weight.add_(1.0)
    assert not torch.equal(  # a copy: the original encoder is untouched
        mlm.bert.embeddings.word_embeddings.weight, encoder.model.embeddings.word_embeddings.weight
    )


def test_masked_lm_from_encoder_refuses_non_bert(tokenizer) -> None:
    model = DistilBertModel(DistilBertConfig(dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    encoder = text.TextEncoder("distil", tokenizer, model, "test", "0" * 64)
    with pytest.raises(ValueError, match="BertForMaskedLM"):
        pretraining.masked_lm_from_encoder(encoder)


def test_continue_pretraining_lowers_the_masked_lm_loss(tokenizer) -> None:
    encoder = tiny_encoder(tokenizer)
    mlm, _ = pretraining.masked_lm_from_encoder(encoder)
    before = pretraining.masked_lm_loss(mlm, tokenizer, TITLES * 5, mlm_probability=0.3)
    again = pretraining.masked_lm_loss(mlm, tokenizer, TITLES * 5, mlm_probability=0.3)
    assert before == pytest.approx(again)  # the same seeded masking every call
    history = pretraining.continue_pretraining(
        mlm,
        tokenizer,
        TITLES,
        steps=60,
        batch_size=6,
        lr=1e-2,
        head_steps=5,
        train_embeddings=True,
        progress=False,
    )
    after = pretraining.masked_lm_loss(mlm, tokenizer, TITLES * 5, mlm_probability=0.3)
    assert after < before - 1.0, (before, after)
    assert len(history) == 60 and list(history.columns) == ["loss", "lr"]
    # warm-up then linear decay: the learning rate peaks after 10 % of the steps
    assert history["lr"].idxmax() == 7 and history["lr"].iloc[-1] < history["lr"].max() / 10


def test_head_steps_leave_the_encoder_and_token_table_alone(tokenizer) -> None:
    encoder = tiny_encoder(tokenizer)
    mlm, _ = pretraining.masked_lm_from_encoder(encoder)
    query = mlm.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    dense = mlm.cls.predictions.transform.dense.weight.detach().clone()
    table = mlm.bert.embeddings.word_embeddings.weight.detach().clone()
    pretraining.continue_pretraining(
        mlm, tokenizer, TITLES, steps=4, batch_size=6, lr=1e-2, head_steps=4, progress=False
    )
    torch.testing.assert_close(mlm.bert.encoder.layer[0].attention.self.query.weight, query)
    assert not torch.equal(mlm.cls.predictions.transform.dense.weight, dense)
    pretraining.continue_pretraining(
        mlm, tokenizer, TITLES, steps=4, batch_size=6, lr=1e-2, head_steps=0, progress=False
    )
    assert not torch.equal(mlm.bert.encoder.layer[0].attention.self.query.weight, query)
    torch.testing.assert_close(mlm.bert.embeddings.word_embeddings.weight, table)


def test_continue_pretraining_refuses_bad_settings(tokenizer) -> None:
    mlm, _ = pretraining.masked_lm_from_encoder(tiny_encoder(tokenizer))
    with pytest.raises(ValueError, match="head_steps"):
        pretraining.continue_pretraining(mlm, tokenizer, TITLES, steps=3, head_steps=5)
    with pytest.raises(ValueError, match="steps"):
        pretraining.continue_pretraining(mlm, tokenizer, TITLES, steps=0)
    with pytest.raises(ValueError, match="missing or blank"):
        pretraining.continue_pretraining(mlm, tokenizer, ["a", ""], steps=1, head_steps=0)


def test_adapted_encoder_names_its_new_weights(tokenizer) -> None:
    encoder = tiny_encoder(tokenizer)
    mlm, _ = pretraining.masked_lm_from_encoder(encoder)
    adapted = pretraining.adapted_encoder(encoder, mlm)
    assert adapted.name == "tiny+mlm" and adapted.model is mlm.bert
    assert adapted.sha256 == pretraining.weights_sha256(mlm.bert)
    vectors = adapted.embed(TITLES, max_length=8)
    assert vectors.shape == (len(TITLES), 16)
    with torch.no_grad():
        mlm.bert.encoder.layer[0].output.dense.bias.add_(0.1)
    assert pretraining.weights_sha256(mlm.bert) != adapted.sha256


def test_fine_tune_follows_warm_up_and_decay() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).float()
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = []

    def loss_fn(out, target):
        seen.append(optimizer.param_groups[0]["lr"])
        return torch.nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), target)

    batches = training.TensorBatches(x, y, batch_size=8, seed=0)
    history = pretraining.fine_tune(
        model,
        batches,
        loss_fn,
        optimizer=optimizer,
        epochs=5,
        warmup_fraction=0.1,
        val_batches=batches,
        progress=False,
    )
    steps = 5 * len(batches)  # 40 steps, 4 of warm-up; loss_fn also runs for validation
    lrs = np.array(seen[:8] + seen[8 + 8 : 16 + 8])  # epoch 1 and 2 training steps
    assert lrs[0] == 0.0 and lrs[4] == pytest.approx(0.5)
    assert np.all(np.diff(lrs[4:]) < 0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert list(history.frame.index) == [1, 2, 3, 4, 5] and "val_loss" in history.frame
    assert history.frame["train_loss"].iloc[-1] < history.frame["train_loss"].iloc[0]
    assert steps == 40


def test_fine_tune_refuses_bad_settings() -> None:
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        pretraining.fine_tune(model, [1], torch.nn.MSELoss(), optimizer=optimizer, epochs=0)
    with pytest.raises(ValueError, match="no batches"):
        pretraining.fine_tune(model, [], torch.nn.MSELoss(), optimizer=optimizer, epochs=1)

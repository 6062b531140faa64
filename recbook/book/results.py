"""Benchmark results as data: one JSON file per benchmark, read back by the README generator.

A figure typed into a README goes stale the day the code changes; a figure generated from a
recorded file can be checked. Each benchmark writes ``benchmarks/results/<name>.json``::

    {"benchmark": "ranking", "date": "...", "machine": {...}, "command": "...",
     "rows": [{"model": ..., "dataset": ..., "split": ..., <metrics>, "fit_s": ...,
               "peer": false}, ...]}

:func:`write` fills in the date and the machine, :func:`read` checks the shape.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: Keys every row must carry (the metrics vary by benchmark).
ROW_KEYS = ("model", "dataset", "split", "fit_s", "peer")


def machine() -> dict[str, Any]:
    """Where a result was measured: CPU, cores, memory, GPU and the main library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "processor": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        # a shared machine inflates wall times: the 1-minute load average says how busy it was
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        info["gpu"] = None
    import numpy

    info["numpy"] = numpy.__version__
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def check_rows(rows: list[dict[str, Any]], what: str = "rows") -> list[dict[str, Any]]:
    """``rows`` if it is a non-empty list of dicts holding :data:`ROW_KEYS`."""
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{what}: expected a non-empty list of result rows")
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{what}[{n}]: expected a dict, got {type(row).__name__}")
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"{what}[{n}] ({row.get('model')!r}) lacks {missing}")
        if not isinstance(row["peer"], bool):
            raise ValueError(f"{what}[{n}]: 'peer' must be true or false, got {row['peer']!r}")
    return rows


def write(
    path: str | os.PathLike,
    benchmark: str,
    rows: list[dict[str, Any]],
    notes: str = "",
    argv: list[str] | None = None,
) -> Path:
    """Write ``rows`` with the date, the machine and the command line to ``path`` (JSON)."""
    check_rows(rows)
    argv = sys.argv if argv is None else argv
    doc = {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(shlex.quote(_portable(a)) for a in ["python", *argv]),
        "notes": notes,
        "rows": rows,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, indent=1, default=_plain) + "\n")
    return target


def _portable(arg: str) -> str:
    """A command-line argument without the writing machine's folders: a path inside the
    checkout relative to it, any other absolute path as ``.../name``."""
    value = arg.split("=", 1)[-1] if arg.startswith("--") else arg
    if not os.path.isabs(value):
        return arg
    root = Path(__file__).resolve().parents[2]
    try:
        short = Path(value).resolve().relative_to(root).as_posix()
    except ValueError:
        short = f".../{Path(value).name}"
    return arg[: len(arg) - len(value)] + short


def read(path: str | os.PathLike) -> dict[str, Any]:
    """A results file written by :func:`write`, checked."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or "rows" not in doc:
        raise ValueError(f"{path}: not a benchmark results file (no 'rows')")
    check_rows(doc["rows"], f"{path}: rows")
    return doc


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")

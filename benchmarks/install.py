"""Does every pinned package have a wheel for each platform the README claims, and how much is
there to download? Asked of PyPI's JSON API (no package is downloaded).

``python -m benchmarks.install --out benchmarks/results/install.json`` checks every
``name==version`` line of ``constraints.txt`` against each (platform, Python) pair in
:data:`TARGETS`, the way ``pip download --only-binary=:all: --python-version X --platform P``
would choose a file, and records per pair: packages checked, those without a wheel, and the
download size of the wheels found. The README's "Before the workshop" table comes from that
file.

constraints.txt was resolved on Linux, so a package pip only installs elsewhere (or only on
Linux) can be reported missing on another platform although pip would never ask for it; the row
names such packages so a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from packaging import tags
from packaging.utils import parse_wheel_filename

from recbook.book import results

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{name}/json"


@dataclass(frozen=True)
class Target:
    """One (platform, Python) pair the README may claim."""

    platform: str
    python: str
    platforms: tuple[str, ...]  # wheel platform tags pip accepts there, best first

    def tags(self) -> list[tags.Tag]:
        version = tuple(int(v) for v in self.python.split("."))
        return [
            *tags.cpython_tags(version, platforms=self.platforms),
            *tags.compatible_tags(version, platforms=self.platforms),
        ]


_MANYLINUX = tuple(f"manylinux_2_{m}_x86_64" for m in range(35, 16, -1)) + (
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
_MACOS = tuple(tags.mac_platforms((14, 0), "arm64"))
TARGETS = tuple(
    Target(name, python, platforms)
    for name, platforms in (
        ("Linux x86-64 (glibc 2.35)", _MANYLINUX),
        ("macOS 14 arm64", _MACOS),
        ("Windows x86-64", ("win_amd64",)),
    )
    for python in ("3.11", "3.12")
)


def pins(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """``{name: version}`` of every ``name==version`` line (local versions like ``+cpu`` cut)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#+]+)\S*.*", line)
        if m:
            out[m[1]] = m[2]
    return out


def release_files(name: str, version: str) -> list[dict]:
    """PyPI's files of one release (an empty list when PyPI does not have it)."""
    with urllib.request.urlopen(PYPI.format(name=name), timeout=60) as response:
        releases = json.load(response)["releases"]
    return releases.get(version, [])


def best_wheel(files: list[dict], target: Target) -> dict | None:
    """The wheel pip would pick for ``target`` (the most specific matching tag), or None."""
    rank = {tag: k for k, tag in enumerate(target.tags())}
    found = []
    for f in files:
        if not f["filename"].endswith(".whl"):
            continue
        file_tags = parse_wheel_filename(f["filename"])[3]
        best = min((rank[t] for t in file_tags if t in rank), default=None)
        if best is not None:
            found.append((best, f))
    return min(found, key=lambda x: x[0])[1] if found else None


def check(versions: dict[str, str], files: dict[str, list[dict]]) -> list[dict]:
    """One row per target: packages checked, those without a wheel there, download size."""
    rows = []
    for target in TARGETS:
        missing, size, torch = [], 0, 0
        for name, version in versions.items():
            wheel = best_wheel(files[name], target)
            if wheel is None:
                missing.append(f"{name}=={version}")
            else:
                size += wheel["size"]
                torch += wheel["size"] if name == "torch" else 0
        rows.append(
            {
                "platform": target.platform,
                "python": target.python,
                "packages": len(versions),
                "without_wheel": ", ".join(missing) or "none",
                "download_mb": round(size / 1e6),
                "of_which_torch_mb": round(torch / 1e6),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    versions = pins()
    with ThreadPoolExecutor(8) as pool:
        fetched = pool.map(lambda nv: release_files(*nv), versions.items())
        files = dict(zip(versions, fetched, strict=True))
    rows = check(versions, files)
    for row in rows:
        print(row)
    if args.out:
        doc = {
            "benchmark": "install",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": results.machine(),
            "command": "python -m benchmarks.install --out benchmarks/results/install.json",
            "rows": rows,
        }
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

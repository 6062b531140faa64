"""``recbook.datasets`` is layered, so the old ``datasets`` <-> ``shop`` import cycle cannot return.

``base`` (the Dataset type) and ``registry`` (checksums, downloads) import no other module of
the package; each source imports only those two; ``__init__`` alone knows every source. The
import graph is read from the source with :mod:`ast`, imports inside functions included: the
old cycle was a lazy import, which a plain ``import`` in a fresh interpreter never notices
(the package's ``__init__`` always runs first and hides a submodule importing it back).
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBMODULES = ("base", "registry", "movielens", "online_retail", "shop")
# what each submodule may import from recbook.datasets (anything outside the package is free)
ALLOWED = {
    "base": set(),
    "registry": set(),
    "shop": {"base"},
    "movielens": {"base", "registry"},
    "online_retail": {"base", "registry"},
}


def module_names(root: Path, package: str = "recbook") -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path, package: str = "recbook") -> dict[str, set[str]]:
    """Which modules of ``package`` each of its modules imports, anywhere in its source."""
    modules = module_names(root, package)

    def known(name: str) -> str | None:  # the module itself, else its nearest known parent
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {known(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                    sub = f"{base}.{alias.name}"
                    edges.add(sub if sub in modules else known(base))
        graph[name] = {e for e in edges if e and e != name}
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """An import path from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_cycle_check_finds_the_old_lazy_cycle(tmp_path):
    """The layout before the subpackage: datasets imported shop inside a function, shop
    imported datasets at the top. The check must see it (and a clean layout must pass)."""
    pkg = tmp_path / "recbook"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "datasets.py").write_text(
        "class Dataset: ...\n\ndef load(name):\n    from recbook.shop import load_shop\n"
    )
    (pkg / "shop.py").write_text("from recbook.datasets import Dataset\n")
    graph = import_graph(tmp_path)
    assert cycle_through(graph, "recbook.shop") == [
        "recbook.shop",
        "recbook.datasets",
        "recbook.shop",
    ]
    (pkg / "shop.py").write_text("import numpy\n")
    assert cycle_through(import_graph(tmp_path), "recbook.datasets") is None


def test_relative_and_submodule_imports_are_resolved(tmp_path):
    sub = tmp_path / "recbook" / "datasets"
    sub.mkdir(parents=True)
    (tmp_path / "recbook" / "__init__.py").write_text("")
    (sub / "__init__.py").write_text("from .shop import load_shop\n")
    (sub / "base.py").write_text("")
    (sub / "shop.py").write_text("from . import base\nfrom .. import datasets\n")
    graph = import_graph(tmp_path)
    assert graph["recbook.datasets"] == {"recbook.datasets.shop"}
    assert graph["recbook.datasets.shop"] == {"recbook.datasets.base", "recbook.datasets"}
    assert cycle_through(graph, "recbook.datasets.shop")


@pytest.mark.parametrize("name", SUBMODULES)
def test_each_datasets_module_keeps_to_its_layer(name):
    graph = import_graph(ROOT)
    module = f"recbook.datasets.{name}"
    package = "recbook.datasets"
    inside = {e for e in graph[module] if e == package or e.startswith(package + ".")}
    assert inside == {f"recbook.datasets.{m}" for m in ALLOWED[name]}, (
        f"{module} imports {sorted(inside)} from recbook.datasets; its layer allows only "
        f"{sorted(ALLOWED[name])} (importing the package or a sibling above is how cycles start)"
    )
    assert cycle_through(graph, module) is None, " -> ".join(cycle_through(graph, module))


def test_no_cycle_through_the_datasets_package():
    graph = import_graph(ROOT)
    assert set(SUBMODULES) == {
        m.rpartition(".")[2] for m in graph if m.startswith("recbook.datasets.")
    }
    path = cycle_through(graph, "recbook.datasets")
    assert path is None, " -> ".join(path)


@pytest.mark.parametrize("name", SUBMODULES)
def test_each_module_imports_in_a_fresh_interpreter(name):
    done = subprocess.run(
        [sys.executable, "-c", f"import recbook.datasets.{name}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_one_way_to_load_the_shop():
    from recbook import datasets
    from recbook.datasets import shop

    assert importlib.util.find_spec("recbook.shop") is None  # the old module is gone
    assert datasets.load_shop is shop.load_shop
    assert datasets._LOADERS["shop"] is shop.load_shop  # load("shop") calls the same function
    sizes = {"n_users": 20, "n_items": 30, "n_events": 400, "seed": 5}
    by_name, direct = datasets.load("shop", **sizes), shop.load_shop(**sizes)
    pd.testing.assert_frame_equal(by_name.events, direct.events)

"""recbook is layered, so import cycles and upward imports cannot creep back in.

Every module belongs to a *unit*: a top-level module (``recbook.metrics``) or a topic package
(``recbook.privacy``). Units sit on declared layers, and a module may import only units on its
own layer or below; inside a topic package no module imports the package itself (its
``__init__`` is the map that re-exports the modules, so importing it from inside is how cycles
start); and no cycle runs anywhere. The library never imports the Flower App or the
benchmarks. The import graph is read from the source with :mod:`ast`, imports inside functions
included: a lazy import is still an edge (the old ``datasets`` <-> ``shop`` cycle was one).
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

#: The layers, bottom first: a unit may import units of its own layer or of a layer below.
LAYERS: tuple[tuple[str, ...], ...] = (
    # the ground floor: constants, the one place for checks, hashing, figures, the front door
    ("recbook", "checks", "columns", "checksums", "plots", "runtime"),
    # data: the sources behind one interface, and the splits
    ("datasets", "splits"),
    # measurement: tie-safe metrics, then comparisons, verdicts and tuning over them
    ("metrics", "evaluation"),
    # models by family and topic (they may use each other, without cycles)
    (
        "baselines",
        "item_models",
        "mf",
        "training",
        "models_torch",
        "models_tf",
        "sequences",
        "next_item",
        "serving",
        "text",
        "privacy",
        "bandits",
        "federated",
    ),
    # tooling for the book itself: the runner, the README, results; the command line
    ("book", "__main__"),
)
LAYER = {unit: k for k, units in enumerate(LAYERS) for unit in units}
#: Names the library must never import.
FORBIDDEN = ("recbook_flower", "benchmarks", "flwr_app")


def module_names(root: Path, package: str = "recbook") -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_names(path: Path, module: str, is_package: bool) -> set[str]:
    """Every dotted name ``path`` imports, anywhere in its source (relative imports resolved;
    ``from pkg import name`` gives ``pkg.name`` and ``pkg``)."""
    here = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


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


def unit(module: str) -> str:
    """``recbook.privacy.dp_sgd`` -> ``privacy``; ``recbook`` -> ``recbook``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


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


GRAPH = import_graph(ROOT)
MODULES = sorted(GRAPH)


# -- the checks check themselves -----------------------------------------------------------------


def test_the_cycle_check_finds_a_lazy_cycle(tmp_path):
    """datasets imported shop inside a function, shop imported datasets at the top: the
    check must see it, and a clean layout must pass."""
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


# -- the package ---------------------------------------------------------------------------------


def test_every_unit_has_a_layer():
    missing = sorted({unit(m) for m in MODULES} - set(LAYER))
    assert not missing, f"declare the layer of {missing} in LAYERS (tests/test_package_layout.py)"


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_only_its_layer_or_below(module):
    upward = sorted(e for e in GRAPH[module] if LAYER[unit(e)] > LAYER[unit(module)])
    assert not upward, (
        f"{module} (layer {LAYER[unit(module)]}: {unit(module)}) imports {upward} from a higher "
        "layer; move the shared code down or the caller up"
    )


@pytest.mark.parametrize("module", [m for m in MODULES if m.count(".") >= 2])
def test_no_module_imports_its_own_package(module):
    package = module.rpartition(".")[0]
    assert package not in GRAPH[module], (
        f"{module} imports its own package {package} (the __init__ that re-exports it); "
        f"import the sibling module by its full path instead"
    )


def test_no_import_cycle_anywhere():
    cycles = [cycle_through(GRAPH, m) for m in MODULES]
    assert not any(cycles), " ; ".join(" -> ".join(c) for c in cycles if c)


def test_the_library_never_imports_the_app_or_the_benchmarks():
    bad = {
        name: sorted(
            n
            for n in imported_names(path, name, path.name == "__init__.py")
            if n.split(".")[0] in FORBIDDEN
        )  # fmt: skip
        for name, path in module_names(ROOT).items()
    }
    assert not {k: v for k, v in bad.items() if v}


def test_no_module_is_long_without_saying_why():
    """Over ~500 lines a module mixes concerns, unless its docstring says why it may not."""
    long = {
        name: n
        for name, path in module_names(ROOT).items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 520
        and "long on purpose" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    }
    assert not long, f"split these modules or say 'long on purpose' and why: {long}"


def test_every_module_imports_on_its_own():
    """Each module imported first, in one fresh interpreter with recbook removed from
    ``sys.modules`` before each: an import that works only after another module ran fails."""
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'recbook']:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_one_way_to_load_the_shop():
    from recbook import datasets
    from recbook.datasets import shop

    assert importlib.util.find_spec("recbook.shop") is None  # the old module is gone
    assert datasets.load_shop is shop.load_shop
    sizes = {"n_users": 20, "n_items": 30, "n_events": 400, "seed": 5}
    by_name, direct = datasets.load("shop", **sizes), shop.load_shop(**sizes)
    pd.testing.assert_frame_equal(by_name.events, direct.events)

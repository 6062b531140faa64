"""recbook.privacy's map is true: its docstring lists every module and the layer rule (which
sibling modules each one may import), and the source keeps to it — read with :mod:`ast`,
imports inside functions included. No module imports the package itself or
``recbook.federated``, and each imports on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recbook.privacy

PACKAGE = Path(recbook.privacy.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """Every dotted name the module imports (relative imports resolved, ``from a import b``
    giving both ``a`` and ``a.b``)."""
    names = set()
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = "recbook.privacy".rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _siblings(module: str) -> set[str]:
    prefix = "recbook.privacy."
    return {n[len(prefix) :].split(".")[0] for n in _imports(module) if n.startswith(prefix)} & set(
        MODULES
    )


def _declared_layers() -> dict[str, set[str]]:
    """The "Layers" bullets of the package docstring: ``* ``a``, ``b`` - ``c``, ``d``;``."""
    doc = recbook.privacy.__doc__
    section = doc[doc.index("Layers") :]
    rules = {}
    for who, allowed in re.findall(r"^\* (.+?) - (.+?)[;.]$", section, flags=re.M):
        for name in re.findall(r"``(\w+)``", who):
            rules[name] = set(re.findall(r"``(\w+)``", allowed))
    return rules


def test_the_map_lists_every_module_and_its_layer():
    doc = recbook.privacy.__doc__
    listed = set(re.findall(r":mod:`\.(\w+)`", doc))
    assert listed == set(MODULES), f"map out of date: {sorted(set(MODULES) ^ listed)}"
    assert set(_declared_layers()) == set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_only_the_siblings_its_layer_allows(module):
    extra = _siblings(module) - _declared_layers()[module]
    assert not extra, f"recbook.privacy.{module} imports {sorted(extra)}; the map does not allow it"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_the_package_itself_or_federated(module):
    names = _imports(module)
    assert "recbook.privacy" not in names, f"{module} imports recbook.privacy (its own map)"
    assert not any(n == "recbook.federated" or n.startswith("recbook.federated.") for n in names)


def test_the_modules_import_in_a_fresh_interpreter_without_federated():
    """``import recbook.privacy.<module>`` runs the package's ``__init__`` first, so one fresh
    interpreter shows whether the map's import order has a cycle."""
    imports = "; ".join(f"import recbook.privacy.{m}" for m in MODULES)
    code = f"import sys; {imports}; assert 'recbook.federated' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_the_package_reexports_what_its_all_lists():
    missing = [n for n in recbook.privacy.__all__ if not hasattr(recbook.privacy, n)]
    assert not missing


def test_one_seeded_label_for_dp_sgd_and_federated():
    from recbook.privacy import randomness

    assert recbook.privacy.SEEDED_LABEL is randomness.SEEDED_LABEL
    assert randomness.mode_label(0) == randomness.SEEDED_LABEL
    assert "reproducible demo, not private" in randomness.SEEDED_LABEL
    seeds = {randomness.os_seed() for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)

"""Checks on the project itself: the environment files agree, notebooks match their pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jupytext
import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def test_environment_yml_lists_the_pyproject_packages():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == _pyproject_requirements()


def test_constraints_pin_every_direct_dependency():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for requirement in _pyproject_requirements():
        name = requirement.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
        assert name.lower().replace("_", "-") in pins, f"{name} is not pinned in constraints.txt"
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_matches_its_py_pair(path: Path):
    pair = path.with_suffix(".py")
    assert pair.exists(), f"{pair.name} missing: run `jupytext --sync {path}`"
    ipynb, py = jupytext.read(path), jupytext.read(pair)
    cells = [(c.cell_type, c.source.strip()) for c in ipynb.cells]
    assert cells == [(c.cell_type, c.source.strip()) for c in py.cells], (
        f"{path.name} and {pair.name} differ: run `jupytext --sync {pair}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_in_order_with_one_parameters_cell(path: Path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), (
        f"{path.name}: re-run it top to bottom in a fresh kernel (make nb NB=...)"
    )
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))

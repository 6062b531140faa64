"""Checks on the project itself: the environment files agree, notebooks match their pairs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def test_environment_yml_installs_recbook_with_the_constraints():
    """conda/Binder get recbook itself (``import recbook`` works) and the same exact versions."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-c constraints.txt", "-e .[dev]"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python.removeprefix("python=") in _claimed_pythons()


def _claimed_pythons() -> list[str]:
    """The minor versions pyproject's ``requires-python`` (``>=3.A,<3.B``) admits."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = (int(v) for v in re.fullmatch(r">=3\.(\d+),<3\.(\d+)", spec).groups())
    return [f"3.{m}" for m in range(low, high)]


def test_readme_claims_the_pythons_pyproject_admits():
    claimed = _claimed_pythons()
    text = (ROOT / "README.md").read_text()
    assert f"Python {claimed[0]}–{claimed[-1]}" in text, (
        f"README must say 'Python {claimed[0]}–{claimed[-1]}' (pyproject's requires-python)"
    )


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


#: Paths that name the machine that executed something (a home, a checkout, a temp folder).
_MACHINE_PATH = re.compile(
    r"(?<![\w.])(/root/|/home/\w|/Users/\w|/work/|/tmp/|/var/folders/|[A-Z]:\\\\)"
)
_BAR = re.compile(r"(\d{1,3})%\|")


def _stored_texts(path: Path):
    """Every text a reader sees in a notebook's stored outputs."""
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                yield "".join(out["text"])
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/"):
                    yield "".join(value)


def _as_displayed(text: str) -> list[str]:
    """Lines as a terminal shows them: a carriage return overwrites the line so far."""
    return [line.split("\r")[-1] for line in text.split("\n")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_read_finished_and_name_no_machine(path: Path):
    texts = list(_stored_texts(path))
    leaks = [m.group(0) for t in texts for m in _MACHINE_PATH.finditer(t)]
    assert not leaks, f"{path.name} stores paths of the executing machine: {sorted(set(leaks))}"
    unfinished = [
        line.strip()[:80]
        for t in texts
        for line in _as_displayed(t)
        if (m := _BAR.search(line)) and int(m[1]) < 100
    ]
    assert not unfinished, f"{path.name} stores progress bars short of 100 %: {unfinished[:3]}"


def test_results_and_documents_name_no_machine():
    files = [*sorted((ROOT / "benchmarks" / "results").glob("*.json")), ROOT / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    leaks = {
        f.relative_to(ROOT).as_posix(): sorted(set(_MACHINE_PATH.findall(f.read_text())))
        for f in files
    }
    leaks = {name: found for name, found in leaks.items() if found}
    assert not leaks, f"paths of the machine that wrote them: {leaks}"

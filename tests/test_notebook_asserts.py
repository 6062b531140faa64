"""Notebooks assert code, never findings: a reader who changes SEED, DATASET or a
hyper-parameter must get a sentence when a result goes the other way, not an AssertionError.

An ``assert`` in a notebook's ``.py`` pair is a finding when it compares a verdict word, reads
an interval's bounds (``.lo``/``.hi``), tests a value the notebook records with
``recbook.record`` (or one computed from the same names), or sits under a size/strictness
switch (``if STRICT:``, ``if REAL_SIZE:``) that exists only to keep it from failing elsewhere.
A check of *code* that happens to touch a recorded object (Flower's run equals the loop's, a
secure run used OS randomness) says so on its line: ``assert ...  # code: <why>``.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.py"))
VERDICT_WORDS = {"confirmed", "not confirmed", "inconclusive"}
SWITCHES = {"STRICT", "REAL_SIZE"}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def recorded_names(tree: ast.Module) -> set[str]:
    """Names whose values a notebook records (``recbook.record("x", value)``)."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "record"
            and len(node.args) == 2
            and not (isinstance(node.args[0], ast.Constant) and node.args[0].value == "device")
        ):
            found |= _names(node.args[1])
    return found - set(dir(builtins))


def finding_asserts(source: str) -> list[tuple[int, str]]:
    """``(line, why)`` for every assert that checks a finding rather than code."""
    tree = ast.parse(source)
    recorded = recorded_names(tree)
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _names(node.test) & SWITCHES:
            guarded |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Assert)}
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        end = lines[(node.end_lineno or node.lineno) - 1]
        if "# code:" in end:  # a code check that touches a recorded object, said why
            continue
        test = node.test
        words = {c.value for c in ast.walk(test) if isinstance(c, ast.Constant)}
        if words & VERDICT_WORDS:
            found.append((node.lineno, "compares a verdict"))
        elif any(isinstance(a, ast.Attribute) and a.attr in ("lo", "hi") for a in ast.walk(test)):
            found.append((node.lineno, "reads an interval's bounds"))
        elif _names(test) & SWITCHES or id(node) in guarded:
            found.append((node.lineno, "holds only under a size/strictness switch"))
        elif _names(test) & recorded:
            found.append((node.lineno, f"tests recorded {sorted(_names(test) & recorded)}"))
    return sorted(found)


def test_the_scan_tells_findings_from_code():
    source = (
        "import recbook\n"
        "gain = 0.1\nrecbook.record('gain', round(gain, 3))\n"
        "assert gain > 0\n"  # a recorded value
        "assert word == 'confirmed'\n"  # a verdict
        "assert diff.lo > 0\n"  # an interval
        "if STRICT:\n    assert x < y\n"  # a switch
        "assert scores.shape == (3, 4)\n"  # code
        "assert abs(by_hand - package).max() < 1e-6\n"  # the taught core equals the package
        "assert gain == gain  # code: a recorded value, checked as code\n"
        "assert len(x) == 3\n"  # builtins are never 'recorded'
    )
    assert [line for line, _ in finding_asserts(source)] == [4, 5, 6, 8]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_asserts_a_finding(notebook):
    found = finding_asserts(notebook.read_text(encoding="utf-8"))
    assert not found, (
        f"{notebook.name} asserts findings (print them with evaluation.verdict and record "
        f"them instead): " + "; ".join(f"line {line}: {why}" for line, why in found)
    )

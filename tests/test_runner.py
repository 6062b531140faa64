"""Tests of the headless runner: argument errors, parameter checks, real end-to-end runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from recbook.__main__ import main
from recbook.book import runner

ROOT = Path(__file__).resolve().parent.parent


def make_notebook(path: Path, body: str, params: str = 'SCALE = 2\nLABEL = "a"\n') -> Path:
    """A tiny notebook: a parameters cell, then ``body`` (which may record results)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import recbook"),
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    nbformat.write(nb, path)
    return path


@pytest.fixture
def kernel_env(monkeypatch):
    """Make sure the kernel can import recbook from this checkout even without an install."""
    current = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), current) if p))


GOOD_BODY = (
    'recbook.record("device", "cpu")\n'
    'recbook.record("doubled", SCALE * 21)\n'
    'recbook.record("label", LABEL)\n'
)


# -- parsing -------------------------------------------------------------------------------


def test_parse_parameters_literals_and_strings():
    got = runner.parse_parameters(
        ["EPOCHS=3", "LR=0.5", "FLAG=True", "DATASET=movielens-100k", "NAME='x'", "KS=(5, 10)"]
    )
    assert got == {
        "EPOCHS": 3,
        "LR": 0.5,
        "FLAG": True,
        "DATASET": "movielens-100k",
        "NAME": "x",
        "KS": (5, 10),
    }
    assert runner.parse_parameters(["NOTE=a=b"]) == {"NOTE": "a=b"}


@pytest.mark.parametrize(
    "pair, message",
    [("EPOCHS", "expected NAME=VALUE"), ("1X=2", "not a valid parameter name"), ("=3", "valid")],
)
def test_parse_parameters_errors(pair, message):
    with pytest.raises(runner.RunnerError, match=message):
        runner.parse_parameters([pair])


def test_parse_parameters_duplicate():
    with pytest.raises(runner.RunnerError, match="more than once"):
        runner.parse_parameters(["A=1", "A=2"])


def test_main_without_equals_is_exit_2(tmp_path, capsys):
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY)
    assert main(["run", str(nb), "-p", "SCALE", "--out", str(tmp_path / "o")]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_notebook(tmp_path, capsys):
    missing = tmp_path / "nope.ipynb"
    with pytest.raises(runner.RunnerError, match="nope.ipynb.*not found"):
        runner.resolve_notebooks([str(missing)])
    assert main(["run", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_not_a_notebook(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(runner.RunnerError, match="not a .ipynb"):
        runner.resolve_notebooks([str(text)])


def test_py_pair_resolves_to_ipynb(tmp_path):
    nb = make_notebook(tmp_path / "01_t.ipynb", GOOD_BODY)
    (tmp_path / "01_t.py").write_text("# pair\n")
    assert runner.resolve_notebooks([str(tmp_path / "01_t.py")]) == [nb]


def test_default_notebooks_are_numbered_and_sorted(tmp_path):
    for name in ("02_b.ipynb", "00_a.ipynb", "scratch.ipynb"):
        make_notebook(tmp_path / name, GOOD_BODY)
    found = runner.resolve_notebooks(None, notebook_dir=tmp_path)
    assert [p.name for p in found] == ["00_a.ipynb", "02_b.ipynb"]
    with pytest.raises(runner.RunnerError, match="no notebooks"):
        runner.resolve_notebooks(None, notebook_dir=tmp_path / "empty")


# -- parameter checks (before anything runs) -----------------------------------------------


def test_notebook_parameters_reads_defaults(tmp_path):
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY)
    assert runner.notebook_parameters(nb) == {"SCALE": 2, "LABEL": "a"}


def test_notebook_parameters_sees_lines_with_equals_in_comments(tmp_path):
    params = 'DEVICE = "auto"  # auto = cuda > cpu\nRATE: float = 0.5\nPAIR = (1, 2)  # (a, b)\n'
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY, params=params)
    found = runner.notebook_parameters(nb)
    assert found == {"DEVICE": "auto", "RATE": 0.5, "PAIR": (1, 2)}


def test_every_project_notebook_parameter_is_visible_to_the_runner():
    """Each assignment in each notebook's parameters cell can be set with -p."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assigned = {
            line.split("=")[0].strip()
            for line in cell.source.splitlines()
            if "=" in line and not line.lstrip().startswith("#") and line[0].isupper()
        }
        assert assigned and assigned == set(runner.notebook_parameters(path)), path.name


def test_unknown_parameter_lists_valid_names(tmp_path, capsys):
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY)
    with pytest.raises(runner.RunnerError, match=r"unknown parameter 'EPOCHS'.*SCALE, LABEL"):
        runner.plan([nb], {"EPOCHS": 3})
    out = tmp_path / "o"
    assert main(["run", str(nb), "-p", "EPOCHS=3", "--out", str(out)]) == 2
    assert "unknown parameter 'EPOCHS'" in capsys.readouterr().err
    assert not out.exists(), "nothing may run or be written before the parameters are checked"


def test_wrong_type_is_an_error(tmp_path):
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY)
    with pytest.raises(runner.RunnerError, match="expects int"):
        runner.plan([nb], {"SCALE": "three"})
    with pytest.raises(runner.RunnerError, match="expects str"):
        runner.plan([nb], {"LABEL": 5})


def test_parameter_goes_only_to_notebooks_that_declare_it(tmp_path):
    a = make_notebook(tmp_path / "00_a.ipynb", GOOD_BODY)
    b = make_notebook(tmp_path / "01_b.ipynb", GOOD_BODY, params="EPOCHS = 10\n")
    jobs = runner.plan([a, b], {"EPOCHS": 2})
    assert [j["parameters"] for j in jobs] == [{}, {"EPOCHS": 2}]


def test_summary_table_columns():
    r = runner.NotebookResult("00_x", "p", "o", "ok", "cpu", 1.5, {"device": "cpu", "rmse": 0.9})
    table = runner.summary_table([r])
    assert list(table.columns) == ["notebook", "status", "device", "wall s", "metrics"]
    assert table.loc[0, "metrics"] == "rmse=0.9"
    long_error = "ValueError: " + "x" * 300 + "\nsecond line"
    bad = runner.NotebookResult("01_y", "p", "o", "failed", "-", 2.0, {}, error=long_error)
    cell = runner.summary_table([bad]).loc[0, "metrics"]
    assert cell.startswith("ValueError: x") and len(cell) <= 101 and "second" not in cell


# -- end to end: real kernels --------------------------------------------------------------


def test_papermill_line_warnings_are_dropped_only_inside_the_runner(caplog):
    from papermill.translators import PythonTranslator

    cell = nbformat.v4.new_code_cell('DEVICE = "auto"  # auto = cuda > cpu\nSEED = 0\n')
    with caplog.at_level("WARNING"):
        PythonTranslator.inspect(cell)
    assert "Unable to parse line 1" in caplog.text  # papermill's own behaviour ...
    caplog.clear()
    with caplog.at_level("WARNING"), runner._without_line_inference_warnings():
        PythonTranslator.inspect(cell)
    assert caplog.text == ""  # ... silenced while the runner executes
    assert runner.notebook_parameters  # which reads such lines with ast instead


def test_run_end_to_end(tmp_path, kernel_env, capsys, caplog):
    params = 'SCALE = 2  # scale = 2 is the default\nLABEL = "a"\n'
    nb = make_notebook(tmp_path / "00_tiny.ipynb", GOOD_BODY, params)
    out = tmp_path / "out"
    code = main(["run", str(nb), "-p", "SCALE=3", "-p", "LABEL=hello", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is True
    assert summary["parameters"] == {"SCALE": 3, "LABEL": "hello"}
    (entry,) = summary["notebooks"]
    assert entry["status"] == "ok"
    assert entry["device"] == "cpu"
    assert entry["records"] == {"device": "cpu", "doubled": 63, "label": "hello"}
    assert entry["wall_s"] > 0
    executed = nbformat.read(out / "00_tiny.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "SCALE = 3" in injected[0].source
    assert "00_tiny" in captured.out and "doubled=63" in captured.out
    assert os.environ.get("RECBOOK_RECORD_FILE") is None
    assert "Unable to parse" not in caplog.text + captured.err


def test_failing_notebook_exit_1_and_others_still_run(tmp_path, kernel_env, capsys):
    bad = make_notebook(tmp_path / "00_bad.ipynb", 'raise RuntimeError("boom")')
    good = make_notebook(tmp_path / "01_good.ipynb", GOOD_BODY)
    out = tmp_path / "out"
    assert main(["run", str(bad), str(good), "--out", str(out), "--no-progress"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False
    first, second = summary["notebooks"]
    assert first["status"] == "failed" and "RuntimeError: boom" in first["error"]
    assert first["device"] == "-"
    assert second["status"] == "ok" and second["records"]["doubled"] == 42
    assert (out / "00_bad.ipynb").exists(), "the failed notebook is kept for inspection"
    assert "FAILED: 00_bad" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    """``python -m recbook`` is wired to main (bad input, so no kernel is started)."""
    proc = subprocess.run(
        [sys.executable, "-m", "recbook", "run", "missing.ipynb"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert "missing.ipynb" in proc.stderr and "not found" in proc.stderr


def test_data_path_is_resolved_against_the_callers_folder(tmp_path, monkeypatch):
    from pathlib import Path

    from recbook.book import runner

    monkeypatch.chdir(tmp_path)
    params = runner.parse_parameters(["DATA_PATH=data/ml-100k", "DATASET=movielens-100k"])
    assert Path(params["DATA_PATH"]) == tmp_path / "data" / "ml-100k"
    assert params["DATASET"] == "movielens-100k"


def test_store_writes_a_finished_run_over_its_source(tmp_path, kernel_env, capsys):
    nb = make_notebook(tmp_path / "00_tiny.ipynb", GOOD_BODY)
    assert main(["run", str(nb), "--store", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert f"stored {nb}" in capsys.readouterr().out
    stored = nbformat.read(nb, as_version=4)
    assert [c.execution_count for c in stored.cells] == [1, 2, 3]
    assert "papermill" not in stored.metadata
    assert not any("papermill" in c.metadata for c in stored.cells)


def test_store_refuses_parameters_and_a_run_that_would_overwrite_sources(tmp_path, capsys):
    nb = make_notebook(tmp_path / "00_tiny.ipynb", GOOD_BODY)
    before = nb.read_text()
    assert main(["run", str(nb), "--store", "-p", "SCALE=3", "--out", str(tmp_path / "o")]) == 2
    assert "drop the -p" in capsys.readouterr().err
    assert main(["run", str(nb), "--out", str(tmp_path)]) == 2
    assert "would overwrite 00_tiny.ipynb" in capsys.readouterr().err
    assert nb.read_text() == before
    failed = runner.NotebookResult("00_tiny", str(nb), str(nb), "failed", "-", 1.0, error="boom")
    with pytest.raises(runner.RunnerError, match="nothing stored"):
        runner.store(failed)


def test_store_keeps_the_old_outputs_of_a_notebook_that_failed(tmp_path, kernel_env, capsys):
    bad = make_notebook(tmp_path / "00_bad.ipynb", 'raise RuntimeError("boom")')
    good = make_notebook(tmp_path / "01_good.ipynb", GOOD_BODY)
    before = bad.read_text()
    assert main(["run", str(bad), str(good), "--store", "--out", str(tmp_path / "o")]) == 1
    assert f"not stored: {bad}" in capsys.readouterr().out
    assert bad.read_text() == before
    assert [c.execution_count for c in nbformat.read(good, as_version=4).cells] == [1, 2, 3]


def test_stored_progress_bars_read_their_final_state():
    """A tqdm bar's text fallback is captured at 0 %; the stored notebook reads the final
    state from the run's widget states, and a bar hidden or closed at the end is dropped."""

    def view(model_id):
        return nbformat.v4.new_output(
            "display_data",
            data={
                runner.WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0},
                "text/plain": "fit:   0%|          | 0/8 [00:00<?, ?it/s]",
            },
        )

    def model(name, **state):
        return {"model_name": name, "state": state}

    state = {
        "box": model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"],
                     layout="IPY_MODEL_shown"),
        "l": model("HTMLModel", value="fit (early stop):\u2007100%"),
        "p": model("FloatProgressModel", value=5.0, max=8.0),
        "r": model("HTMLModel", value="\u20075/5\u2007[00:01&lt;00:00]"),
        "shown": model("LayoutModel", visibility=None),
        "gone": model("HBoxModel", children=[], layout="IPY_MODEL_hide"),
        "hide": model("LayoutModel", visibility="hidden"),
    }  # fmt: skip
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {runner.WIDGET_STATE: {"state": state}}
    cell = nbformat.v4.new_code_cell("fit()", outputs=[view("box"), view("gone"), view("closed")])
    nb.cells = [cell]
    runner.finish_progress_bars(nb)
    (out,) = nb.cells[0].outputs
    assert (
        out.data["text/plain"] == "fit (early stop): 100%|" + "\u2588" * 10 + "| 5/5 [00:01<00:00]"
    )


# -- --out and malformed input: refused before anything runs (issue 24) --------------------


def _hashes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_out_notebooks_with_a_parameter_leaves_every_source_byte_identical(
    tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("00_a", "01_b"):
        make_notebook(folder / f"{name}.ipynb", GOOD_BODY)
        (folder / f"{name}.py").write_text("# pair\n")
    before = _hashes(folder)
    monkeypatch.chdir(tmp_path)  # ./notebooks is the default folder, as in the checkout
    for argv in (
        ["run", "--out", "notebooks", "-p", "X=1"],
        ["run", "--out", "notebooks", "-p", "SCALE=1"],
        ["run", "--out", "notebooks"],
        ["run", "notebooks/00_a.py", "--out", "./notebooks/../notebooks", "-p", "SCALE=5"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("recbook run: error:") and err.count("\n") == 1, err
    assert _hashes(folder) == before


def test_out_through_a_symlink_or_hard_link_is_refused(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    nb = make_notebook(src / "00_t.ipynb", GOOD_BODY)
    before = nb.read_bytes()
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    with pytest.raises(runner.RunnerError, match="would overwrite 00_t.ipynb"):
        runner.run([str(nb)], {}, tmp_path / "link")
    hard = tmp_path / "hard"
    hard.mkdir()
    os.link(nb, hard / "00_t.ipynb")
    with pytest.raises(runner.RunnerError, match="would overwrite 00_t.ipynb"):
        runner.run([str(nb)], {}, hard)
    assert nb.read_bytes() == before


def test_out_naming_an_existing_file_is_exit_2(tmp_path, capsys):
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY)
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert main(["run", str(nb), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "is an existing file" in err and err.count("\n") == 1
    assert target.read_text() == "keep me"
    assert main(["run", str(nb), "--out", str(target / "sub")]) == 2  # a file in the way
    assert "recbook run: error: --out" in capsys.readouterr().err


def test_two_sources_with_one_name_or_a_folder_in_the_way_are_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    na, nb = make_notebook(a / "00_t.ipynb", GOOD_BODY), make_notebook(b / "00_t.ipynb", GOOD_BODY)
    with pytest.raises(runner.RunnerError, match="two notebooks named 00_t.ipynb"):
        runner.run([str(na), str(nb)], {}, tmp_path / "o")
    (tmp_path / "o" / "00_t.ipynb").mkdir(parents=True)
    with pytest.raises(runner.RunnerError, match="is a folder where an output file goes"):
        runner.run([str(na)], {}, tmp_path / "o")


@pytest.mark.parametrize(
    "text", ["not json", '{"cells": 3}', "{}", '{"nbformat": 4, "cells": [1]}', "\udcff"]
)
def test_malformed_notebook_is_exit_2(tmp_path, capsys, text):
    bad = tmp_path / "00_bad.ipynb"
    bad.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "00_bad.ipynb: not a readable Jupyter notebook" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_bad_parameter_values_and_timeout_are_exit_2(tmp_path, capsys):
    nb = make_notebook(tmp_path / "00_t.ipynb", GOOD_BODY)
    assert main(["run", str(nb), "-p", "DATA_PATH=a\x00b", "--out", str(tmp_path / "o")]) == 2
    assert "DATA_PATH" in capsys.readouterr().err
    assert main(["run", str(nb), "--timeout", "-1", "--out", str(tmp_path / "o")]) == 2
    assert "--timeout" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

"""The README's generated tables match the recorded runs; the generator itself is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recbook.book import readme, results

README_TEXT = readme.README.read_text()


@pytest.mark.parametrize("document", readme.DOCUMENTS, ids=lambda p: p.name)
def test_generated_sections_match_the_recorded_runs(document: Path):
    stale = readme.stale(document.read_text())
    assert not stale, (
        f"{document.name} sections {stale} differ from benchmarks/results/ (or the notebooks' "
        "text): run `python -m recbook.book.readme` (after recording the new runs) and commit "
        "the documents with the results"
    )


@pytest.mark.skipif(
    not readme.sections(README_TEXT),
    reason="README has no generated sections yet (markers <!-- table:NAME --> not added)",
)
def test_readme_shows_every_recorded_result():
    names = {name for doc in readme.DOCUMENTS for name in readme.sections(doc.read_text())}
    recorded = {p.stem for p in readme.RESULTS.glob("*.json") if p.stem != "notebooks-gpu"}
    assert recorded <= names, f"recorded but not in README: {sorted(recorded - names)}"


def summary(tmp: Path) -> Path:
    doc = {
        "started": "2026-11-29T20:00:00+00:00",
        "finished": "2026-11-29T20:05:00+00:00",
        "parameters": {},
        "ok": True,
        "notebooks": [
            {
                "notebook": "00_setup_and_data",
                "path": "/x/00.ipynb",
                "output": "/x/out/00.ipynb",
                "status": "ok",
                "device": "cpu",
                "wall_s": 12.6,
                "records": {"device": "cpu", "rmse_floor": 0.7251, "n_users": 3000},
            },
            {
                "notebook": "03_matrix_factorization",
                "status": "failed",
                "device": "cpu",
                "wall_s": 20.0,
                "records": {"rmse_test": 0.98},
            },
        ],
    }
    path = tmp / "summary.json"
    path.write_text(json.dumps(doc))
    return path


def bench_rows() -> list[dict]:
    return [
        {
            "model": "EASE",
            "dataset": "SYNTHETIC",
            "split": "per-user 75/25",
            "ndcg@10": 0.2916,
            "ndcg@10_lo": 0.2827,
            "ndcg@10_hi": 0.3003,
            "fit_s": 0.49,
            "n_seeds": 3,
            "peer": False,
        },
        {
            "model": "BPR (cornac)",
            "dataset": "SYNTHETIC",
            "split": "per-user 75/25",
            "ndcg@10": 0.25,
            "fit_s": 3.0,
            "peer": True,
        },
    ]


def test_render_and_update_a_readme(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "HEADLINES", {})  # the fake summary has the fake records only
    res = tmp_path / "results"
    readme.record_notebook_summary(summary(tmp_path), res)
    stored = json.loads((res / "notebooks.json").read_text())
    assert "machine" in stored and "path" not in stored["notebooks"][0]
    results.write(res / "ranking.json", "ranking", bench_rows(), argv=["b.py", "--self-test"])
    text = (
        "# x\n<!-- table:notebooks -->\nold\n<!-- /table:notebooks -->\nmiddle\n"
        "<!-- table:ranking -->\n<!-- /table:ranking -->\nend\n"
    )
    assert readme.stale(text, res) == ["notebooks", "ranking"]
    new = readme.update(text, res)
    assert readme.stale(new, res) == []
    assert readme.update(new, res) == new  # idempotent
    assert new.startswith("# x\n<!-- table:notebooks -->\n| notebook |") and "middle\n" in new
    assert "| [00_setup_and_data](notebooks/00_setup_and_data.ipynb) |" in new
    assert "rmse_floor 0.7251, n_users 3000" in new and "device cpu" not in new
    assert "| 20 **failed** |" in new and "| **all 2** |  |  |  | **33** |  |" in new
    assert "| model | library | ndcg@10 | fit s (wall) |" in new
    assert "| EASE | recbook | 0.292 (0.283–0.300) | 0.49 |" in new
    assert "| BPR (cornac) | peer | 0.250 | 3.00 |" in new
    assert "python b.py --self-test" in new


def test_headline_selection_and_missing_record(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "HEADLINES", {})
    res = tmp_path / "results"
    readme.record_notebook_summary(summary(tmp_path), res)
    monkeypatch.setitem(readme.HEADLINES, "00_setup_and_data", [("floor RMSE", "rmse_floor")])
    assert "| floor RMSE 0.7251 |" in readme.render("notebooks", res)
    monkeypatch.setitem(readme.HEADLINES, "00_setup_and_data", [("x", "not_recorded")])
    with pytest.raises(readme.ReadmeError, match="not_recorded"):
        readme.render("notebooks", res)


def test_bad_readme_markers_and_missing_files(tmp_path):
    with pytest.raises(readme.ReadmeError, match="not closed"):
        readme.sections("<!-- table:mf -->\nx\n")
    with pytest.raises(readme.ReadmeError, match="needs"):
        readme.update("<!-- table:nothing -->\n<!-- /table:nothing -->\n", tmp_path)
    with pytest.raises(readme.ReadmeError, match="recbook run"):
        readme.render("notebooks", tmp_path)


def test_results_files_are_checked(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        results.write(tmp_path / "x.json", "x", [{"model": "m"}])
    with pytest.raises(ValueError, match="peer"):
        row = dict(bench_rows()[0], peer="no")
        results.write(tmp_path / "x.json", "x", [row])
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(ValueError, match="rows"):
        results.read(tmp_path / "y.json")


def test_main_check_and_write(tmp_path, capsys):
    res = tmp_path / "results"
    results.write(res / "mf.json", "mf", bench_rows())
    page = tmp_path / "README.md"
    page.write_text("<!-- table:mf -->\n<!-- /table:mf -->\n")
    args = ["--readme", str(page), "--results", str(res)]
    assert readme.main([*args, "--check"]) == 1
    assert readme.main(args) == 0
    assert readme.main([*args, "--check"]) == 0
    assert readme.main(["--readme", str(page), "--results", str(tmp_path / "none")]) == 2
    assert "error" in capsys.readouterr().err


def test_gpu_column_says_why_a_notebook_has_no_gpu_time(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "HEADLINES", {})
    cpu = json.loads(summary(tmp_path).read_text())
    gpu = {
        "finished": "2026-11-30T02:00:00+00:00",
        "commit": "0123456789abcdef",
        "notebooks": [
            {"notebook": "00_setup_and_data", "status": "ok", "wall_s": 19.1, "records": {}},
            {
                "notebook": "03_matrix_factorization",
                "status": "skipped",
                "wall_s": 0.0,
                "error": "needs TensorFlow, which the GPU image lacks",
                "records": {},
            },
        ],
    }
    text = readme.render_notebooks(cpu, gpu)
    rows = {
        line.split("|")[1].strip(): line for line in text.splitlines() if "](notebooks/" in line
    }
    assert "| 19 |" in rows["[00_setup_and_data](notebooks/00_setup_and_data.ipynb)"]
    assert (
        "skipped: needs TensorFlow"
        in rows["[03_matrix_factorization](notebooks/03_matrix_factorization.ipynb)"]
    )
    assert "**19** (1 ran)" in text and "of commit 0123456 (all)" in text


def test_recorded_commands_name_no_folder_of_the_writing_machine(tmp_path):
    doc = results.read(
        results.write(
            tmp_path / "r.json",
            "x",
            bench_rows(),
            argv=["bench.py", "--out", "/tmp/abc/r.json", f"--log={readme.ROOT}/runs/log.txt"],
        )
    )
    assert doc["command"] == "python bench.py --out .../r.json --log=runs/log.txt"

"""The README's tables of measured figures, generated from recorded runs -- never typed in.

README.md and docs/benchmarks.md (:data:`DOCUMENTS`) hold marked sections::

    <!-- table:notebooks -->
    ...generated...
    <!-- /table:notebooks -->

``notebooks`` is rendered from ``benchmarks/results/notebooks.json`` (a copy of the runner's
``summary.json``; ``notebooks-gpu.json``, when present, fills the GPU column); any other name
``NAME`` from the benchmark file ``benchmarks/results/NAME.json`` (see :mod:`recbook.book.results`).
``python -m recbook.book.readme`` rewrites the sections in place, ``--check`` only reports stale
ones (exit 1), and ``--notebooks-from runs/<stamp>/summary.json`` first records a new runner
summary.
``tests/test_readme.py`` fails when a document differs from what this module renders.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from recbook.book import results
from recbook.book.runner import first_line

ROOT = Path(__file__).resolve().parents[2]  # recbook/book/readme.py -> the checkout
README = ROOT / "README.md"
#: Every document with generated sections: the learners' README and the maintainers' figures.
DOCUMENTS = (README, ROOT / "docs" / "benchmarks.md")
RESULTS = ROOT / "benchmarks" / "results"
NOTEBOOKS = "notebooks"
NOTEBOOKS_GPU = "notebooks-gpu"  # the same table with the GPU run's column (maintainers' page)
#: Sections rendered from the notebooks' recorded run (and the notebooks' own text).
ROUTES = "routes"
INSTALL = "install"
#: Reading speed for a class: technical prose with code to look at (words per minute).
READING_WPM = 120

#: Three ways through the book for a class, as (name, what it covers, notebooks).
COURSE_ROUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "half day",
        "data and honest metrics, embeddings, matrix factorisation, differential privacy",
        (
            "00_setup_and_data",
            "01_dot_product_embeddings",
            "03_matrix_factorization",
            "05_differential_privacy",
        ),
    ),
    (
        "one day",
        "the half day, plus the click MLP, federated learning and sequences",
        (
            "00_setup_and_data",
            "01_dot_product_embeddings",
            "02_sigmoid_mlp",
            "03_matrix_factorization",
            "05_differential_privacy",
            "06_federated_averaging",
            "07_sequences_and_realtime",
        ),
    ),
    (
        "two days",
        "every notebook, with time for the exercises",
        (
            "00_setup_and_data",
            "01_dot_product_embeddings",
            "02_sigmoid_mlp",
            "03_matrix_factorization",
            "04_bert_finetuning",
            "05_differential_privacy",
            "06_federated_averaging",
            "07_sequences_and_realtime",
            "08_explore_exploit",
        ),
    ),
)

_BLOCK = re.compile(
    r"(?P<open><!-- table:(?P<name>[A-Za-z0-9_.-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /table:(?P=name) -->)",
    re.S,
)
_OPEN = re.compile(r"<!-- table:([A-Za-z0-9_.-]+) -->")

#: Static text of the notebook table: what each notebook reproduces and with what.
NOTEBOOK_INFO: dict[str, tuple[str, str]] = {
    "00_setup_and_data": (
        "environment, the shop, public data, splits, metrics by hand",
        "numpy, pandas",
    ),
    "01_dot_product_embeddings": ("000 §4.2/§5.2, 004 §4.2/§5.2", "TensorFlow / Keras"),
    "02_sigmoid_mlp": ("001 §4–§5, 004 §4.2.1", "Keras"),
    "03_matrix_factorization": ("002 §4.3/§5.2", "numpy + PyTorch"),
    "04_bert_finetuning": ("003 §3.2/§5.2", "PyTorch + transformers"),
    "05_differential_privacy": ("003 §4.3; privacy claims of 000/001/003", "PyTorch + Opacus"),
    "06_federated_averaging": ("FL claims of 000/001/003", "PyTorch + Flower"),
    "07_sequences_and_realtime": (
        "000 §3.1, 004 §3.1–3.2, 003 §3.2.3 (behaviour sequences, real time)",
        "PyTorch + faiss",
    ),
    "08_explore_exploit": (
        "001 §2.4/§3.1 feedback loop, 003/004 §3.2.3 (bandits, off-policy evaluation)",
        "numpy + MABWiser",
    ),
}

#: Which recorded values make a notebook's headline, in order, as (label, record name). A
#: notebook not listed shows every value it recorded except ``device``. A listed name that the
#: run did not record is an error, so a renamed record cannot silently vanish from the README.
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "00_setup_and_data": [
        ("RMSE biases", "rmse_biases"),
        ("oracle", "rmse_oracle"),
        ("NDCG@10 popularity", "pop_ndcg_at_10"),
        ("EASE", "ease_ndcg_at_10"),
        ("oracle", "oracle_ndcg_at_10"),
    ],
    "01_dot_product_embeddings": [
        ("RMSE dot-product model", "rmse_test"),
        ("biases", "rmse_biases"),
        ("oracle", "rmse_oracle"),
        ("NDCG@10 softmax retrieval", "ndcg10_softmax"),
        ("EASE", "ndcg10_ease"),
        ("reference", "ndcg10_reference"),
        ("gain over EASE, its 95 % lower end", "ndcg10_gain_retrieval_over_ease_lo"),
    ],
    "02_sigmoid_mlp": [
        ("click AUC MLP", "auc_mlp"),
        ("listing", "auc_listing"),
        ("reference", "auc_reference"),
        ("NDCG@10 click MLP", "ndcg10_click_mlp"),
        ("dot", "ndcg10_dot"),
        ("NCF MLP", "ndcg10_ncf_mlp"),
        ("EASE", "ndcg10_ease"),
        ("gain over EASE, its 95 % lower end", "ndcg10_gain_click_mlp_over_ease_lo"),
    ],
    "03_matrix_factorization": [
        ("RMSE Bayesian MF", "rmse_test"),
        ("gain over biases", "mf_gain_over_biases_rmse"),
        ("its 95 % lower end", "mf_gain_over_biases_rmse_lo"),
    ],
    "04_bert_finetuning": [
        (
            "cold-item AUC gain of MLM-adapted fine-tuned MiniLM over TF-IDF",
            "cold_auc_gain_pretrained_over_bow",
        ),
        ("its 95 % lower end", "cold_auc_gain_pretrained_over_bow_lo"),
        ("category only", "category_auc_cold"),
        ("MLM pre-training ran", "mlm_pretraining_ran"),
    ],
    "05_differential_privacy": [
        ("DP-SGD ε (accountant)", "accountant_eps_dpsgd"),
        ("RMSE", "rmse_dp_eps8"),
        ("audited run's ε", "audit_accountant_eps"),
        ("its audit lower bound", "audit_eps_lower_dpsgd"),
        ("the audit's ceiling", "audit_eps_max_certifiable"),
        ("no-noise control's bound", "audit_eps_lower_no_noise_control"),
        ("article's loss: audit lower bound", "audit_eps_lower_article_loss"),
        ("user-level ε", "user_level_eps"),
        ("RMSE", "user_level_rmse"),
    ],
    "06_federated_averaging": [
        ("RMSE centralised", "rmse_centralised"),
        ("FedAvg over regions", "rmse_fedavg_regions"),
        ("local only", "rmse_local_only"),
        ("DP-FedAvg at ε", "dp_epsilon_min"),
        ("RMSE", "rmse_dp_min_epsilon"),
        ("run without a trusted server executed", "fl_trust_model_secure"),
    ],
    "07_sequences_and_realtime": [
        ("NDCG@10 self-attention", "next_item_ndcg10_self_attention"),
        ("best baseline", "next_item_best_baseline"),
        ("oracle", "next_item_ndcg10_oracle"),
        (
            "gain of self-attention over the best baseline of any kind",
            "next_item_ndcg10_gain_over_best_baseline",
        ),
        ("its 95 % lower end", "next_item_ndcg10_gain_over_best_baseline_lo"),
    ],
    "08_explore_exploit": [
        ("regret Thompson / best ε-greedy, batch 1,000", "regret_ratio_thompson_vs_best_egreedy"),
        ("batch 10", "regret_ratio_thompson_vs_best_egreedy_batch10"),
        ("linear Thompson / its greedy twin", "regret_ratio_contextual_vs_greedy_twin"),
        ("/ trained model acting greedily", "regret_ratio_contextual_vs_trained_greedy"),
        ("top-k coverage greedy loop", "coverage_topk_greedy_loop"),
        ("exploring", "coverage_topk_exploring_loop"),
        ("OPE error DR", "ope_dr_relative_error"),
        ("naive", "ope_naive_relative_error"),
    ],
}

#: Column titles for the usual figure names (others are shown as they are named).
HEADERS = {"fit_s": "fit s (wall)", "cpu_s": "fit s (CPU)", "rmse": "RMSE"}

#: Metadata keys of a benchmark row that are not figures.
_ROW_META = ("model", "dataset", "split", "peer", "n_seeds", "n_splits")


class ReadmeError(ValueError):
    """A marked section that cannot be rendered (missing file, unclosed marker, bad record)."""


# ----------------------------------------------------------------------------------------------
# rendering


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:#.4g}"  # keep trailing zeros: 1.000, not 1


def _machine(m: dict[str, Any] | None) -> str:
    if not m:
        return "machine not recorded"
    parts = [f"{m.get('cpu_cores', '?')} CPU cores ({m.get('processor', '?')})"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']:g} GB")
    parts.append(f"GPU: {m['gpu']}" if m.get("gpu") else "no GPU")
    if m.get("load_avg_1min") is not None:
        parts.append(f"load average {m['load_avg_1min']:g} when written")
    return ", ".join(parts)


def _headline(notebook: str, records: dict[str, Any]) -> str:
    if notebook not in HEADLINES:
        return ", ".join(f"{k} {_fmt(v)}" for k, v in records.items() if k != "device")
    cells = []
    for label, key in HEADLINES[notebook]:
        if key not in records:
            raise ReadmeError(
                f"README headline of {notebook} needs the record {key!r}, which the recorded run "
                f"lacks (it has {sorted(records)}); re-run it or edit recbook.book.readme.HEADLINES"
            )
        cells.append(f"{label} {_fmt(records[key])}")
    return ", ".join(cells)


def _gpu_cell(row: dict[str, Any] | None) -> str:
    """A GPU run's wall time, or why there is none (not run there, skipped, failed)."""
    if row is None:
        return "not measured"
    if row.get("status") == "ok":
        return f"{float(row['wall_s']):.0f}"
    reason = row.get("note") or first_line(row.get("error"), width=80)
    return f"{row.get('status', 'failed')}: {reason}" if reason else str(row.get("status"))


def render_notebooks(
    summary: dict[str, Any], gpu: dict[str, Any] | None = None, gpu_column: bool = True
) -> str:
    """The notebook table from a runner summary (and optionally a GPU run's summary); the
    learners' README leaves the GPU column out (``gpu_column=False``), the maintainers' page
    keeps it."""
    rows = summary.get("notebooks")
    if not isinstance(rows, list) or not rows:
        raise ReadmeError("the notebook summary has no 'notebooks' list (not a runner summary?)")
    gpu_s = {r["notebook"]: r for r in (gpu or {}).get("notebooks", [])}
    head = ["notebook", "reproduces (article, section)", "framework", "read min", "CPU s"]
    head += ["GPU s"] if gpu_column else []
    lines = ["| " + " | ".join([*head, "headline (recorded by the run)"]) + " |"]
    lines.append("|" + "---|" * (len(head) + 1))
    total = 0.0
    for r in rows:
        name = r["notebook"]
        what, framework = NOTEBOOK_INFO.get(name, ("", ""))
        status = "" if r.get("status") == "ok" else f" **{r.get('status')}**"
        total += float(r["wall_s"])
        cells = [f"[{name}](notebooks/{name}.ipynb)", what, framework, str(reading_minutes(name))]
        cells.append(f"{float(r['wall_s']):.0f}{status}")
        cells += [_gpu_cell(gpu_s.get(name))] if gpu_column else []
        lines.append("| " + " | ".join([*cells, _headline(name, r["records"])]) + " |")
    gpu_ok = [g for g in gpu_s.values() if g.get("status") == "ok"]
    gpu_total = (
        f"**{sum(float(g['wall_s']) for g in gpu_ok):.0f}** ({len(gpu_ok)} ran)" if gpu_ok else ""
    )
    last = [f"**all {len(rows)}**", "", "", "", f"**{total:.0f}**"]
    last += [gpu_total] if gpu_column else []
    lines.append("| " + " | ".join([*last, ""]) + " |")
    params = summary.get("parameters") or {}
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "defaults"
    lines.append("")
    lines.append(
        f"Recorded by `python -m recbook run` ({shown}), finished {summary.get('finished', '?')}, "
        f"on {_machine(summary.get('machine'))}."
    )
    if gpu and gpu_column:
        commits = gpu.get("commits") or ({gpu["commit"]: "all"} if gpu.get("commit") else {})
        where = ", ".join(f"{c[:7]} ({which})" for c, which in commits.items())
        commit = f" of commit{'s' if len(commits) > 1 else ''} {where}" if commits else ""
        lines.append(
            f"GPU column: `python -m recbook run -p DEVICE=cuda`{commit}, finished "
            f"{gpu.get('finished', '?')}, on {_machine(gpu.get('machine'))}."
        )
    return "\n".join(lines)


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        for key in row:
            if key in _ROW_META or key.endswith(("_lo", "_hi", "_sd")) or key in cols:
                continue
            cols.append(key)
    return cols


def _cell(row: dict[str, Any], key: str) -> str:
    if key not in row or row[key] is None:
        return "—"
    value = row[key]
    seconds = key.endswith("_s")
    text = f"{value:.3f}" if isinstance(value, float) and not seconds else _fmt(value)
    if seconds and isinstance(value, (int, float)):
        text = f"{value:.2f}"
    if f"{key}_lo" in row and f"{key}_hi" in row:
        text += f" ({row[f'{key}_lo']:.3f}–{row[f'{key}_hi']:.3f})"
    elif f"{key}_sd" in row:
        text += f" ± {row[f'{key}_sd']:.3f}"
    return text


def render_benchmark(doc: dict[str, Any]) -> str:
    """A benchmark results file (see :mod:`recbook.book.results`) as a markdown table."""
    rows = results.check_rows(doc.get("rows"), f"benchmark {doc.get('benchmark')!r}")
    cols = _metric_columns(rows)
    head = ["model", "library"] + [HEADERS.get(c, c) for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        library = "peer" if row["peer"] else "recbook"
        cells = [str(row["model"]), library] + [_cell(row, c) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    datasets = sorted({str(r["dataset"]) for r in rows})
    split_names = sorted({str(r["split"]) for r in rows})
    lines.append("")
    note = f" {doc['notes']}" if doc.get("notes") else ""
    lines.append(
        f"Data: {', '.join(datasets)}; split: {'; '.join(split_names)}. Intervals: 95 % over "
        f"seeds where given. Recorded by `{doc.get('command', '?')}` on {doc.get('date', '?')}, "
        f"{_machine(doc.get('machine'))}.{note}"
    )
    return "\n".join(lines)


def reading_minutes(notebook: str, root: Path = ROOT) -> int:
    """Minutes a class needs to read a notebook's prose (its markdown cells at READING_WPM)."""
    path = root / "notebooks" / f"{notebook}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    words = sum(len("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")
    return max(1, round(words / READING_WPM))


def render_routes(summary: dict[str, Any], root: Path = ROOT) -> str:
    """The course routes: which notebooks, and minutes of reading and of running for each."""
    wall = {r["notebook"]: float(r["wall_s"]) for r in summary["notebooks"]}
    lines = [
        "| route | covers | notebooks | reading min | running min (CPU) |",
        "|---|---|---|---|---|",
    ]
    for name, covers, notebooks in COURSE_ROUTES:
        missing = [nb for nb in notebooks if nb not in wall]
        if missing:
            raise ReadmeError(f"route {name!r} names notebooks the recorded run lacks: {missing}")
        reading = sum(reading_minutes(nb, root) for nb in notebooks)
        running = sum(wall[nb] for nb in notebooks) / 60
        numbers = ", ".join(nb[:2] for nb in notebooks)
        lines.append(f"| {name} | {covers} | {numbers} | {reading} | {running:.0f} |")
    lines.append("")
    lines.append(
        f"Reading time counts each notebook's prose at {READING_WPM} words a minute; running "
        "time is the recorded CPU run below. Exercises and discussion come on top: plan about "
        "as long again."
    )
    return "\n".join(lines)


def render_install(doc: dict[str, Any]) -> str:
    """Wheels and download size per claimed (platform, Python), from benchmarks/install.py."""
    lines = [
        "| platform | Python | pinned packages | without a wheel | download MB "
        "| of which torch MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['platform']} | {r['python']} | {r['packages']} | {r['without_wheel']} | "
            f"{r['download_mb']} | {r['of_which_torch_mb']} |"
        )
    lines.append("")
    lines.append(f"Asked of PyPI by `{doc['command']}` on {doc['date']}.")
    return "\n".join(lines)


def render(name: str, results_dir: Path = RESULTS) -> str:
    """The body of the section ``name`` from its recorded file."""
    if name == INSTALL:
        return render_install(json.loads((results_dir / "install.json").read_text()))
    if name in (NOTEBOOKS, NOTEBOOKS_GPU, ROUTES):
        path = results_dir / "notebooks.json"
        if not path.exists():
            raise ReadmeError(
                f"{path} is missing: run `python -m recbook run`, then "
                "`python -m recbook.book.readme --notebooks-from runs/<stamp>/summary.json`"
            )
        if name == ROUTES:
            return render_routes(json.loads(path.read_text()))
        gpu_path = results_dir / "notebooks-gpu.json"
        gpu = json.loads(gpu_path.read_text()) if gpu_path.exists() else None
        return render_notebooks(json.loads(path.read_text()), gpu, gpu_column=name != NOTEBOOKS)
    path = results_dir / f"{name}.json"
    if not path.exists():
        raise ReadmeError(f"README section {name!r} needs {path}; run the benchmark with --out")
    return render_benchmark(results.read(path))


# ----------------------------------------------------------------------------------------------
# README sections


def sections(text: str) -> dict[str, str]:
    """Every marked section's current body, by name (an unclosed marker is an error)."""
    found = {m["name"]: m["body"] for m in _BLOCK.finditer(text)}
    opened = _OPEN.findall(text)
    unclosed = sorted(set(opened) - set(found))
    if unclosed:
        raise ReadmeError(
            f"README marker(s) {unclosed} opened but not closed: add <!-- /table:NAME --> "
            "on its own line after the section"
        )
    if len(opened) != len(set(opened)):
        raise ReadmeError("a README table marker appears twice; each section must be unique")
    return found


def update(text: str, results_dir: Path = RESULTS) -> str:
    """``text`` with every marked section re-rendered from the recorded files."""
    sections(text)

    def replace(m: re.Match) -> str:
        body = render(m["name"], results_dir)
        return f"{m['open']}{body}\n{m['close']}"

    return _BLOCK.sub(replace, text)


def stale(text: str, results_dir: Path = RESULTS) -> list[str]:
    """Names of the sections whose body differs from what the recorded files give."""
    current = sections(text)
    return [name for name, body in current.items() if body != render(name, results_dir) + "\n"]


def record_notebook_summary(summary_path: Path, results_dir: Path = RESULTS, gpu: bool = False):
    """Copy a runner ``summary.json`` to ``results_dir/notebooks[-gpu].json``, adding this
    machine's description when the summary lacks one (call it on the machine that ran)."""
    summary = json.loads(Path(summary_path).read_text())
    if not isinstance(summary.get("notebooks"), list):
        raise ReadmeError(f"{summary_path} is not a runner summary (no 'notebooks' list)")
    summary.setdefault("machine", results.machine())
    for row in summary["notebooks"]:  # paths on the machine that ran mean nothing here
        row.pop("output", None)
        row.pop("path", None)
    target = Path(results_dir) / ("notebooks-gpu.json" if gpu else "notebooks.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m recbook.book.readme [--check] [--notebooks-from SUMMARY [--gpu]]``."""
    parser = argparse.ArgumentParser(
        prog="python -m recbook.book.readme",
        description="Regenerate the README's marked tables from the recorded runs.",
    )
    parser.add_argument("--check", action="store_true", help="report stale sections; exit 1")
    parser.add_argument("--readme", type=Path, help="one document (default: all of DOCUMENTS)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--notebooks-from", type=Path, help="a runner summary.json to record")
    parser.add_argument("--gpu", action="store_true", help="--notebooks-from is a GPU run")
    args = parser.parse_args(argv)
    documents = [args.readme] if args.readme else list(DOCUMENTS)
    try:
        if args.notebooks_from:
            path = record_notebook_summary(args.notebooks_from, args.results, gpu=args.gpu)
            print(f"recorded {path}")
        old = []
        for document in documents:
            text = document.read_text()
            if args.check:
                old += [f"{document.name}: {name}" for name in stale(text, args.results)]
                continue
            new = update(text, args.results)
            if new != text:
                document.write_text(new)
            print(f"{document.name} sections written: {', '.join(sections(new)) or '(none)'}")
        if old:
            print(f"stale sections: {', '.join(old)}; run python -m recbook.book.readme")
            return 1
        if args.check:
            print("generated sections up to date")
    except ReadmeError as exc:
        print(f"recbook readme: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run notebooks headless with papermill and collect what they recorded.

An instructor checks a machine before a workshop with ``python -m recbook run``; a reader runs a
notebook on public data with ``-p DATASET=movielens-100k``. Each notebook runs in a fresh kernel
with the values injected after its cell tagged ``parameters``. Results come back through
:func:`recbook.runtime.record`: the runner points ``$RECBOOK_RECORD_FILE`` at a per-notebook JSON
file before the kernel starts and reads that file when the notebook ends. A notebook reports the
device it used by recording it: ``recbook.record("device", str(dev))``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from recbook.runtime import RECORD_ENV

KERNEL_NAME = "python3"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


class RunnerError(ValueError):
    """Bad input to the runner (unknown notebook or parameter, malformed ``-p``)."""


@dataclass
class NotebookResult:
    """What one notebook run produced; one row of the summary table."""

    notebook: str
    path: str
    output: str
    status: str
    device: str
    wall_s: float
    records: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def parse_value(text: str) -> Any:
    """A ``-p`` value as a Python literal (``3``, ``0.5``, ``True``, ``'x'``), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_parameters(pairs: list[str] | None) -> dict[str, Any]:
    """``["EPOCHS=3", "DATASET=shop"]`` -> ``{"EPOCHS": 3, "DATASET": "shop"}``, checked."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            raise RunnerError(f"-p {pair!r}: expected NAME=VALUE, for example -p EPOCHS=3")
        if not name.isidentifier():
            raise RunnerError(f"-p {pair!r}: {name!r} is not a valid parameter name")
        if name in params:
            raise RunnerError(f"-p {name}: given more than once")
        params[name] = parse_value(value)
    if isinstance(params.get("DATA_PATH"), str):
        # notebooks run from their own folder: a path relative to the caller must not change
        # meaning on the way there
        try:
            params["DATA_PATH"] = str(Path(params["DATA_PATH"]).expanduser().resolve())
        except (OSError, ValueError, RuntimeError) as err:  # null byte, unknown ~user, loop
            raise RunnerError(
                f"-p DATA_PATH={params['DATA_PATH']!r}: not a usable path ({err})"
            ) from err
    return params


def default_notebook_dir() -> Path:
    """``./notebooks`` when it holds numbered notebooks, else the one next to the package."""
    here = Path.cwd() / "notebooks"
    if any(here.glob(NOTEBOOK_GLOB)):
        return here
    return Path(__file__).resolve().parents[2] / "notebooks"  # recbook/book/ -> the checkout


def resolve_notebooks(names: list[str] | None, notebook_dir: Path | None = None) -> list[Path]:
    """Paths of the notebooks to run: the ones named, or every ``NN_*.ipynb`` in order.

    A jupytext ``.py`` pair is accepted and replaced by its ``.ipynb``.
    """
    if not names:
        folder = notebook_dir or default_notebook_dir()
        found = sorted(folder.glob(NOTEBOOK_GLOB))
        if not found:
            raise RunnerError(f"no notebooks matching {NOTEBOOK_GLOB} in {folder}; name them")
        return found
    paths = []
    for name in names:
        path = Path(name)
        if path.suffix == ".py" and path.with_suffix(".ipynb").exists():
            path = path.with_suffix(".ipynb")
        if not path.exists():
            hint = ""
            folder = notebook_dir or default_notebook_dir()
            known = sorted(p.name for p in folder.glob(NOTEBOOK_GLOB))
            if known:
                hint = f"; notebooks in {folder}: {', '.join(known)}"
            raise RunnerError(f"notebook {name!r} not found{hint}")
        if path.suffix != ".ipynb":
            raise RunnerError(f"{name!r} is not a .ipynb notebook (or a .py with an .ipynb pair)")
        paths.append(path)
    return paths


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and default values assigned in the cell tagged ``parameters``.

    Read with ``ast``, not papermill's line-based inference, which skips any line with a second
    ``=`` (``DEVICE = "auto"  # auto = cuda > cpu``) and so hid such parameters from ``-p``."""
    cells = _tagged_cells(path)
    if not cells:
        return {}
    source = cells[0]
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise RunnerError(f"{path.name}: the parameters cell is not valid Python: {err}") from err
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name):
            found[target.id] = parse_value(ast.get_source_segment(source, node.value) or "")
    return found


def _tagged_cells(path: Path) -> list[str]:
    """Sources of the cells tagged ``parameters``; a file that is not a readable notebook is a
    :class:`RunnerError` naming it (nbformat's own errors are tracebacks to a reader)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        return [
            str(c.source)
            for c in nb.cells
            if "parameters" in (c.get("metadata", {}).get("tags", None) or [])
        ]
    except Exception as err:  # NotJSONError, ValidationError, OSError, a cell that is no dict
        reason = first_line(f"{type(err).__name__}: {err}")
        raise RunnerError(
            f"{path}: not a readable Jupyter notebook ({reason}); open it in Jupyter or "
            "regenerate it from its .py pair (jupytext --sync)"
        ) from err


def _type_mismatch(default: Any, value: Any) -> bool:
    """True when ``value`` clearly has the wrong type for a parameter defaulting to ``default``."""
    if default is None or value is None:
        return False
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) != isinstance(value, bool)
    if isinstance(default, float):
        return not isinstance(value, (int, float))
    if isinstance(default, (int, str)):
        return not isinstance(value, type(default))
    return False


def plan(paths: list[Path], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Which parameters go to which notebook, checked before anything runs.

    A name that no selected notebook declares is an error listing the valid names. A name that
    only some notebooks declare goes to those (the summary says where it went). A value whose
    type differs from the default's (``EPOCHS=three``) is an error.
    """
    declared = {path: notebook_parameters(path) for path in paths}
    for name, value in params.items():
        owners = [p for p in paths if name in declared[p]]
        if not owners:
            valid = "; ".join(
                f"{p.name}: {', '.join(declared[p]) or '(no parameters cell)'}" for p in paths
            )
            raise RunnerError(f"unknown parameter {name!r}. Valid names — {valid}")
        for p in owners:
            default = declared[p][name]
            if _type_mismatch(default, value):
                raise RunnerError(
                    f"-p {name}={value!r}: {p.name} expects {type(default).__name__} "
                    f"(default {default!r}), got {type(value).__name__}"
                )
    return [
        {"path": p, "parameters": {k: v for k, v in params.items() if k in declared[p]}}
        for p in paths
    ]


class _SkipLineInference(logging.Filter):
    """Drops papermill's "Unable to parse line ..." warnings.

    papermill infers a notebook's parameters line by line and gives up on any line with a
    second ``=`` (``DEVICE = "auto"  # auto = cuda > cpu``); it only uses the result to warn
    about unknown names. The runner has already read the parameters cell with ``ast``
    (:func:`notebook_parameters`) and refused unknown names, so those warnings are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unable to parse line")


@contextlib.contextmanager
def _without_line_inference_warnings():
    logger, quiet = logging.getLogger("papermill.translators"), _SkipLineInference()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def run_notebook(
    path: Path,
    out_dir: Path,
    parameters: dict[str, Any],
    *,
    progress: bool = True,
    timeout: float | None = None,
) -> NotebookResult:
    """Execute one notebook in a fresh kernel; a failing notebook gives ``status="failed"``."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    with tempfile.TemporaryDirectory(prefix="recbook-records-") as tmp:
        record_file = Path(tmp) / "records.json"
        previous = os.environ.get(RECORD_ENV)
        os.environ[RECORD_ENV] = str(record_file)  # the kernel inherits this environment
        error = None
        start = time.perf_counter()
        try:
            with _without_line_inference_warnings():
                papermill.execute_notebook(
                    str(path),
                    str(output),
                    parameters=parameters,
                    kernel_name=KERNEL_NAME,
                    cwd=str(path.resolve().parent),
                    progress_bar=progress,
                    execution_timeout=timeout,
                )
        except papermill.PapermillExecutionError as exc:
            error = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        except Exception as exc:  # kernel died, timeout, unreadable notebook: report, go on
            error = f"{type(exc).__name__}: {exc}"
        finally:
            wall = time.perf_counter() - start
            if previous is None:
                os.environ.pop(RECORD_ENV, None)
            else:
                os.environ[RECORD_ENV] = previous
        records = json.loads(record_file.read_text()) if record_file.exists() else {}
    return NotebookResult(
        notebook=path.stem,
        path=str(path),
        output=str(output),
        status="ok" if error is None else "failed",
        device=str(records.get("device", "-")),
        wall_s=round(wall, 2),
        records=records,
        parameters=parameters,
        error=error,
    )


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _bar_text(state: dict, container: dict) -> str | None:
    """A tqdm notebook bar's final text (``desc: 100%|##########| 8/8 [...]``), read from the
    widget states the run stored; None when the bar is not a tqdm bar."""
    import html

    parts = [state.get(c.removeprefix("IPY_MODEL_"), {}).get("state", {}) for c in
             container.get("children", [])]  # fmt: skip
    if len(parts) != 3 or "max" not in parts[1]:
        return None
    left, progress, right = parts

    def text(part: dict) -> str:
        return html.unescape(str(part.get("value", ""))).replace("\u2007", " ")

    # the percentage tqdm printed (an early stop shrinks the total, not the widget's max)
    printed = re.search(r"(\d+)%$", text(left).strip())
    total, value = progress.get("max") or 0, progress.get("value") or 0
    share = int(printed.group(1)) / 100 if printed else (value / total if total else 0.0)
    filled = round(10 * min(share, 1.0))
    bar = "\u2588" * filled + " " * (10 - filled)
    return f"{text(left)}|{bar}|{text(right)}"


def finish_progress_bars(nb) -> None:
    """Make a stored notebook read finished where the widgets cannot be rendered (an untrusted
    notebook in JupyterLab, GitHub): each tqdm bar's plain-text fallback, captured when the bar
    was first displayed ("0%|"), becomes the bar's final state from the run's stored widget
    states; a bar the run hid or closed (``leave=False``) is dropped, as a reader saw it."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    state = state.get("state", {})
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                kept.append(output)
                continue
            container = state.get(view.get("model_id"), {}).get("state")
            layout = state.get(str((container or {}).get("layout", "")).removeprefix("IPY_MODEL_"))
            hidden = (layout or {}).get("state", {}).get("visibility") == "hidden"
            if container is None or hidden:
                continue  # closed or hidden at the end of the run: nothing to read
            final = _bar_text(state, container)
            if final is not None:
                output["data"]["text/plain"] = final
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept


def store(result: NotebookResult) -> Path:
    """Write a successful run's executed notebook over its source: the one way a notebook's
    outputs are made for a commit (``make nb``). Only a run with no injected parameters is
    stored, so a ``-p`` value never becomes a notebook's new default; papermill's own metadata is
    dropped, and progress bars read their final state (:func:`finish_progress_bars`), so the
    stored notebook reads as a finished, plain executed notebook."""
    import nbformat

    if result.status != "ok":
        raise RunnerError(f"{result.notebook} failed, nothing stored: {first_line(result.error)}")
    if result.parameters:
        raise RunnerError(
            f"{result.notebook} ran with -p {', '.join(result.parameters)}: a stored notebook "
            "runs at its defaults (change the parameters cell instead)"
        )
    source, executed = Path(result.path), Path(result.output)
    if source.resolve() == executed.resolve():
        raise RunnerError(f"{source} is both the source and the output: nothing to store")
    nb = nbformat.read(str(executed), as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
    finish_progress_bars(nb)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        raise RunnerError(f"{executed}: execution counts {counts} are not 1..{len(counts)}")
    nbformat.write(nb, str(source))
    return source


def summary_table(results: list[NotebookResult]) -> pd.DataFrame:
    """The table the runner prints: notebook, status, device, wall seconds, recorded metrics."""
    rows = []
    for r in results:
        metrics = {k: v for k, v in r.records.items() if k != "device"}
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
        rows.append(
            {
                "notebook": r.notebook,
                "status": r.status,
                "device": r.device,
                "wall s": r.wall_s,
                "metrics": shown if r.status == "ok" else first_line(r.error) + " " + shown,
            }
        )
    return pd.DataFrame(rows, columns=["notebook", "status", "device", "wall s", "metrics"])


def first_line(text: str | None, width: int = 100) -> str:
    """The start of an error message, short enough for one table cell."""
    line = (text or "").strip().splitlines()[0] if text and text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def default_out_dir() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / stamp


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` is ``b`` through any symlink, ``..`` or hard link."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):
        return False


def check_out_dir(out_dir: Path, sources: list[Path]) -> None:
    """Refuse an ``--out`` the run would damage, before anything runs: a path that is an
    existing file, a folder where an executed copy would land on a source being executed
    (the notebooks' own folder, a link to it, a linked file), two sources of the same name
    (the second copy would replace the first) or a folder in the way of an output."""
    try:
        is_file = out_dir.exists() and not out_dir.is_dir()
    except OSError as err:
        raise RunnerError(f"--out {out_dir}: cannot use this path ({err})") from err
    if is_file:
        raise RunnerError(
            f"--out {out_dir} is an existing file, not a folder: the run writes executed "
            "notebooks and summary.json into a folder; name a new or existing folder"
        )
    names = [p.name for p in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RunnerError(
            f"two notebooks named {', '.join(twice)}: their executed copies would overwrite "
            "each other in --out; run them separately with different --out folders"
        )
    targets = [out_dir / n for n in names] + [out_dir / "summary.json"]
    clash = sorted({t.name for t in targets for s in sources if _same_file(t, s)})
    if clash:
        raise RunnerError(
            f"--out {out_dir} holds the sources it would execute: the run would overwrite "
            f"{', '.join(clash)}; choose another folder (make nb stores a finished run)"
        )
    if out_dir.is_dir() and not os.access(out_dir, os.W_OK | os.X_OK):
        raise RunnerError(f"--out {out_dir}: the folder is not writable; choose another")
    blocked = sorted(t.name for t in targets if t.is_dir())
    if blocked:
        raise RunnerError(
            f"--out {out_dir}: {', '.join(blocked)} is a folder where an output file goes; "
            "choose another --out"
        )


def run(
    notebooks: list[str] | None,
    params: dict[str, Any],
    out_dir: Path | None = None,
    *,
    progress: bool = True,
    timeout: float | None = None,
) -> tuple[list[NotebookResult], Path]:
    """Check everything first, then run each notebook in turn and write ``summary.json``."""
    paths = resolve_notebooks(notebooks)
    jobs = plan(paths, params)
    if timeout is not None and not (timeout > 0 and timeout < float("inf")):
        raise RunnerError(f"--timeout {timeout}: give a positive number of seconds per cell")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
    check_out_dir(out_dir, paths)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunnerError(f"--out {out_dir}: cannot create the folder ({err})") from err
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results = []
    for i, job in enumerate(jobs, 1):
        path, injected = job["path"], job["parameters"]
        skipped = sorted(set(params) - set(injected))
        note = f" (not a parameter here: {', '.join(skipped)})" if skipped else ""
        print(f"[{i}/{len(jobs)}] {path.name} {injected or ''}{note}", file=sys.stderr, flush=True)
        result = run_notebook(path, out_dir, injected, progress=progress, timeout=timeout)
        print(f"    {result.status} in {result.wall_s:.1f} s", file=sys.stderr, flush=True)
        results.append(result)
    summary = {
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parameters": params,
        "ok": all(r.status == "ok" for r in results),
        "notebooks": [asdict(r) for r in results],
    }
    try:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    except OSError as err:
        raise RunnerError(f"--out {out_dir}: cannot write summary.json ({err})") from err
    return results, out_dir

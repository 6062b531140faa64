"""Settings a development run chose, kept in a JSON file beside the notebook that chose them.

A notebook tunes every compared model on its development world (``TUNE = True``) and writes what
it measured here; the default run reads it back instead of re-tuning, but only for the same
dataset, shop regime, development seed and setup (the grids and fixed hyper-parameters), so a
changed notebook never uses stale choices. Keeping the records in a file written by the run,
rather than in a literal pasted into the notebook, means no number is ever copied by hand.

One file per notebook, one entry per ``dataset/regime/dev_seed``. JSON has only string keys, so
dicts keyed by numbers or tuples (``{1e-05: 0.1015}``, ``{(model, lr, l2): (ndcg, epochs)}``) are
stored as ``{"__items__": [[key, value], ...]}`` and come back with the same keys (lists as
tuples); tuples among values come back as lists.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

_ITEMS = "__items__"


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {_ITEMS: [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot record {type(value).__name__} {value!r} as JSON")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _decode(value: dict) -> Any:
    if set(value) == {_ITEMS}:
        return {_hashable(k): v for k, v in value[_ITEMS]}
    return value


def entry_key(dataset: str, regime: str, dev_seed: int) -> str:
    """The entry of one development world: ``"shop/matched/1000"``."""
    return f"{dataset}/{regime}/{dev_seed}"


def read(path: str | os.PathLike) -> dict[str, Any]:
    """Every entry of a development file (an empty dict when there is none yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(), object_hook=_decode)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not a development record ({exc}); delete it and run the notebook "
            "with TUNE = True to write it again"
        ) from exc


def load(
    path: str | os.PathLike, dataset: str, regime: str, dev_seed: int, setup: dict[str, Any]
) -> dict[str, Any] | None:
    """The recorded development of this world, or None when there is none or it was made
    with another ``setup`` (then the notebook develops again)."""
    entry = read(path).get(entry_key(dataset, regime, dev_seed))
    if entry is None or entry.get("setup") != _encode(setup):
        return None
    return entry


def save(
    path: str | os.PathLike, dataset: str, regime: str, dev_seed: int, developed: dict[str, Any]
) -> Path:
    """Record ``developed`` (which must hold its ``setup``) for this world; other worlds'
    entries are kept. Written to a unique temporary name, then moved into place."""
    if "setup" not in developed:
        raise ValueError("developed must hold the 'setup' it was made with, so stale use is caught")
    path = Path(path)
    entries = {k: _encode(v) for k, v in read(path).items()}
    entries[entry_key(dataset, regime, dev_seed)] = _encode(developed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(dict(sorted(entries.items())), f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(f.name, path)
    return path

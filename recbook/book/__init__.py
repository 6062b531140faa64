"""Tooling for the book itself, not teaching: nothing here is imported by a notebook.

* :mod:`.runner` - ``python -m recbook run``: notebooks executed headless with papermill,
  parameters injected, recorded results collected into ``summary.json``;
* :mod:`.results` - benchmark results as JSON files (rows, machine, command);
* :mod:`.readme` - the README's tables rendered from recorded runs and benchmark results.

Layers: ``results`` and ``runner`` import nothing of this package; ``readme`` imports both.
"""

"""Benchmarks: scripts that print figures and write JSON (``benchmarks/results/``), from which
the README's benchmark tables are rendered; budgets are measured here, never in timed tests.

* :mod:`.ranking` - top-10 on public data (Microsoft recommenders' protocol), peers beside;
* :mod:`.mf` - rating prediction on MovieLens-100K's official folds, peers beside;
* :mod:`.implicit_mf` - iALS and BPR, the implicit-feedback models only the ranking table uses;
* :mod:`.serving` - top-10 latency, exact vs faiss;
* :mod:`.dp` - DP-SGD's training time against the non-private run;
* :mod:`.shop` - shop generation time at scale.

Each runs as ``python -m benchmarks.NAME`` or ``python benchmarks/NAME.py`` from the repository
root, with recbook installed (``make setup``).
"""

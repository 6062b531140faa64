# recbook — two commands: `make lab` and `make test`.
PYTHON ?= python3
# extra pip options, e.g. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_ARGS ?=
# extra JupyterLab options, e.g. LAB_ARGS="--no-browser --port 8899" (or --allow-root in a container)
LAB_ARGS ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test check lint format nb setup clean doctor

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "recbook: installing the pinned packages (about 1.3 GB to download on a first install; see README 'Before the workshop')"
	$(PY) -m pip install --progress-bar on --no-compile $(PIP_ARGS) -c constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (recbook)" >/dev/null
	@touch $(STAMP)

# is this machine ready for the workshop? one verdict line (send it to attendees the week before)
doctor: setup
	$(PY) -m recbook doctor

lab: setup
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

lint: setup
	$(VENV)/bin/ruff check recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py
	$(VENV)/bin/ruff format --check recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py

format: setup
	$(VENV)/bin/ruff format recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py
	$(VENV)/bin/ruff check --fix recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py

# the full gate CI runs: unit tests, Flower runs, the wheel, and every notebook through nbval
test: setup lint
	$(PY) -m pytest

# the unit tier for the edit-test loop (a few minutes): no notebooks, no Flower servers, no wheel
check: setup lint
	$(PY) -m pytest -m "not notebooks and not flower and not slow"

# Sync a notebook's jupytext pair, execute it top to bottom in a fresh kernel through the runner
# (the one way outputs are made for a commit) and store it: make nb NB=notebooks/03_matrix_factorization.py
nb: setup
	@test -n "$(NB)" || (echo "usage: make nb NB=notebooks/NN_topic.py" && exit 2)
	$(VENV)/bin/ruff format -q $(addsuffix .py,$(basename $(NB)))
	$(VENV)/bin/jupytext -q --sync $(addsuffix .py,$(basename $(NB)))
	$(PY) -m recbook run --store --out runs/nb $(addsuffix .ipynb,$(basename $(NB)))
	$(VENV)/bin/jupytext -q --sync $(addsuffix .ipynb,$(basename $(NB)))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

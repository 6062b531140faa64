# recbook — two commands: `make lab` and `make test`.
PYTHON ?= python3
# extra pip options, e.g. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_ARGS ?=
# extra JupyterLab options, e.g. LAB_ARGS="--no-browser --port 8899" (or --allow-root in a container)
LAB_ARGS ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test lint format nb setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile $(PIP_ARGS) -c constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (recbook)" >/dev/null
	@touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

lint: setup
	$(VENV)/bin/ruff check recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py
	$(VENV)/bin/ruff format --check recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py

format: setup
	$(VENV)/bin/ruff format recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py
	$(VENV)/bin/ruff check --fix recbook tests benchmarks flower_app data/make_fixtures.py notebooks/*.py

test: setup lint
	$(PY) -m pytest

# Sync a notebook's jupytext pair and execute it top to bottom in a fresh kernel.
nb: setup
	@test -n "$(NB)" || (echo "usage: make nb NB=notebooks/NN_topic.py" && exit 2)
	$(VENV)/bin/ruff format -q $(basename $(NB)).py
	$(VENV)/bin/jupytext --sync $(basename $(NB)).py
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name=python3 $(basename $(NB)).ipynb
	$(VENV)/bin/jupytext --sync $(basename $(NB)).ipynb

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

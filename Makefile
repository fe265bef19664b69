# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_DEV := $(VENV)/.installed-dev
REPORT ?= report

.PHONY: demo test lint typecheck unit docs tutorials clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_DEMO): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(PY) -m captum_netinv report --example mnist --out $(REPORT)

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP_DEV)
	$(VENV)/bin/mypy

unit: $(STAMP_DEV)
	$(PY) -m pytest -q

docs: $(STAMP_DEV)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

tutorials: $(STAMP_DEV)
	$(PY) tutorials/run_all.py

test: lint typecheck unit docs tutorials

clean:
	rm -rf $(VENV) docs/_build $(REPORT)

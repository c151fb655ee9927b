# Everything a fresh machine needs: `make demo` runs the demo, `make test` the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test torture lint screenshots clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,torch]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

# The torture tests at their long sizes (make test runs them short): 16 processes, long outages.
torture: $(STAMP)
	MLFLOW_BUCKET_TORTURE=long $(PY) -m pytest -m torture tests/torture

# The README's UI pictures: the browser tests on the S3 backend, saving into docs/screenshots.
screenshots: $(STAMP)
	MLFLOW_BUCKET_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser -k bucket_s3

clean:
	rm -rf $(VENV) mlruns-bucket .pytest_cache .mypy_cache .ruff_cache

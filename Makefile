# Everything a fresh machine needs: `make demo` runs the demo, `make test` the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test torture lint screenshots clean

# constraints.txt pins packages (sqlalchemy 2.1, numpy 2.4, pandas 3.1...) that need 3.11:
# an older $(PYTHON) is refused in one line, before a venv is made.
PYTHON_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
PYTHON_IS_3_11 = $(shell $(PYTHON) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null)

$(STAMP): pyproject.toml constraints.txt
	$(if $(filter True,$(PYTHON_IS_3_11)),,$(error Python 3.11 or newer is required, found $(or $(PYTHON_VERSION),no working $(PYTHON))))
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

# The suite mostly waits (servers starting, subprocesses importing MLflow), so it runs in
# TEST_WORKERS processes (0: in this one), each file whole and in order on one of them and
# the browser files together (tests/scheduling.py).
TEST_WORKERS ?= 3

test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=40

# The torture tests at their long sizes (make test runs them short): 16 processes, long outages.
torture: $(STAMP)
	MLFLOW_BUCKET_TORTURE=long $(PY) -m pytest -m torture tests/torture

# The README's UI pictures: the browser tests on the S3 backend, saving into docs/screenshots.
screenshots: $(STAMP)
	MLFLOW_BUCKET_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser -k bucket_s3

clean:
	rm -rf $(VENV) mlruns-bucket .pytest_cache .mypy_cache .ruff_cache

"""Fixtures shared by the whole suite: one per backend, started once per session."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import (
    TEST_CREDENTIALS,
    PostgresServer,
    S3Endpoint,
    moto_endpoint,
    postgres_server,
    seaweedfs_endpoint,
    upload_before_stopping,
)

# boto3 reads credentials when a client is created; set them before any test runs,
# and drop anything from the developer's own environment that could point elsewhere.
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update(TEST_CREDENTIALS)
# Spools of S3 stores opened by tests go to a scratch folder, not the user's cache.
os.environ["MLFLOW_BUCKET_SPOOL_DIR"] = tempfile.mkdtemp(prefix="mlflow-bucket-test-spool-")
# So do the query indexes and segment caches of the stores the tests search.
os.environ["MLFLOW_BUCKET_INDEX_DIR"] = tempfile.mkdtemp(prefix="mlflow-bucket-test-index-")
# Removed when this process's tests are done (pytest_unconfigure): each run made two more.
_SCRATCH_FOLDERS = (os.environ["MLFLOW_BUCKET_SPOOL_DIR"], os.environ["MLFLOW_BUCKET_INDEX_DIR"])


# A worker keeps much of what its tests made: moto's objects, and the last 100 stores
# MLflow's store cache holds. After a few hundred tests that is millions of objects, and
# every full collection walked them all, a second or more each time (``autolog`` starts
# with one). So what the tests leave is frozen after each file and every 100 tests, and
# later collections walk only what was made since.
_FREEZE_EVERY = 100  # tests
_tests_since_freeze = 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    global _tests_since_freeze
    yield  # the test's fixtures, and its file's when it was the last, are torn down
    if nextitem is None:
        return  # the worker exits: nothing left to speed up
    _tests_since_freeze += 1
    if nextitem.path != item.path or _tests_since_freeze >= _FREEZE_EVERY:
        gc.collect()  # what is garbage now is freed, not frozen
        gc.freeze()
        _tests_since_freeze = 0


@pytest.fixture(scope="module", autouse=True)
def mlflow_defaults_after_each_file() -> Iterator[None]:
    """Each test file leaves MLflow's process-wide state as it found it: make test runs the
    files on several workers, so which file ran before another on a worker varies."""
    yield
    import mlflow
    from mlflow.tracking import fluent

    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:  # the run's store may be gone with its test
            fluent._active_run_stack.set([])
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    fluent._active_experiment_id = None
    # set_registry_uri(uri) also exports MLFLOW_REGISTRY_URI "so that subprocesses inherit
    # it", and set_registry_uri(None) leaves it: a later file's child process (a user's
    # script, a CLI) would register its models in an earlier test's store.
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Endpoint]:
    with moto_endpoint() as endpoint:
        yield endpoint
        upload_before_stopping()


@pytest.fixture(scope="session")
def seaweedfs_s3() -> Iterator[S3Endpoint]:
    with seaweedfs_endpoint() as endpoint:
        yield endpoint
        upload_before_stopping()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of Debian's package; ``postgres.create_database()`` per test."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_index(postgres: PostgresServer) -> Iterator[str]:
    """The URL of an empty database of its own, for one test's index; dropped after it
    (with the connections its stores left open: the server's are counted)."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    """Each real S3 endpoint in turn."""
    endpoint: S3Endpoint = request.getfixturevalue(f"{request.param}_s3")
    return endpoint


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own answer
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` (make test): whole files in order, the browser files as one."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.scheduling import FileScheduling

    return FileScheduling(config, log)


# -- the closing summary ---------------------------------------------------------------
# What the run covered (scenario counts, torture figures, the hostile and generated-damage
# case counts, the pages the browser walked) is gathered in each test process: in this
# one, and, when make test spreads the suite over workers (pytest-xdist), in each worker,
# which hands it to this process when it finishes.

_WORKER_SUMMARIES: list[dict[str, Any]] = []


def _process_summary() -> dict[str, Any]:
    """What this process's tests covered, as plain JSON."""
    from tests.differential.suite import SCENARIO_COUNTS
    from tests.torture.figures import session_entries

    hostile = sys.modules.get("tests.hostile.corpus")  # set when the tests were collected
    damage = sys.modules.get("tests.hostile.damage")
    sidebar = sys.modules.get("tests.browser.sidebar")
    return {
        "scenario_counts": list(SCENARIO_COUNTS),
        "torture": session_entries(),
        "hostile": hostile.summary() if hostile is not None else None,
        "damage": dict(damage.RUN_COUNTS) if damage is not None else None,
        "visited": dict(sidebar.VISITED) if sidebar is not None else {},
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a worker: its summary goes to the controlling process
        workeroutput["summary"] = json.dumps(_process_summary())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    summary = getattr(node, "workeroutput", {}).get("summary")
    if summary:
        _WORKER_SUMMARIES.append(json.loads(summary))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the run covered, merged over every test process."""
    summaries = [_process_summary(), *_WORKER_SUMMARIES]  # before the imports below
    from tests.hostile.damage import summary as damage_summary
    from tests.torture.figures import session_table

    lines = list(dict.fromkeys(line for s in summaries for line in s["scenario_counts"]))
    lines += session_table([entry for s in summaries for entry in s["torture"]])
    lines += list(dict.fromkeys(s["hostile"] for s in summaries if s["hostile"]))
    damage: Counter[str] = Counter()
    for s in summaries:
        damage.update(s["damage"] or {})
    if any(s["damage"] is not None for s in summaries):
        lines.append(damage_summary(dict(damage)))
    for s in summaries:
        for walk, pages in s["visited"].items():
            lines.append(f"sidebar pages visited, {walk}: {len(pages)}")
            lines += [f"    {page}" for page in pages]
    for line in lines:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    # After every fixture's teardown: the servers and stores using the folders are gone.
    for folder in _SCRATCH_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)

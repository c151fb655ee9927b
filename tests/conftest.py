"""Fixtures shared by the whole suite: one per backend, started once per session."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.servers import (
    TEST_CREDENTIALS,
    PostgresServer,
    S3Endpoint,
    moto_endpoint,
    postgres_server,
    seaweedfs_endpoint,
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


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Endpoint]:
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def seaweedfs_s3() -> Iterator[S3Endpoint]:
    with seaweedfs_endpoint() as endpoint:
        yield endpoint


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the differential suites' scenario counts and the torture tests' figures."""
    from tests.differential.suite import SCENARIO_COUNTS
    from tests.torture.figures import session_table

    for line in [*SCENARIO_COUNTS, *session_table()]:
        terminalreporter.write_line(line)
    hostile = sys.modules.get("tests.hostile.corpus")
    if hostile is not None:  # the hostile-input tests were collected
        terminalreporter.write_line(hostile.summary())
    damage = sys.modules.get("tests.hostile.damage")
    if damage is not None:  # the generated-damage suite was collected
        terminalreporter.write_line(damage.summary())

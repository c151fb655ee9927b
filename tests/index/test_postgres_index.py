"""A query index on a real PostgreSQL server (``tests/servers.py``), as server replicas share it.

The index URL is written as the README writes it (``?index=postgresql+psycopg://...``)
or given by ``MLFLOW_BUCKET_INDEX_URL``; each test has a database of its own. Opening
an index creates, checks and rebuilds its tables under one lock across processes, and
every sync's write transaction takes it too: processes that sync at once queue.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_plugin.index.database import open_index_database
from mlflow_plugin.index.schema import index_stamp
from mlflow_plugin.objectstore.uri import parse_store_uri as parse_location
from mlflow_plugin.store_uri import parse_store_uri
from mlflow_plugin.tracking.settings import index_settings
from tests.index.conftest import with_option
from tests.processes import SPAWN, run_in_processes, run_python
from tests.servers import PostgresServer

README_INDEX = "postgresql+psycopg://user@127.0.0.1:5432/db"


@pytest.fixture(autouse=True)
def local_index_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache folder: a search that fell back to SQLite leaves a file here."""
    folder = tmp_path / "local-index"
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(folder))
    monkeypatch.delenv("MLFLOW_BUCKET_INDEX_URL", raising=False)
    return folder


# -- the index URL as users write it -------------------------------------------------------


@pytest.mark.parametrize("root", ["bucket+file:/x", "bucket+s3://team-bucket/prefix"])
@pytest.mark.parametrize(
    "written",
    [README_INDEX, "postgresql%2Bpsycopg%3A%2F%2Fuser%40127.0.0.1%3A5432%2Fdb"],
    ids=["as-the-readme-writes-it", "percent-encoded"],
)
def test_the_index_url_keeps_its_plus(root: str, written: str) -> None:
    location = parse_store_uri(f"{root}?index={written}&index_staleness=1")
    assert location.option("index") == README_INDEX
    assert index_settings(location).url == README_INDEX
    # The other options are read as before.
    assert location.option("index_staleness") == "1"


def test_other_options_are_still_decoded_as_a_form() -> None:
    location = parse_store_uri("bucket+file:/x?spool_dir=/tmp/a+b&index=sqlite:////tmp/c%20d")
    assert location.option("spool_dir") == "/tmp/a b"
    assert location.option("index") == "sqlite:////tmp/c d"
    assert parse_location("bucket+file:/x?index=a+b").option("index") == "a b"


def test_the_index_url_from_the_environment_keeps_its_plus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_URL", README_INDEX)
    assert index_settings(parse_store_uri("bucket+file:/x")).url == README_INDEX


@pytest.mark.parametrize("given_by", ["uri", "environment"])
def test_searches_go_through_the_postgres_index(
    bucket_root: str,
    given_by: str,
    postgres: PostgresServer,
    postgres_index: str,
    local_index_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if given_by == "uri":
        uri = with_option(bucket_root, f"index={postgres_index}")  # the README's spelling
    else:
        monkeypatch.setenv("MLFLOW_BUCKET_INDEX_URL", postgres_index)
        uri = bucket_root
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("through-postgres")
    run = client.create_run(experiment_id, tags={"team": "vision"})
    client.log_param(run.info.run_id, "lr", "0.1")

    [found] = client.search_runs([experiment_id], "params.lr = '0.1' AND tags.team = 'vision'")
    assert found.info.run_id == run.info.run_id
    assert [e.name for e in client.search_experiments(filter_string="name LIKE 'through%'")] == [
        "through-postgres"
    ]
    assert postgres.query(postgres_index, "SELECT run_uuid FROM runs") == [(run.info.run_id,)]
    assert not list(local_index_dir.glob("*.sqlite"))


# -- creating, rebuilding and refusing tables ----------------------------------------------


def _open_together(url: str, ready: Any, errors: Any) -> None:
    """Open the index of one root as soon as every process is ready (imports done)."""
    ready.wait()
    try:
        open_index_database(url, "bucket+file:/shared").dispose()
    except Exception as exc:
        errors.put(repr(exc))


def test_processes_opening_a_new_index_at_once_all_succeed(postgres: PostgresServer) -> None:
    # Concurrent CREATE TABLEs of one name collide in PostgreSQL's catalogue
    # (duplicate key in pg_type) unless the setup is serialised.
    for _ in range(3):
        url = postgres.create_database()
        ready, errors = SPAWN.Barrier(4), SPAWN.Queue()
        run_in_processes(_open_together, [(url, ready, errors)] * 4, timeout=120)
        assert [errors.get() for _ in range(errors.qsize())] == []
        postgres.drop_database(url)


def test_an_index_of_another_version_is_dropped_and_rebuilt(
    bucket_root: str, postgres: PostgresServer, postgres_index: str
) -> None:
    uri = with_option(bucket_root, f"index={postgres_index}")
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("rebuilt")
    run_id = client.create_run(experiment_id).info.run_id
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]

    # As an older build left it: another stamp, a runs table of another shape, and a row
    # that the bucket does not hold.
    for statement in (
        "UPDATE bucket_index_meta SET value = '0.old' WHERE name = 'version'",
        "ALTER TABLE runs DROP COLUMN name",
        "INSERT INTO bucket_documents (key, kind, entity_id, experiment_id, etag, body) "
        "VALUES ('stale', 'run', 'stale', '1', 'x', '')",
    ):
        postgres.query(postgres_index, statement)

    # Another store (MLflow keeps one per URI) opens the index again, as a new process would.
    fresh = MlflowClient(with_option(uri, "index_staleness=0"))
    assert [(r.info.run_id, r.info.run_name) for r in fresh.search_runs([experiment_id])] == [
        (run_id, client.get_run(run_id).info.run_name)
    ]
    version = "SELECT value FROM bucket_index_meta WHERE name = 'version'"
    assert postgres.query(postgres_index, version) == [(index_stamp(),)]
    stale = "SELECT key FROM bucket_documents WHERE key = 'stale'"
    assert postgres.query(postgres_index, stale) == []


def test_a_database_holding_other_tables_is_refused_not_dropped(
    postgres: PostgresServer, postgres_index: str
) -> None:
    # Such as MLflow's own tracking database named by mistake.
    postgres.query(postgres_index, "CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY)")
    postgres.query(postgres_index, "INSERT INTO runs VALUES ('precious')")
    with pytest.raises(MlflowException, match="not an index") as raised:
        open_index_database(postgres_index, "bucket+file:/x")
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert postgres.query(postgres_index, "SELECT run_uuid FROM runs") == [("precious",)]


def test_mlflow_sqlite_store_in_the_same_process_does_not_change_the_tables(
    postgres_index: str, tmp_path: Path
) -> None:
    # Opening a sqlite:/// store runs MLflow's migrations, which append copies of the
    # runs table's named checks to MLflow's models; the index's copies must not follow
    # (PostgreSQL: 'check constraint "source_type" already exists'), nor its stamp.
    script = textwrap.dedent(
        f"""
        import sys
        from mlflow import MlflowClient
        if sys.argv[1] == "after-mlflow-sqlite":
            MlflowClient("sqlite:///{tmp_path}/mlflow.db").search_experiments()
        from mlflow_plugin.index.database import open_index_database
        from mlflow_plugin.index.schema import index_stamp
        open_index_database("{postgres_index}", "bucket+file:/x").dispose()
        print(index_stamp())
        """
    )
    stamps = []
    for order in ("after-mlflow-sqlite", "alone"):
        result = run_python(["-c", script, order], env=os.environ, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        stamps.append(result.stdout.strip().splitlines()[-1])
    assert stamps[0] == stamps[1] == index_stamp()

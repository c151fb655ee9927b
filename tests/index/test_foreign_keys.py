"""The index mirrors documents in any order, under a database that enforces foreign keys.

MLflow's tables carry foreign keys (a run's experiment, a tag's run) that PostgreSQL
always enforces. The index is a cache the bucket keeps consistent, and a sync meets
documents in whatever order it lists them: a run before its experiment, an
experiment re-mirrored (or displaced by a duplicate name) under its indexed runs.
Each test enables SQLite's foreign keys on every connection, as PostgreSQL would.
A row the database refuses is fetched again by the next sync, never kept out for good.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import ExperimentTag, RunTag, ViewType
from sqlalchemy import Engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from mlflow_plugin.format import keys
from mlflow_plugin.index.schema import MLFLOW_TABLES
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


def _enforce_foreign_keys(connection: Any, _record: Any) -> None:
    if isinstance(connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@pytest.fixture(autouse=True)
def foreign_keys_enforced() -> Iterator[None]:
    event.listen(Engine, "connect", _enforce_foreign_keys)
    yield
    event.remove(Engine, "connect", _enforce_foreign_keys)


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}?index_staleness=0"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = uuid.uuid4().hex[:8]
    return (
        f"bucket+s3://{endpoint.shared_bucket}/{prefix}"
        f"?endpoint_url={endpoint.url}&index_staleness=0"
    )


def _run_ids(store: BucketTrackingStore, experiment_id: str) -> list[str]:
    return [r.info.run_id for r in store.search_runs([experiment_id], None, ViewType.ALL)]


def _experiment_names(store: BucketTrackingStore) -> dict[str, str]:
    return {e.experiment_id: e.name for e in store.search_experiments(ViewType.ALL)}


def _edit(store: BucketTrackingStore, key: str, **fields: object) -> None:
    document = json.loads(store.object_store.get(key).data)
    document.update(fields)
    store.object_store.put(key, json.dumps(document).encode("utf-8"))


def test_the_database_enforces_foreign_keys_in_these_tests(root_uri: str) -> None:
    store = BucketTrackingStore(root_uri)
    store.search_experiments()
    with store._index()._database.write() as session:
        assert session.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_an_experiment_changed_under_its_indexed_runs_is_mirrored(root_uri: str) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = store.create_experiment("changed")
    run_id = store.create_run(experiment_id, "user", 0, [], "run").info.run_id
    assert _run_ids(store, experiment_id) == [run_id]
    assert _experiment_names(store)[experiment_id] == "changed"

    store.set_experiment_tag(experiment_id, ExperimentTag("team", "vision"))
    store.rename_experiment(experiment_id, "renamed")

    assert _experiment_names(store)[experiment_id] == "renamed"
    assert [e.tags for e in store.search_experiments(filter_string="tags.team = 'vision'")] == [
        {"team": "vision"}
    ]
    assert _run_ids(store, experiment_id) == [run_id]


def test_runs_indexed_before_their_experiment_are_found(root_uri: str) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = store.create_experiment("runs-first")
    run_id = store.create_run(experiment_id, "user", 0, [], "run").info.run_id

    # The index is opened by this search: the runs' scope is mirrored before the
    # experiments' scope ever was.
    assert _run_ids(store, experiment_id) == [run_id]
    assert _experiment_names(store)[experiment_id] == "runs-first"
    assert _run_ids(BucketTrackingStore(root_uri), experiment_id) == [run_id]


def test_an_indexed_experiment_displaced_by_a_duplicate_name_keeps_searches_working(
    root_uri: str,
) -> None:
    store = BucketTrackingStore(root_uri)
    first = store.create_experiment("shared")
    second = store.create_experiment("other")
    run_id = store.create_run(first, "user", 0, [], "run").info.run_id
    assert _run_ids(store, first) == [run_id]
    assert _experiment_names(store)[first] == "shared"

    # A partial restore: the second experiment's document carries the first's name, and
    # the name's claim points at it, so the indexed first experiment gives way.
    _edit(store, keys.experiment_key(second), name="shared")
    _edit(store, keys.experiment_name_key("shared"), experiment_id=second)

    names = _experiment_names(store)
    assert names.get(second) == "shared" and first not in names
    assert _run_ids(store, first) == [run_id]


def test_a_row_the_database_refused_is_fetched_again_by_the_next_sync(
    root_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BucketTrackingStore(root_uri)
    original = store.create_experiment("original")
    restored = store.create_experiment("restored")
    run_id = store.create_run(original, "user", 0, [], "run").info.run_id
    store.set_tag(run_id, RunTag("copy", "yes"))
    store.flush()
    assert _run_ids(store, original) == [run_id]

    # A backup restored into the wrong experiment while the original run still exists:
    # both are valid documents of one run id, which the database holds once.
    document = json.loads(store.object_store.get(keys.run_key(original, run_id)).data)
    document["experiment_id"] = restored
    copy_key = keys.run_key(restored, run_id)
    store.object_store.put(copy_key, json.dumps(document).encode("utf-8"))
    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.index.sync"):
        assert _run_ids(store, restored) == []
        assert _run_ids(store, restored) == []
    assert sum(copy_key in m and "left out" in m for m in caplog.messages) == 1

    store.object_store.delete(keys.run_key(original, run_id))  # the original goes
    assert _run_ids(store, original) == []
    assert _run_ids(store, restored) == [run_id]


def test_an_index_made_with_foreign_keys_is_rebuilt_without_them(root_uri: str) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = store.create_experiment("upgraded")
    run_id = store.create_run(experiment_id, "user", 0, [], "run").info.run_id
    assert _run_ids(store, experiment_id) == [run_id]
    index_file = Path(store._index().url[len("sqlite:///") :])
    store.close()
    # As the previous index version left it: MLflow's tables with their foreign keys.
    with sqlite3.connect(index_file) as db:
        for table in reversed(MLFLOW_TABLES):
            db.execute(f"DROP TABLE {table.name}")
        for table in MLFLOW_TABLES:
            db.execute(str(CreateTable(table).compile(dialect=sqlite.dialect())))
        db.execute("UPDATE bucket_index_meta SET value = '2.x' WHERE name = 'version'")

    fresh = BucketTrackingStore(root_uri)
    assert _run_ids(fresh, experiment_id) == [run_id]
    assert _experiment_names(fresh)[experiment_id] == "upgraded"
    with sqlite3.connect(index_file) as db:
        ddl = [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    assert ddl and not any("REFERENCES" in sql for sql in ddl)

"""Replicas sharing one PostgreSQL index and one bucket, as on several hosts.

Each replica has its own local cache folder (``MLFLOW_BUCKET_INDEX_DIR``); the index
database is shared. Syncs of several processes at once must queue: the index then holds
exactly what a fresh sync of the bucket gives, with no row twice, and no search fails.
Two ``mlflow server`` processes each answer ``runs/search`` with the other's writes once
the staleness bound has passed.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from tests.index.conftest import with_option
from tests.processes import SPAWN
from tests.servers import MlflowServer, PostgresServer, mlflow_server

_T = TypeVar("_T")

SYNCERS = 2
VISIBLE_WITHIN = 60.0  # generous: the bound is index_staleness, on a busy machine
# The mirrored tables and their key columns: a fresh sync's rows must equal the shared ones.
MIRRORED = {
    "runs": "run_uuid, name, status, lifecycle_stage, start_time, end_time, experiment_id",
    "tags": "run_uuid, key, value",
    "params": "run_uuid, key, value",
    "latest_metrics": "run_uuid, key, value, step, timestamp",
    "experiments": "experiment_id, name, lifecycle_stage",
    "bucket_documents": "key, etag",
}


def _rows(postgres: PostgresServer, url: str, table: str) -> list[tuple[object, ...]]:
    columns = MIRRORED[table]
    return postgres.query(url, f"SELECT {columns} FROM {table} ORDER BY {columns}")


# -- concurrent syncs ---------------------------------------------------------------------


def _sync_until_stopped(uri: str, experiment_id: str, cache: str, stop: str, out: str) -> None:
    """A replica: search (a sync each time: staleness 0) until ``stop`` exists.

    Writes the number of searches to ``out``, or the traceback of the first that failed.
    """
    os.environ["MLFLOW_BUCKET_INDEX_DIR"] = cache
    client = MlflowClient(uri)
    searches = 0
    try:
        while not Path(stop).exists() or searches == 0:
            client.search_runs([experiment_id], max_results=1000)
            client.search_runs([experiment_id], "params.batch_0 = '1'", max_results=1000)
            client.search_experiments()
            searches += 1
    except Exception:
        Path(out).write_text(traceback.format_exc())
        raise
    Path(out).write_text(str(searches))


def test_concurrent_syncs_leave_the_rows_of_a_fresh_sync(
    bucket_root: str, postgres: PostgresServer, postgres_index: str, tmp_path: Path
) -> None:
    shared = with_option(bucket_root, f"index={postgres_index}&index_staleness=0")
    writer = MlflowClient(bucket_root)  # a writer with an index of its own
    experiment_id = writer.create_experiment("shared")
    runs = [writer.create_run(experiment_id).info.run_id for _ in range(20)]

    stop = tmp_path / "stop"
    outputs = [tmp_path / f"syncer-{i}.out" for i in range(SYNCERS)]
    syncers = [
        SPAWN.Process(
            target=_sync_until_stopped,
            args=(shared, experiment_id, str(tmp_path / f"host-{i}"), str(stop), str(out)),
        )
        for i, out in enumerate(outputs)
    ]
    for syncer in syncers:
        syncer.start()
    try:
        # Documents change while both replicas sync: new runs, params, tags, metrics,
        # status changes and deletions.
        for round_ in range(6):
            runs += [writer.create_run(experiment_id).info.run_id for _ in range(5)]
            for i, run_id in enumerate(runs[round_ * 4 : round_ * 4 + 12]):
                writer.set_tag(run_id, "round", str(round_))
                writer.log_param(run_id, f"batch_{round_}", str(i))
                writer.log_metric(run_id, "loss", 1 / (i + 1), step=round_)
            writer._tracking_client.store.flush()  # the buffered metrics, uploaded now
            writer.set_terminated(runs[round_])
            writer.delete_run(runs.pop())  # not changed again
    finally:
        stop.touch()
        for syncer in syncers:
            syncer.join(120)
    for syncer, out in zip(syncers, outputs, strict=True):
        assert syncer.exitcode == 0, out.read_text() if out.exists() else "no output"
        assert int(out.read_text()) > 0

    # One more sync through the shared index after the last change; then compare with a
    # fresh sync of the bucket into an empty database.
    MlflowClient(with_option(shared, "flush_interval=1")).search_runs([experiment_id])
    fresh = postgres.create_database()
    MlflowClient(with_option(bucket_root, f"index={fresh}")).search_runs([experiment_id])
    for table in MIRRORED:
        assert _rows(postgres, postgres_index, table) == _rows(postgres, fresh, table), table
    # Each run once: its document (keyed by path, so a run could hide under two) and its row.
    per_run = "SELECT entity_id, count(*) FROM bucket_documents WHERE kind = 'run' GROUP BY 1"
    counts = dict(postgres.query(postgres_index, per_run))
    assert len(counts) == len(runs) + 6 and set(counts.values()) == {1}  # 6 deleted
    postgres.drop_database(fresh)


# -- two mlflow servers ---------------------------------------------------------------------


def _wait_for(found: Callable[[], _T], what: str) -> _T:
    deadline = time.monotonic() + VISIBLE_WITHIN
    while True:
        value = found()
        if value or time.monotonic() > deadline:
            assert value or not what, f"{what} not seen within {VISIBLE_WITHIN} s"
            return value
        time.sleep(0.2)


@pytest.fixture
def two_servers(
    bucket_root: str, postgres_index: str, tmp_path: Path
) -> Iterator[tuple[MlflowServer, MlflowServer]]:
    backend = with_option(bucket_root, f"index={postgres_index}")  # the README's spelling
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        host.mkdir()
    env = [{"MLFLOW_BUCKET_INDEX_DIR": str(host / "cache")} for host in hosts]
    with (
        mlflow_server(backend, workdir=hosts[0], env=env[0]) as a,
        mlflow_server(backend, workdir=hosts[1], env=env[1]) as b,
    ):
        yield a, b


def _search(server: MlflowServer, experiment_id: str, filter_string: str = "") -> list[Run]:
    """``runs/search`` through the server's REST API."""
    return list(MlflowClient(server.url).search_runs([experiment_id], filter_string))


def test_two_servers_see_each_others_writes(
    two_servers: tuple[MlflowServer, MlflowServer], postgres: PostgresServer, postgres_index: str
) -> None:
    a, b = two_servers
    experiment_id = MlflowClient(a.url).create_experiment("replicas")
    # Both servers search before anything is written: each has indexed the empty experiment.
    assert _search(a, experiment_id) == _search(b, experiment_id) == []

    run_a = MlflowClient(a.url).create_run(experiment_id, tags={"written_by": "a"})
    seen_by_b = _wait_for(lambda: _search(b, experiment_id, "tags.written_by = 'a'"), "a's run")
    assert [r.info.run_id for r in seen_by_b] == [run_a.info.run_id]

    MlflowClient(b.url).log_param(run_a.info.run_id, "lr", "0.1")
    run_b = MlflowClient(b.url).create_run(experiment_id, tags={"written_by": "b"})
    seen_by_a = _wait_for(lambda: _search(a, experiment_id, "params.lr = '0.1'"), "b's param")
    assert [r.info.run_id for r in seen_by_a] == [run_a.info.run_id]
    both = _wait_for(lambda: len(_search(a, experiment_id)) == 2, "b's run")
    assert both
    assert {r.info.run_id for r in _search(a, experiment_id)} == {
        run_a.info.run_id,
        run_b.info.run_id,
    }
    # One shared index: both runs once, and no server used a SQLite index of its own.
    assert sorted(postgres.query(postgres_index, "SELECT run_uuid FROM runs")) == sorted(
        [(run_a.info.run_id,), (run_b.info.run_id,)]
    )
    for server in (a, b):
        assert not list(server.log_path.parent.glob("cache/*.sqlite")), server.log_tail

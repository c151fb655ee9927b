"""The writers map of a stored run stays bounded, and spool replays are still applied once.

A run document forgets writers idle for longer than the retention (a week); a dead
writer's batch replayed from a spool is skipped while its writer is remembered, and
refused (reported, removed from the spool, never applied twice) once it may have been
forgotten. Time is each batch's ``sealed_at``: nothing sleeps. Both schemes.
"""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import read_document
from mlflow_plugin.format.run_batches import RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.tracking.recovery import RecoveryReport
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.tracking.spool_helpers import (
    dead_writer,
    die,
    new_run,
    reader_uri,
    root_uri,
    with_options,
)

__all__ = ["root_uri"]  # the fixture, imported for pytest

DAY = 86_400_000


def _store(uri: str) -> BucketTrackingStore:
    """The next process on the root, recovering only when asked."""
    return BucketTrackingStore(
        with_options(uri, flush_interval="3600"), recover_in_background=False
    )


def _batch(run: tuple[str, str], writer: str, sequence: int, sealed_at: int, step: int) -> RunBatch:
    experiment_id, run_id = run
    points = [MetricPoint("loss", float(step), 1_000 + step, step)]
    return RunBatch(run_id, experiment_id, writer, sequence, points, sealed_at=sealed_at)


def _replay(
    store: BucketTrackingStore, uri: str, folder: str, *batches: RunBatch
) -> RecoveryReport:
    """Leave ``batches`` in a dead writer's spool (folder ``folder``), then recover it."""
    spool = dead_writer(uri, folder)
    spool.seal(list(batches))
    die(spool)
    return store.recover_spools()


def _steps(uri: str, run_id: str) -> list[int]:
    history = MlflowClient(reader_uri(uri)).get_metric_history(run_id, "loss")
    return sorted(m.step for m in history)


def _writers(store: BucketTrackingStore, run: tuple[str, str]) -> dict[str, int]:
    writers: dict[str, int] = read_document(store.object_store, keys.run_key(*run))[0]["writers"]
    return writers


def test_many_writers_leave_a_bounded_map(root_uri: str) -> None:
    store = _store(root_uri)
    run = new_run(store, "many")
    start = time.time_ns() // 1_000_000 - 60 * DAY
    # A process a day for 40 days, each with its own writer id, replayed from one spool.
    batches = [_batch(run, f"w{day}", day + 1, start + day * DAY, day) for day in range(40)]
    report = _replay(store, root_uri, "00000000000000a1", *batches)
    assert report.complete and report.batches == 40 and report.refused == []
    assert sorted(_writers(store, run)) == sorted(f"w{day}" for day in range(32, 40))
    assert _steps(root_uri, run[1]) == list(range(40))


def test_a_replay_younger_than_the_retention_is_applied_once(root_uri: str) -> None:
    store = _store(root_uri)
    run = new_run(store, "young")
    now = time.time_ns() // 1_000_000
    dead = _batch(run, "dead", 2, now - DAY, 7)
    # "old" is forgotten when "new" arrives: the run document now has a watermark.
    first = _replay(
        store,
        root_uri,
        "00000000000000b1",
        _batch(run, "old", 1, now - 30 * DAY, 1),
        dead,
        _batch(run, "new", 3, now, 9),
    )
    assert first.batches == 3 and "old" not in _writers(store, run)
    # The same batch left behind (a crash after its swap, before its file went): replayed.
    again = _replay(store, root_uri, "00000000000000b2", dead)
    assert again.complete and again.refused == [] and again.batches == 1
    assert _steps(root_uri, run[1]) == [1, 7, 9]  # step 7 once


def test_a_replay_older_than_the_retention_is_refused_not_applied_twice(root_uri: str) -> None:
    store = _store(root_uri)
    run = new_run(store, "old")
    now = time.time_ns() // 1_000_000
    dead = _batch(run, "dead", 1, now - 20 * DAY, 5)
    _replay(store, root_uri, "00000000000000c1", dead, _batch(run, "new", 2, now, 6))
    assert sorted(_writers(store, run)) == ["new"]  # "dead" idle for 20 days: forgotten

    spool = dead_writer(root_uri, "00000000000000c2")
    folder = spool.folder
    spool.seal([dead])
    die(spool)
    report = store.recover_spools()
    assert report.batches == 0 and len(report.refused) == 1
    assert f"batch 1 of writer dead for run {run[1]}" in report.refused[0]
    assert any("removed from the spool: batch 1 of writer dead" in p for p in report.problems())
    assert _steps(root_uri, run[1]) == [5, 6]  # step 5 once
    assert not folder.exists()  # out of the spool: the next recovery does not meet it again
    assert store.recover_spools().refused == []


def test_a_buffered_batch_older_than_the_retention_is_refused_once_and_dropped(
    root_uri: str,
) -> None:
    store = _store(root_uri)
    run = new_run(store, "waited")
    # Logged now, and still buffered (flushes are an hour apart) ...
    store.log_batch(run[1], metrics=[Metric("loss", 1.0, 1_000, 3)], params=[], tags=[])
    # ... while other writers move the run document a month on: a writer that applied
    # after this batch was sealed is forgotten, so the batch may look applied.
    now = time.time_ns() // 1_000_000
    _replay(
        store,
        root_uri,
        "00000000000000d1",
        _batch(run, "later", 1, now + DAY, 1),
        _batch(run, "month-on", 2, now + 30 * DAY, 2),
    )
    with pytest.raises(MlflowException, match="is refused: the run document forgets writers"):
        store.flush()
    store.flush()  # dropped, not retried at every flush
    assert _steps(root_uri, run[1]) == [1, 2]

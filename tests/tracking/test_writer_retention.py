"""The writers map of a stored run stays bounded, and spool replays are still applied once.

A run document forgets writers idle for longer than the retention (a week); a dead
writer's batch replayed from a spool is skipped while its writer is remembered, and
refused (reported, removed from the spool, never applied twice) once it may have been
forgotten and is itself older than the retention. Time is each batch's ``sealed_at`` and
this process's clock, which a test may set back: nothing sleeps. Both schemes.
"""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException

from mlflow_plugin.cli import main
from mlflow_plugin.format import keys, run_batches
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
    # A process a day for the last 40 days (a minute's margin), each with its own writer
    # id, replayed from one spool now: the writers of the last 14 days stay.
    start = time.time_ns() // 1_000_000 - 39 * DAY + 60_000
    batches = [_batch(run, f"w{day}", day + 1, start + day * DAY, day) for day in range(40)]
    report = _replay(store, root_uri, "00000000000000a1", *batches)
    assert report.complete and report.batches == 40 and report.refused == []
    assert sorted(_writers(store, run)) == sorted(f"w{day}" for day in range(25, 40))
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
    # ``sync`` names a refused batch and exits 1: its points are not stored.
    spool = dead_writer(root_uri, "00000000000000c3")
    spool.seal([dead])
    die(spool)
    assert main(["sync", root_uri]) == 1
    assert _steps(root_uri, run[1]) == [5, 6]


def test_writers_with_fast_clocks_never_get_a_fresh_buffered_batch_refused(
    root_uri: str,
) -> None:
    store = _store(root_uri)
    run = new_run(store, "skewed")
    # Logged now, and still buffered (flushes are an hour apart) ...
    store.log_batch(run[1], metrics=[Metric("loss", 3.0, 1_000, 3)], params=[], tags=[])
    # ... while machines whose clocks are a day and a month fast log to the same run.
    now = time.time_ns() // 1_000_000
    _replay(
        store,
        root_uri,
        "00000000000000d1",
        _batch(run, "later", 1, now + DAY, 1),
        _batch(run, "month-on", 2, now + 30 * DAY, 2),
    )
    store.flush()
    assert _steps(root_uri, run[1]) == [1, 2, 3]


class _Clock:
    """``time`` as format.run_batches reads it, set back ``offset_ms`` while needed."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ns = offset_ms * 1_000_000

    def time_ns(self) -> int:
        return time.time_ns() + self.offset_ns


def test_a_batch_kept_unsent_past_the_retention_fails_the_runs_next_call(
    root_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(root_uri)
    run = new_run(store, "stalled")
    now = time.time_ns() // 1_000_000
    # The run document forgot a writer last heard from 15 days ago: a watermark exists.
    _replay(
        store,
        root_uri,
        "00000000000000e1",
        _batch(run, "gone", 1, now - 15 * DAY, 1),
        _batch(run, "new", 2, now, 2),
    )
    store.log_batch(run[1], metrics=[Metric("loss", 3.0, 1_000, 3)], params=[], tags=[])
    key = keys.run_key(*run)
    stored = store.object_store.get(key).data
    # Sixteen days ago this writer sealed that batch, and its upload failed (the run
    # document was damaged then); it kept the batch since: a laptop closed that long.
    store.object_store.put(key, b"{damaged")
    monkeypatch.setattr(run_batches, "time", _Clock(-16 * DAY))
    with pytest.raises(MlflowException, match="corrupt document"):
        store.flush()
    monkeypatch.undo()
    store.object_store.put(key, stored)
    # The background flusher meets the refusal; no caller waits on it ...
    store.context.buffer.flush(raise_errors=False)
    # ... so the run's next call fails, once, naming the batch; nothing is applied twice.
    with pytest.raises(MlflowException, match="older than the writer retention") as refused:
        store.log_batch(run[1], metrics=[Metric("loss", 4.0, 1_000, 4)], params=[], tags=[])
    assert refused.value.error_code == "DATA_LOSS"
    assert "this log_batch call was not stored either" in refused.value.message
    store.log_batch(run[1], metrics=[Metric("loss", 4.0, 1_000, 4)], params=[], tags=[])
    store.flush()
    assert _steps(root_uri, run[1]) == [1, 2, 4]


def _stall_a_batch(store: BucketTrackingStore, run: tuple[str, str], step: int) -> None:
    """Leave a batch of ``run`` refused by a background flush: sealed sixteen days ago by
    this process, kept while the run document was damaged, uploaded once it is repaired."""
    key = keys.run_key(*run)
    stored = store.object_store.get(key).data
    store.log_batch(run[1], metrics=[Metric("loss", 1.0, 1_000, step)], params=[], tags=[])
    store.object_store.put(key, b"{damaged")
    original = run_batches.time
    run_batches.time = _Clock(-16 * DAY)  # type: ignore[assignment]
    try:
        store.context.buffer.flush(raise_errors=False)
    finally:
        run_batches.time = original
    store.object_store.put(key, stored)
    store.context.buffer.flush(raise_errors=False)


def _forget_a_writer(store: BucketTrackingStore, uri: str, run: tuple[str, str]) -> None:
    now = time.time_ns() // 1_000_000
    _replay(
        store,
        uri,
        "00000000000000f1",
        _batch(run, "gone", 1, now - 15 * DAY, 1),
        _batch(run, "new", 2, now, 2),
    )


def test_end_run_stores_the_status_then_says_a_batch_was_refused(root_uri: str) -> None:
    store = _store(root_uri)
    run = new_run(store, "ending")
    _forget_a_writer(store, root_uri, run)
    _stall_a_batch(store, run, 3)
    with pytest.raises(MlflowException, match="status FINISHED and end time were stored"):
        store.update_run_info(run[1], RunStatus.FINISHED, 5_000, None)
    assert store.get_run(run[1]).info.status == "FINISHED"
    store.update_run_info(run[1], RunStatus.FINISHED, 5_000, None)  # told once


def test_the_stores_flush_raises_every_refusal_no_call_was_told_of(root_uri: str) -> None:
    store = _store(root_uri)
    runs = [new_run(store, "quiet-a"), new_run(store, "quiet-b")]
    for run in runs:
        _forget_a_writer(store, root_uri, run)
        _stall_a_batch(store, run, 3)
    with pytest.raises(MlflowException, match="2 buffered batches were not stored") as refused:
        store.flush()
    assert all(run_id in refused.value.message for _, run_id in runs)
    store.flush()  # told once

"""Recovery of a dead writer's spool: every batch tried, a run's order kept, nothing raised.

A batch that cannot be stored (a damaged run document, a failing request) keeps its
run's later batches waiting behind it in the spool, while other runs are uploaded; a
damaged spool file is reported and left in place; the background recovery of a store
logs and goes on. Each scenario runs on bucket+file and bucket+s3.
"""

from __future__ import annotations

import logging
import os

import pytest
from mlflow import MlflowClient

from mlflow_plugin.format import keys
from mlflow_plugin.format.run_batches import RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.objectstore import StorageUnavailable
from mlflow_plugin.tracking.recovery import RunLeft
from mlflow_plugin.tracking.spool import OpenLine
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.tracking.spool_helpers import (
    damage_run,
    dead_writer,
    die,
    new_run,
    reader_uri,
    root_uri,
    with_options,
)

__all__ = ["root_uri"]  # the fixture, imported for pytest


def _points(first: int, count: int) -> list[MetricPoint]:
    return [MetricPoint("loss", float(s), 1000 + s, s) for s in range(first, first + count)]


def _steps(uri: str, run_id: str) -> list[int]:
    return [m.step for m in MlflowClient(reader_uri(uri)).get_metric_history(run_id, "loss")]


def _store(uri: str) -> BucketTrackingStore:
    """The next process on the root, recovering only when asked."""
    uri = with_options(uri, flush_interval="3600")
    return BucketTrackingStore(uri, recover_in_background=False)


def test_a_failing_run_keeps_its_batches_in_order_and_other_runs_go_on(root_uri: str) -> None:
    store = _store(root_uri)
    experiment_id, failing = new_run(store, "failing")
    _, healthy = new_run(store, "healthy", experiment_id)
    # Sealed batches 1 (failing), 2 (healthy), 3 (failing), then open lines of both.
    spool = dead_writer(root_uri)
    for sequence, run_id, first in [(1, failing, 0), (2, healthy, 0), (3, failing, 10)]:
        spool.append(OpenLine(run_id, experiment_id, _points(first, 10), {}))
        spool.seal([RunBatch(run_id, experiment_id, "dead", sequence, _points(first, 10))])
    spool.append(OpenLine(failing, experiment_id, _points(20, 10), {"phase": "late"}))
    spool.append(OpenLine(healthy, experiment_id, _points(10, 10), {}))
    die(spool)

    # The failing run's document refuses its first swap (an endpoint error after retries).
    inner = store.object_store
    original = inner.put_if_match
    failing_key = keys.run_key(experiment_id, failing)
    refused: list[str] = []

    def refuse_once(key: str, data: bytes, etag: str) -> str:
        if key == failing_key and not refused:
            refused.append(key)
            raise StorageUnavailable("the endpoint answered 503")
        return original(key, data, etag)

    inner.put_if_match = refuse_once  # type: ignore[method-assign]
    report = store.recover_spools()
    assert report.left == {failing: RunLeft("the endpoint answered 503", 3, 30)}
    assert (report.batches, report.lines) == (1, 1)  # the healthy run's sealed batch and line
    assert _steps(root_uri, healthy) == list(range(20))
    assert _steps(root_uri, failing) == []  # its later batches waited: none skipped the first
    assert spool.folder.is_dir()  # kept for the next try

    report = store.recover_spools()
    assert report.complete and report.left == {}
    assert (report.batches, report.lines) == (2, 1)
    assert _steps(root_uri, failing) == list(range(30))
    assert _steps(root_uri, healthy) == list(range(20))  # not applied twice
    assert MlflowClient(reader_uri(root_uri)).get_run(failing).data.tags["phase"] == "late"
    assert not spool.folder.exists()


def test_short_writes_to_the_spool_lose_nothing(
    root_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(root_uri)
    experiment_id, run_id = new_run(store, "short")
    spool = dead_writer(root_uri)
    open_log = spool._open_fd
    write = os.write

    def short_write(fd: int, data: bytes) -> int:
        # What a write near a size limit or an interrupted one returns: fewer bytes.
        return write(fd, bytes(data)[:7] if fd == open_log else data)

    monkeypatch.setattr(os, "write", short_write)
    for step in range(50):
        spool.append(OpenLine(run_id, experiment_id, _points(step, 1), {"last": str(step)}))
    monkeypatch.undo()
    die(spool)

    report = store.recover_spools()
    assert (report.lines, report.complete) == (50, True)
    assert _steps(root_uri, run_id) == list(range(50))
    assert MlflowClient(reader_uri(root_uri)).get_run(run_id).data.tags["last"] == "49"


def test_background_recovery_reports_damage_and_goes_on(
    root_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    setup = _store(root_uri)
    experiment_id, damaged = new_run(setup, "damaged")
    _, healthy = new_run(setup, "healthy", experiment_id)
    spool = dead_writer(root_uri)
    spool.append(OpenLine(damaged, experiment_id, _points(0, 5), {}))
    spool.seal([RunBatch(damaged, experiment_id, "dead", 1, _points(0, 5))])
    spool.append(OpenLine(healthy, experiment_id, _points(0, 10), {}))
    assert spool._open_fd is not None
    os.write(spool._open_fd, b'{"r": "\xff\xfe", "p": 3}\n')  # a line damaged in the middle
    spool.append(OpenLine(healthy, experiment_id, _points(10, 10), {}))
    folder = spool.folder
    die(spool)
    (folder / "batch-0000000009.json").write_bytes(b'{"run_id": "x", "points": [')  # no JSON
    damage_run(setup, experiment_id, damaged)

    caplog.set_level(logging.WARNING, logger="mlflow_plugin")
    store = BucketTrackingStore(root_uri)  # recovers in the background, as any process does
    assert store.context.recovery is not None
    # A read of the healthy run waits for its recovery: every point is there at once.
    history = MlflowClient(root_uri).get_metric_history(healthy, "loss")
    assert [m.step for m in history] == list(range(20))
    assert store.context.recovery.finished.wait(60)

    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert f"run {damaged}: 1 batches (5 metric points) left in the spool" in warnings
    assert "batch-0000000009.json" in warnings and ".jsonl line 2: " in warnings
    names = sorted(p.name for p in folder.iterdir())
    assert "batch-0000000009.json" in names  # the damaged file stays as it was
    assert "batch-0000000001.json" in names  # the damaged run's batch waits
    assert any(name.startswith("open-") for name in names)  # holds the damaged line

"""The two crash windows of the spool that the kill-9 test found, each pinned down.

1. A writer killed after writing a sealed batch file but before dropping the open lines
   it holds left both; recovery replayed both, so every point of the batch was stored
   twice.
2. A recovery killed after uploading a dead writer's open lines but before removing its
   folder (or a second recovery of the same folder) uploaded those lines again under
   its own writer id, where no sequence number could recognise them.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from mlflow_plugin.format.run_batches import RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.tracking.spool import OpenLine, OrphanedSpool, Spool, orphaned_spools
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.torture.figures import stored_points

pytestmark = pytest.mark.torture

POINTS = [MetricPoint("m", float(step), 1000 + step, step) for step in range(10)]


def _die_like_a_killed_process(spool: Spool) -> None:
    """Release what the kernel releases when a process dies: its descriptors and lock."""
    for fd in (spool._open_fd, spool._lock_fd):
        os.close(fd)


def test_a_batch_sealed_just_before_the_kill_is_not_replayed_from_its_open_lines(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "writer", "bucket+file:///somewhere")
    spool.append(OpenLine("run1", "1", POINTS, {"t": "v"}))
    batch = RunBatch("run1", "1", "writer", 1, list(POINTS), {"t": "v"})
    # Killed once the batch file is in place, before the open lines are dropped.
    with mock.patch.object(Spool, "_open_log", side_effect=SystemExit), pytest.raises(SystemExit):
        spool.seal([batch])
    _die_like_a_killed_process(spool)

    [orphan] = list(orphaned_spools(tmp_path))
    assert [(b.writer_id, b.sequence, len(b.points)) for b in orphan.batches] == [("writer", 1, 10)]
    assert orphan.open_batches == []  # the batch file holds those lines
    orphan.release(remove=True)


def test_open_lines_after_the_last_seal_are_recovered_under_a_stable_identity(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "writer", "bucket+file:///somewhere")
    spool.append(OpenLine("run1", "1", POINTS[:5], {}))
    spool.seal([RunBatch("run1", "1", "writer", 1, list(POINTS[:5]))])
    spool.append(OpenLine("run1", "1", POINTS[5:], {"t": "v"}))
    spool.append(OpenLine("run2", "1", POINTS[:1], {}))
    _die_like_a_killed_process(spool)

    def recovered() -> list[tuple[str, str, int, int]]:
        [orphan] = list(orphaned_spools(tmp_path))
        found = [(b.run_id, b.writer_id, b.sequence, len(b.points)) for b in orphan.open_batches]
        assert orphan.open_lines == 2
        orphan.release(remove=False)
        return found

    first = recovered()
    assert first == [("run1", "writer-open-run1", 3, 5), ("run2", "writer-open-run2", 3, 1)]
    assert recovered() == first  # the same identity every time: a replay is recognised


def test_a_recovery_killed_before_removing_the_folder_applies_open_lines_once(
    tmp_path: Path,
) -> None:
    uri = (
        f"bucket+file://{tmp_path / 'root'}?spool=true&spool_dir={tmp_path / 'spool'}"
        "&flush_interval=3600"
    )
    store = BucketTrackingStore(uri, recover_in_background=False)
    experiment_id = store.create_experiment("recovery")
    run_id = store.create_run(experiment_id, "u", 0, [], "r").info.run_id
    assert store.context.spool_root is not None
    dead = Spool(store.context.spool_root / "0123456789abcdef", uri)
    dead.append(OpenLine(run_id, experiment_id, POINTS, {"t": "v"}))
    _die_like_a_killed_process(dead)

    def release_without_removing(orphan: OrphanedSpool, remove: bool) -> None:
        os.close(orphan.lock_fd)  # killed after uploading, before the folder went

    with mock.patch.object(OrphanedSpool, "release", release_without_removing):
        report = store.recover_spools()
        assert (report.batches, report.lines) == (0, 1)
    report = store.recover_spools()  # the next process finds the folder again
    assert (report.batches, report.lines) == (0, 1)
    store.flush()

    stored = stored_points(store.object_store, run_id)
    assert sorted(stored.values()) == [1] * len(POINTS)
    assert store.get_run(run_id).data.tags["t"] == "v"
    assert list(orphaned_spools(store.context.spool_root)) == []

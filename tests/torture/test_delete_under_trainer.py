"""A run deleted and restored by another process while a training process logs to it.

The trainer (``tests/torture/trainer.py``) logs through MLflow's client. Another
process (this test) deletes the run, the trainer learns of it (its next upload finds
the run deleted), the run is restored, the trainer logs on and exits. MLflow's SQL
store refuses each call to a deleted run with INVALID_PARAMETER_VALUE; the bucket
acknowledges calls before uploading them, so the promise is: every point whose call
returned is stored (the deleted run is soft-deleted, its data stays), restoring the
run shows all of it, and once the trainer has learned of the deletion its next log
call raises MLflow's error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.torture.figures import Figures, compare_points, record, size, stored_points
from tests.torture.ledger import (
    REPO,
    LedgerLine,
    acknowledged_numbers,
    planned_points,
    planned_tags,
    read_ledger,
    wait_for,
)

pytestmark = pytest.mark.torture

BEFORE_DELETE = size(100, 1000)  # acknowledged batches before the run is deleted
WHILE_DELETED = size(10, 100)  # log calls after the trainer learned, before the restore
REFUSED = "INVALID_PARAMETER_VALUE"  # MLflow's SQL store's answer to a deleted run


def _learned_at(lines: list[LedgerLine]) -> int | None:
    return next(
        (i for i, line in enumerate(lines) if line.kind in {"learned", "learned-error"}), None
    )


def _calls_after_learning(ledger: Path) -> int:
    lines = read_ledger(ledger)
    at = _learned_at(lines)
    return 0 if at is None else sum(1 for line in lines[at + 1 :] if line.number is not None)


@pytest.mark.timeout(size(240, 1200))
def test_a_run_deleted_and_restored_under_a_trainer_keeps_every_acknowledged_point(
    root_uri: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    client = MlflowClient(root_uri)
    run_id = client.create_run(client.create_experiment("deleted-under-trainer")).info.run_id
    ledger, steps = tmp_path / "ledger.txt", tmp_path / "steps"
    steps.mkdir()
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tests.torture.trainer", root_uri, run_id, str(ledger), str(steps)],
        cwd=REPO,
    )
    try:
        wait_for(
            lambda: len(acknowledged_numbers(ledger)) >= BEFORE_DELETE,
            f"{BEFORE_DELETE} batches acknowledged before the deletion",
            process=trainer,
        )
        client.delete_run(run_id)
        (steps / "deleted").touch()
        wait_for(
            lambda: _calls_after_learning(ledger) >= WHILE_DELETED,
            f"{WHILE_DELETED} log calls after the trainer learned of the deletion",
            process=trainer,
        )
        client.restore_run(run_id)
        (steps / "restored").touch()
        trainer.wait(timeout=120)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    lines = read_ledger(ledger)
    crashes = [line for line in lines if line.kind == "crash"]
    assert crashes == [], f"a store method raised something other than MlflowException: {crashes}"
    assert trainer.returncode == 0, f"trainer exited with {trainer.returncode}"

    accepted = acknowledged_numbers(ledger)
    refused = {line.number for line in lines if line.kind == "error" and line.number is not None}
    at = _learned_at(lines)
    assert at is not None
    learned, after_learning = lines[at], lines[at + 1]
    store = BucketTrackingStore(root_uri, recover_in_background=False)
    stored = stored_points(store.object_store, run_id)
    acknowledged = planned_points(accepted)
    lost, duplicated, _ = compare_points(acknowledged, stored)
    # A call that raised stored nothing, as with MLflow's SQL store.
    stored_though_refused = set(stored) & planned_points(refused)
    run = client.get_run(run_id)
    expected_tags = planned_tags(accepted)
    missing_tags = sorted(k for k in expected_tags if k not in run.data.tags)
    history = client.get_metric_history(run_id, "a")

    figures = Figures(
        "run deleted and restored under a trainer, " + root_uri.split(":", 1)[0],
        points_written=len(acknowledged),
        points_read=sum(stored.values()),
        tags=len(expected_tags),
        lost=lost + len(missing_tags),
        duplicated=duplicated,
        notes=(
            f"{len(accepted)} calls acknowledged, {len(refused)} refused; flush after the "
            f"deletion: {learned.kind} {learned.detail}".rstrip()
            + f"; next call: {after_learning.kind} {after_learning.detail}".rstrip()
        ),
    )
    record(figures, started)
    assert (lost, duplicated) == (0, 0), figures.line()
    assert missing_tags == [], missing_tags[:10]
    assert after_learning.kind == "error" and after_learning.detail.startswith(REFUSED), (
        f"the trainer's first log call after learning of the deletion: {after_learning}"
    )
    assert stored_though_refused == set(), sorted(stored_though_refused)[:10]
    assert run.info.lifecycle_stage == "active"
    assert sorted(m.step for m in history) == sorted({p[1] for p in stored if p[0] == "a"})

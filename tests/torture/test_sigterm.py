"""A training process ended by SIGTERM (Kubernetes eviction, Slurm preemption), default settings.

Python's default action for SIGTERM ends the process at once: no exit hooks, so nothing
that the process buffered is uploaded on the way out. With each scheme's default
settings (the URI names only the root), every batch whose ``log_batch`` returned must
still reach the run, once: ``python -m mlflow_plugin sync URI``, what the next process
on this machine does too, uploads what the trainer left.
"""

from __future__ import annotations

import signal
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
    acknowledged_numbers,
    planned_points,
    planned_tags,
    read_ledger,
    sync,
    wait_for,
)

pytestmark = pytest.mark.torture

# Acknowledged batches before the signal: at the trainer's pace, short is less than one
# default flush interval (most of them only in its memory and spool), long is several.
BEFORE_SIGNAL = size(150, 2000)


@pytest.mark.timeout(size(240, 1200))
def test_a_trainer_ended_by_sigterm_loses_nothing_it_was_told_was_logged(
    root_uri: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    client = MlflowClient(root_uri)
    run_id = client.create_run(client.create_experiment("sigterm")).info.run_id
    ledger = tmp_path / "ledger.txt"
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tests.torture.trainer", root_uri, run_id, str(ledger)], cwd=REPO
    )
    try:
        wait_for(
            lambda: len(acknowledged_numbers(ledger)) >= BEFORE_SIGNAL,
            f"{BEFORE_SIGNAL} batches acknowledged to the trainer",
            process=trainer,
        )
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(timeout=60)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    # Whatever the process does on SIGTERM (the default: end at once), it logs no more.
    refused = [line for line in read_ledger(ledger) if line.kind in {"error", "crash"}]
    assert refused == [], f"the trainer's calls failed: {refused[:5]}"
    accepted = acknowledged_numbers(ledger)

    store = BucketTrackingStore(root_uri, recover_in_background=False)
    uploaded_by_trainer = sum(stored_points(store.object_store, run_id).values())
    report = sync(root_uri)
    stored = stored_points(store.object_store, run_id)
    acknowledged = planned_points(accepted)
    lost, duplicated, _ = compare_points(acknowledged, stored)
    # The call the signal interrupted may have reached the spool without being acknowledged.
    unexpected = set(stored) - planned_points(range(max(accepted) + 2))
    tags = client.get_run(run_id).data.tags
    expected_tags = planned_tags(accepted)
    missing_tags = sorted(k for k in expected_tags if k not in tags)
    stale = sum(1 for k, v in expected_tags.items() if k in tags and tags[k] != v)
    history = client.get_metric_history(run_id, "a")

    figures = Figures(
        "SIGTERM of a trainer, default settings, " + root_uri.split(":", 1)[0],
        points_written=len(acknowledged),
        points_read=sum(stored.values()),
        tags=len(expected_tags),
        lost=lost + len(missing_tags),
        stale=stale,
        duplicated=duplicated,
        notes=(
            f"signalled after {len(accepted)} acknowledged batches, exit code "
            f"{trainer.returncode}, {uploaded_by_trainer} "
            f"points uploaded by the trainer itself; sync: {report}"
        ),
    )
    record(figures, started)
    assert (lost, duplicated, stale) == (0, 0, 0), figures.line()
    assert missing_tags == [], missing_tags[:10]
    assert unexpected == set(), sorted(unexpected)[:10]
    assert sorted(m.step for m in history) == sorted({p[1] for p in stored if p[0] == "a"})

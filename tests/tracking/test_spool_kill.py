"""A trainer killed with SIGKILL or SIGTERM loses nothing it was told is logged.

Default settings on both schemes (the tests only point the spool at a scratch folder,
through MLFLOW_BUCKET_SPOOL_DIR): a real trainer process logs until it is killed,
writing down each step once its calls have returned. SIGTERM, like SIGKILL, skips
exit hooks (Kubernetes eviction, Slurm preemption). The next process that opens the
root then reads every acknowledged point at its first read: its background recovery
uploads what the dead trainer left, and a read of that run waits for it.
"""

from __future__ import annotations

import json
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_plugin.format.run_batches import RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.tracking.spool import OpenLine
from mlflow_plugin.tracking.store import BucketTrackingStore
from mlflow_plugin.tracking.write_buffer import WriteBuffer
from tests.cli.conftest import REPO, cli_env
from tests.processes import ForkedPython, run_forked_python
from tests.tracking.spool_helpers import (
    dead_writer,
    die,
    new_run,
    reader_uri,
    root_uri,
    with_options,
    writer_folders,
)

__all__ = ["root_uri"]  # the fixture, imported for pytest

TRAINER = textwrap.dedent(
    """
    import sys
    from mlflow import MlflowClient

    uri, run_id, ledger = sys.argv[1:4]
    client = MlflowClient(uri)
    with open(ledger, "a", buffering=1) as out:
        step = 0
        while True:  # until killed
            client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=1000 + step, step=step)
            if step % 100 == 0:
                client.set_tag(run_id, "last", str(step))
            out.write(f"{step}\\n")  # acknowledged: the calls above returned
            step += 1
    """
)

FIRST_READ = textwrap.dedent(
    """
    import json, sys
    from mlflow import MlflowClient

    uri, run_id = sys.argv[1:3]
    client = MlflowClient(uri)  # a new process on the root: it recovers in the background
    steps = [m.step for m in client.get_metric_history(run_id, "loss")]
    print(json.dumps({"steps": steps, "last": client.get_run(run_id).data.tags.get("last")}))
    """
)


def _acknowledged(ledger: Path) -> list[int]:
    text = ledger.read_text() if ledger.exists() else ""
    return [int(line) for line in text.split("\n")[:-1]]  # the last one may be cut short


def _stored(uri: str, run_id: str) -> int:
    return len(MlflowClient(reader_uri(uri)).get_metric_history(run_id, "loss"))


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_trainer_loses_no_acknowledged_point(
    root_uri: str, kill: signal.Signals, tmp_path: Path
) -> None:
    setup = MlflowClient(reader_uri(root_uri))
    run_id = setup.create_run(setup.create_experiment("killed")).info.run_id
    ledger = tmp_path / "ledger.txt"
    trainer = ForkedPython(TRAINER, root_uri, run_id, str(ledger), env=cli_env(), cwd=REPO)
    try:
        # Killed once some points are uploaded and many more are acknowledged since.
        deadline = time.monotonic() + 120
        while _stored(root_uri, run_id) == 0:
            assert trainer.poll() is None and time.monotonic() < deadline, "no upload"
            time.sleep(0.1)
        target = len(_acknowledged(ledger)) + 300
        while len(_acknowledged(ledger)) < target:
            assert trainer.poll() is None and time.monotonic() < deadline, "trainer stopped"
            time.sleep(0.05)
        trainer.send_signal(kill)
        assert trainer.wait(timeout=60) == -kill
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    acknowledged = _acknowledged(ledger)
    assert _stored(root_uri, run_id) < len(acknowledged)  # the rest was only in the spool

    first_read = run_forked_python(FIRST_READ, root_uri, run_id, env=cli_env(), cwd=REPO)
    assert first_read.returncode == 0, first_read.stderr
    seen = json.loads(first_read.stdout)
    steps = seen["steps"]
    assert set(acknowledged) <= set(steps)
    assert len(steps) == len(set(steps))  # nothing replayed twice
    assert int(seen["last"]) >= max(s for s in acknowledged if s % 100 == 0)
    assert writer_folders(root_uri) == []  # recovered and removed, nothing left behind


POINTS = [MetricPoint("loss", float(step), 1000 + step, step) for step in range(40)]


def test_the_first_read_after_a_crash_waits_for_that_runs_recovery(
    root_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = BucketTrackingStore(reader_uri(root_uri))
    experiment_id, run_id = new_run(setup, "first-read")
    dead = dead_writer(root_uri)
    dead.append(OpenLine(run_id, experiment_id, POINTS[:20], {}))
    dead.seal([RunBatch(run_id, experiment_id, "dead", 1, POINTS[:20])])
    dead.append(OpenLine(run_id, experiment_id, POINTS[20:], {"state": "recovered"}))
    die(dead)

    # Recovery's uploads are held until the reader has had every chance to read early.
    gate = threading.Event()
    upload = WriteBuffer.upload

    def held_upload(self: WriteBuffer, batch: RunBatch) -> None:
        assert gate.wait(60)
        upload(self, batch)

    monkeypatch.setattr(WriteBuffer, "upload", held_upload)
    store = BucketTrackingStore(with_options(root_uri, flush_interval="3600"))
    seen: list[list[int]] = []
    reader = threading.Thread(
        target=lambda: seen.append([m.step for m in store.get_metric_history(run_id, "loss")])
    )
    reader.start()
    reader.join(2.0)  # a reader that does not wait has read by now
    gate.set()
    reader.join(60)
    assert seen == [list(range(40))]
    assert store.get_run(run_id).data.tags["state"] == "recovered"

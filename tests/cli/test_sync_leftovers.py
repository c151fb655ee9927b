"""``sync`` tries every spooled batch, uploads what it can, and exits 1 naming what is left.

A dead writer's spool holds batches for a run whose document is damaged and for a
healthy run: the healthy run gets every point, the damaged run's batch stays in the
spool (named with its counts and the reason) until the document is repaired, and a
spool file that cannot be read is named and left in place. Both schemes.
"""

from __future__ import annotations

import textwrap

from mlflow import MlflowClient

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.cli.conftest import REPO, Cli, cli_env
from tests.processes import run_forked_python
from tests.tracking.spool_helpers import (
    damage_run,
    new_run,
    reader_uri,
    repair_run,
    root_uri,
    with_options,
    writer_folders,
)

__all__ = ["root_uri"]  # the fixture, imported for pytest

DYING_WRITER = textwrap.dedent(
    """
    import os, sys
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri, damaged, healthy = sys.argv[1:4]
    client = MlflowClient(uri)
    client.log_batch(damaged, metrics=[Metric("loss", float(s), 1000 + s, s) for s in range(5)])
    for step in range(101):
        client.log_metric(healthy, "loss", float(step), timestamp=1000 + step, step=step)
    os._exit(0)  # dies with everything buffered: no flush, no exit hooks
    """
)


def _die_with_spooled_batches(uri: str) -> tuple[BucketTrackingStore, str, str, str]:
    """(store, experiment id, damaged run, healthy run) once the writer died."""
    store = BucketTrackingStore(reader_uri(uri))
    experiment_id, damaged = new_run(store, "damaged")
    _, healthy = new_run(store, "healthy", experiment_id)
    writer_uri = with_options(uri, flush_interval="3600")
    writer = run_forked_python(
        DYING_WRITER, writer_uri, damaged, healthy, env=cli_env(), cwd=REPO, timeout=120
    )
    assert writer.returncode == 0, writer.stderr
    return store, experiment_id, damaged, healthy


def _steps(uri: str, run_id: str) -> list[int]:
    return [m.step for m in MlflowClient(reader_uri(uri)).get_metric_history(run_id, "loss")]


def test_sync_uploads_the_healthy_run_and_names_the_damaged_one(
    cli_process: Cli, root_uri: str
) -> None:
    store, experiment_id, damaged, healthy = _die_with_spooled_batches(root_uri)
    original = damage_run(store, experiment_id, damaged)

    result = cli_process("sync", root_uri)
    assert result.returncode == 1
    assert result.stdout == "replayed 0 sealed batches and 101 buffered log calls\n"
    assert f"run {damaged}: 1 batches (5 metric points) left in the spool: " in result.stderr
    assert f"runs/{damaged}.json" in result.stderr  # the reason names the damaged document
    assert "error: 1 runs left in the spool" in result.stderr
    assert "Traceback" not in result.stderr
    assert _steps(root_uri, healthy) == list(range(101))

    repair_run(store, experiment_id, damaged, original)
    result = cli_process("sync", root_uri)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "replayed 0 sealed batches and 1 buffered log calls\n"
    assert _steps(root_uri, damaged) == list(range(5))
    assert _steps(root_uri, healthy) == list(range(101))  # not twice
    assert writer_folders(root_uri) == []


def test_sync_names_a_damaged_spool_file_and_keeps_it(cli_process: Cli, root_uri: str) -> None:
    _, _, first, second = _die_with_spooled_batches(root_uri)
    [folder] = writer_folders(root_uri)
    garbage = folder / "batch-0000000007.json"
    garbage.write_bytes(b"\x00\x01 not a batch")

    result = cli_process("sync", root_uri)
    assert result.returncode == 1
    assert f"damaged spool file, left in place: {garbage}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert _steps(root_uri, first) == list(range(5))
    assert _steps(root_uri, second) == list(range(101))
    assert garbage.read_bytes() == b"\x00\x01 not a batch"
    assert sorted(p.name for p in folder.iterdir()) == [garbage.name, "lock", "root.txt"]

"""A spool disk that fills up never fails training: logging goes on in memory, warned once.

The spool lives on a real device that runs out of space: a 64 KiB tmpfs mounted for
the test (or, where mounting is not allowed, a per-file size limit, RLIMIT_FSIZE, in
the trainer: writes past it are cut short, then refused with EFBIG). Either way the
kernel cuts a write short and then refuses the next one, as a full disk does. A spool
folder that cannot even be created is the same case, met at the start.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.cli.conftest import REPO, cli_env
from tests.tracking.spool_helpers import reader_uri, root_uri, with_options

__all__ = ["root_uri"]  # the fixture, imported for pytest

STEPS = 20_000

TRAINER = textwrap.dedent(
    """
    import resource, signal, sys
    from mlflow import MlflowClient

    uri, run_id, steps, file_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if file_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # refused writes: EFBIG, not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    client = MlflowClient(uri)
    for step in range(steps):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=1000 + step, step=step)
    client.set_tag(run_id, "done", "yes")
    print("logged", steps)
    """
)


@dataclass
class FullDevice:
    spool_dir: Path
    file_limit: int  # RLIMIT_FSIZE for the trainer, 0 when the folder is a small tmpfs
    refusal: str  # what the kernel answers once it is full


@pytest.fixture
def full_device(tmp_path: Path) -> Iterator[FullDevice]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        # Above any segment the trainer uploads (a bucket+file root is limited too), below
        # what its spool takes between two flushes.
        yield FullDevice(mount, 256 * 1024, "File too large")
        return
    try:
        yield FullDevice(mount, 0, "No space left on device")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_spool_disk_never_fails_logging_and_loses_nothing(
    root_uri: str, full_device: FullDevice
) -> None:
    reader = MlflowClient(reader_uri(root_uri))
    run_id = reader.create_run(reader.create_experiment("full-disk")).info.run_id
    trainer = subprocess.run(
        [
            sys.executable,
            "-c",
            TRAINER,
            root_uri,
            run_id,
            str(STEPS),
            str(full_device.file_limit),
        ],
        env={**cli_env(), "MLFLOW_BUCKET_SPOOL_DIR": str(full_device.spool_dir)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert trainer.returncode == 0, trainer.stderr  # no OSError reached the training loop
    assert trainer.stdout == f"logged {STEPS}\n"
    lines = trainer.stderr.splitlines()
    warnings = [line for line in lines if "cannot write the local spool" in line]
    assert len(warnings) == 1, trainer.stderr
    assert full_device.refusal in warnings[0]
    # Kept in memory and uploaded: every point is stored (at exit, by the flusher).
    history = reader.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(STEPS))
    assert reader.get_run(run_id).data.tags["done"] == "yes"


def test_a_spool_folder_that_cannot_be_created_turns_the_spool_off_with_one_warning(
    root_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    uri = with_options(root_uri, spool_dir=str(blocker / "spool"))
    caplog.set_level(logging.WARNING, logger="mlflow_plugin")
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("no-spool-folder")).info.run_id
    for step in range(100):
        client.log_metric(run_id, "loss", float(step), step=step)
    warnings = [r for r in caplog.records if "cannot write the local spool" in r.getMessage()]
    assert len(warnings) == 1
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(100))

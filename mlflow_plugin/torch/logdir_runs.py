"""Which run a ``SummaryWriter`` logs to: each TensorBoard log directory is its own run.

TensorBoard shows each log directory as a run (``runs/exp/train`` and ``runs/exp/val``
side by side); merging them into one MLflow run would mix their points under one key.
The rule, for a writer given a ``log_dir``:

- with an active run (the user's, not one opened for another log directory): a child
  run of it (tag ``mlflow.parentRunId``), so the UI groups and compares them;
- with none: a run of its own. The first such run becomes the active run (so
  ``mlflow.log_param`` and ``log_config`` go to it, as before); a second directory's
  run is not stacked on it (MLflow keeps one active run per thread), it is a top-level
  run beside it;
- either way named after the directory's last folder (``train``), with the whole
  path in the tag ``tensorboard.log_dir``; writers open on the same directory share
  its run, which ends when the last of them closes (or at interpreter exit).

Ending a run never ends another: a child or a second run is ended by its own id, the
user's active run is left open.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mlflow_plugin.torch.dashboard import track as track_dashboard
from mlflow_plugin.torch.scalars import RunTarget

__all__ = [
    "LOG_DIR_TAG",
    "LogDirRun",
    "close_log_dir_run",
    "closing_log_dir_run",
    "open_log_dir_run",
]

LOG_DIR_TAG = "tensorboard.log_dir"
_FAILED = RunStatus.to_string(RunStatus.FAILED)
_FINISHED = RunStatus.to_string(RunStatus.FINISHED)


@dataclass
class LogDirRun:
    """A log directory's run and the number of open writers on it."""

    run_id: str
    tracking_uri: str
    slot: tuple[str, str, str]
    writers: int = 1


_open: dict[tuple[str, str, str], LogDirRun] = {}
_lock = threading.Lock()
_exit_hook = False


def open_log_dir_run(log_dir: str) -> LogDirRun:
    """The run of ``log_dir`` under the active run (see the module's rule), opened if new."""
    global _exit_hook
    uri = mlflow.get_tracking_uri()
    active = mlflow.active_run()
    with _lock:
        opened_here = {r.run_id for r in _open.values()}
        parent = active.info.run_id if active and active.info.run_id not in opened_here else ""
        slot = (uri, parent, os.path.abspath(log_dir))
        run = _open.get(slot)
        if run is not None:
            run.writers += 1
            return run
        tags = {LOG_DIR_TAG: str(log_dir)}
        name = PurePath(os.path.normpath(log_dir)).name or str(log_dir)
        if parent:
            tags[MLFLOW_PARENT_RUN_ID] = parent
        if active is None:
            run_id = mlflow.start_run(run_name=name, tags=tags).info.run_id
        else:  # beside or under the active run, in its experiment; it stays the active one
            experiment_id = active.info.experiment_id
            created = MlflowClient(uri).create_run(experiment_id, tags=tags, run_name=name)
            run_id = created.info.run_id
        run = _open[slot] = LogDirRun(run_id, uri, slot)
        track_dashboard(RunTarget(run_id, uri))  # its dashboard.html: it may not be active
        if not _exit_hook:
            _exit_hook = True
            atexit.register(_end_open_runs)
    return run


@contextlib.contextmanager
def closing_log_dir_run(run: LogDirRun, status: str) -> Iterator[None]:
    """Do a writer's closing work (its flush) in the body, then ``close_log_dir_run``.

    A body that raises (background logging failed) ends the run FAILED, then re-raises.
    """
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            close_log_dir_run(run, _FAILED)
        raise
    close_log_dir_run(run, status)


def close_log_dir_run(run: LogDirRun, status: str) -> None:
    """One writer fewer on ``run``; the last one ends it with ``status``."""
    with _lock:
        run.writers -= 1
        if run.writers > 0 or _open.get(run.slot) is not run:
            return
        del _open[run.slot]
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run.run_id:
        mlflow.end_run(status)
    else:
        MlflowClient(run.tracking_uri).set_terminated(run.run_id, status)


def _end_open_runs() -> None:
    """At exit, end the runs of writers never closed, after their points are written."""
    from mlflow_plugin.torch.worker import flush

    with _lock:
        runs = list(_open.values())
    if not runs:
        return
    status = _FINISHED
    try:
        flush()
    except Exception as exc:  # at exit there is nobody left to raise to
        print(f"mlflow_plugin.torch: logging at exit failed: {exc!r}", file=sys.stderr)
        status = _FAILED
    for run in runs:
        run.writers = 1
        try:
            close_log_dir_run(run, status)
        except Exception as exc:
            print(f"mlflow_plugin.torch: ending run {run.run_id} failed: {exc!r}", file=sys.stderr)

"""Writing each run's ``dashboard.html``: when the helpers flush, and on a slow timer.

The page is derived from what the run already stores (``summaries.dashboard``), so a
failure to build or upload it is a warning, never an error of the training loop's
flush: the data the user logged is stored either way, and ``mlflow-bucket dashboard``
rebuilds the page later. Rebuilding reads the run back, so it happens only at a flush
(``flush()``, ``SummaryWriter.close``, leaving ``autolog``, interpreter exit) and, in a
long run, at most every ``INTERVAL_S`` seconds in a child process (``mlflow-bucket
dashboard``): reading and rendering a long run's raw bins is seconds of Python, which on
a thread of the training process would take the interpreter lock from the training loop.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING

from mlflow_plugin.summaries.dashboard import ARTIFACT_FILE, collect, has_views, render
from mlflow_plugin.torch.scalars import RunTarget

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlflow_plugin.torch.worker import BackgroundWorker

__all__ = ["INTERVAL_S", "after_flush", "track", "write_dashboard"]

INTERVAL_S = 300.0

_live: dict[RunTarget, float] = {}  # runs flushed lately -> when their page was last written
_pending: set[RunTarget] = set()  # runs to rebuild at the next flush besides the active one
_lock = threading.Lock()
_timer: threading.Thread | None = None
_tick = threading.Event()  # wakes the timer early: a newly tracked run, a changed interval
_children: dict[RunTarget, subprocess.Popen[bytes]] = {}  # the timer's builds, one per run


def write_dashboard(target: RunTarget, client: MlflowClient | None = None) -> bool:
    """Build and upload ``dashboard.html`` for ``target``; False (with a warning on failure)
    when nothing was written. A run with nothing the page shows (only scalars) gets none."""
    from mlflow.tracking import MlflowClient

    _stop_child(target)  # a timer build started earlier reads less: it must not land last
    try:
        mlflow_client = client or MlflowClient(target.tracking_uri)
        data = collect(mlflow_client, target.run_id)
        if not has_views(data):
            return False
        mlflow_client.log_text(target.run_id, render(data), ARTIFACT_FILE)
    except Exception as exc:  # derived data: the run's own records are stored already
        warnings.warn(
            f"mlflow_plugin.torch: could not write {ARTIFACT_FILE} for run {target.run_id} "
            f"({type(exc).__name__}: {exc}); rebuild it with `mlflow-bucket dashboard`",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    with _lock:
        _live[target] = time.monotonic()
    if data["damaged"]:  # the page shows the rest; say what it had to leave out
        warnings.warn(
            f"mlflow_plugin.torch: {ARTIFACT_FILE} of run {target.run_id} leaves out "
            f"damaged artifacts: {'; '.join(data['damaged'])}",
            RuntimeWarning,
            stacklevel=2,
        )
    return True


def track(target: RunTarget) -> None:
    """Keep ``target``'s page up to date: rebuilt at the next flush even when it is not the
    active run, and every ``INTERVAL_S`` seconds while the run is RUNNING.

    ``autolog`` calls it for its run when entered, ``SummaryWriter`` for a log
    directory's run when it opens it; other runs join at their first flush.
    """
    with _lock:
        _pending.add(target)
        _live.setdefault(target, time.monotonic())
    _start_timer()
    _tick.set()


def after_flush(worker: BackgroundWorker) -> None:
    """Rebuild the pages of the active run and of the tracked runs still RUNNING.

    Called by ``BackgroundWorker.flush`` once everything is stored, in the flushing
    (caller's) thread, where MLflow's active run is visible. A tracked run that is not
    the active one (a log directory's child run) is rebuilt at every flush while it
    runs, not only at the first: its writer's ``close`` flushes before ending it.
    """
    import mlflow

    if worker._errors:  # the flush will raise: the record is incomplete, keep the last page
        return
    active = mlflow.active_run()
    with _lock:
        targets = set(_pending) | set(_live)
        _pending.clear()
    if active is not None:
        current = RunTarget(active.info.run_id, mlflow.get_tracking_uri())
        targets.discard(current)
        write_dashboard(current, worker.client(current.tracking_uri))
    for target in sorted(targets, key=lambda t: t.run_id):
        client = worker.client(target.tracking_uri)
        if _running(client, target):
            write_dashboard(target, client)
    _start_timer()


def _start_timer() -> None:
    global _timer
    with _lock:
        if _timer is not None:
            return
        _timer = threading.Thread(
            target=_every_interval, name="mlflow-torch-dashboard", daemon=True
        )
    _timer.start()


def _every_interval() -> None:
    # Only queues: the build starts from the worker thread, after the uploads queued before it.
    from mlflow_plugin.torch.worker import get_worker

    worker = get_worker()
    while True:
        _tick.wait(INTERVAL_S / 10)
        _tick.clear()
        now = time.monotonic()
        with _lock:
            due = [t for t, at in _live.items() if now - at >= INTERVAL_S]
            for target in due:
                _live[target] = now
        for target in due:
            worker.enqueue(functools.partial(_rebuild_running, worker, target))


def _rebuild_running(worker: BackgroundWorker, target: RunTarget) -> None:
    """Rebuild a page on the timer while its run is RUNNING; forget the run after that
    (or once it is deleted: a deleted run keeps its RUNNING status)."""
    if _running(worker.client(target.tracking_uri), target):
        _build_in_child(target)


def _running(client: MlflowClient, target: RunTarget) -> bool:
    """Whether ``target`` is RUNNING (a deleted run keeps that status: it is not); a run
    that is not is forgotten, so neither a flush nor the timer rebuilds its page again."""
    try:
        info = client.get_run(target.run_id).info
        running = info.status == "RUNNING" and info.lifecycle_stage == "active"
    except Exception:  # the run or its store is gone: nothing left to keep up to date
        running = False
    if not running:
        with _lock:
            _live.pop(target, None)
    return running


def _build_in_child(target: RunTarget) -> None:
    """Start ``mlflow-bucket dashboard`` for ``target`` unless its last build still runs.

    Its output is dropped: the timer has nobody to tell, and the build at the run's last
    flush (in this process) warns about what fails.
    """
    with _lock:
        last = _children.get(target)
        if last is not None and last.poll() is None:
            return
        command = [sys.executable, "-m", "mlflow_plugin", "dashboard"]
        _children[target] = subprocess.Popen(
            [*command, target.tracking_uri, target.run_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _stop_child(target: RunTarget) -> None:
    with _lock:
        child = _children.pop(target, None)
    if child is not None and child.poll() is None:
        child.terminate()  # its upload is one put: the page is the old one or its own
        child.wait()

"""The one background thread of the helpers: drains scalars and runs queued uploads.

The training loop only appends to the scalar buffer or queues a task (rendering an
image, writing an artifact); this thread does the I/O every ``interval`` seconds or
when the buffer is large. What background work could not store is kept and raised, as
an MlflowException naming it, by the user's next logging call (``log_scalar``,
``submit``) or by ``flush()``, which drains everything in the caller's thread first, so
nothing is dropped silently and good points still land. The process's
``atexit`` hook flushes too; it runs before MLflow's own exit hook ends the active run,
because hooks run in reverse order of registration and MLflow registers at import.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable

from mlflow.tracking import MlflowClient

from mlflow_plugin.torch import distributed
from mlflow_plugin.torch.dashboard import after_flush
from mlflow_plugin.torch.errors import background_failure
from mlflow_plugin.torch.scalars import RunTarget, ScalarBuffer

__all__ = ["BackgroundWorker", "RunTarget", "current_target", "flush", "get_worker"]


class BackgroundWorker:
    """Drains a ScalarBuffer and runs tasks in submission order, on a daemon thread."""

    def __init__(self, interval: float = 2.0, synchronous: bool = False) -> None:
        self.interval = interval
        # In a forked child, which may end with os._exit (multiprocessing does) and skip
        # every exit hook: each call is logged before it returns, as the store does there.
        self.synchronous = synchronous
        self._clients: dict[str, MlflowClient] = {}
        self.scalars = ScalarBuffer(self.client)
        self._tasks: deque[Callable[[], None]] = deque()
        # Called by an explicit flush only (not the periodic drain): they queue final writes.
        self.flush_hooks: list[Callable[[], None]] = []
        self._errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="mlflow-torch-logger", daemon=True)
        if not synchronous:  # a synchronous worker drains in the caller's thread
            self._thread.start()

    def client(self, tracking_uri: str) -> MlflowClient:
        """One client per tracking URI, reused by every drain."""
        client = self._clients.get(tracking_uri)
        if client is None:
            client = self._clients[tracking_uri] = MlflowClient(tracking_uri)
        return client

    def log_scalar(
        self, target: RunTarget, key: str, value: object, step: int, timestamp_ms: int
    ) -> None:
        """Buffer one point for the user; first raises what background work failed to do
        (a call that raises queues nothing)."""
        if self._errors:
            self.raise_pending()
        if self.scalars.append(target, key, value, step, timestamp_ms):
            self._wake.set()
        if self.synchronous:
            self._drain_now()

    def log_scalars(
        self,
        target: RunTarget,
        values: Iterable[tuple[str, object]],
        step: int,
        timestamp_ms: int,
    ) -> None:
        """``log_scalar`` of each (key, value), all or none: one value refused refuses the
        call, as ``MlflowClient.log_batch`` refuses a batch."""
        if self._errors:
            self.raise_pending()
        entries = [self.scalars.entry(target, k, v, step, timestamp_ms) for k, v in values]
        if self.scalars.append_all(entries):
            self._wake.set()
        if self.synchronous:
            self._drain_now()

    def submit(self, task: Callable[[], None]) -> None:
        """Queue ``task`` for the user; first raises what background work failed to do."""
        if self._errors:
            self.raise_pending()
        self.enqueue(task)
        if self.synchronous:
            self._drain_now()

    def _drain_now(self) -> None:
        """Log what is queued in the caller's thread and raise what could not be (no
        flush hooks, no dashboard: those are for an explicit flush)."""
        with self._drain_lock:
            self._drain()
        self.raise_pending()

    def enqueue(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the worker thread, after every task queued before it.

        It runs at the next periodic drain (or ``flush()``): waking the thread for each
        task would cut the scalars' batches short and take the interpreter lock from
        the training loop more often.
        """
        self._tasks.append(task)

    def raise_pending(self) -> None:
        """Raise (once) an MlflowException for what background work could not do."""
        with self._errors_lock:
            errors, self._errors = self._errors, []
        if errors:
            raise background_failure(errors)

    def _record_error(self, exc: BaseException) -> None:
        with self._errors_lock:
            self._errors.append(exc)

    def flush(self) -> None:
        """Run pending tasks and log pending scalars now; raise what background work met."""
        with self._drain_lock:
            self._drain()
            # Hooks see what the drain just recorded and queue the final writes for it.
            for hook in list(self.flush_hooks):
                try:
                    hook()
                except Exception as exc:
                    self._record_error(exc)
            self._drain()
        after_flush(self)  # rebuilds dashboard.html from what is stored now; never raises
        self.raise_pending()

    def _drain(self) -> None:
        # Tasks first: a histogram task appends its percentile metrics to the scalars.
        for _ in range(len(self._tasks)):
            task = self._tasks.popleft()
            try:
                task()
            except Exception as exc:
                self._record_error(exc)
        try:
            for error in self.scalars.drain():
                self._record_error(error)
        except Exception as exc:  # unexpected: reported, and the worker thread lives on
            self._record_error(exc)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._drain_lock:
                self._drain()

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self.flush()


_worker: BackgroundWorker | None = None
_worker_lock = threading.Lock()
_forked = False  # this process is a fork of one that imported the helpers


def _after_fork_in_child() -> None:
    """The parent's worker thread does not exist here, and its queued points are the
    parent's to log: the child starts a worker of its own, which logs each call at once."""
    global _worker, _worker_lock, _forked
    _worker, _worker_lock, _forked = None, threading.Lock(), True


os.register_at_fork(after_in_child=_after_fork_in_child)


def get_worker() -> BackgroundWorker:
    """The process's worker, started on first use."""
    global _worker
    if _worker is None:
        with _worker_lock:
            if _worker is None:
                _worker = BackgroundWorker(synchronous=_forked)
                # The store's exit hook (closing its write buffers) must run after this
                # one, which logs what is queued here: atexit runs the last registered
                # first, and the store module registers its hook when first imported.
                import mlflow_plugin.tracking.write_buffer  # noqa: F401

                atexit.register(_flush_at_exit)
    return _worker


def flush() -> None:
    """Log everything the helpers have buffered so far (scalars, histograms, images).

    >>> from mlflow_plugin.torch import flush
    >>> flush()  # e.g. before reading metrics back with MlflowClient
    """
    if _worker is not None:
        _worker.flush()


def _flush_at_exit() -> None:
    try:
        flush()
    except Exception as exc:  # at exit there is nobody left to raise to
        print(f"mlflow_plugin.torch: logging at exit failed: {exc!r}", file=sys.stderr)


def current_target(run_id: str | None = None) -> RunTarget:
    """The run to log to: ``run_id`` if given, else the active run (started if none).

    When every rank of a process group logs, a rank other than 0 with no active run
    logs to the run it joined last, or waits for rank 0's next one (``distributed``).
    """
    import mlflow

    if run_id is None:
        active = mlflow.active_run()
        if active is not None:
            run_id = active.info.run_id
        else:
            run_id = distributed.last_joined_run_id() or distributed.joined_run_id()
        if run_id is None:
            run_id = mlflow.start_run().info.run_id
            distributed.publish_run_id(run_id)
    return RunTarget(run_id, mlflow.get_tracking_uri())

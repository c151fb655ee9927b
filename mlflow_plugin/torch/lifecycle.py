"""Ending a run the helpers started: always, with the status that tells what happened.

``SummaryWriter.close`` and leaving ``autolog`` flush before the run ends. A flush can
raise (background logging failed); the run must still end, and FAILED, since its record
is incomplete, rather than stay RUNNING forever. The error then reaches the caller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

import mlflow
from mlflow.entities import RunStatus

__all__ = ["FINISHED", "RunContext", "ending_run", "exit_status"]

FINISHED = RunStatus.to_string(RunStatus.FINISHED)


def exit_status(exc_type: type[BaseException] | None) -> str:
    """FINISHED, FAILED on an exception, KILLED on KeyboardInterrupt (a context's exit)."""
    if exc_type is None:
        return FINISHED
    if issubclass(exc_type, KeyboardInterrupt):
        return RunStatus.to_string(RunStatus.KILLED)
    return RunStatus.to_string(RunStatus.FAILED)


class RunContext:
    """A ``with`` block that ends in ``_finish(status)``, the status telling how it was left."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exit_status(exc_type))

    def _finish(self, status: str) -> None:
        raise NotImplementedError


@contextlib.contextmanager
def ending_run(run_id: str | None, status: str) -> Iterator[None]:
    """Do the closing work in the ``with`` body, then end the active run ``run_id``.

    ``run_id`` None leaves runs alone (the caller did not start one). The run ends with
    ``status``, or FAILED when the body raises; the body's error is re-raised, and an
    error ending the run (e.g. it was deleted meanwhile) does not hide it.
    """
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            _end(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    _end(run_id, status)


def _end(run_id: str | None, status: str) -> None:
    active = mlflow.active_run()
    if run_id is not None and active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)

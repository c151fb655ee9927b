"""How the helpers report background work that failed: MlflowExceptions that say what was lost.

The worker thread cannot raise into the training loop, so it keeps these and the user's
next logging call (or ``flush``/``close``) raises them, as MLflow's synchronous calls
would have. MLflow's error code of the cause is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, ErrorCode

from mlflow_plugin.format.segments import MetricPoint

__all__ = ["background_failure", "error_code", "unstored_points_error"]


def error_code(exc: BaseException) -> int:
    """MLflow's error code of ``exc`` (INTERNAL_ERROR for anything but an MlflowException)."""
    if isinstance(exc, MlflowException):
        return int(ErrorCode.Value(exc.error_code))
    return INTERNAL_ERROR


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, MlflowException) else repr(exc)


def unstored_points_error(
    run_id: str, lost: Sequence[MetricPoint], cause: BaseException
) -> MlflowException:
    """An MlflowException naming the run, the metrics and the points that were not stored."""
    counts: dict[str, int] = {}
    for point in lost:
        counts[point.key] = counts.get(point.key, 0) + 1
    names = ", ".join(f"{key!r} ({n})" for key, n in list(counts.items())[:10])
    more = f" and {len(counts) - 10} more metrics" if len(counts) > 10 else ""
    error = MlflowException(
        f"{len(lost)} metric point(s) of run {run_id} were not stored: {names}{more}. "
        f"Cause: {_reason(cause)}",
        error_code(cause),
    )
    error.__cause__ = cause
    return error


def background_failure(errors: list[BaseException]) -> MlflowException:
    """One MlflowException for everything background logging could not do since last told."""
    shown = "; ".join(_reason(e) for e in errors[:3])
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    error = MlflowException(
        f"Background logging failed ({len(errors)} error(s)): {shown}{more}",
        error_code(errors[0]),
    )
    error.__cause__ = errors[0]
    return error

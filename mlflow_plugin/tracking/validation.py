"""Checks MLflow's SQL store makes inline, shared by the bucket stores."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.tracking import SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.utils.validation import _validate_metric

from mlflow_plugin.format.segments import MetricPoint

__all__ = [
    "plain_metric_points",
    "plain_points",
    "stored_metric_value",
    "validate_max_results",
    "validate_metric_ranges",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Metric names MLflow's checks accepted (a pure function of the name), so a run's
# keys are checked once per process, not once per point. Bounded: past it, start over.
_valid_names: set[str] = set()
_MAX_VALID_NAMES = 100_000


def validate_max_results(max_results: Any, allow_null: bool = False) -> None:
    """``max_results`` must be a positive integer no larger than MLflow's threshold."""
    if max_results is None and allow_null:
        return
    if not isinstance(max_results, int) or max_results < 1:
        raise MlflowException(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
            "a positive integer",
            INVALID_PARAMETER_VALUE,
        )
    if max_results > SEARCH_MAX_RESULTS_THRESHOLD:
        raise MlflowException(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
            f"most {SEARCH_MAX_RESULTS_THRESHOLD}",
            INVALID_PARAMETER_VALUE,
        )


def validate_metric_ranges(metrics: list[Any]) -> None:
    """Steps and timestamps must be finite and fit in 64 bits (MLflow's int64 fields).

    MLflow's own checks accept any number; a step of 2**63 would fail only when its
    segment is encoded, long after ``log_batch`` returned, and poison the run's buffer.
    """
    for metric in metrics:
        for name in ("step", "timestamp"):
            value = getattr(metric, name)
            try:
                # int(inf) raises OverflowError. A fraction (1.5) is stored truncated, as an
                # int64 column of a database would round it (sqlite alone keeps it).
                ok = _INT64_MIN <= int(value) <= _INT64_MAX
            except (TypeError, ValueError, OverflowError):  # NaN, complex...
                ok = False
            if not ok:
                raise MlflowException(
                    f"Invalid value {value!r} for parameter '{name}' of metric {metric.key!r} "
                    "supplied: it must be a 64-bit integer",
                    INVALID_PARAMETER_VALUE,
                )


def stored_metric_value(value: float) -> float:
    """The value MLflow's SQL store gives back: +-inf become +-max float, -0.0 becomes 0.0.

    NaN stays NaN. Matching the reference store keeps results identical whichever
    backend a team uses.
    """
    value = float(value)
    if math.isinf(value):
        return sys.float_info.max if value > 0 else -sys.float_info.max
    return value + 0.0  # -0.0 + 0.0 == 0.0


def plain_metric_points(metrics: list[Any]) -> list[MetricPoint] | None:
    """The points as stored, if every metric is plain; None if any is not.

    Plain: a ``Metric`` with a valid name, a float value, an int timestamp in
    [0, 2**63) and an int step that fits in 64 bits. Such a metric passes MLflow's
    ``_validate_metric`` and ``validate_metric_ranges``, so a batch of them is checked
    in this one pass (what logging calls send, point after point). For anything else
    the caller runs the full checks, whose errors are MLflow's word for word.
    """
    if any(type(metric) is not Metric for metric in metrics):
        return None
    return _stored_points((m.key, m.value, m.timestamp, m.step) for m in metrics)


def plain_points(points: Sequence[MetricPoint]) -> list[MetricPoint] | None:
    """``plain_metric_points`` for metrics given as points, with no ``Metric`` each."""
    if any(type(point) is not MetricPoint for point in points):
        return None
    return _stored_points(points)


def _stored_points(rows: Iterable[tuple[Any, Any, Any, Any]]) -> list[MetricPoint] | None:
    """(key, value, timestamp, step) rows as stored points, or None if any is not plain."""
    stored: list[MetricPoint] = []
    for key, value, timestamp, step in rows:
        if not (
            type(key) is str
            and type(value) is float
            and type(timestamp) is int
            and type(step) is int
            and 0 <= timestamp <= _INT64_MAX
            and _INT64_MIN <= step <= _INT64_MAX
            and (key in _valid_names or _valid_name(key))
        ):
            return None
        # value - value is 0.0 for a finite value only (inf - inf and NaN give NaN).
        stored_value = value + 0.0 if value - value == 0.0 else stored_metric_value(value)
        stored.append(MetricPoint(key, stored_value, timestamp, step))
    return stored


def _valid_name(key: object) -> bool:
    if type(key) is not str:
        return False
    try:  # MLflow's whole metric check, with a value, time and step it accepts
        _validate_metric(key, 0.0, 0, 0)
    except MlflowException:
        return False
    if len(_valid_names) >= _MAX_VALID_NAMES:
        _valid_names.clear()
    _valid_names.add(key)
    return True

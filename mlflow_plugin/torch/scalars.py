"""A buffer of metric points that costs the training loop one append per value.

A value may be a Python number or a one-element tensor on any device. Appending never
reads a tensor (``.item()`` on a CUDA tensor waits for the GPU); at drain time the
tensors of each device are stacked and copied to the host once, and the points go to
the run's tracking store (what ``MlflowClient.log_batch`` calls) in chunks of at most
1,000 (MLflow's batch limit): to a bucket store as plain points (``log_points``, no
``Metric`` per point), to any other store as Metrics built once.

Names are mapped to keys MLflow accepts when a point is appended (``names.mlflow_key``),
so the upload cannot fail on a name. If a chunk still fails, it is split by metric and
each metric is tried alone: one refused metric, or one refused run, never takes the
points of the others with it. What could not be stored comes back from ``drain`` as
errors naming the run, the metrics and the number of points.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import DATA_LOSS, INVALID_PARAMETER_VALUE, ErrorCode
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.tracking import MlflowClient
from mlflow.tracking.fluent import get_active_model_id
from mlflow.utils.validation import MAX_METRICS_PER_BATCH

from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.summaries.names import mlflow_key
from mlflow_plugin.torch.distributed import rank_key
from mlflow_plugin.torch.errors import unstored_points_error

__all__ = [
    "PendingPoint",
    "RunTarget",
    "ScalarBuffer",
    "ScalarValue",
    "now_ms",
]

ScalarValue = float | int | torch.Tensor | Any
# A queued point: where it goes, its mapped key, value (float or tensor), step and time.
PendingPoint = tuple["RunTarget", str, Any, int, int]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DATA_LOSS = ErrorCode.Name(DATA_LOSS)  # an MlflowException's error_code


@dataclass(frozen=True)
class RunTarget:
    """Where points go: a run id and the tracking URI it lives under."""

    run_id: str
    tracking_uri: str


def now_ms() -> int:
    return int(time.time() * 1000)


class ScalarBuffer:
    """Pending metric points, appended by the training loop and drained by the worker.

    ``append`` is O(1) and thread-safe (a deque append); ``drain`` converts and logs.
    """

    def __init__(self, client_for: Callable[[str], MlflowClient], high_water: int = 20_000):
        self._client_for = client_for
        self._pending: deque[PendingPoint] = deque()
        # (run id, name) -> MLflow key: one lookup per call; two names never share a key in a run.
        self._keys: dict[tuple[str, str], str] = {}
        self.high_water = high_water

    def __len__(self) -> int:
        return len(self._pending)

    def append(
        self, target: RunTarget, key: str, value: ScalarValue, step: int, timestamp_ms: int
    ) -> bool:
        """Queue one point; True when enough are pending that a drain should start.

        ``key`` is mapped to a key MLflow accepts; a value or time MLflow would refuse is
        refused here, so nothing pending can fail the upload on its own.
        """
        self._pending.append(self.entry(target, key, value, step, timestamp_ms))
        return len(self._pending) >= self.high_water

    def append_all(self, entries: list[PendingPoint]) -> bool:
        """Queue points made by ``entry`` (all of a call, once every one was accepted)."""
        self._pending.extend(entries)
        return len(self._pending) >= self.high_water

    def append_mapped(
        self, target: RunTarget, key: str, value: ScalarValue, step: int, timestamp_ms: int
    ) -> bool:
        """``append`` of a key mapped already (a helper's derived metric, ``derived_key``)."""
        self._pending.append(self._mapped_entry(target, key, value, step, timestamp_ms))
        return len(self._pending) >= self.high_water

    def entry(
        self, target: RunTarget, key: str, value: ScalarValue, step: int, timestamp_ms: int
    ) -> PendingPoint:
        """The point ``append`` would queue (key mapped, value and time checked), unqueued."""
        slot = (target.run_id, key)
        mapped = self._keys.get(slot)
        if mapped is None:
            # "rank1/<key>" when every rank of a process group logs (distributed).
            mapped = self._keys[slot] = mlflow_key(rank_key(key), scope=target.run_id)
        return self._mapped_entry(target, mapped, value, step, timestamp_ms)

    @staticmethod
    def _mapped_entry(
        target: RunTarget, key: str, value: ScalarValue, step: int, timestamp_ms: int
    ) -> PendingPoint:
        step = int(step)
        if not (_INT64_MIN <= step <= _INT64_MAX and 0 <= timestamp_ms <= _INT64_MAX):
            raise MlflowException(
                f"metric {key!r}: the step must be a 64-bit integer and the time at or after "
                f"1970, got step {step} and {timestamp_ms} ms",
                INVALID_PARAMETER_VALUE,
            )
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"metric {key!r}: expected a one-element tensor, got {value.shape}"
                )
            # A copy of its value now, as TensorBoard reads it at the call: the tensor may
            # change in place before the drain (a running total). On a device the copy is
            # one queued kernel, not a sync; detached, it keeps no autograd graph alive.
            value = value.detach().clone()
        else:
            value = float(value)
        return (target, key, value, step, timestamp_ms)

    def drain(self) -> list[MlflowException]:
        """Log every point pending now; returns one error per chunk not (fully) stored."""
        count = len(self._pending)
        if not count:
            return []
        points = [self._pending.popleft() for _ in range(count)]
        values, unreadable = _host_values([p[2] for p in points])
        # What MlflowClient.log_batch would attach to each metric: the draining thread's
        # active model (MLFLOW_ACTIVE_MODEL_ID on the worker thread), read once, not per point.
        model_id = get_active_model_id()
        by_run: dict[RunTarget, list[MetricPoint]] = {}
        unread: dict[RunTarget, tuple[list[MetricPoint], BaseException]] = {}
        rows: list[MetricPoint] = []
        last: RunTarget | None = None
        for index, ((target, key, _, step, timestamp), value) in enumerate(
            zip(points, values, strict=True)
        ):
            if unreadable and index in unreadable:  # a tensor that could not be read
                lost, _cause = unread.setdefault(target, ([], unreadable[index]))
                lost.append(MetricPoint(key, math.nan, timestamp, step))
                continue
            if target is not last:  # points come in runs of one target: one lookup per run
                rows, last = by_run.setdefault(target, []), target
            rows.append(MetricPoint(key, value, timestamp, step))
        errors = [
            unstored_points_error(target.run_id, lost, cause)
            for target, (lost, cause) in unread.items()
        ]
        for target, run_points in by_run.items():
            log = _batch_logger(self._client_for(target.tracking_uri), target.run_id, model_id)
            for start in range(0, len(run_points), MAX_METRICS_PER_BATCH):
                chunk = run_points[start : start + MAX_METRICS_PER_BATCH]
                errors.extend(_log_chunk(log, target.run_id, chunk))
        return errors


def _batch_logger(
    client: MlflowClient, run_id: str, model_id: str | None
) -> Callable[[list[MetricPoint]], None]:
    """What stores a chunk of the run's points: the tracking store behind ``client``.

    Called directly, the points skip ``MlflowClient.log_batch``'s second copy of every
    Metric and its usage event per call; the store still checks every batch. A bucket
    store takes the points as they are (``log_points``: no ``Metric`` per point);
    another store, or points linked to a model, go through its ``log_batch``.
    """
    store: AbstractStore = client._tracking_client.store
    log_points = getattr(store, "log_points", None)
    if model_id is None and log_points is not None:
        return functools.partial(log_points, run_id)

    def log_metrics(chunk: list[MetricPoint]) -> None:
        metrics = [Metric(p.key, p.value, p.timestamp, p.step, model_id) for p in chunk]
        store.log_batch(run_id, metrics=metrics, params=[], tags=[])

    return log_metrics


def _log_chunk(
    log: Callable[[list[MetricPoint]], None], run_id: str, chunk: list[MetricPoint]
) -> list[MlflowException]:
    """Log ``chunk``; if it is refused, each metric alone. Errors for what was lost.

    A DATA_LOSS error names earlier batches the store could not keep (and stored nothing
    of this call): it is reported as it is and the chunk is tried again.
    """
    errors: list[MlflowException] = []
    try:
        log(chunk)
        return errors
    except Exception as exc:
        first = exc
    if isinstance(first, MlflowException) and first.error_code == _DATA_LOSS:
        errors.append(first)
        try:
            log(chunk)
            return errors
        except Exception as exc:
            first = exc
    by_key: dict[str, list[MetricPoint]] = {}
    for point in chunk:
        by_key.setdefault(point.key, []).append(point)
    if len(by_key) == 1:
        return [*errors, unstored_points_error(run_id, chunk, first)]
    lost: list[MetricPoint] = []
    cause: Exception = first
    for group in by_key.values():
        try:
            log(group)
        except Exception as exc:
            lost.extend(group)
            cause = exc
    return [*errors, unstored_points_error(run_id, lost, cause)] if lost else errors


def _host_values(values: list[Any]) -> tuple[list[float], dict[int, BaseException]]:
    """Floats for a mix of floats and tensors, and the exception of each tensor not read.

    A CPU tensor is read alone (``item()`` costs less than its share of a stack, and
    nothing waits); the tensors of any other device are stacked and copied once. A
    tensor that cannot be read gives NaN in the list and its exception in the dict.
    """
    result: list[Any] = list(values)
    unreadable: dict[int, BaseException] = {}
    on_device: dict[torch.device, list[int]] = {}
    for index, value in enumerate(result):
        if type(value) is float:  # append made every other value a tensor
            continue
        if value.is_cpu:
            try:
                result[index] = float(value.item())
            except Exception:  # a dtype float() refuses (complex): as a lone tensor below
                on_device.setdefault(value.device, []).append(index)
        else:
            on_device.setdefault(value.device, []).append(index)
    for indices in on_device.values():
        group = [result[i] for i in indices]
        try:
            hosts: list[float | BaseException] = list(_stacked_values(group))
        except Exception:  # e.g. one tensor on a device that cannot be read: each alone
            hosts = [_one_value(t) for t in group]
        for i, host in zip(indices, hosts, strict=True):
            if isinstance(host, BaseException):
                unreadable[i], host = host, math.nan
            result[i] = host
    return result, unreadable


def _stacked_values(group: list[torch.Tensor]) -> list[float]:
    try:  # the common case, 0-d tensors of one dtype, needs no per-tensor op
        stacked = torch.stack(group)
    except RuntimeError:
        stacked = torch.stack([t.reshape(()).to(torch.float64) for t in group])
    values: list[float] = stacked.reshape(-1).cpu().double().tolist()
    return values


def _one_value(tensor: torch.Tensor) -> float | BaseException:
    try:
        return float(tensor.reshape(()).to(torch.float64).cpu().item())
    except Exception as exc:
        return exc

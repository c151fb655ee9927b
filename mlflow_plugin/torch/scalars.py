"""A buffer of metric points that costs the training loop one append per value.

A value may be a Python number or a one-element tensor on any device. Appending never
reads a tensor (``.item()`` on a CUDA tensor waits for the GPU); at drain time the
tensors of each device are stacked and copied to the host once, and the points go to
``MlflowClient.log_batch`` in chunks of at most 1,000 (MLflow's batch limit).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, _validate_metric_name

__all__ = ["RunTarget", "ScalarBuffer", "ScalarValue"]

ScalarValue = float | int | torch.Tensor | Any


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
        self._pending: deque[tuple[RunTarget, str, Any, int, int]] = deque()
        self._valid_keys: set[str] = set()
        self.high_water = high_water

    def __len__(self) -> int:
        return len(self._pending)

    def append(
        self, target: RunTarget, key: str, value: ScalarValue, step: int, timestamp_ms: int
    ) -> bool:
        """Queue one point; True when enough are pending that a drain should start."""
        if key not in self._valid_keys:
            _validate_metric_name(key, "key")
            self._valid_keys.add(key)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"metric {key!r}: expected a one-element tensor, got {value.shape}"
                )
            # detach() so a loss tensor does not keep its autograd graph alive until the drain.
            value = value.detach()
        else:
            value = float(value)
        self._pending.append((target, key, value, int(step), timestamp_ms))
        return len(self._pending) >= self.high_water

    def drain(self) -> int:
        """Log every point pending now; returns how many were logged."""
        count = len(self._pending)
        points = [self._pending.popleft() for _ in range(count)]
        if not points:
            return 0
        values = _host_values(p[2] for p in points)
        by_run: dict[RunTarget, list[Metric]] = {}
        for (target, key, _, step, timestamp), value in zip(points, values, strict=True):
            by_run.setdefault(target, []).append(Metric(key, value, timestamp, step))
        for target, metrics in by_run.items():
            client = self._client_for(target.tracking_uri)
            for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
                chunk = metrics[start : start + MAX_METRICS_PER_BATCH]
                client.log_batch(target.run_id, metrics=chunk, synchronous=True)
        return count


def _host_values(values: Iterable[Any]) -> list[float]:
    """Floats for a mix of floats and tensors: one stack and one copy per device."""
    result: list[Any] = list(values)
    tensors: dict[torch.device, list[int]] = {}
    for index, value in enumerate(result):
        if isinstance(value, torch.Tensor):
            tensors.setdefault(value.device, []).append(index)
    for indices in tensors.values():
        group = [result[i] for i in indices]
        try:  # the common case, 0-d tensors of one dtype, needs no per-tensor op
            stacked = torch.stack(group)
        except RuntimeError:
            stacked = torch.stack([t.reshape(()).to(torch.float64) for t in group])
        for i, host in zip(indices, stacked.reshape(-1).cpu().double().tolist(), strict=True):
            result[i] = host
    return [float(v) for v in result]

"""Logging histograms to a run: percentile metrics, a picture per step, raw bins, an overview.

The training loop computes the bins on the device (``device_histogram``) and queues
the small packed tensor; the worker thread copies it to the host, appends the
percentile metrics (``<key>/p50``...), logs the step picture with
``mlflow.log_image(key="histograms/<key>", step=...)`` (the MLflow UI's step slider),
and writes the raw bins in immutable JSON Lines chunks. An explicit ``flush()``
(also run by ``SummaryWriter.close``, ``autolog``'s exit and at interpreter exit)
writes the last chunk and redraws ``histograms/<key>/overview.png``.

Names are mapped when the histogram is queued, in the caller's thread (``names``): the
metric prefix with room for ``/p100``, the folder and image key with MLflow's image-key
rule, so no tag can fail the worker's uploads.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mlflow_plugin.summaries.histograms import (
    CHUNK_RECORDS,
    HistogramStats,
    artifact_dir,
    percentiles,
    raw_chunk,
    render_overview,
    render_step,
    stats_from_json,
)
from mlflow_plugin.summaries.names import DERIVED_SUFFIX_ROOM, mlflow_key
from mlflow_plugin.torch.histograms import device_histogram, unpack_histogram
from mlflow_plugin.torch.worker import BackgroundWorker, RunTarget, current_target, get_worker

__all__ = ["log_histogram", "metric_prefix", "queue_histogram", "read_histograms"]

_HISTORY_LIMIT = 400


def metric_prefix(key: str) -> str:
    """The MLflow key that ``<prefix>/p50``, ``<prefix>/norm``... of histogram ``key`` share."""
    return mlflow_key(key, room=DERIVED_SUFFIX_ROOM)


@dataclass(frozen=True)
class _Names:
    """A histogram's MLflow names, mapped in the caller's thread."""

    metrics: str
    folder: str


@dataclass
class _Series:
    pending: list[HistogramStats] = field(default_factory=list)
    history: list[HistogramStats] = field(default_factory=list)
    overview_stale: bool = False


_series: dict[tuple[RunTarget, str], _Series] = {}
_series_lock = threading.Lock()
_hooked: set[int] = set()


def log_histogram(
    key: str,
    values: torch.Tensor | np.ndarray | Sequence[float],
    step: int | None = None,
    bins: int = 64,
    *,
    run_id: str | None = None,
    timestamp_ms: int | None = None,
    image: bool = True,
) -> None:
    """Log a histogram of ``values`` at ``step``: bins computed on the tensor's device.

    >>> import torch
    >>> from mlflow_plugin.torch import log_histogram
    >>> log_histogram("weights/fc1", model.fc1.weight, step=100)  # doctest: +SKIP

    Stores percentile metrics ``weights/fc1/p0`` ... ``/p100``, a picture per step
    under the image key ``histograms/weights/fc1``, raw bins in
    ``histograms/weights/fc1/*.jsonl`` and ``histograms/weights/fc1/overview.png``.
    """
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    queue_histogram(
        current_target(run_id), key, device_histogram(tensor, bins), step, timestamp_ms, image
    )


def queue_histogram(
    target: RunTarget,
    key: str,
    packed: torch.Tensor | HistogramStats,
    step: int | None,
    timestamp_ms: int | None,
    image: bool = True,
) -> None:
    """Hand a packed device histogram (or a host record) to the worker thread."""
    from mlflow_plugin.torch.scalars import now_ms

    worker = get_worker()
    if id(worker) not in _hooked:
        _hooked.add(id(worker))
        worker.flush_hooks.append(lambda: _queue_final_writes(worker))
    names = _Names(metric_prefix(key), artifact_dir(key))
    step = int(step or 0)
    timestamp = now_ms() if timestamp_ms is None else int(timestamp_ms)
    worker.submit(lambda: _record(worker, target, key, names, packed, step, timestamp, image))


def _record(
    worker: BackgroundWorker,
    target: RunTarget,
    key: str,
    names: _Names,
    packed: torch.Tensor | HistogramStats,
    step: int,
    timestamp: int,
    image: bool,
) -> None:
    if isinstance(packed, HistogramStats):
        stats = packed
    else:
        stats = unpack_histogram(packed, key, step, timestamp)
    for name, value in percentiles(stats).items():
        worker.scalars.append(target, f"{names.metrics}/{name}", value, step, timestamp)
    if image:
        worker.client(target.tracking_uri).log_image(
            target.run_id, render_step(stats), key=names.folder, step=step, timestamp=timestamp
        )
    with _series_lock:
        series = _series.setdefault((target, names.folder), _Series())
        series.pending.append(stats)
        series.history.append(stats)
        series.overview_stale = True
        if len(series.history) > _HISTORY_LIMIT:
            series.history = series.history[::2]  # thin evenly; the raw chunks keep everything
        full = len(series.pending) >= CHUNK_RECORDS
    if full:
        _write_chunk(worker, target, names.folder, series)


def _write_chunk(worker: BackgroundWorker, target: RunTarget, folder: str, series: _Series) -> None:
    with _series_lock:
        records, series.pending = series.pending, []
    if not records:
        return
    name, text = raw_chunk(records)
    worker.client(target.tracking_uri).log_text(target.run_id, text, f"{folder}/{name}")


def _write_overview(
    worker: BackgroundWorker, target: RunTarget, folder: str, series: _Series
) -> None:
    with _series_lock:
        history, series.overview_stale = list(series.history), False
    if history:
        figure = render_overview(history)
        path = f"{folder}/overview.png"
        worker.client(target.tracking_uri).log_figure(target.run_id, figure, path)


def _queue_final_writes(worker: BackgroundWorker) -> None:
    with _series_lock:
        stale = [(t, k, s) for (t, k), s in _series.items() if s.pending or s.overview_stale]
    for target, folder, series in stale:
        worker.enqueue(functools.partial(_write_chunk, worker, target, folder, series))
        worker.enqueue(functools.partial(_write_overview, worker, target, folder, series))


def read_histograms(run_id: str, key: str) -> list[HistogramStats]:
    """Every raw histogram record of ``key`` in a run, in step order.

    >>> [h.step for h in read_histograms(run_id, "weights/fc1")]  # doctest: +SKIP
    [0, 100, 200]
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    folder = artifact_dir(key)
    files = [
        f.path for f in MlflowClient().list_artifacts(run_id, folder) if f.path.endswith(".jsonl")
    ]
    records: list[HistogramStats] = []
    for path in files:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
        records.extend(stats_from_json(line) for line in text.splitlines() if line)
    return sorted(records, key=lambda r: (r.step, r.timestamp))

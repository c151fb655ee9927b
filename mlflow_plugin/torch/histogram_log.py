"""Logging histograms to a run: summary metrics, raw bins, step pictures, an overview.

The training loop computes the bins on the device (``device_histograms``, one packed
row per tensor) and queues the small packed tensor, or, on the CPU, queues a copy of
the values that the worker thread bins (``histogram_rows``); the worker copies the
rows to the host, appends the summary metrics (``<key>/mean`` and ``<key>/std``, or
``<key>/norm`` for ``watch``) and writes the raw bins in immutable JSON Lines chunks.
Pictures are drawn only by an explicit ``flush()`` (also run by
``SummaryWriter.close``, ``autolog``'s exit and at interpreter exit), never per step,
so they never take the interpreter from the training loop: the step pictures of the
histograms logged with ``image=True`` (``mlflow.log_image(key="histograms/<key>",
step=...)``, the MLflow UI's step slider) and ``histograms/<key>/overview.png``.
Between two flushes at most 400 step pictures per key wait (thinned evenly past that);
the raw bins keep every step.

Names are mapped when the histogram is queued, in the caller's thread (``names``): the
metric prefix with room for its suffixes, the folder and image key with MLflow's
image-key rule, so no tag can fail the worker's uploads.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mlflow_plugin.summaries.histograms import (
    CHUNK_RECORDS,
    SUMMARY_METRICS,
    HistogramStats,
    artifact_dir,
    raw_chunk,
    render_overview,
    render_step,
    stats_from_json,
    summary_metrics,
)
from mlflow_plugin.summaries.names import DERIVED_SUFFIX_ROOM, derived_key, mlflow_key
from mlflow_plugin.torch.distributed import logs_here, rank_key
from mlflow_plugin.torch.histograms import HostSnapshot, histogram_rows, unpack_histograms
from mlflow_plugin.torch.worker import BackgroundWorker, RunTarget, current_target, get_worker

__all__ = [
    "log_histogram",
    "metric_prefix",
    "queue_histogram",
    "queue_histograms",
    "read_histograms",
]

_HISTORY_LIMIT = 400


def metric_prefix(key: str, scope: Hashable = None) -> str:
    """The MLflow key that ``<prefix>/mean``, ``<prefix>/norm``... of histogram ``key`` share
    (within ``scope``, a run, two histogram keys never share a prefix)."""
    return mlflow_key(key, room=DERIVED_SUFFIX_ROOM, scope=scope)


@dataclass(frozen=True)
class _Names:
    """A histogram's MLflow names, mapped in the caller's thread: its summary metrics'
    keys (summary name -> key) and its artifact folder."""

    metrics: dict[str, str]
    folder: str


def _names(key: str, run_id: str, metrics: Sequence[str]) -> _Names:
    key = rank_key(key)  # "rank1/<key>" when every rank logs (distributed)
    if not isinstance(key, str):  # refused by the mapping with MLflow's error, uncached
        return _map_names(key, run_id, tuple(metrics))
    return _mapped_names(key, run_id, tuple(metrics))


def _map_names(key: str, run_id: str, metrics: tuple[str, ...]) -> _Names:
    prefix = metric_prefix(key, scope=run_id)
    derived = {metric: derived_key(prefix, metric, scope=run_id) for metric in metrics}
    return _Names(derived, artifact_dir(key, scope=run_id))


# watch maps the same keys every log_freq steps; a mapping never changes once made
_mapped_names = functools.lru_cache(maxsize=4096)(_map_names)


@dataclass
class _Series:
    pending: list[HistogramStats] = field(default_factory=list)
    history: list[HistogramStats] = field(default_factory=list)
    unpictured: list[HistogramStats] = field(default_factory=list)
    overview_stale: bool = False


_series: dict[tuple[RunTarget, str], _Series] = {}
_series_lock = threading.Lock()
_hooked: set[int] = set()


def _forget_after_fork() -> None:
    """A forked child starts empty: the parent's histograms are the parent's to write, and
    its lock may be held by a thread that does not exist in the child."""
    global _series, _series_lock, _hooked
    _series, _series_lock, _hooked = {}, threading.Lock(), set()


os.register_at_fork(after_in_child=_forget_after_fork)


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

    Stores the metrics ``weights/fc1/mean`` and ``weights/fc1/std``, raw bins in
    ``histograms/weights/fc1/*.jsonl`` (``read_histograms``), and, drawn at the next
    ``flush()``, a picture per step under the image key ``histograms/weights/fc1``
    (``image=False``: none) and ``histograms/weights/fc1/overview.png``. A sparse tensor
    is binned over its stored values (``histograms.stored_values``); an empty one raises
    ValueError here, as TensorBoard's ``add_histogram`` does.
    """
    if not logs_here():
        return
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    queue_histogram(
        current_target(run_id), key, histogram_rows([tensor], bins), step, timestamp_ms, image
    )


def queue_histogram(
    target: RunTarget,
    key: str,
    packed: torch.Tensor | HostSnapshot | HistogramStats,
    step: int | None,
    timestamp_ms: int | None,
    image: bool = True,
) -> None:
    """Hand one histogram (``histogram_rows`` of one tensor, a packed row or a host
    record) to the worker thread."""
    rows: torch.Tensor | HostSnapshot | list[HistogramStats]
    if isinstance(packed, HistogramStats):
        rows = [packed]
    elif isinstance(packed, torch.Tensor):
        rows = packed.reshape(1, -1)  # one packed row
    else:
        rows = packed
    queue_histograms(target, [key], rows, step, timestamp_ms, image=image)


def queue_histograms(
    target: RunTarget,
    keys: Sequence[str],
    packed: torch.Tensor | HostSnapshot | Sequence[HistogramStats],
    step: int | None,
    timestamp_ms: int | None,
    *,
    metrics: Sequence[str] = SUMMARY_METRICS,
    image: bool = True,
) -> None:
    """Hand the rows of a ``histogram_rows`` result (or host records) to the worker.

    ``metrics`` names the ``summary_metrics`` logged per key; ``image`` asks for a step
    picture per key, drawn at the next explicit flush.
    """
    from mlflow_plugin.torch.scalars import now_ms

    worker = get_worker()
    if id(worker) not in _hooked:
        _hooked.add(id(worker))
        worker.flush_hooks.append(lambda: _queue_final_writes(worker))
    names = [_names(k, target.run_id, metrics) for k in keys]
    keys = [rank_key(k) for k in keys]
    step = int(step or 0)
    timestamp = now_ms() if timestamp_ms is None else int(timestamp_ms)
    worker.submit(
        lambda: _record(worker, target, keys, names, packed, step, timestamp, tuple(metrics), image)
    )


def _record(
    worker: BackgroundWorker,
    target: RunTarget,
    keys: Sequence[str],
    names: Sequence[_Names],
    packed: torch.Tensor | HostSnapshot | Sequence[HistogramStats],
    step: int,
    timestamp: int,
    metrics: tuple[str, ...],
    image: bool,
) -> None:
    if isinstance(packed, torch.Tensor | HostSnapshot):
        records = unpack_histograms(packed, keys, step, timestamp)
    else:
        records = list(packed)
    for stats, name in zip(records, names, strict=True):
        for metric, value in summary_metrics(stats, metrics).items():
            worker.scalars.append_mapped(target, name.metrics[metric], value, step, timestamp)
        with _series_lock:
            series = _series.setdefault((target, name.folder), _Series())
            series.pending.append(stats)
            series.history.append(stats)
            if image:
                series.unpictured.append(stats)
                if len(series.unpictured) > _HISTORY_LIMIT:  # a long run with no flush
                    series.unpictured = series.unpictured[::2]
            series.overview_stale = True
            if len(series.history) > _HISTORY_LIMIT:
                series.history = series.history[::2]  # thin evenly; the raw chunks keep all
            full = len(series.pending) >= CHUNK_RECORDS
        if full:
            _write_chunk(worker, target, name.folder, series)


def _write_chunk(worker: BackgroundWorker, target: RunTarget, folder: str, series: _Series) -> None:
    with _series_lock:
        records, series.pending = series.pending, []
    if not records:
        return
    name, text = raw_chunk(records)
    worker.client(target.tracking_uri).log_text(target.run_id, text, f"{folder}/{name}")


def _write_pictures(
    worker: BackgroundWorker, target: RunTarget, folder: str, series: _Series
) -> None:
    """The step pictures not drawn yet, then the overview (at an explicit flush only)."""
    with _series_lock:
        unpictured, series.unpictured = series.unpictured, []
        history, series.overview_stale = list(series.history), False
    client = worker.client(target.tracking_uri)
    for stats in unpictured:
        picture = render_step(stats)
        client.log_image(
            target.run_id, picture, key=folder, step=stats.step, timestamp=stats.timestamp
        )
    if history:
        client.log_figure(target.run_id, render_overview(history), f"{folder}/overview.png")


def _queue_final_writes(worker: BackgroundWorker) -> None:
    with _series_lock:
        stale = [(t, k, s) for (t, k), s in _series.items() if s.pending or s.overview_stale]
    for target, folder, series in stale:
        worker.enqueue(functools.partial(_write_chunk, worker, target, folder, series))
        worker.enqueue(functools.partial(_write_pictures, worker, target, folder, series))


def read_histograms(run_id: str, key: str) -> list[HistogramStats]:
    """Every raw histogram record of ``key`` in a run, in step order.

    >>> [h.step for h in read_histograms(run_id, "weights/fc1")]  # doctest: +SKIP
    [0, 100, 200]
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    folder = artifact_dir(key, scope=run_id)  # this process's mapping when it logged the key
    files = [
        f.path for f in MlflowClient().list_artifacts(run_id, folder) if f.path.endswith(".jsonl")
    ]
    records: list[HistogramStats] = []
    for path in files:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
        records.extend(stats_from_json(line) for line in text.splitlines() if line)
    return sorted(records, key=lambda r: (r.step, r.timestamp))

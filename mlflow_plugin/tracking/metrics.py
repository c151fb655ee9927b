"""Metric history: reading a run's segments, and compacting small ones.

History comes back in MLflow's SQL order (timestamp, step, value) with exact
duplicates (same key, step, timestamp, value) dropped, as the SQL store's primary
key drops them. When a manifest holds more than ``COMPACT_AFTER_SEGMENTS`` small
segments, the writer merges them into one in a compare-and-swap and deletes the
merged objects after the swap; a reader that meets a just-deleted segment re-reads
the manifest.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from mlflow.entities import (
    Metric,
)
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.search_utils import SearchUtils

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import (
    Document,
)
from mlflow_plugin.format.segments import (
    MetricPoint,
    SegmentCache,
    SegmentInfo,
    decode_segment,
    encode_segment,
)
from mlflow_plugin.objectstore import (
    NotFound,
    ObjectStore,
)

__all__ = ["COMPACT_AFTER_SEGMENTS", "MetricHistoryMixin"]

COMPACT_AFTER_SEGMENTS = 16
_SMALL_SEGMENT_ROWS = 50_000


def _history_order(point: MetricPoint) -> tuple[int, int, float]:
    return (point.timestamp, point.step, 0.0 if math.isnan(point.value) else point.value)


class _CompactionLost(Exception):
    """The segments this compaction merged are no longer all in the manifest."""


class MetricHistoryMixin:
    """Metric-history methods of the tracking store."""

    # Provided by BucketTrackingStore.
    _store: ObjectStore
    _readers: ThreadPoolExecutor
    _errors: Callable[[], AbstractContextManager[None]]
    _segment_cache: SegmentCache
    _run_doc: Callable[[str], Document]
    _read_run: Callable[[str], Document]
    _cas_run: Callable[[str, Callable[[Document], Document]], Document]

    def _compact(self, experiment_id: str, run_id: str) -> None:
        """Merge the run's small segments into one; drop the merged objects after the swap."""
        # Runs inside a flush: read and swap without flushing again.
        doc = self._read_run(run_id)
        small = [
            SegmentInfo.from_json(s) for s in doc["segments"] if s["rows"] < _SMALL_SEGMENT_ROWS
        ]
        if len(small) < 2:
            return
        try:
            points = [
                p for info in small for p in self._segment_points(experiment_id, run_id, info.name)
            ]
        except NotFound:
            return  # another writer compacted these segments first
        # Random, so two processes (or a forked child) never pick the same name.
        name = f"c{uuid.uuid4().hex}"
        data, merged = encode_segment(name, points)
        self._store.put(keys.metric_segment_key(experiment_id, run_id, name), data)
        merged_names = {info.name for info in small}

        def mutate(current: Document) -> Document:
            present = {s["name"] for s in current["segments"]}
            if merged.name in present:
                return current  # our swap landed, its answer was lost and retried: done
            if not merged_names <= present:
                raise _CompactionLost()
            kept = [s for s in current["segments"] if s["name"] not in merged_names]
            current["segments"] = [merged.to_json(), *kept]
            return current

        try:
            self._cas_run(run_id, mutate)
        except _CompactionLost:
            # Another writer compacted first; our merged copy is named by no manifest.
            self._store.delete(keys.metric_segment_key(experiment_id, run_id, name))
            return
        self._segment_cache.put(name, points)
        for old in merged_names:
            self._segment_cache.discard(old)
            self._store.delete(keys.metric_segment_key(experiment_id, run_id, old))

    # -- metric history ----------------------------------------------------------------

    def _segment_points(self, experiment_id: str, run_id: str, name: str) -> list[MetricPoint]:
        cached = self._segment_cache.get(name)
        if cached is None:
            stored = self._store.get(keys.metric_segment_key(experiment_id, run_id, name))
            cached = decode_segment(stored.data)
            self._segment_cache.put(name, cached)
        return cached

    def _metric_points(self, run_id: str, metric_key: str) -> list[MetricPoint]:
        for _ in range(3):
            doc = self._run_doc(run_id)
            wanted = [s["name"] for s in doc["segments"] if metric_key in s["keys"]]
            try:
                read = functools.partial(self._segment_points, doc["experiment_id"], run_id)
                chunks = list(self._readers.map(read, wanted))
                break
            except NotFound:
                continue  # compacted between reading the manifest and the segment: re-read
        else:
            raise MlflowException(f"metric history of run {run_id} kept changing while read")
        seen: set[tuple[int, int, float | str]] = set()
        points: list[MetricPoint] = []
        for chunk in chunks:
            for point in chunk:
                if point.key != metric_key:
                    continue
                identity = (
                    point.step,
                    point.timestamp,
                    "nan" if math.isnan(point.value) else point.value,
                )
                if identity not in seen:
                    seen.add(identity)
                    points.append(point)
        points.sort(key=_history_order)
        return points

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        with self._errors():
            try:
                points = self._metric_points(run_id, metric_key)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                points = []  # MLflow's SQL store answers an unknown run with an empty history
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        page = points[offset:] if max_results is None else points[offset : offset + max_results]
        next_token = None
        if max_results is not None and len(points) > offset + max_results:
            next_token = SearchUtils.create_page_token(offset + max_results)
        return PagedList([Metric(p.key, p.value, p.timestamp, p.step) for p in page], next_token)

"""One metric's history as columns, in MLflow's SQL orders, without a Python object per point.

``get_metric_history`` needs MLflow ``Metric`` objects only for the page it returns,
and the charts' bulk-interval request only for the ~320 points it samples; a
million-point history is filtered, sorted, de-duplicated and sampled here as numpy
arrays. NaN is ordered as MLflow's SQL store stores it: value 0 with a NaN flag.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache

__all__ = ["HistoryCache", "MetricColumns"]


def _column(table: pa.Table, name: str) -> np.ndarray:
    # Chunk by chunk: ChunkedArray.to_numpy is an order of magnitude slower here.
    return np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in table[name].chunks])


def _in_order(*columns: np.ndarray) -> bool:
    """Whether the rows are already sorted by the columns (the first one primary)."""
    if len(columns[0]) < 2:
        return True
    undecided = np.ones(len(columns[0]) - 1, dtype=bool)
    for column in columns:
        earlier, later = column[:-1], column[1:]
        if np.any(undecided & (later < earlier)):
            return False
        undecided &= later == earlier
        if not undecided.any():
            return True
    return True


class MetricColumns:
    """One metric's points in history order, with the step order computed once on demand."""

    def __init__(self, steps: np.ndarray, timestamps: np.ndarray, values: np.ndarray) -> None:
        self.steps = steps
        self.timestamps = timestamps
        self.values = values
        self._step_order: np.ndarray | None = None

    @classmethod
    def of_key(
        cls, tables: Sequence[pa.Table], key: str, only_key: Sequence[bool] | None = None
    ) -> MetricColumns:
        """The points of ``key`` in MLflow's history order (timestamp, step, value), each
        distinct (step, timestamp, value) once, as the SQL store's primary key keeps them.

        ``only_key[i]`` says that table ``i`` holds no other key (its manifest entry says
        so), which spares filtering it.
        """
        sole = only_key or [False] * len(tables)
        parts = [
            table if alone else table.filter(pc.equal(table["key"], key))
            for table, alone in zip(tables, sole, strict=True)
        ]
        parts = [part for part in parts if part.num_rows]
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, np.empty(0, dtype=np.float64))
        table = pa.concat_tables(parts)
        steps = _column(table, "step")
        timestamps = _column(table, "timestamp")
        values = _column(table, "value")
        is_nan = np.isnan(values)
        as_stored = np.where(is_nan, 0.0, values) if is_nan.any() else values
        # Points are usually logged in order: a linear check spares the sort.
        if not _in_order(timestamps, steps, as_stored, is_nan):
            order = np.lexsort((is_nan, as_stored, steps, timestamps))
            steps, timestamps, values = steps[order], timestamps[order], values[order]
            is_nan, as_stored = is_nan[order], as_stored[order]
        distinct = np.ones(len(steps), dtype=bool)
        distinct[1:] = (
            (timestamps[1:] != timestamps[:-1])
            | (steps[1:] != steps[:-1])
            | (as_stored[1:] != as_stored[:-1])
            | (is_nan[1:] != is_nan[:-1])
        )
        if distinct.all():
            return cls(steps, timestamps, values)
        return cls(steps[distinct], timestamps[distinct], values[distinct])

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def nbytes(self) -> int:
        return int(self.steps.nbytes + self.timestamps.nbytes + self.values.nbytes) * 2

    def slice(self, start: int, stop: int | None) -> MetricColumns:
        return MetricColumns(
            self.steps[start:stop], self.timestamps[start:stop], self.values[start:stop]
        )

    def rows(self) -> list[tuple[float, int, int]]:
        """(value, timestamp, step) per point, as Python numbers."""
        return list(
            zip(self.values.tolist(), self.timestamps.tolist(), self.steps.tolist(), strict=True)
        )

    def _by_step(self) -> np.ndarray:
        """Positions in the chart order: (step, timestamp, value as stored, NaN flag)."""
        if self._step_order is None:
            is_nan = np.isnan(self.values)
            as_stored = np.where(is_nan, 0.0, self.values) if is_nan.any() else self.values
            columns = (self.steps, self.timestamps, as_stored, is_nan)
            self._step_order = (
                np.arange(len(self.steps))
                if _in_order(*columns)
                else np.lexsort(tuple(reversed(columns)))
            )
        return self._step_order

    def sampled(
        self, max_results: int, start_step: int | None, end_step: int | None
    ) -> MetricColumns:
        """What MLflow's SQL store returns for a chart: ``max_results`` evenly spaced points.

        Ordered by (step, timestamp, value); the points split into ``max_results``
        buckets as SQL's NTILE splits them, the first point of each kept, and the last
        point always kept (replacing the last sample when the page is full).
        """
        order = self._by_step()
        if start_step is not None and end_step is not None:
            steps_in_order = self.steps[order]
            low = int(np.searchsorted(steps_in_order, start_step, side="left"))
            high = int(np.searchsorted(steps_in_order, end_step, side="right"))
            order = order[low:high]
        total = len(order)
        if total <= max_results:
            picked = order
        else:
            # NTILE(n): the first (total % n) buckets hold one row more than the others.
            size, larger = divmod(total, max_results)
            chosen = [i * size + min(i, larger) for i in range(max_results)]
            chosen[-1] = total - 1  # the last point, in place of its bucket's first
            picked = order[chosen]
        return MetricColumns(self.steps[picked], self.timestamps[picked], self.values[picked])


class HistoryCache:
    """Sorted histories by (run, key, the segments they were read from), bounded in bytes.

    Segments are immutable, so a history read from the same segments is the same
    history: paging through a million points (MLflow's client asks 25,000 at a time)
    or redrawing a chart reads the run document and slices, nothing more.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._entries: LRUCache[Hashable, MetricColumns] = LRUCache(
            maxsize=max_bytes, getsizeof=_history_bytes
        )
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    def get(self, key: Hashable) -> MetricColumns | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: Hashable, history: MetricColumns) -> None:
        with self._lock:
            # One history larger than the whole cache is not kept (cachetools would raise).
            if key not in self._entries and history.nbytes <= self._max_bytes:
                self._entries[key] = history


def _history_bytes(history: MetricColumns) -> int:
    return history.nbytes

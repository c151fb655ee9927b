"""One metric's history as columns, in MLflow's SQL orders, without a Python object per point.

``get_metric_history`` needs MLflow ``Metric`` objects only for the page it returns,
and the charts' bulk-interval request only for the ~320 points it samples; a
million-point history is filtered, sorted, de-duplicated and sampled here as numpy
arrays. NaN is ordered as MLflow's SQL store stores it: value 0 with a NaN flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MetricColumns"]


@dataclass(frozen=True)
class MetricColumns:
    steps: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray

    @classmethod
    def of_key(cls, tables: Sequence[pa.Table], key: str) -> MetricColumns:
        """The points of ``key`` in MLflow's history order (timestamp, step, value), each
        distinct (step, timestamp, value) once, as the SQL store's primary key keeps them."""
        parts = [table.filter(pc.equal(table["key"], key)) for table in tables]
        parts = [part for part in parts if part.num_rows]
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, np.empty(0, dtype=np.float64))
        table = pa.concat_tables(parts)
        steps = table["step"].to_numpy()
        timestamps = table["timestamp"].to_numpy()
        values = table["value"].to_numpy()
        is_nan = np.isnan(values)
        as_stored = np.where(is_nan, 0.0, values)
        order = np.lexsort((is_nan, as_stored, steps, timestamps))
        steps, timestamps, values = steps[order], timestamps[order], values[order]
        is_nan, as_stored = is_nan[order], as_stored[order]
        distinct = np.ones(len(order), dtype=bool)
        distinct[1:] = (
            (timestamps[1:] != timestamps[:-1])
            | (steps[1:] != steps[:-1])
            | (as_stored[1:] != as_stored[:-1])
            | (is_nan[1:] != is_nan[:-1])
        )
        return cls(steps[distinct], timestamps[distinct], values[distinct])

    def __len__(self) -> int:
        return len(self.steps)

    def slice(self, start: int, stop: int | None) -> MetricColumns:
        return MetricColumns(
            self.steps[start:stop], self.timestamps[start:stop], self.values[start:stop]
        )

    def rows(self) -> list[tuple[float, int, int]]:
        """(value, timestamp, step) per point, as Python numbers."""
        return list(
            zip(self.values.tolist(), self.timestamps.tolist(), self.steps.tolist(), strict=True)
        )

    def sampled(
        self, max_results: int, start_step: int | None, end_step: int | None
    ) -> MetricColumns:
        """What MLflow's SQL store returns for a chart: ``max_results`` evenly spaced points.

        Ordered by (step, timestamp, value); the points split into ``max_results``
        buckets as SQL's NTILE splits them, the first point of each kept, and the last
        point always kept (replacing the last sample when the page is full).
        """
        keep = np.ones(len(self), dtype=bool)
        if start_step is not None and end_step is not None:
            keep = (self.steps >= start_step) & (self.steps <= end_step)
        steps, timestamps, values = self.steps[keep], self.timestamps[keep], self.values[keep]
        total = len(steps)
        if total == 0:
            return self.slice(0, 0)
        is_nan = np.isnan(values)
        as_stored = np.where(is_nan, 0.0, values)
        order = np.lexsort((is_nan, as_stored, timestamps, steps))
        if total <= max_results:
            chosen = list(range(total))
        else:
            # NTILE(n): the first (total % n) buckets hold one row more than the others.
            size, larger = divmod(total, max_results)
            chosen = [i * size + min(i, larger) for i in range(max_results)]
            if chosen[-1] != total - 1:
                chosen[-1] = total - 1
        picked = order[chosen]
        return MetricColumns(steps[picked], timestamps[picked], values[picked])

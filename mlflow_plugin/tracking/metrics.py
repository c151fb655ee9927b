"""Metric history: reading a run's segments for MLflow's history and chart calls.

History comes back in MLflow's SQL order (timestamp, step, value) with exact
duplicates (same key, step, timestamp, value) dropped, as the SQL store's primary
key drops them. Segments may be compacted meanwhile (``format.compaction``): a
reader that meets a just-deleted segment re-reads the manifest.
"""

from __future__ import annotations

import functools
import logging

from mlflow.entities import Metric
from mlflow.entities.metric import MetricWithRunId
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.search_utils import SearchUtils

from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import NotFound
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.page_tokens import offset_from_page_token
from mlflow_plugin.tracking.context import StoreContext
from mlflow_plugin.tracking.history import MetricColumns

__all__ = ["MetricHistory"]

_logger = logging.getLogger(__name__)

# Sorted histories this long are also kept on local disk, for the next process.
_STORED_HISTORY_POINTS = 100_000


class MetricHistory:
    """Metric-history reads of the tracking store, over the shared ``StoreContext``."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def _metric_columns(self, run_id: str, metric_key: str) -> MetricColumns:
        """The metric's history, read from only the segments whose manifest entry names it."""
        missing: NotFound | None = None
        for _ in range(3):
            doc = self._context.run_doc(run_id)
            holding = [s for s in doc["segments"] if metric_key in s["keys"]]
            wanted = [s["name"] for s in holding]
            cache_key = (run_id, metric_key, tuple(wanted))
            cached = self._context.history_cache.get(cache_key) or self._stored_history(
                doc["experiment_id"], cache_key
            )
            if cached is not None:
                return cached
            try:
                read = functools.partial(self._context.segment_table, doc["experiment_id"], run_id)
                tables = list(self._context.readers.map(read, wanted))
                break
            except NotFound as exc:
                missing = exc  # compacted between reading the manifest and the segment: re-read
        else:
            # Three manifests in a row named a segment that is not there: not a race.
            raise CorruptObject(
                f"metric history of run {run_id} is damaged: a segment its manifest names is "
                f"missing ({missing})"
            )
        only_key = [s["keys"] == [metric_key] for s in holding]
        history = MetricColumns.of_key(tables, metric_key, only_key)
        self._context.history_cache.put(cache_key, history)
        if len(history) >= _STORED_HISTORY_POINTS:
            self._context.history_files.put(
                [doc["experiment_id"], run_id, metric_key, *wanted],
                (history.steps, history.timestamps, history.values),
            )
        return history

    def _stored_history(
        self, experiment_id: str, cache_key: tuple[str, str, tuple[str, ...]]
    ) -> MetricColumns | None:
        run_id, metric_key, names = cache_key
        columns = self._context.history_files.get([experiment_id, run_id, metric_key, *names])
        if columns is None:
            return None
        history = MetricColumns(*columns)
        self._context.history_cache.put(cache_key, history)
        return history

    def _history_or_empty(self, run_id: str, metric_key: str) -> MetricColumns:
        try:
            return self._metric_columns(run_id, metric_key)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            # MLflow's SQL store answers an unknown run with an empty history.
            return MetricColumns.of_key([], metric_key)

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        offset = offset_from_page_token(page_token)
        with mlflow_errors():
            history = self._history_or_empty(run_id, metric_key)
        stop = None if max_results is None else offset + max_results
        page = history.slice(offset, stop)
        next_token = None
        if stop is not None and len(history) > stop:
            next_token = SearchUtils.create_page_token(stop)
        return PagedList([Metric(metric_key, v, t, s) for v, t, s in page.rows()], next_token)

    def get_metric_history_bulk_interval(
        self,
        run_ids: list[str],
        metric_key: str,
        max_results: int,
        start_step: int | None,
        end_step: int | None,
    ) -> list[MetricWithRunId]:
        """The points a chart draws: per run, ``max_results`` sampled as MLflow's SQL store
        samples them, without building an object for every point of a long history."""
        if (start_step is None) != (end_step is None):
            raise MlflowException.invalid_parameter_value(
                "Both start_step and end_step must be specified together, "
                "or neither may be specified."
            )
        max_results = max(1, max_results)
        sampled: list[MetricWithRunId] = []
        with mlflow_errors():
            for run_id in run_ids:
                history = self._chart_history(run_id, metric_key)
                points = history.sampled(max_results, start_step, end_step)
                sampled.extend(
                    MetricWithRunId(Metric(metric_key, v, t, s), run_id)
                    for v, t, s in points.rows()
                )
        return sampled

    def get_metric_history_bulk_interval_from_steps(
        self, run_id: str, metric_key: str, steps: list[int], max_results: int
    ) -> list[MetricWithRunId]:
        """The run's points at ``steps`` in (step, timestamp) order, at most ``max_results``."""
        wanted = set(steps)
        with mlflow_errors():
            history = self._chart_history(run_id, metric_key)
        rows = sorted(
            ((s, t, v) for v, t, s in history.rows() if s in wanted), key=lambda r: (r[0], r[1])
        )
        return [
            MetricWithRunId(Metric(metric_key, v, t, s), run_id) for s, t, v in rows[:max_results]
        ]

    def get_metric_history_bulk(
        self, run_ids: list[str], metric_key: str, max_results: int
    ) -> list[MetricWithRunId]:
        """What the server's get-history-bulk endpoint answers (its own loop over
        ``get_metric_history`` would fail the whole request for one damaged run)."""
        found: list[MetricWithRunId] = []
        with mlflow_errors():
            for run_id in sorted(run_ids):
                history = self._chart_history(run_id, metric_key).slice(0, max_results)
                found.extend(
                    MetricWithRunId(Metric(metric_key, v, t, s), run_id)
                    for v, t, s in history.rows()
                )
        return found

    def _chart_history(self, run_id: str, metric_key: str) -> MetricColumns:
        """The history, or none for a damaged run: the UI charts up to 100 runs in one
        request, and one damaged run must not take the other charts with it."""
        try:
            return self._history_or_empty(run_id, metric_key)
        except CorruptObject as exc:
            _logger.warning("run %s left out of the chart: %s", run_id, exc)
            return MetricColumns.of_key([], metric_key)

"""A run's full metric history as a table: columns key, step, timestamp, value.

>>> rows = export_metrics("bucket+file:./mlruns-bucket", run_id, "loss.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import pyarrow as pa

__all__ = ["FORMATS", "MissingMetrics", "export_metrics", "metric_table"]

FORMATS = ("parquet", "csv")

_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("step", pa.int64()),
        ("timestamp", pa.int64()),
        ("value", pa.float64()),
    ]
)


class MissingMetrics(ValueError):
    """Metric keys asked for that the run never logged."""


def metric_table(
    tracking_uri: str,
    run_id: str,
    keys: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> pa.Table:
    """Every point of the run's metrics (all of them, or ``keys``), key by key in history order."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    logged = sorted(client.get_run(run_id).data.metrics)
    wanted = list(dict.fromkeys(keys)) if keys else logged
    missing = [key for key in wanted if key not in logged]
    if missing:
        raise MissingMetrics(f"run {run_id} has no metric {', '.join(map(repr, missing))}")
    columns: dict[str, list[object]] = {"key": [], "step": [], "timestamp": [], "value": []}
    for done, key in enumerate(wanted):
        if progress is not None:
            progress("reading metrics", done, len(wanted))
        for metric in client.get_metric_history(run_id, key):
            columns["key"].append(metric.key)
            columns["step"].append(metric.step)
            columns["timestamp"].append(metric.timestamp)
            columns["value"].append(metric.value)
    if progress is not None:
        progress("reading metrics", len(wanted), len(wanted))
    return pa.table(columns, schema=_SCHEMA)


def export_metrics(
    tracking_uri: str,
    run_id: str,
    output: str | os.PathLike[str],
    file_format: str = "parquet",
    keys: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> int:
    """Write the run's metric history to ``output`` (Parquet or CSV); return the row count."""
    if file_format not in FORMATS:
        raise ValueError(f"unknown format {file_format!r}; choose one of {', '.join(FORMATS)}")
    table = metric_table(tracking_uri, run_id, keys, progress)
    if file_format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output, compression="zstd")
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, output)
    return int(table.num_rows)

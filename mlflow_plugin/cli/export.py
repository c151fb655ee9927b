"""``export URI RUN_ID``: a run's metric history to Parquet or CSV."""

from __future__ import annotations

import argparse

from mlflow_plugin.cli.common import EXIT_OK, Command, CommandFailed, Output, argument

__all__ = ["COMMAND"]


def _export(args: argparse.Namespace, out: Output) -> int:
    from mlflow_plugin.transfer.metric_export import MissingMetrics, export_metrics

    with out.progress() as progress:
        try:
            rows = export_metrics(
                args.uri, args.run_id, args.output, args.file_format, args.metrics, progress
            )
        except MissingMetrics as exc:
            raise CommandFailed(str(exc)) from exc
    out.info(f"wrote {rows} rows to {args.output} ({args.file_format})")
    return EXIT_OK


COMMAND = Command(
    "export",
    help="write a run's metric history to Parquet or CSV",
    description=(
        "Write every point of a run's metrics (or of the --metric keys) as a table "
        "with the columns key, step, timestamp (ms since the epoch), value."
    ),
    body=_export,
    arguments=(
        argument("run_id", metavar="RUN_ID", help="the run whose metrics to export"),
        argument("--format", choices=("parquet", "csv"), required=True, dest="file_format"),
        argument("--output", "-o", required=True, metavar="PATH", help="file to write"),
        argument(
            "--metric",
            action="append",
            metavar="KEY",
            dest="metrics",
            help="export only this metric (repeat for several); default: all",
        ),
    ),
)

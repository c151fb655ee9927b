"""``import-tensorboard LOGDIR URI``: TensorBoard event files into MLflow runs.

The logic lives in ``mlflow_plugin.transfer.tensorboard_import``; this module parses
and prints.
"""

from __future__ import annotations

import argparse

from mlflow_plugin.cli.common import EXIT_OK, Command, CommandFailed, Output, argument

__all__ = ["COMMAND"]


def _import(args: argparse.Namespace, out: Output) -> int:
    from mlflow_plugin.transfer.tensorboard_import import MissingDependency, import_logdir

    with out.progress() as progress:
        try:
            summary = import_logdir(args.logdir, args.uri, args.experiment, progress)
        except MissingDependency as exc:
            raise CommandFailed(str(exc)) from exc
    out.info(
        f"runs: {summary.runs_created} imported, {summary.runs_skipped} already imported "
        f"(skipped), {summary.runs_replaced} unfinished imports redone"
    )
    out.info(f"scalars:    {summary.scalars} points")
    out.info(f"histograms: {summary.histograms} steps")
    out.info(f"images:     {summary.images}")
    out.info(f"texts:      {summary.texts}")
    out.info(f"hparams:    {summary.hparams} params")
    return EXIT_OK


COMMAND = Command(
    "import-tensorboard",
    help="import TensorBoard event files: one MLflow run per event folder",
    description=(
        "Create one MLflow run per folder of LOGDIR holding event files (run name: "
        "the folder's path relative to LOGDIR). Scalars become metrics (step and wall "
        "time kept); histograms become percentile metrics, step pictures and raw-bin "
        "artifacts; images become step images; text becomes artifacts "
        "text/<tag>/step-<n>.md; add_hparams values become params. Runs are tagged "
        "with their source folder: running the command again skips folders already "
        "imported. Needs TensorBoard, not PyTorch: in the mlflow-bucket clone, "
        "pip install -c constraints.txt '.[tensorboard]'."
    ),
    body=_import,
    before_uri=(argument("logdir", metavar="LOGDIR", help="TensorBoard log directory"),),
    arguments=(
        argument(
            "--experiment",
            metavar="NAME",
            help="experiment to import into, created if missing (default: LOGDIR's folder name)",
        ),
    ),
)

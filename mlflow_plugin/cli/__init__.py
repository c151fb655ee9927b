"""Command line: ``python -m mlflow_plugin COMMAND`` (also installed as ``mlflow-bucket``).

Each command is a module of this package declaring one ``Command`` (name, help, its
own arguments and its body; ``common`` adds the URI, ``--quiet``, the exit-code help
and the output); registering a new one is one line in ``COMMANDS``. Command bodies
import their heavy dependencies when they run, so ``--help`` is quick.

Exit codes scripts can rely on: 0 success, 1 problems found or the operation
failed, 2 bad usage (arguments, a malformed store URI).

>>> main(["doctor", "bucket+file:./mlruns-bucket"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import mlflow_plugin.cli.checkpoint as checkpoint
import mlflow_plugin.cli.dashboard as dashboard
import mlflow_plugin.cli.doctor as doctor
import mlflow_plugin.cli.export as export
import mlflow_plugin.cli.gc as gc
import mlflow_plugin.cli.import_tensorboard as import_tensorboard
import mlflow_plugin.cli.reindex as reindex
import mlflow_plugin.cli.sync as sync
from mlflow_plugin.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    Command,
    CommandFailed,
    UsageError,
)

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[Command, ...] = tuple(
    module.COMMAND
    for module in (doctor, sync, reindex, checkpoint, gc, import_tensorboard, export, dashboard)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlflow-bucket",
        description="Operate an mlflow-bucket store (bucket+s3://... or bucket+file:...).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (argparse's 2 for bad usage, 0 for ``--help``)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from mlflow.exceptions import MlflowException

    from mlflow_plugin.objectstore import InvalidStoreUri, ObjectStoreError

    try:
        code: int = args.run(args)
    except (UsageError, InvalidStoreUri) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandFailed, ObjectStoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except MlflowException as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code

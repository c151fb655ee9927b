"""``sync URI``: upload what crashed writers left in this machine's local spool."""

from __future__ import annotations

import argparse
import sys

from mlflow_plugin.cli.common import (
    EXIT_OK,
    CommandFailed,
    Output,
    add_command_parser,
    add_uri_argument,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command_parser(
        subparsers,
        "sync",
        help="upload what crashed writers left in this machine's local spool",
        description=(
            "Replay the local spool of writers that died before uploading (a killed "
            "training process, an endpoint that was down). Each batch carries its "
            "writer's sequence number, so replaying twice changes nothing.\n\n"
            "Every batch is tried. A run whose batch cannot be stored (a damaged run "
            "document, an endpoint that refuses it) keeps that batch and its later ones "
            "in the spool; the others are uploaded. Exits 1 naming each run left, its "
            "counts and the reason, and each spool file that cannot be read (kept as it "
            "is); run sync again once the cause is fixed."
        ),
        run=run,
    )
    add_uri_argument(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_plugin.tracking.store import BucketTrackingStore

    out = Output(args.quiet)
    store = BucketTrackingStore(args.uri, recover_in_background=False)
    try:
        report = store.recover_spools()
    finally:
        store.close()
    out.info(f"replayed {report.batches} sealed batches and {report.lines} buffered log calls")
    for problem in report.problems():
        print(problem, file=sys.stderr)
    if not report.complete:
        raise CommandFailed(
            f"{len(report.left)} runs left in the spool and {len(report.damaged)} damaged "
            "spool files (listed above); fix the cause and run sync again"
        )
    return EXIT_OK

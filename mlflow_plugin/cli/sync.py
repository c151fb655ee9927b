"""``sync URI``: upload what crashed writers left in this machine's local spool."""

from __future__ import annotations

import argparse

from mlflow_plugin.cli.common import EXIT_OK, Output, add_command_parser, add_uri_argument

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command_parser(
        subparsers,
        "sync",
        help="upload what crashed writers left in this machine's local spool",
        description=(
            "Replay the local spool of writers that died before uploading (a killed "
            "training process, an endpoint that was down). Each batch carries its "
            "writer's sequence number, so replaying twice changes nothing."
        ),
        run=run,
    )
    add_uri_argument(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_plugin.tracking.store import BucketTrackingStore

    out = Output(args.quiet)
    store = BucketTrackingStore(args.uri, recover_in_background=False)
    try:
        batches, lines = store.recover_spools()
    finally:
        store.close()
    out.info(f"replayed {batches} sealed batches and {lines} buffered log calls")
    return EXIT_OK

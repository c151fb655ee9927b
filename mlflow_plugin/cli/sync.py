"""``sync URI``: upload what crashed writers left in this machine's local spool."""

from __future__ import annotations

import argparse

from mlflow_plugin.cli.common import EXIT_OK, Command, CommandFailed, Output

__all__ = ["COMMAND"]


def _sync(args: argparse.Namespace, out: Output) -> int:
    from mlflow_plugin.tracking.store import BucketTrackingStore

    store = BucketTrackingStore(args.uri, recover_in_background=False)
    try:
        report = store.recover_spools()
    finally:
        store.close()
    out.info(f"replayed {report.batches} sealed batches and {report.lines} buffered log calls")
    for problem in report.problems():
        out.error(problem)
    if not report.complete:
        raise CommandFailed(
            f"{len(report.left)} runs left in the spool and {len(report.damaged)} damaged "
            "spool files (listed above); fix the cause and run sync again"
        )
    if report.refused:
        raise CommandFailed(
            f"{len(report.refused)} batches older than the writer retention were refused "
            "and removed (listed above): their points are not stored"
        )
    return EXIT_OK


COMMAND = Command(
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
        "is); run sync again once the cause is fixed. A batch older than the writer "
        "retention (a week) that may have been applied by a writer its run document "
        "has forgotten is refused, removed and named, and sync exits 1: whether it was "
        "applied already cannot be told."
    ),
    body=_sync,
)

"""``gc URI``: delete orphan metric segments and runs/experiments deleted long ago.

The logic lives in ``mlflow_plugin.format.garbage``; this module parses and prints.
"""

from __future__ import annotations

import argparse
from functools import partial

from mlflow_plugin.cli.common import (
    EXIT_OK,
    Command,
    CommandFailed,
    Output,
    argument,
    human_bytes,
    non_negative,
    store_uri,
)
from mlflow_plugin.format.garbage import DEFAULT_GRACE_HOURS, DEFAULT_OLDER_THAN_DAYS

__all__ = ["COMMAND"]


def _gc(args: argparse.Namespace, out: Output) -> int:
    from mlflow_plugin.format import change_journal
    from mlflow_plugin.format.garbage import KINDS, collect_garbage
    from mlflow_plugin.objectstore import open_object_store, parse_store_uri
    from mlflow_plugin.objectstore.observed import ObservedObjectStore

    location = parse_store_uri(args.uri)
    bucket = open_object_store(location)
    # Journaled, as a tracking store's writes: searches elsewhere learn of each purge.
    store = ObservedObjectStore(bucket, lambda key: None, partial(change_journal.record, bucket))
    with out.progress() as progress:
        report = collect_garbage(
            store,
            location,
            older_than_days=args.older_than,
            grace_hours=args.grace_hours,
            dry_run=args.dry_run,
            artifacts_destination=args.artifacts_destination,
            progress=progress,
        )
    verb = "would delete" if args.dry_run else "deleted"
    for item in report.items:
        out.info(f"{verb} {item}")
    for uri in sorted(set(report.artifacts_left)):
        out.info(f"left alone (outside the root's artifact folders): {uri}")
    out.info(
        f"{'dry run: ' if args.dry_run else ''}{verb} {report.objects} objects, "
        f"{human_bytes(report.bytes)}"
    )
    for kind in KINDS:
        out.info(f"  {kind}: {report.counts[kind]}")
    if not args.dry_run:
        from mlflow_plugin.index.checkpoints import collect_checkpoints

        out.info(f"  older index checkpoints: {len(collect_checkpoints(store))}")
    for line in report.damaged:
        out.error(f"kept, cannot be read: {line}")
    if report.damaged:
        raise CommandFailed(
            f"{len(report.damaged)} documents cannot be read (listed above): they and what "
            "they name were kept; fix or remove them and run gc again"
        )
    return EXIT_OK


COMMAND = Command(
    "gc",
    help="permanently delete orphan segments and runs/experiments deleted long ago",
    description=(
        "Permanently delete what MLflow only marked as deleted, once it has been "
        "deleted for --older-than days: runs (document, pointer, metric segments, "
        "and their artifacts when they are the run's own folder under "
        "<root>/artifacts/), experiments (with all their runs, logged models and name "
        "claim) and logged models. Also delete metric segments no run manifest names "
        "and run pointers without a run, once older than --grace-hours (a writer "
        "uploads a segment just before entering it in the manifest), change-journal entries "
        "older than 7 days and index checkpoints beyond the newest two. Artifacts outside "
        "the root are never touched; they are listed instead. A document that cannot be "
        "read is kept with what it names; gc then exits 1 naming it."
    ),
    body=_gc,
    arguments=(
        argument(
            "--older-than",
            type=non_negative,
            default=DEFAULT_OLDER_THAN_DAYS,
            metavar="DAYS",
            help="delete what was deleted more than DAYS ago (default: %(default)g)",
        ),
        argument(
            "--grace-hours",
            type=non_negative,
            default=DEFAULT_GRACE_HOURS,
            metavar="H",
            help="an unreferenced segment or pointer must be older than H hours to be an "
            "orphan (default: %(default)g)",
        ),
        argument(
            "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
        ),
        argument(
            "--artifacts-destination",
            type=store_uri,
            metavar="URI",
            help="where mlflow-artifacts:/ URIs point (the server's --artifacts-destination); "
            "default: <root>/artifacts",
        ),
    ),
)

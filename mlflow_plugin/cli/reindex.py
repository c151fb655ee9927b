"""``reindex URI``: rebuild this machine's query index of a root from the bucket.

A damaged index file is replaced by opening it (see ``index.database``); a database
that cannot be used at all (a folder that cannot be written, a server that refuses)
is reported in one line, exit 1.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from mlflow_plugin.cli.common import EXIT_FAILED, EXIT_OK, Command, CommandFailed, Output, argument

if TYPE_CHECKING:
    from mlflow_plugin.index.query_index import QueryIndex
    from mlflow_plugin.index.sync import SyncReport

__all__ = ["COMMAND"]


def _reindex(args: argparse.Namespace, out: Output) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from mlflow_plugin.index.database import unusable_index
    from mlflow_plugin.tracking.store import BucketTrackingStore

    store = BucketTrackingStore(args.uri, recover_in_background=False)
    try:
        index = store._index()
        started = time.monotonic()
        report = _rebuild(index, out, keep=args.keep)
        elapsed = time.monotonic() - started
    except SQLAlchemyError as exc:  # the index translates its own; a last safety net
        raise CommandFailed(unusable_index(exc).message) from None
    finally:
        store.close()
    out.info(
        f"indexed {report.listed} documents in {elapsed:.1f} s: fetched {report.fetched}, "
        f"removed {report.removed}, left out as damaged {report.unmirrorable} "
        f"({index.url_for_display})"
    )
    return EXIT_OK if report.unmirrorable == 0 else EXIT_FAILED


def _rebuild(index: QueryIndex, out: Output, *, keep: bool) -> SyncReport:
    if not keep:
        index.clear()
    with out.progress() as progress:
        experiments = index.experiment_count()
        done = 0

        def advance(scope: str, _report: object) -> None:
            nonlocal done
            if scope != "experiments":
                done += 1
            progress("experiments indexed", done, experiments)

        return index.sync_everything(on_progress=advance)


COMMAND = Command(
    "reindex",
    help="rebuild the local query index of a store from the bucket",
    description=(
        "Drop this machine's query index of the store (a SQLite file in the user "
        "cache, or the database named by the URI's index= option or "
        "MLFLOW_BUCKET_INDEX_URL) and fill it again from the bucket's documents. "
        "The index is only a cache: searches rebuild it by themselves; this "
        "command does it ahead of time, e.g. before a server starts."
    ),
    body=_reindex,
    arguments=(
        argument(
            "--keep",
            action="store_true",
            help="keep the current index and only bring it up to date (fetch changed documents)",
        ),
    ),
)

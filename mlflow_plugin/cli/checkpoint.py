"""``checkpoint URI``: bring this machine's index up to date and leave a checkpoint of it.

A new machine (a laptop, a CI job, a server pod) then opens the bucket from that
snapshot instead of reading every run document (see ``index.checkpoints``).
"""

from __future__ import annotations

import argparse
import time

from mlflow_plugin.cli.common import EXIT_OK, Command, CommandFailed, Output

__all__ = ["COMMAND"]


def _checkpoint(args: argparse.Namespace, out: Output) -> int:
    from mlflow.exceptions import MlflowException

    from mlflow_plugin.tracking.store import BucketTrackingStore

    store = BucketTrackingStore(args.uri, recover_in_background=False)
    try:
        index = store.context.index()
        started = time.monotonic()
        report = index.sync_everything()
        try:
            checkpoint = index.write_checkpoint()
        except MlflowException as exc:
            raise CommandFailed(exc.message) from None
        elapsed = time.monotonic() - started
    finally:
        store.close()
    if checkpoint is None:
        raise CommandFailed("the index holds nothing to checkpoint yet")
    out.info(
        f"wrote {checkpoint.key} in {elapsed:.1f} s: {report.listed} documents "
        f"(fetched {report.fetched} to bring the index up to date)"
    )
    return EXIT_OK


COMMAND = Command(
    "checkpoint",
    help="write a snapshot of the query index into the bucket, for new machines",
    description=(
        "Bring this machine's query index (a SQLite file) of the store up to date with "
        "the bucket, then write a compressed snapshot of it under index-checkpoints/. "
        "A machine with no index yet starts from the newest snapshot and reads only "
        "what changed since, instead of every run document. Stores write one by "
        "themselves after fetching many documents; run this after a bulk import or "
        "on a schedule. The newest two snapshots are kept."
    ),
    body=_checkpoint,
)

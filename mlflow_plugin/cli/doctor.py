"""``doctor URI``: is the store reachable, and does it honour conditional writes?"""

from __future__ import annotations

import argparse
import time

from mlflow_plugin.cli.common import EXIT_OK, Command, CommandFailed, Output

__all__ = ["COMMAND"]


def _doctor(args: argparse.Namespace, out: Output) -> int:
    import os

    from mlflow_plugin.format import keys
    from mlflow_plugin.format.documents import read_or_none
    from mlflow_plugin.objectstore import (
        ConditionalWritesUnsupported,
        ObjectStoreError,
        check_conditional_writes,
        open_object_store,
        parse_store_uri,
    )

    location = parse_store_uri(args.uri)
    out.info(f"store:     {location.to_uri()}")
    if location.is_s3:
        out.info(f"endpoint:  {location.endpoint_url() or 'AWS default'}")
    elif not os.path.isdir(location.path):
        # The probe below would create the folder: a typo would pass as a new, empty store.
        raise CommandFailed(
            f"no folder at {location.path}: check the path (mkdir it, or let the first "
            "MLflow client create it, to start a new store)"
        )
    store = open_object_store(location)
    try:
        started = time.perf_counter()
        # A listing, not a HEAD: a missing bucket answers a HEAD like a missing key.
        next(iter(store.list(keys.FORMAT_KEY)), None)
        elapsed_ms = (time.perf_counter() - started) * 1000
        found = read_or_none(store, keys.FORMAT_KEY)
        layout = (
            f"{found[0].get('format')} version {found[0].get('version')}"
            if found
            else "empty (the first MLflow client initialises it)"
        )
    except ObjectStoreError as exc:
        raise CommandFailed(f"store not reachable: {exc}") from exc
    out.info(f"reachable: yes ({elapsed_ms:.1f} ms round trip)")
    out.info(f"format:    {layout}")
    try:
        check_conditional_writes(store)
    except ConditionalWritesUnsupported as exc:
        raise CommandFailed(f"conditional writes are not honoured: {exc}") from exc
    except ObjectStoreError as exc:
        raise CommandFailed(f"writing the probe object failed: {exc}") from exc
    out.info("conditional writes (If-None-Match, If-Match): honoured")
    return EXIT_OK


COMMAND = Command(
    "doctor",
    help="check that a store is reachable and honours conditional writes",
    description=(
        "Check that the store answers, and that it honours If-None-Match / If-Match "
        "on writes (a probe object is written, conflicted and deleted under _probe/). "
        "An endpoint that ignores conditional writes would let concurrent writers "
        "overwrite each other: it is reported with exit code 1. A bucket+file folder "
        "that does not exist is reported too (exit 1) and not created: it is most "
        "likely a mistyped path."
    ),
    body=_doctor,
)

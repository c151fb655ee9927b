"""Command line: ``python -m mlflow_plugin COMMAND`` (also installed as ``mlflow-bucket``).

Exit codes scripts can rely on: 0 success, 1 the check or operation failed,
2 bad usage or a bad URI.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _doctor(args: argparse.Namespace) -> int:
    from mlflow_plugin.objectstore import (
        ObjectStoreError,
        check_conditional_writes,
        open_object_store,
        parse_store_uri,
    )

    try:
        location = parse_store_uri(args.uri)
    except ObjectStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"store:     {location.to_uri()}")
    if location.is_s3:
        print(f"endpoint:  {location.endpoint_url() or 'AWS default'}")
    try:
        store = open_object_store(location)
        started = time.perf_counter()
        store.exists("_format.json")
        print(f"reachable: yes ({(time.perf_counter() - started) * 1000:.1f} ms round trip)")
        check_conditional_writes(store)
        print("conditional writes (If-None-Match, If-Match): honoured")
    except ObjectStoreError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _sync(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from mlflow_plugin.tracking.store import BucketTrackingStore

    try:
        store = BucketTrackingStore(args.uri, recover_in_background=False)
    except MlflowException as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.error_code == "INVALID_PARAMETER_VALUE" else EXIT_FAILED
    try:
        batches, lines = store.recover_spools()
        store.close()
    except MlflowException as exc:
        print(f"FAILED: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"replayed {batches} sealed batches and {lines} buffered log calls")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlflow-bucket",
        description="Operate an mlflow-bucket store (bucket+s3://... or bucket+file:...).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser(
        "doctor", help="check that a store is reachable and honours conditional writes"
    )
    doctor.add_argument("uri", help="store URI, e.g. bucket+s3://my-bucket/team")
    doctor.set_defaults(run=_doctor)
    sync = commands.add_parser(
        "sync", help="upload what crashed writers left in this machine's local spool"
    )
    sync.add_argument("uri", help="store URI, e.g. bucket+s3://my-bucket/team")
    sync.set_defaults(run=_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code

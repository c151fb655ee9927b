"""Check that an endpoint honours conditional writes before trusting it with documents.

Some S3-compatible servers accept ``If-None-Match: *`` and ``If-Match`` and then
ignore them. On such an endpoint two writers would silently overwrite each
other's run documents, so the store refuses it with an explanation instead.
"""

from __future__ import annotations

import threading
import uuid

from mlflow_plugin.objectstore.base import ObjectStore
from mlflow_plugin.objectstore.errors import (
    AlreadyExists,
    ConditionalWritesUnsupported,
    PreconditionFailed,
)

__all__ = ["PROBE_PREFIX", "check_conditional_writes", "check_conditional_writes_once"]

PROBE_PREFIX = "_probe/"
_BOGUS_ETAG = '"00000000000000000000000000000000"'
_HELP = (
    "mlflow-bucket needs If-None-Match / If-Match on PutObject so concurrent writers "
    "cannot overwrite each other (AWS S3, MinIO, Cloudflare R2, Google Cloud Storage, "
    "SeaweedFS and recent Ceph honour them). Upgrade the server or use one of those."
)

_verified: set[str] = set()
_verified_lock = threading.Lock()


def check_conditional_writes(store: ObjectStore) -> None:
    """Write, conflict and delete a probe object; raise if a conflict goes unnoticed."""
    key = f"{PROBE_PREFIX}conditional-writes-{uuid.uuid4().hex}"
    etag = store.put_if_absent(key, b"first")
    try:
        try:
            store.put_if_absent(key, b"second")
        except AlreadyExists:
            pass
        else:
            raise ConditionalWritesUnsupported(
                f"{store.location} overwrote an existing object despite If-None-Match: *. {_HELP}"
            )
        try:
            store.put_if_match(key, b"third", _BOGUS_ETAG)
        except PreconditionFailed:
            pass
        else:
            raise ConditionalWritesUnsupported(
                f"{store.location} accepted a write with a wrong If-Match ETag. {_HELP}"
            )
        store.put_if_match(key, b"fourth", etag)
    finally:
        store.delete(key)


def check_conditional_writes_once(store: ObjectStore) -> None:
    """``check_conditional_writes``, remembered per bucket for the life of the process
    (a process that opens many prefixes of one bucket probes it once)."""
    with _verified_lock:
        if store.bucket_location in _verified:
            return
    check_conditional_writes(store)
    with _verified_lock:
        _verified.add(store.bucket_location)

"""moto's S3 server, patched where it differs from real S3 in ways the tests would notice.

**Atomic conditional writes.** moto checks ``If-Match`` / ``If-None-Match`` and then
writes, with nothing between the two: under load, two concurrent compare-and-swaps from
the same ETag can both succeed, and one of them silently overwrites the other. Real S3
(and MinIO, R2, SeaweedFS...) decide the condition and the write atomically. Every moto
server the tests start (in process, or through ``main`` in a process of its own) has
this patch, so that a lost update a test sees is the product's, not moto's.

**Its own module list, read once.** For every request moto's server lists its package
folder and stats each of its ~180 entries to find the service a host name names: about a
quarter of the CPU of a request, paid in the test process for an in-process server. The
list does not change while a process runs.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["main", "patch_moto"]

_lock = threading.Lock()
_patched = False


def patch_moto() -> None:
    """Both patches, once per process (before a moto server starts)."""
    global _patched
    with _lock:
        if _patched:
            return
        _make_conditional_writes_atomic()
        _list_moto_modules_once()
        _patched = True


def _make_conditional_writes_atomic() -> None:
    """Serialise moto's PutObject handling: its condition check and write become one step."""
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    put_lock = threading.Lock()

    def put_object(self: Any) -> Any:
        with put_lock:
            return original(self)

    S3Response.put_object = put_object  # type: ignore[method-assign]


def _list_moto_modules_once() -> None:
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def main() -> None:
    """``python -c 'from tests.moto_patches import main; main()' -H HOST -p PORT``."""
    patch_moto()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])

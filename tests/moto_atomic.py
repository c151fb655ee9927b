"""moto's S3 server with atomic conditional writes, as real S3 has them.

moto checks ``If-Match`` / ``If-None-Match`` and then writes, with nothing between the
two: under load, two concurrent compare-and-swaps from the same ETag can both
succeed, and one of them silently overwrites the other. Real S3 (and MinIO, R2,
SeaweedFS...) decide the condition and the write atomically. Tests that race writers
against moto apply this patch (in process, or through ``main`` for a moto server
process) so that a lost update they see is the product's, not moto's.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["main", "make_conditional_writes_atomic"]

_lock = threading.Lock()
_patched = False


def make_conditional_writes_atomic() -> None:
    """Serialise moto's PutObject handling: its condition check and write become one step."""
    global _patched
    from moto.s3.responses import S3Response

    with _lock:
        if _patched:
            return
        original = S3Response.put_object
        put_lock = threading.Lock()

        def put_object(self: Any) -> Any:
            with put_lock:
                return original(self)

        S3Response.put_object = put_object  # type: ignore[method-assign]
        _patched = True


def main() -> None:
    """``python -c 'from tests.moto_atomic import main; main()' -H HOST -p PORT``."""
    make_conditional_writes_atomic()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])

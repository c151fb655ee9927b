"""An in-process object store: for tests and for trying things out.

Compare-and-swap holds between threads of one process only.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator

from mlflow_plugin.objectstore.base import (
    ObjectInfo,
    ObjectStore,
    StoredObject,
    check_key,
    check_prefix,
)
from mlflow_plugin.objectstore.errors import AlreadyExists, NotFound, PreconditionFailed

__all__ = ["MemoryObjectStore"]


class MemoryObjectStore(ObjectStore):
    """A dict behind a lock, with S3-like ETags (content hash plus a write counter)."""

    supports_cross_process_cas = False

    def __init__(self) -> None:
        self.location = f"memory://{id(self):x}"
        self._objects: dict[str, tuple[bytes, str, float]] = {}
        self._lock = threading.Lock()
        self._writes = itertools.count(1)

    def _new_etag(self, data: bytes) -> str:
        # The counter keeps ETags unique even when the same bytes are written twice.
        return f'"{hashlib.md5(data).hexdigest()}-{next(self._writes)}"'

    def _store(self, key: str, data: bytes) -> str:
        etag = self._new_etag(data)
        self._objects[key] = (bytes(data), etag, time.time())
        return etag

    def get(self, key: str) -> StoredObject:
        check_key(key)
        with self._lock:
            try:
                data, etag, _ = self._objects[key]
            except KeyError:
                raise NotFound(f"no object {key!r} in {self.location}") from None
        return StoredObject(data=data, etag=etag)

    def head(self, key: str) -> ObjectInfo:
        check_key(key)
        with self._lock:
            try:
                data, etag, modified = self._objects[key]
            except KeyError:
                raise NotFound(f"no object {key!r} in {self.location}") from None
        return ObjectInfo(key=key, size=len(data), etag=etag, last_modified=modified)

    def put(self, key: str, data: bytes) -> str:
        check_key(key)
        with self._lock:
            return self._store(key, data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        check_key(key)
        with self._lock:
            if key in self._objects:
                raise AlreadyExists(f"object {key!r} already exists in {self.location}")
            return self._store(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        check_key(key)
        with self._lock:
            current = self._objects.get(key)
            if current is None:
                raise NotFound(f"no object {key!r} in {self.location}")
            if current[1] != etag:
                raise PreconditionFailed(f"object {key!r} changed since ETag {etag}")
            return self._store(key, data)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        with self._lock:
            snapshot = sorted(
                (key, len(data), etag, modified)
                for key, (data, etag, modified) in self._objects.items()
                if key.startswith(prefix)
            )
        for key, size, etag, modified in snapshot:
            yield ObjectInfo(key=key, size=size, etag=etag, last_modified=modified)

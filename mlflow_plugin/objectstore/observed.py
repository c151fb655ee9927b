"""An object store that tells callbacks about every key it writes or deletes.

The tracking store wraps its object store in one so that its query index knows, at
no cost, which documents this process changed (a search right after a write then
re-reads exactly those, whatever the index's staleness bound), and so that other
readers learn of the change through the change journal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from mlflow_plugin.objectstore.base import DirectoryListing, ObjectInfo, ObjectStore, StoredObject
from mlflow_plugin.objectstore.errors import AlreadyExists, NotFound, PreconditionFailed

__all__ = ["ObservedObjectStore"]

#: A conditional write that raised one of these did not happen.
_NOT_WRITTEN = (AlreadyExists, PreconditionFailed, NotFound)


class ObservedObjectStore(ObjectStore):
    """Delegates to ``inner``; calls ``on_write(key)`` after each write or delete attempt.

    ``on_write`` runs even when the call fails: a write whose answer was lost may
    still have landed. ``on_written(key, etag)`` runs after each write that happened
    or may have (``etag`` None: a delete, or an outcome not known), not after a
    conditional write that was refused.
    """

    def __init__(
        self,
        inner: ObjectStore,
        on_write: Callable[[str], None],
        on_written: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.inner = inner
        self._on_write = on_write
        self._on_written = on_written
        self.location = inner.location
        self.supports_cross_process_cas = inner.supports_cross_process_cas

    @property
    def bucket_location(self) -> str:
        return self.inner.bucket_location

    def _observe(self, key: str, write: Callable[[], str]) -> str:
        etag: str | None = None
        landed = True
        try:
            etag = write()
            return etag
        except _NOT_WRITTEN:
            landed = False
            raise
        finally:
            self._on_write(key)
            if landed and self._on_written is not None:
                self._on_written(key, etag)

    def get(self, key: str) -> StoredObject:
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def put(self, key: str, data: bytes) -> str:
        return self._observe(key, lambda: self.inner.put(key, data))

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self._observe(key, lambda: self.inner.put_if_absent(key, data))

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        return self._observe(key, lambda: self.inner.put_if_match(key, data, etag))

    def delete(self, key: str) -> None:
        def delete() -> str:
            self.inner.delete(key)
            return ""

        self._observe(key, delete)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        return self.inner.list_after(prefix, start_after)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_dir(self, prefix: str = "") -> DirectoryListing:
        return self.inner.list_dir(prefix)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> str:
        return self._observe(key, lambda: self.inner.put_file(key, path))

    def get_file(self, key: str, path: str | os.PathLike[str]) -> None:
        self.inner.get_file(key, path)

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0

        def delete() -> str:
            nonlocal deleted
            deleted = self.inner.delete_prefix(prefix)
            return ""

        self._observe(prefix, delete)
        return deleted

    def close(self) -> None:
        self.inner.close()

"""An object store that tells a callback about every key it writes or deletes.

The tracking store wraps its object store in one so that its query index knows, at
no cost, which documents this process changed: a search right after a write then
re-reads exactly those, whatever the index's staleness bound.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from mlflow_plugin.objectstore.base import DirectoryListing, ObjectInfo, ObjectStore, StoredObject

__all__ = ["ObservedObjectStore"]


class ObservedObjectStore(ObjectStore):
    """Delegates to ``inner``; calls ``on_write(key)`` after each write or delete attempt.

    The callback runs even when the call fails: a write whose answer was lost may
    still have landed.
    """

    def __init__(self, inner: ObjectStore, on_write: Callable[[str], None]) -> None:
        self.inner = inner
        self._on_write = on_write
        self.location = inner.location
        self.supports_cross_process_cas = inner.supports_cross_process_cas

    def get(self, key: str) -> StoredObject:
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def put(self, key: str, data: bytes) -> str:
        try:
            return self.inner.put(key, data)
        finally:
            self._on_write(key)

    def put_if_absent(self, key: str, data: bytes) -> str:
        try:
            return self.inner.put_if_absent(key, data)
        finally:
            self._on_write(key)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        try:
            return self.inner.put_if_match(key, data, etag)
        finally:
            self._on_write(key)

    def delete(self, key: str) -> None:
        try:
            self.inner.delete(key)
        finally:
            self._on_write(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_dir(self, prefix: str = "") -> DirectoryListing:
        return self.inner.list_dir(prefix)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> str:
        try:
            return self.inner.put_file(key, path)
        finally:
            self._on_write(key)

    def get_file(self, key: str, path: str | os.PathLike[str]) -> None:
        self.inner.get_file(key, path)

    def delete_prefix(self, prefix: str) -> int:
        try:
            return self.inner.delete_prefix(prefix)
        finally:
            self._on_write(prefix)

    def close(self) -> None:
        self.inner.close()

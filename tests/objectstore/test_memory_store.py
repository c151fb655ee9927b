from __future__ import annotations

import time

import pytest

from mlflow_plugin.objectstore import MemoryObjectStore, ObjectStore
from tests.objectstore.conformance import ObjectStoreConformance, RawAccess


class _DictRaw:
    """The memory store's own dict, read and written directly."""

    def __init__(self, store: MemoryObjectStore) -> None:
        self.objects = store._objects

    def read(self, key: str) -> bytes | None:
        entry = self.objects.get(key)
        return None if entry is None else entry[0]

    def write(self, key: str, data: bytes) -> None:
        self.objects[key] = (data, f'"raw-{len(self.objects)}"', time.time())


class TestMemoryObjectStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self) -> ObjectStore:
        return MemoryObjectStore()

    @pytest.fixture
    def raw(self, store: MemoryObjectStore) -> RawAccess:
        return _DictRaw(store)

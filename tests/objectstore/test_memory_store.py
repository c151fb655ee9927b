from __future__ import annotations

import pytest

from mlflow_plugin.objectstore import MemoryObjectStore, ObjectStore
from tests.objectstore.conformance import ObjectStoreConformance


class TestMemoryObjectStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self) -> ObjectStore:
        return MemoryObjectStore()

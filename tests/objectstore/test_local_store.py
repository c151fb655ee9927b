from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_plugin.objectstore import AlreadyExists, InvalidKey, LocalObjectStore, ObjectStore
from tests.objectstore.conformance import ObjectStoreConformance


class TestLocalObjectStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return LocalObjectStore(tmp_path / "root")

    @pytest.fixture
    def store_uri(self, tmp_path: Path) -> str:
        return f"bucket+file://{tmp_path / 'root'}"


def test_objects_are_plain_files_under_the_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("experiments/1/runs/abc.json", b"{}")
    assert (tmp_path / "experiments" / "1" / "runs" / "abc.json").read_bytes() == b"{}"


def test_key_cannot_be_object_and_folder_at_once(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a", b"object")
    with pytest.raises(InvalidKey):
        store.put("a/b", b"under an object")
    store.put("c/d", b"object in folder")
    with pytest.raises(InvalidKey):
        store.put("c", b"over a folder")
    assert [i.key for i in store.list("")] == ["a", "c/d"]


def test_delete_prunes_empty_folders(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("x/y/z.txt", b"1")
    store.delete("x/y/z.txt")
    assert not (tmp_path / "x").exists()
    assert store.list_dir("").folders == []


def test_no_temp_files_are_left_behind(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    etag = store.put("doc", b"1")
    store.put_if_match("doc", b"2", etag)
    with pytest.raises(AlreadyExists):
        store.put_if_absent("doc", b"3")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["doc"]

"""One conformance class for the object-store interface, run unchanged on every backend.

A backend's test module subclasses ``ObjectStoreConformance`` and provides three
fixtures: ``store`` (a fresh, empty store), ``store_uri`` (a URI that opens the same
root in another process, or ``None`` when the backend has no such thing) and ``raw``
(reads and writes the backend's objects around the store: a plain file, a boto3
call, the memory store's dict), so that a put and a get agreeing on a wrong layout
cannot hide behind each other. Capability flags say what the backend guarantees.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest

from mlflow_plugin.objectstore import (
    AlreadyExists,
    InvalidKey,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    check_conditional_writes,
    open_object_store,
)
from tests.processes import run_in_processes

LARGE_OBJECT_BYTES = 20 * 1024 * 1024  # above the 16 MiB multipart threshold

UNUSUAL_KEYS = [
    "metrics/Loss/train.json",
    "unicode/ünïcødé-名前-📈.txt",
    "spaces and symbols/a b+c=d&e%20f,g;h'i(j)!~@$.txt",
    "question?mark/hash#sign.bin",
    "deep/" + "/".join(f"level{i}" for i in range(20)) + "/leaf",
    ".hidden/.dotfile",
]

INVALID_KEYS = [
    "",
    "/absolute",
    "..",
    "../escape",
    "a/../../escape",
    "a/./b",
    "a//b",
    "trailing/",
    "nul\x00byte",
    "new\nline",
    "x" * 1100,
    "s/" + "y" * 300,
    "folder/.mlflow-bucket-tmp-0123",
]


class RawAccess(Protocol):
    """A backend's objects read and written without the store under test."""

    def read(self, key: str) -> bytes | None:
        """The bytes stored under ``key`` (relative to the store's root), or ``None``."""

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` as another tool writing the backend would."""


def _increment(store: ObjectStore, key: str, times: int, writer: str) -> int:
    """The compare-and-swap loop the format layer uses: read, mutate, put_if_match, retry."""
    conflicts = 0
    for _ in range(times):
        while True:
            current = store.get(key)
            doc = json.loads(current.data)
            doc["count"] += 1
            doc["writers"][writer] = doc["writers"].get(writer, 0) + 1
            try:
                store.put_if_match(key, json.dumps(doc).encode(), current.etag)
                break
            except PreconditionFailed:
                conflicts += 1
    return conflicts


def _increment_in_child(store_uri: str, key: str, times: int, writer: str) -> None:
    _increment(open_object_store(store_uri), key, times, writer)


class ObjectStoreConformance:
    """Behaviour every ``ObjectStore`` must have. Subclasses provide the fixtures."""

    #: The backend decides a conditional write's condition and the write in one step, so
    #: racing writers have exactly one winner. moto on its own does not; the suite's moto
    #: fixture makes it (``tests/moto_patches.py``), as real S3 and SeaweedFS are.
    atomic_conditional_writes = True

    @pytest.fixture
    def store_uri(self) -> str | None:
        return None

    # -- around the store: what is written is what another tool sees -------------------

    def test_every_write_lands_as_the_same_bytes_in_the_backend(
        self, store: ObjectStore, raw: RawAccess
    ) -> None:
        store.put("docs/put.json", b'{"put": 1}')
        store.put_if_absent("docs/created.json", b'{"created": 1}')
        etag = store.put_if_absent("docs/changed.json", b"before")
        store.put_if_match("docs/changed.json", b"after", etag)
        assert raw.read("docs/put.json") == b'{"put": 1}'
        assert raw.read("docs/created.json") == b'{"created": 1}'
        assert raw.read("docs/changed.json") == b"after"
        assert raw.read("docs/never.json") is None

    def test_an_object_written_around_the_store_is_read_through_it(
        self, store: ObjectStore, raw: RawAccess
    ) -> None:
        raw.write("outside/tool.json", b'{"from": "another tool"}')
        assert store.get("outside/tool.json").data == b'{"from": "another tool"}'
        assert store.head("outside/tool.json").size == len(b'{"from": "another tool"}')
        assert [info.key for info in store.list("outside/")] == ["outside/tool.json"]
        assert store.list_dir("").folders == ["outside/"]

    def test_put_if_absent_refuses_an_object_written_around_the_store(
        self, store: ObjectStore, raw: RawAccess
    ) -> None:
        raw.write("claims/taken.json", b"theirs")
        with pytest.raises(AlreadyExists):
            store.put_if_absent("claims/taken.json", b"ours")
        assert raw.read("claims/taken.json") == b"theirs"

    def test_delete_removes_the_object_from_the_backend(
        self, store: ObjectStore, raw: RawAccess
    ) -> None:
        store.put("gone/soon.txt", b"1")
        store.delete("gone/soon.txt")
        assert raw.read("gone/soon.txt") is None
        raw.write("gone/raw.txt", b"2")
        assert store.delete_prefix("gone/") == 1
        assert raw.read("gone/raw.txt") is None

    @pytest.mark.parametrize("key", UNUSUAL_KEYS)
    def test_unusual_keys_land_under_their_own_name(
        self, store: ObjectStore, raw: RawAccess, key: str
    ) -> None:
        store.put(key, key.encode())
        assert raw.read(key) == key.encode()

    # -- basic reads and writes --------------------------------------------------------

    def test_put_then_get_returns_bytes_and_same_etag(self, store: ObjectStore) -> None:
        etag = store.put("a/b.json", b'{"x": 1}')
        stored = store.get("a/b.json")
        assert stored.data == b'{"x": 1}'
        assert stored.etag == etag
        info = store.head("a/b.json")
        assert (info.key, info.size, info.etag) == ("a/b.json", 8, etag)
        assert [(i.key, i.etag) for i in store.list("a/")] == [("a/b.json", etag)]

    def test_overwrite_changes_etag(self, store: ObjectStore) -> None:
        first = store.put("doc", b"one")
        second = store.put("doc", b"two")
        assert first != second
        assert store.get("doc").data == b"two"

    def test_empty_object(self, store: ObjectStore) -> None:
        store.put("empty", b"")
        assert store.get("empty").data == b""
        assert store.head("empty").size == 0

    def test_missing_key_is_not_found(self, store: ObjectStore) -> None:
        with pytest.raises(NotFound):
            store.get("nowhere/doc.json")
        with pytest.raises(NotFound):
            store.head("nowhere/doc.json")
        assert not store.exists("nowhere/doc.json")
        store.delete("nowhere/doc.json")  # deleting a missing key is not an error

    def test_delete_removes_object(self, store: ObjectStore) -> None:
        store.put("x/y/z", b"1")
        store.delete("x/y/z")
        with pytest.raises(NotFound):
            store.get("x/y/z")
        assert list(store.list("")) == []

    # -- conditional writes ----------------------------------------------------------

    def test_put_if_absent_conflict_is_reported(self, store: ObjectStore) -> None:
        etag = store.put_if_absent("claims/name.json", b"first")
        with pytest.raises(AlreadyExists):
            store.put_if_absent("claims/name.json", b"second")
        stored = store.get("claims/name.json")
        assert (stored.data, stored.etag) == (b"first", etag)

    def test_put_if_match_conflict_is_reported(self, store: ObjectStore) -> None:
        old = store.put("run.json", b"v1")
        new = store.put_if_match("run.json", b"v2", old)
        assert new != old
        with pytest.raises(PreconditionFailed):
            store.put_if_match("run.json", b"v3", old)
        assert store.get("run.json").data == b"v2"
        assert store.put_if_match("run.json", b"v4", new) != new

    def test_put_if_match_on_missing_key_is_not_found(self, store: ObjectStore) -> None:
        etag = store.put("gone.json", b"v1")
        store.delete("gone.json")
        with pytest.raises(NotFound):
            store.put_if_match("gone.json", b"v2", etag)
        assert not store.exists("gone.json")

    def test_conditional_write_probe_passes(self, store: ObjectStore) -> None:
        check_conditional_writes(store)
        assert list(store.list("")) == []  # the probe cleans up after itself

    def test_concurrent_cas_from_threads_loses_no_update(self, store: ObjectStore) -> None:
        store.put_if_absent("counter.json", json.dumps({"count": 0, "writers": {}}).encode())
        threads, times = 8, 15
        with ThreadPoolExecutor(threads) as pool:
            conflicts = sum(
                pool.map(
                    lambda i: _increment(store, "counter.json", times, f"t{i}"), range(threads)
                )
            )
        doc = json.loads(store.get("counter.json").data)
        assert doc["count"] == threads * times
        assert doc["writers"] == {f"t{i}": times for i in range(threads)}
        print(f"{store.location}: {threads}x{times} CAS increments, {conflicts} conflicts retried")

    def test_concurrent_cas_from_processes_loses_no_update(
        self, store: ObjectStore, store_uri: str | None
    ) -> None:
        if store_uri is None:
            assert not store.supports_cross_process_cas
            return  # an in-process store has no second process to race with
        store.put_if_absent("counter.json", json.dumps({"count": 0, "writers": {}}).encode())
        processes, times = 4, 10
        run_in_processes(
            _increment_in_child,
            [(store_uri, "counter.json", times, f"p{i}") for i in range(processes)],
            timeout=120,
        )
        doc = json.loads(store.get("counter.json").data)
        assert doc["count"] == processes * times
        assert doc["writers"] == {f"p{i}": times for i in range(processes)}

    def test_racing_put_if_absent_has_exactly_one_winner(self, store: ObjectStore) -> None:
        winners: list[int] = []
        barrier = threading.Barrier(8)

        def claim(i: int) -> None:
            barrier.wait()
            try:
                store.put_if_absent("claims/race.json", str(i).encode())
                winners.append(i)
            except AlreadyExists:
                pass

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(claim, range(8)))
        stored = store.get("claims/race.json").data
        if self.atomic_conditional_writes:
            assert len(winners) == 1
            assert stored == str(winners[0]).encode()
        else:  # several may be told they won; what is stored is one of theirs
            assert stored in {str(i).encode() for i in winners}

    # -- keys ------------------------------------------------------------------------

    @pytest.mark.parametrize("key", UNUSUAL_KEYS)
    def test_unusual_keys_round_trip(self, store: ObjectStore, key: str) -> None:
        store.put(key, key.encode())
        assert store.get(key).data == key.encode()
        assert [info.key for info in store.list("")] == [key]
        store.delete(key)
        assert list(store.list("")) == []

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=range(len(INVALID_KEYS)))
    def test_invalid_keys_are_refused_and_write_nothing(self, store: ObjectStore, key: str) -> None:
        for attempt in (
            lambda: store.put(key, b"x"),
            lambda: store.put_if_absent(key, b"x"),
            lambda: store.put_if_match(key, b"x", '"etag"'),
            lambda: store.get(key),
            lambda: store.delete(key),
        ):
            with pytest.raises(InvalidKey):
                attempt()
        assert list(store.list("")) == []

    def test_invalid_prefixes_are_refused(self, store: ObjectStore) -> None:
        for prefix in ("/abs", "../up/", "a/../", "nul\x00/"):
            with pytest.raises(InvalidKey):
                list(store.list(prefix))
        with pytest.raises(InvalidKey):
            store.list_dir("not-a-folder")

    # -- listing ---------------------------------------------------------------------

    def test_list_is_sorted_and_filters_by_raw_prefix(self, store: ObjectStore) -> None:
        keys = ["runs/b.json", "runs/a.json", "runs-archive/c.json", "runs/sub/d.json", "other"]
        for key in keys:
            store.put(key, b"1")
        assert [i.key for i in store.list("runs/")] == [
            "runs/a.json",
            "runs/b.json",
            "runs/sub/d.json",
        ]
        assert [i.key for i in store.list("runs")] == [
            "runs-archive/c.json",
            "runs/a.json",
            "runs/b.json",
            "runs/sub/d.json",
        ]
        assert [i.key for i in store.list("runs/a")] == ["runs/a.json"]
        assert [i.key for i in store.list("")] == sorted(keys)
        assert list(store.list("missing/")) == []

    def test_list_after_starts_past_a_key(self, store: ObjectStore) -> None:
        for key in ["log/0001.a", "log/0002.b", "log/0002.c", "log/0003.d", "logs/x", "other"]:
            store.put(key, b"")
        assert [i.key for i in store.list_after("log/", "log/0002")] == [
            "log/0002.b",
            "log/0002.c",
            "log/0003.d",
        ]
        assert [i.key for i in store.list_after("log/", "log/0002.b")] == [
            "log/0002.c",
            "log/0003.d",
        ]
        assert [i.key for i in store.list_after("log/", "")] == [
            "log/0001.a",
            "log/0002.b",
            "log/0002.c",
            "log/0003.d",
        ]
        assert list(store.list_after("log/", "log/9")) == []

    def test_list_dir_shows_one_level(self, store: ObjectStore) -> None:
        for key in ["top.txt", "dir/one.txt", "dir/two.txt", "dir/sub/three.txt", "other/x"]:
            store.put(key, b"abc")
        root = store.list_dir("")
        assert [o.key for o in root.objects] == ["top.txt"]
        assert root.folders == ["dir/", "other/"]
        inner = store.list_dir("dir/")
        assert [(o.key, o.size) for o in inner.objects] == [("dir/one.txt", 3), ("dir/two.txt", 3)]
        assert inner.folders == ["dir/sub/"]
        assert store.list_dir("nothing/") == type(root)()

    def test_list_paginates_past_1000_keys(self, store: ObjectStore) -> None:
        count = 1234
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: store.put(f"many/{i:05d}.json", b"{}"), range(count)))
        store.put("many-not/included", b"")
        keys = [info.key for info in store.list("many/")]
        assert keys == [f"many/{i:05d}.json" for i in range(count)]
        assert len(store.list_dir("many/").objects) == count
        assert store.delete_prefix("many/") == count
        assert [i.key for i in store.list("")] == ["many-not/included"]

    # -- large objects ---------------------------------------------------------------

    def test_large_object_round_trips(self, store: ObjectStore, tmp_path: Path) -> None:
        data = os.urandom(LARGE_OBJECT_BYTES)
        etag = store.put("big/blob.bin", data)
        assert store.head("big/blob.bin").size == LARGE_OBJECT_BYTES
        assert (
            hashlib.sha256(store.get("big/blob.bin").data).digest() == hashlib.sha256(data).digest()
        )
        assert store.head("big/blob.bin").etag == etag

        source = tmp_path / "upload.bin"
        source.write_bytes(data[::-1])
        store.put_file("big/file.bin", source)
        target = tmp_path / "nested" / "download.bin"
        store.get_file("big/file.bin", target)
        assert target.read_bytes() == data[::-1]
        self.check_large_object_transfer(store, "big/file.bin")

    def check_large_object_transfer(self, store: ObjectStore, key: str) -> None:
        """Backends add their own check (S3: the upload really was multipart)."""

    def test_get_file_of_missing_key_is_not_found(self, store: ObjectStore, tmp_path: Path) -> None:
        with pytest.raises(NotFound):
            store.get_file("nope.bin", tmp_path / "nope.bin")
        assert not (tmp_path / "nope.bin").exists()

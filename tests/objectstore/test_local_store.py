from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlflow_plugin.objectstore import AlreadyExists, InvalidKey, LocalObjectStore, ObjectStore
from tests.objectstore.conformance import ObjectStoreConformance, RawAccess
from tests.objectstore.os_failures import NOBODY, TmpfsMount, in_forked_child


class _FolderRaw:
    """The root's files, read and written with plain file calls."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class TestLocalObjectStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return LocalObjectStore(tmp_path / "root")

    @pytest.fixture
    def raw(self, tmp_path: Path) -> RawAccess:
        return _FolderRaw(tmp_path / "root")

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


# -- file-system failures: translated like every other backend's errors ---------------

Outcomes = dict[str, tuple[str, str]]


def _outcomes(calls: dict[str, Callable[[], object]]) -> Outcomes:
    """Each call's result: (exception class name, message), or ("ok", "")."""
    found: Outcomes = {}
    for name, call in calls.items():
        try:
            call()
            found[name] = ("ok", "")
        except Exception as exc:  # the test inspects whatever escapes
            found[name] = (type(exc).__name__, str(exc))
    return found


def _write_calls(store: LocalObjectStore, existing: str, new: str, source: Path) -> dict[str, Any]:
    etag = store.head(existing).etag if existing else '"none"'
    return {
        "put": lambda: store.put(new, b"new"),
        "put_if_absent": lambda: store.put_if_absent(new, b"new"),
        "put_if_match": lambda: store.put_if_match(existing, b"changed", etag),
        "put_file": lambda: store.put_file(new, source),
    }


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-bucket-perm-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder)


def test_refused_permissions_are_access_denied_for_every_operation(shared_folder: Path) -> None:
    """EACCES from every operation is AccessDenied naming the key, never a raw OSError."""
    root = shared_folder / "root"
    store = LocalObjectStore(root)
    store.put("open/doc.json", b"{}")
    store.put("closed/doc.json", b"{}")
    store.put("secret.json", b"{}")
    source = shared_folder / "upload.bin"
    source.write_bytes(b"upload")
    (root / "closed").chmod(0o000)  # neither readable nor traversable
    (root / "secret.json").chmod(0o000)
    (root / "open").chmod(0o555)  # readable, not writable
    root.chmod(0o555)

    def attempt() -> Outcomes:
        mine = LocalObjectStore(root)
        return _outcomes(
            {
                **_write_calls(mine, "open/doc.json", "open/new.json", source),
                "put in a new folder": lambda: mine.put("fresh/new.json", b"new"),
                "delete": lambda: mine.delete("open/doc.json"),
                "get": lambda: mine.get("secret.json"),
                "get through a closed folder": lambda: mine.get("closed/doc.json"),
                "head": lambda: mine.head("closed/doc.json"),
                "get_file": lambda: mine.get_file("secret.json", shared_folder / "copy"),
                "list": lambda: list(mine.list("closed/")),
                "list everything": lambda: list(mine.list("")),
                "list_dir": lambda: mine.list_dir("closed/"),
            }
        )

    outcomes = in_forked_child(attempt, user=NOBODY)
    assert {name: kind for name, (kind, _) in outcomes.items()} == dict.fromkeys(
        outcomes, "AccessDenied"
    )
    assert "'open/new.json'" in outcomes["put"][1]
    assert "'secret.json'" in outcomes["get"][1]
    assert "Permission denied" in outcomes["delete"][1]
    assert store.get("open/doc.json").data == b"{}"  # nothing was changed


def test_full_disk_and_read_only_file_system_are_storage_unavailable(tmp_path: Path) -> None:
    """ENOSPC and EROFS are StorageUnavailable naming the key; reads keep working."""
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()

    def attempt() -> dict[str, Outcomes]:
        disk = TmpfsMount(str(mount_point), 512 * 1024)
        store = LocalObjectStore(mount_point / "root")
        store.put("runs/doc.json", b"{}")
        source = mount_point / "upload.bin"
        source.write_bytes(b"u" * 8192)
        disk.fill()
        full = _outcomes(_write_calls(store, "runs/doc.json", "runs/new.json", source))
        reads = _outcomes(
            {
                "get": lambda: store.get("runs/doc.json"),
                "head": lambda: store.head("runs/doc.json"),
                "list": lambda: list(store.list("runs/")),
                "list_dir": lambda: store.list_dir("runs/"),
            }
        )
        disk.read_only()
        read_only = _outcomes(
            {
                **_write_calls(store, "runs/doc.json", "runs/new.json", source),
                "delete": lambda: store.delete("runs/doc.json"),
            }
        )
        return {"full": full, "reads": reads, "read only": read_only}

    outcomes = in_forked_child(attempt, mounts=True)
    full, read_only = outcomes["full"], outcomes["read only"]
    assert {name: kind for name, (kind, _) in full.items()} == dict.fromkeys(
        full, "StorageUnavailable"
    )
    assert all("No space left on device" in message for _, message in full.values())
    assert "'runs/new.json'" in full["put"][1]
    assert {name: kind for name, (kind, _) in outcomes["reads"].items()} == dict.fromkeys(
        outcomes["reads"], "ok"
    )
    assert {name: kind for name, (kind, _) in read_only.items()} == dict.fromkeys(
        read_only, "StorageUnavailable"
    )
    assert "Read-only file system" in read_only["delete"][1]
    assert "'runs/doc.json'" in read_only["delete"][1]
    assert not list(mount_point.iterdir())  # the mount never reached the test's namespace


def test_file_system_failures_reach_mlflow_as_its_own_error_codes(
    shared_folder: Path, tmp_path: Path
) -> None:
    """Through the tracking store: PERMISSION_DENIED / TEMPORARILY_UNAVAILABLE, not a 500."""
    from mlflow.exceptions import MlflowException

    from mlflow_plugin.tracking.store import BucketTrackingStore

    def create(store: BucketTrackingStore) -> tuple[str, int, str]:
        try:
            store.create_experiment("refused")
        except MlflowException as exc:
            return exc.error_code, exc.get_http_status_code(), exc.message
        finally:
            store.close()
        return "created", 200, ""

    root = shared_folder / "root"
    shared_uri = f"bucket+file://{root}?spool=false"
    BucketTrackingStore(shared_uri).close()  # initialised by its owner
    # The store opens (its root is the user's), but its folders are read-only to them.
    for path in root.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        os.chown(root, NOBODY, NOBODY)
    code, status, message = in_forked_child(
        lambda: create(BucketTrackingStore(shared_uri)), user=NOBODY
    )
    assert (code, status) == ("PERMISSION_DENIED", 403)
    assert "'experiment-names/" in message

    mount_point = tmp_path / "mnt"
    mount_point.mkdir()

    def on_full_disk() -> tuple[str, int, str]:
        disk = TmpfsMount(str(mount_point), 512 * 1024)
        store = BucketTrackingStore(f"bucket+file://{mount_point / 'root'}?spool=false")
        disk.fill()
        return create(store)

    code, status, message = in_forked_child(on_full_disk, mounts=True)
    assert (code, status) == ("TEMPORARILY_UNAVAILABLE", 503)
    assert "No space left on device" in message

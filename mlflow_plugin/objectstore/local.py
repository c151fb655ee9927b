"""A folder on the local file system laid out exactly like the bucket.

Writes are atomic: the bytes go to a hidden temp file beside the target
(``.mlflow-bucket-tmp-*``, never listed, refused as a key), are fsynced, then
renamed (``put``, ``put_if_match``) or hard-linked (``put_if_absent``: ``link``
fails if the name exists, atomically) into place. Readers never see a partial
object, and nothing but the objects themselves appears in the folder.

Compare-and-swap is safe across processes on one machine: ``put``,
``put_if_match`` and ``delete`` hold an ``flock`` on the target's folder while
they check and replace (a rename never replaces the folder, so the lock stays
on the right inode). Network file systems whose ``flock`` is not shared between
hosts (some NFS set-ups) do not give that guarantee across machines: use an S3
endpoint for multi-host writers.

ETag = inode, modification time and size. The modification time is set to a
fresh nanosecond clock reading before the rename, so a recycled inode cannot
bring back an old ETag (the file system's own timestamps are too coarse for that).

A key cannot be both an object and a folder here (``a`` and ``a/b``), unlike S3;
such a write raises ``InvalidKey``.

Symbolic links inside the root are never followed: a key whose path passes through
one is ``InvalidKey``, and listings skip them. Whoever can plant a link in a shared
folder could otherwise lead another user's writes (or reads) out of the root.

File-system failures are translated here, for every operation, like any other
backend's: a refused permission (``EACCES``, ``EPERM``) is ``AccessDenied``; a full
disk, an exceeded quota, a read-only file system or any other ``OSError`` is
``StorageUnavailable``. The message names the operation, the key and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from mlflow_plugin.objectstore.base import (
    RESERVED_SEGMENT_PREFIX,
    DirectoryListing,
    ObjectInfo,
    ObjectStore,
    StoredObject,
    check_folder_prefix,
    check_key,
    check_prefix,
    copy_file_atomically,
)
from mlflow_plugin.objectstore.errors import (
    AccessDenied,
    AlreadyExists,
    InvalidKey,
    NotFound,
    ObjectStoreError,
    PreconditionFailed,
    StorageUnavailable,
)

__all__ = [
    "LocalObjectStore",
    "Writer",
]

_TMP_PREFIX = RESERVED_SEGMENT_PREFIX + "tmp-"
# A concurrent delete may prune an emptied folder while a writer is about to use it.
_FOLDER_RETRIES = 10


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key=key, size=st.st_size, etag=_etag(st), last_modified=st.st_mtime)


def _is_internal(name: str) -> bool:
    return name.startswith(RESERVED_SEGMENT_PREFIX)


Writer = Callable[[str], None]
_Found = list[tuple[str, os.stat_result]]  # (key, stat) of each file a listing found

_REFUSED = (errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def _os_errors(operation: str, key: str, location: str) -> Iterator[None]:
    """Translate an ``OSError`` escaping ``operation`` on ``key`` into the error tree."""
    try:
        yield
    except ObjectStoreError:
        raise
    except OSError as exc:
        where = f"{operation} {key!r} in {location}"
        reason = exc.strerror or str(exc)
        if isinstance(exc, PermissionError) or exc.errno in _REFUSED:
            raise AccessDenied(f"permission denied to {where}: {reason}") from exc
        if isinstance(exc, FileNotFoundError):
            # A folder vanished in the middle (a concurrent delete pruned it), or the
            # local file to upload is missing: name the path that was not there.
            raise NotFound(f"cannot {where}: {reason}: {exc.filename}") from exc
        raise StorageUnavailable(f"cannot {where}: {reason}") from exc


def _raise_walk_error(exc: OSError) -> None:
    # os.walk skips unreadable folders silently by default: a listing would lie.
    if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        raise exc


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; see the module docstring for the guarantees."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)
        self._fsync = fsync

    # -- paths, locks and temp files --------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._unlinked(key, self.root.joinpath(*check_key(key).split("/")))

    def _unlinked(self, key: str, path: Path) -> Path:
        """``path`` if no part of it below the root is a symbolic link; else ``InvalidKey``."""
        part = path
        while part != self.root and part != part.parent:
            if part.is_symlink():
                raise InvalidKey(
                    f"{key!r} passes through the symbolic link {part}: links inside a store "
                    "are not followed"
                )
            part = part.parent
        return path

    def _make_folder(self, key: str, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidKey(
                f"{key!r} needs a folder where this local store has an object"
            ) from exc

    @contextlib.contextmanager
    def _folder_lock(self, folder: Path) -> Iterator[None]:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _stage(self, folder: Path, write: Writer) -> tuple[str, str]:
        """Write a temp file in ``folder``; return (temp path, ETag it will have)."""
        tmp_path = str(folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            write(tmp_path)
            fd = os.open(tmp_path, os.O_RDONLY)
            try:
                now = time.time_ns()
                os.utime(fd, ns=(now, now))
                if self._fsync:
                    os.fsync(fd)
                etag = _etag(os.fstat(fd))
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise
        return tmp_path, etag

    def _write(self, key: str, write: Writer, commit: Callable[[str, Path], None]) -> str:
        """Stage the bytes beside the target and ``commit(tmp_path, target)`` under a lock."""
        path = self._path(key)
        for _ in range(_FOLDER_RETRIES):
            self._make_folder(key, path.parent)
            try:
                tmp_path, etag = self._stage(path.parent, write)
            except FileNotFoundError:
                if not os.path.isdir(path.parent):
                    continue  # the folder was pruned under us: make it again
                raise
            try:
                with self._folder_lock(path.parent):
                    commit(tmp_path, path)
                return etag
            except FileNotFoundError:
                continue
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_path)
        raise ObjectStoreError(f"could not write {key!r}: its folder kept disappearing")

    @staticmethod
    def _write_bytes(data: bytes) -> Writer:
        def write(tmp_path: str) -> None:
            with open(tmp_path, "wb") as tmp:
                tmp.write(data)

        return write

    def _prune_empty_parents(self, path: Path) -> None:
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _stat(self, key: str, path: Path) -> os.stat_result:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no object {key!r} in {self.location}") from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"no object {key!r} in {self.location} (it is a folder)")
        return st

    # -- the interface ---------------------------------------------------------------

    def _errors(self, operation: str, key: str) -> contextlib.AbstractContextManager[None]:
        return _os_errors(operation, key, self.location)

    def get(self, key: str) -> StoredObject:
        with self._errors("read", key):
            path = self._path(key)
            try:
                with open(path, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    if not stat.S_ISREG(st.st_mode):
                        raise NotFound(f"no object {key!r} in {self.location} (it is a folder)")
                    return StoredObject(data=handle.read(), etag=_etag(st))
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise NotFound(f"no object {key!r} in {self.location}") from None

    def head(self, key: str) -> ObjectInfo:
        with self._errors("read", key):
            return _info(key, self._stat(key, self._path(key)))

    def put(self, key: str, data: bytes) -> str:
        with self._errors("write", key):
            return self._write(key, self._write_bytes(data), self._replace)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> str:
        def copy(tmp_path: str) -> None:
            shutil.copyfile(path, tmp_path)

        with self._errors("write", key):
            return self._write(key, copy, self._replace)

    def _replace(self, tmp_path: str, target: Path) -> None:
        try:
            os.replace(tmp_path, target)
        except IsADirectoryError as exc:
            raise InvalidKey(f"{target} is a folder in this local store") from exc

    def put_if_absent(self, key: str, data: bytes) -> str:
        def link(tmp_path: str, target: Path) -> None:
            try:
                os.link(tmp_path, target)
            except FileExistsError:
                raise AlreadyExists(f"object {key!r} already exists in {self.location}") from None

        with self._errors("create", key):
            return self._write(key, self._write_bytes(data), link)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        def swap(tmp_path: str, target: Path) -> None:
            if _etag(self._stat(key, target)) != etag:
                raise PreconditionFailed(f"object {key!r} changed since ETag {etag}")
            os.replace(tmp_path, target)

        with self._errors("replace", key):
            path = self._path(key)
            self._stat(key, path)  # a missing key is NotFound, not a conflict
            return self._write(key, self._write_bytes(data), swap)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            path = self._path(key)
            try:
                with self._folder_lock(path.parent):
                    if path.is_dir():
                        return
                    path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return
            self._prune_empty_parents(path)

    def get_file(self, key: str, path: str | os.PathLike[str]) -> None:
        with self._errors("read", key):
            source = self._path(key)
            self._stat(key, source)
            try:
                copy_file_atomically(source, path)
            except FileNotFoundError:
                raise NotFound(f"no object {key!r} in {self.location}") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._listing(prefix, "")

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        check_prefix(start_after)
        return self._listing(prefix, start_after)

    def _listing(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        with self._errors("list", prefix):
            found = self._walk(prefix, start_after)
        # Collected before the first yield: an error is raised by the call, not mid-way.
        return iter([_info(key, st) for key, st in sorted(found, key=lambda item: item[0])])

    def _walk(self, prefix: str, start_after: str) -> _Found:
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        self._unlinked(prefix, start)
        found: list[tuple[str, os.stat_result]] = []
        for dirpath, _, filenames in os.walk(start, onerror=_raise_walk_error):
            rel = os.path.relpath(dirpath, self.root)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                if _is_internal(name):
                    continue
                key = base + name
                if not key.startswith(prefix) or key <= start_after:
                    continue  # not stat-ed: the tail of a journal of thousands is listed
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(os.path.join(dirpath, name))
                    if stat.S_ISREG(st.st_mode):  # links are not objects (see above)
                        found.append((key, st))
        return found

    def list_dir(self, prefix: str = "") -> DirectoryListing:
        check_folder_prefix(prefix)
        with self._errors("list", prefix):
            return self._scan(prefix)

    def _scan(self, prefix: str) -> DirectoryListing:
        folder = self.root.joinpath(*prefix.rstrip("/").split("/")) if prefix else self.root
        self._unlinked(prefix, folder)
        objects: list[ObjectInfo] = []
        folders: list[str] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return DirectoryListing()
        for entry in entries:
            if _is_internal(entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    folders.append(prefix + entry.name + "/")
                elif entry.is_file(follow_symlinks=False):
                    objects.append(_info(prefix + entry.name, entry.stat()))
        return DirectoryListing(objects=objects, folders=folders)

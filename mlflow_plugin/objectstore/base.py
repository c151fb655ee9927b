"""The narrow object-store interface every backend implements.

Seven required methods (``get``, ``head``, ``put``, ``put_if_absent``,
``put_if_match``, ``delete``, ``list``); everything else has a default built on
them that a backend may override for speed (``list_dir`` with a delimiter,
``put_file`` / ``get_file`` with parallel multipart transfers).

Keys are ``/``-separated strings relative to the store's root. They are checked
here, once, so no key derived from user input can leave the root: no empty or
absolute keys, no ``.``/``..`` segments, no control characters, at most 1024
UTF-8 bytes (S3's limit) and 255 bytes a segment (a file name's limit).

ETags are opaque strings: compare them, hand them back to ``put_if_match``,
never parse them. A backend returns the same ETag from ``put``, ``get``, ``head``
and ``list`` for the same version of an object.

A conditional write is reported by its outcome, not by its last HTTP answer: a
backend that retries a request whose answer was lost (the write landed, the
connection dropped) recognises its own write when the retry fails its condition,
and returns success (``S3ObjectStore`` puts a random token in the object's metadata
for this). A conflict is the write of *another* caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from mlflow_plugin.objectstore.errors import InvalidKey, NotFound

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "RESERVED_SEGMENT_PREFIX",
    "DirectoryListing",
    "ObjectInfo",
    "ObjectStore",
    "StoredObject",
    "check_folder_prefix",
    "check_key",
    "check_prefix",
    "copy_file_atomically",
    "write_file_atomically",
]

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# Local stores stage temp files under names starting with this; no key segment may.
RESERVED_SEGMENT_PREFIX = ".mlflow-bucket-"


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` and ``list`` report about one object."""

    key: str
    size: int
    etag: str
    last_modified: float | None = None  # seconds since the epoch


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes with the ETag of exactly that version."""

    data: bytes
    etag: str


@dataclass(frozen=True)
class DirectoryListing:
    """One level of the key tree: the objects directly under a prefix and its sub-folders."""

    objects: list[ObjectInfo] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # each ends with "/"


def _check_segments(text: str, segments: list[str], what: str) -> None:
    if len(text.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} is longer than {MAX_KEY_BYTES} UTF-8 bytes: {text[:80]!r}...")
    if text.startswith("/"):
        raise InvalidKey(f"{what} must be relative, not absolute: {text!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidKey(f"{what} contains a control character (NUL, newline, ...): {text!r}")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidKey(f"{what} has an empty, '.' or '..' path segment: {text!r}")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidKey(f"{what} has a segment longer than {MAX_SEGMENT_BYTES} bytes")
    if any(segment.startswith(RESERVED_SEGMENT_PREFIX) for segment in segments):
        raise InvalidKey(f"{what} uses the reserved name prefix {RESERVED_SEGMENT_PREFIX!r}")


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe object key, else raise ``InvalidKey``.

    >>> check_key("experiments/1/runs/abc.json")
    'experiments/1/runs/abc.json'
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"an object key must be a non-empty string, got {key!r}")
    _check_segments(key, key.split("/"), "object key")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is safe to list under (``""`` lists everything)."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"a prefix must be a string, got {prefix!r}")
    if prefix:
        # The last segment may be partial ("runs/ab") or empty (a trailing "/").
        segments = prefix.split("/")
        _check_segments(prefix, segments[:-1] + ([segments[-1]] if segments[-1] else []), "prefix")
    return prefix


def check_folder_prefix(prefix: str) -> str:
    """Like ``check_prefix``, for a whole folder: ``""`` or ending with ``/``."""
    check_prefix(prefix)
    if prefix and not prefix.endswith("/"):
        raise InvalidKey(f"a folder prefix must be empty or end with '/': {prefix!r}")
    return prefix


class ObjectStore(ABC):
    """A flat key -> bytes store with conditional writes, rooted at a bucket prefix or folder.

    Implementations must be thread-safe: one instance is shared by every thread
    of a process (MLflow's server caches stores and repositories).

    >>> from mlflow_plugin.objectstore import MemoryObjectStore
    >>> store = MemoryObjectStore()
    >>> etag = store.put_if_absent("doc.json", b"{}")
    >>> store.put_if_match("doc.json", b'{"a": 1}', etag) != etag
    True
    """

    #: Human-readable location (``s3://bucket/prefix``, a folder): for messages, never secrets.
    location: str = ""
    #: Whether compare-and-swap holds between processes (not only between threads).
    supports_cross_process_cas: bool = True

    @property
    def bucket_location(self) -> str:
        """The whole bucket this store is a prefix of (a folder store: itself). A server
        honours conditional writes for a bucket, whatever the prefix."""
        return self.location

    @abstractmethod
    def get(self, key: str) -> StoredObject:
        """Return the object's bytes and ETag; raise ``NotFound`` if absent."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Return the object's size and ETag without its bytes; raise ``NotFound``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write the object unconditionally and return its new ETag."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create the object; raise ``AlreadyExists`` if the key is taken."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace the object if its ETag is still ``etag``.

        Raises ``PreconditionFailed`` if someone wrote in between, ``NotFound`` if
        the object was deleted.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object. Deleting a missing key is not an error (as on S3)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in key order."""

    # Defaults built on the required methods; backends override them for speed.

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        """Like ``list(prefix)``, but only the keys that sort after ``start_after``.

        S3 starts such a listing at ``start_after`` (``StartAfter``): reading the tail
        of a folder of time-named keys costs requests for the tail only.
        """
        return (info for info in self.list(prefix) if info.key > start_after)

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    def list_dir(self, prefix: str = "") -> DirectoryListing:
        """List one level under ``prefix`` (``""`` or ending with ``/``), like ``ls``."""
        check_folder_prefix(prefix)
        objects: list[ObjectInfo] = []
        folders: dict[str, None] = {}
        for info in self.list(prefix):
            rest = info.key[len(prefix) :]
            if "/" in rest:
                folders[prefix + rest.split("/", 1)[0] + "/"] = None
            else:
                objects.append(info)
        return DirectoryListing(objects=objects, folders=list(folders))

    def put_file(self, key: str, path: str | os.PathLike[str]) -> str:
        """Upload a local file (a backend may stream it in parallel parts)."""
        with open(path, "rb") as source:
            return self.put(key, source.read())

    def get_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Download an object to a local file, replacing it atomically."""
        stored = self.get(key)
        write_file_atomically(path, stored.data)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many were deleted."""
        count = 0
        for info in list(self.list(check_prefix(prefix))):
            self.delete(info.key)
            count += 1
        return count

    def close(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Release resources (connections, file handles). The default holds none."""


def write_file_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise


def copy_file_atomically(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Copy a local file to ``path`` through a temp file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".download-")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise

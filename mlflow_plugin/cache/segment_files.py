"""Metric segments, and long histories sorted from them, cached on local disk.

A segment's name is unique and its bytes never change, so a file named after its
key is valid forever; so is a history sorted from a given set of segments. Deleting
the folders only costs re-downloads and re-sorting. Files are written through a temp
file and a rename, so a reader never sees half of one.

The caches are bounded: ``CacheBudget`` keeps the segment and history files of every
root together under a size (``MLFLOW_BUCKET_CACHE_MAX_BYTES``, 1 GiB by default),
deleting the least recently used first, and a history sorted again from a newer set
of segments deletes the copy it supersedes. Several processes (a server's workers)
share the folders: files are only ever replaced by a rename or unlinked, never
truncated, so a process that has one memory-mapped keeps reading it (on Linux an
unlinked file stays valid while it is mapped). The bound is approximate across
processes: each process re-measures the folders after writing a tenth of it.

The caches are disposable: a folder that cannot be written (a full disk, a path that
is a file, no permission) costs one warning, and reads are served from memory and
the bucket as if nothing were cached. No ``OSError`` of theirs reaches a read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlflow_plugin.cache.paths import default_index_dir, root_digest
from mlflow_plugin.objectstore.base import write_file_atomically

__all__ = [
    "DEFAULT_CACHE_MAX_BYTES",
    "CacheBudget",
    "HistoryFiles",
    "SegmentFiles",
    "local_caches",
]

_log = logging.getLogger(__name__)

DEFAULT_CACHE_MAX_BYTES = 1024**3
# Trimming goes below the bound, so the next few writes do not trim again at once.
_TRIM_TO = 0.8
# A temp file this old was left by a writer that died: it is deleted by a trim.
_STALE_TEMP_SECONDS = 3600.0
# A file read again is marked recently used at most this often (one utime per minute).
_TOUCH_SECONDS = 60.0


@dataclass
class _Entry:
    """The files of one cached item (a segment, or a history's columns)."""

    paths: list[Path]
    size: int
    used: float  # the latest modification time of its files


def _is_temp(name: str) -> bool:
    return name.endswith(".tmp") or name.startswith(".download-")


_unwritable: set[Path] = set()  # cache folders already warned about
_unwritable_lock = threading.Lock()


def _cannot_cache(folder: Path, exc: OSError) -> None:
    """Warn, once per folder and process, that a cache folder cannot be used."""
    with _unwritable_lock:
        if folder in _unwritable:
            return
        _unwritable.add(folder)
    _log.warning("the local cache %s cannot be used (%s): reads are served without it", folder, exc)


def _touch(path: Path) -> None:
    """Mark ``path`` recently used for the least-recently-used order of a trim."""
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > _TOUCH_SECONDS:
            os.utime(path)


class CacheBudget:
    """A total size bound over cache folders (each holding one sub-folder per root).

    >>> budget = CacheBudget([Path("/tmp/c/segments")], max_bytes=10**9)  # doctest: +SKIP
    >>> budget.added(4096)  # after writing a file: trims when over the bound  # doctest: +SKIP
    """

    def __init__(self, folders: Sequence[Path], max_bytes: int) -> None:
        self.folders = list(folders)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._measured: int | None = None  # the folders' size at the last trim
        self._since = 0  # bytes this process wrote since

    def fits(self, size: int) -> bool:
        """Whether an item of ``size`` bytes may be cached at all."""
        return size <= self.max_bytes * _TRIM_TO

    def added(self, size: int) -> None:
        """Count ``size`` bytes just written; trim when the folders may be over the bound."""
        with self._lock:
            self._since += size
            due = (
                self._measured is None
                or self._measured + self._since > self.max_bytes
                # Other processes write too: measure again after a tenth of the bound.
                or self._since > self.max_bytes // 10
            )
            if not due:
                return
            self._since = 0
        try:
            measured = self.trim()
        except OSError as exc:
            _cannot_cache(self.folders[0].parent, exc)
            return
        with self._lock:
            self._measured = measured

    def _entries(self) -> list[_Entry]:
        entries: dict[Path, _Entry] = {}
        now = time.time()
        for base in self.folders:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for root in os.scandir(base):
                    if not root.is_dir(follow_symlinks=False):
                        continue
                    for item in os.scandir(root.path):
                        with contextlib.suppress(FileNotFoundError):
                            st = item.stat(follow_symlinks=False)
                            path = Path(item.path)
                            if _is_temp(item.name):
                                if now - st.st_mtime > _STALE_TEMP_SECONDS:
                                    path.unlink(missing_ok=True)
                                    continue
                                group = path  # counted, never evicted while being written
                            else:
                                group = path.with_name(item.name.split(".", 1)[0])
                            entry = entries.setdefault(group, _Entry([], 0, 0.0))
                            entry.paths.append(path)
                            entry.size += st.st_size
                            entry.used = max(entry.used, st.st_mtime)
        return list(entries.values())

    def trim(self) -> int:
        """Delete least recently used items until the folders fit; return their size then."""
        entries = self._entries()
        total = sum(e.size for e in entries)
        if total <= self.max_bytes:
            return total
        target = int(self.max_bytes * _TRIM_TO)
        for entry in sorted(entries, key=lambda e: e.used):
            if total <= target:
                break
            if any(_is_temp(p.name) for p in entry.paths):
                continue
            for path in entry.paths:
                # Unlink, never truncate: a process with the file mapped keeps its pages.
                path.unlink(missing_ok=True)
            total -= entry.size
        return total


class SegmentFiles:
    """Segment bytes by object key, in one folder per root (created user-only)."""

    def __init__(self, folder: str | os.PathLike[str], budget: CacheBudget | None = None) -> None:
        self._folder = Path(folder)
        self._budget = budget

    def _path(self, key: str) -> Path:
        return self._folder / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.parquet"

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _cannot_cache(self._folder, exc)
            return None
        _touch(path)
        return data

    def put(self, key: str, data: bytes) -> None:
        if self._budget is not None and not self._budget.fits(len(data)):
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_file_atomically(self._path(key), data)
        except OSError as exc:
            _cannot_cache(self._folder, exc)
            return
        if self._budget is not None:
            self._budget.added(len(data))

    def discard(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self._path(key).unlink(missing_ok=True)


_COLUMNS = ("steps", "timestamps", "values")


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(parts)).encode("utf-8")).hexdigest()[:32]


class HistoryFiles:
    """Sorted metric histories as ``.npy`` columns, opened memory-mapped.

    A new process (a new server worker) then samples a million-point chart without
    decoding and sorting the segments again: only the pages it touches are read.

    An identity is the history's name (its first ``name_parts`` items: experiment,
    run, metric) followed by the segments it was sorted from. Storing a history under
    a name deletes the files of that name sorted from other segments: a live run's
    chart, refreshed after each upload, keeps one copy on disk, not one per refresh.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        budget: CacheBudget | None = None,
        *,
        name_parts: int = 3,
    ) -> None:
        self._folder = Path(folder)
        self._budget = budget
        self._name_parts = name_parts

    def _stem(self, identity: Sequence[str]) -> tuple[str, str]:
        """(the name's prefix shared by every version, this version's file stem)."""
        name = _digest(identity[: self._name_parts])
        return f"{name}-", f"{name}-{_digest(identity[self._name_parts :])}"

    def _paths(self, identity: Sequence[str]) -> list[Path]:
        _, stem = self._stem(identity)
        return [self._folder / f"{stem}.{column}.npy" for column in _COLUMNS]

    def get(self, identity: Sequence[str]) -> tuple[np.ndarray, ...] | None:
        paths = self._paths(identity)
        try:
            # The values file is written last: with it present, the others are complete.
            values = np.load(paths[2], mmap_mode="r")
            steps = np.load(paths[0], mmap_mode="r")
            timestamps = np.load(paths[1], mmap_mode="r")
        except (FileNotFoundError, ValueError, OSError):
            return None
        if not len(steps) == len(timestamps) == len(values):
            return None
        _touch(paths[2])
        return steps, timestamps, values

    def put(self, identity: Sequence[str], columns: Sequence[np.ndarray]) -> None:
        size = sum(int(np.asarray(column).nbytes) for column in columns)
        if self._budget is not None and not self._budget.fits(size):
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path, column in zip(self._paths(identity), columns, strict=True):
                self._save(path, column)
            self._drop_superseded(identity)
        except OSError as exc:
            _cannot_cache(self._folder, exc)
            return
        if self._budget is not None:
            self._budget.added(size)

    def _save(self, path: Path, column: np.ndarray) -> None:
        handle, temp = tempfile.mkstemp(dir=self._folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.save(out, np.ascontiguousarray(column))
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(temp).unlink(missing_ok=True)
            raise

    def _drop_superseded(self, identity: Sequence[str]) -> None:
        prefix, stem = self._stem(identity)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self._folder):
                if entry.name.startswith(prefix) and not entry.name.startswith(f"{stem}."):
                    # A reader that has the old copy mapped keeps it until it lets go.
                    Path(entry.path).unlink(missing_ok=True)


def local_caches(root: str, max_bytes: int) -> tuple[SegmentFiles, HistoryFiles]:
    """The segment and history caches of ``root`` (its identity string), sharing one bound.

    The bound covers the caches of every root in the cache folder together.
    """
    base = default_index_dir()
    budget = CacheBudget([base / "segments", base / "histories"], max_bytes)
    digest = root_digest(root)
    return (
        SegmentFiles(base / "segments" / digest, budget),
        HistoryFiles(base / "histories" / digest, budget),
    )

"""Metric segments, and long histories sorted from them, cached on local disk.

A segment's name is unique and its bytes never change, so a file named after its
key is valid forever; so is a history sorted from a given set of segments. Deleting
the folders only costs re-downloads and re-sorting. Files are written through a temp
file and a rename, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlflow_plugin.objectstore.base import write_file_atomically

__all__ = ["HistoryFiles", "SegmentFiles"]


class SegmentFiles:
    """Segment bytes by object key, in one folder per root (created user-only)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self._folder / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.parquet"

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomically(self._path(key), data)

    def discard(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


_COLUMNS = ("steps", "timestamps", "values")


class HistoryFiles:
    """Sorted metric histories as ``.npy`` columns, opened memory-mapped.

    A new process (a new server worker) then samples a million-point chart without
    decoding and sorting the segments again: only the pages it touches are read.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)

    def _paths(self, identity: Sequence[str]) -> list[Path]:
        digest = hashlib.sha256(json.dumps(list(identity)).encode("utf-8")).hexdigest()
        return [self._folder / f"{digest}.{column}.npy" for column in _COLUMNS]

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
        return steps, timestamps, values

    def put(self, identity: Sequence[str], columns: Sequence[np.ndarray]) -> None:
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path, column in zip(self._paths(identity), columns, strict=True):
            handle, temp = tempfile.mkstemp(dir=self._folder, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    np.save(out, np.ascontiguousarray(column))
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise

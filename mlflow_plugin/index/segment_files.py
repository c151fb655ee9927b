"""Metric segments cached on local disk: immutable objects, so never fetched twice.

A segment's name is unique and its bytes never change, so a file named after its
key is valid forever; deleting the folder only costs re-downloads. Files are written
through a temp file and a rename, so a reader never sees half a segment.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mlflow_plugin.objectstore.base import write_file_atomically

__all__ = ["SegmentFiles"]


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

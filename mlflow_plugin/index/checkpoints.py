"""Index checkpoints in the bucket: a new machine starts from a snapshot of the index.

Opening a large bucket on a machine with no index means reading every run document
(one GET each). A checkpoint is an immutable snapshot of a SQLite index, written to

    index-checkpoints/<journal cursor ms:013d>.<index stamp digest>.<writer>.sqlite.zst

(zstd-compressed SQLite: the mirrored documents with their ETags, MLflow's rows, the
scopes a full listing mirrored and when, and the change journal's cursor). A machine
whose SQLite index file does not exist yet downloads the newest checkpoint of its own
index stamp whose cursor the journal still covers, and starts from it: the journal
brings every scope up to date, and the usual full listings (inline for a small scope,
in the background for a large one) find anything the journal missed. Readers never
depend on checkpoints: one that is missing, of another stamp, too old, damaged or
not shaped exactly like an index of this version is skipped with a warning, and the
index is built from the bucket as without it.

A checkpoint is written by ``mlflow-bucket checkpoint`` and by a process whose full
listing fetched at least ``AUTO_CHECKPOINT_FETCHES`` documents while its index holds
every experiment; after writing, older checkpoints of the same stamp beyond the
newest ``KEEP`` (and an hour old: a reader may be downloading one) are deleted, and
``gc`` does the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from sqlalchemy import create_engine

from mlflow_plugin.format import change_journal
from mlflow_plugin.index.schema import (
    INDEX_MLFLOW_METADATA,
    IndexBase,
    IndexMeta,
    index_stamp,
)
from mlflow_plugin.index.state import IndexState
from mlflow_plugin.objectstore import NotFound, ObjectStore, ObjectStoreError

__all__ = [
    "AUTO_CHECKPOINT_FETCHES",
    "CHECKPOINT_PREFIX",
    "KEEP",
    "Checkpoint",
    "collect_checkpoints",
    "install_checkpoint",
    "list_checkpoints",
    "write_checkpoint",
]

_log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "index-checkpoints/"
KEEP = 2
AUTO_CHECKPOINT_FETCHES = 1000
_MIN_AGE_TO_DELETE_MS = 3600 * 1000
_SUFFIX = ".sqlite.zst"


def stamp_digest(stamp: str | None = None) -> str:
    return hashlib.sha256((stamp or index_stamp()).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    key: str
    cursor_ms: int
    stamp_digest: str


def _parse(key: str) -> Checkpoint | None:
    name = key[len(CHECKPOINT_PREFIX) :]
    if not key.startswith(CHECKPOINT_PREFIX) or not name.endswith(_SUFFIX):
        return None
    parts = name[: -len(_SUFFIX)].split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return Checkpoint(key=key, cursor_ms=int(parts[0]), stamp_digest=parts[1])


def list_checkpoints(store: ObjectStore) -> list[Checkpoint]:
    """Every checkpoint in the bucket, oldest first."""
    found = (_parse(info.key) for info in store.list(CHECKPOINT_PREFIX))
    return sorted((c for c in found if c is not None), key=lambda c: (c.cursor_ms, c.key))


# -- the expected shape ----------------------------------------------------------------


def _schema_of(connection: sqlite3.Connection) -> set[tuple[str, str, str]]:
    """(type, name, columns) of every table and index: what a checkpoint must match.

    Not the SQL text: MLflow's models may carry their check constraints once or twice
    depending on what a process opened before, which changes the text, not the shape.
    """
    shape = set()
    rows = connection.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for kind, name in rows:
        info = "table_info" if kind == "table" else "index_info"
        columns = connection.execute(f"SELECT name FROM pragma_{info}(?)", (name,)).fetchall()
        shape.add((str(kind), str(name), ",".join(str(c[0]) for c in columns)))
    return shape


_expected: set[tuple[str, str, str]] | None = None


def _expected_schema() -> set[tuple[str, str, str]]:
    """The tables and indexes of an index of this version, exactly as SQLite records them."""
    global _expected
    if _expected is None:
        with tempfile.TemporaryDirectory() as folder:
            engine = create_engine(f"sqlite:///{folder}/shape.sqlite")
            IndexBase.metadata.create_all(engine)
            INDEX_MLFLOW_METADATA.create_all(engine)
            engine.dispose()
            with contextlib.closing(sqlite3.connect(f"{folder}/shape.sqlite")) as connection:
                _expected = _schema_of(connection)
    return _expected


class _Unusable(Exception):
    """A checkpoint that cannot serve as this machine's index."""


def _check_and_adopt(path: Path, root: str) -> int:
    """Check the downloaded database is an index of this version; make it ``root``'s.

    Returns its journal cursor. Nothing in the file runs: its schema must be exactly
    an index's (no views, no triggers), checked before any table is read.
    """
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.execute("PRAGMA trusted_schema=OFF")
            if _schema_of(connection) != _expected_schema():
                raise _Unusable("its tables are not those of this version's index")
            meta = dict(connection.execute(f"SELECT name, value FROM {IndexMeta.__tablename__}"))
            if meta.get("version") != index_stamp():
                raise _Unusable(f"it is an index of version {meta.get('version')!r}")
            cursor = connection.execute(
                f"SELECT value FROM {IndexState.__tablename__} WHERE name = 'journal_cursor_ms'"
            ).fetchone()
            if cursor is None or not isinstance(cursor[0], int):
                raise _Unusable("it has no change-journal cursor")
            connection.execute(
                f"UPDATE {IndexMeta.__tablename__} SET value = ? WHERE name = 'root'", (root,)
            )
            connection.execute("PRAGMA journal_mode=WAL")
            return int(cursor[0])
    except sqlite3.DatabaseError as exc:
        raise _Unusable(f"it is not a readable SQLite database ({exc})") from exc


@contextlib.contextmanager
def _scratch(folder: Path) -> Iterator[Path]:
    """A scratch file path in ``folder`` (same file system: renamed into place)."""
    fd, name = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _decompress(source: Path, target: Path) -> None:
    with pa.input_stream(str(source), compression="zstd") as reader, open(target, "wb") as out:
        while chunk := reader.read(1 << 20):
            out.write(chunk)


def _compress(source: Path, target: Path) -> None:
    with open(source, "rb") as reader, pa.output_stream(str(target), compression="zstd") as out:
        while chunk := reader.read(1 << 20):
            out.write(chunk)


def install_checkpoint(store: ObjectStore, path: Path, root: str) -> Checkpoint | None:
    """Put the newest usable checkpoint at ``path`` (which must not exist yet).

    Returns the checkpoint installed, or None (no usable one: the index is built from
    the bucket). Never raises for a bad checkpoint or an unreachable bucket.
    """
    trusted_since = change_journal.now_ms() - change_journal.TRUST_MS
    try:
        candidates = [
            c
            for c in list_checkpoints(store)
            if c.stamp_digest == stamp_digest() and c.cursor_ms > trusted_since
        ]
    except ObjectStoreError as exc:
        _log.warning("index checkpoints could not be listed (%s): building the index", exc)
        return None
    for checkpoint in reversed(candidates[-KEEP:]):  # the newest first
        with _scratch(path.parent) as packed, _scratch(path.parent) as unpacked:
            try:
                store.get_file(checkpoint.key, packed)
                _decompress(packed, unpacked)
                _check_and_adopt(unpacked, root)
            except (NotFound, _Unusable, OSError, pa.ArrowException, ObjectStoreError) as exc:
                _log.warning("index checkpoint %s is skipped: %s", checkpoint.key, exc)
                continue
            os.chmod(unpacked, 0o600)
            try:
                # Only where no index exists: a process that got there first keeps its own.
                os.link(unpacked, path)
            except FileExistsError:
                return None
            return checkpoint
    return None


def write_checkpoint(store: ObjectStore, database_path: Path) -> Checkpoint | None:
    """Snapshot the SQLite index at ``database_path`` into the bucket; return it.

    None when the index has no journal cursor yet (nothing listed in full).
    """
    with _scratch(database_path.parent) as snapshot, _scratch(database_path.parent) as packed:
        snapshot.unlink()  # VACUUM INTO writes a new file
        with contextlib.closing(sqlite3.connect(database_path)) as connection:
            # A consistent copy of the whole database, read in one transaction.
            connection.execute("VACUUM INTO ?", (str(snapshot),))
        with contextlib.closing(sqlite3.connect(snapshot)) as connection:
            row = connection.execute(
                f"SELECT value FROM {IndexState.__tablename__} WHERE name = 'journal_cursor_ms'"
            ).fetchone()
        if row is None:
            return None
        _compress(snapshot, packed)
        writer = uuid.uuid4().hex[:8]
        key = f"{CHECKPOINT_PREFIX}{int(row[0]):013d}.{stamp_digest()}.{writer}{_SUFFIX}"
        store.put_file(key, packed)
    checkpoint = _parse(key)
    assert checkpoint is not None
    collect_checkpoints(store)
    return checkpoint


def collect_checkpoints(store: ObjectStore, now_ms: int | None = None) -> list[str]:
    """Delete checkpoints beyond the newest ``KEEP`` of this version (an hour old at least)
    and those of other versions older than the journal's retention; return their keys."""
    now = change_journal.now_ms() if now_ms is None else now_ms
    by_stamp: dict[str, list[Checkpoint]] = {}
    for checkpoint in list_checkpoints(store):
        by_stamp.setdefault(checkpoint.stamp_digest, []).append(checkpoint)
    deleted = []
    for stamp, checkpoints in by_stamp.items():
        # Another version's checkpoints are kept while a machine of it may still read them.
        foreign = stamp != stamp_digest()
        for checkpoint in checkpoints if foreign else checkpoints[:-KEEP]:
            age = now - checkpoint.cursor_ms
            if age > (change_journal.RETENTION_MS if foreign else _MIN_AGE_TO_DELETE_MS):
                store.delete(checkpoint.key)
                deleted.append(checkpoint.key)
    return deleted

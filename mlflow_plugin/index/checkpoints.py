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
from collections.abc import Callable, Iterator
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
from mlflow_plugin.index.state import WRITE_GENERATION, IndexState
from mlflow_plugin.objectstore import NotFound, ObjectStore, ObjectStoreError

__all__ = [
    "AUTO_CHECKPOINT_FETCHES",
    "CHECKPOINT_PREFIX",
    "KEEP",
    "Checkpoint",
    "collect_checkpoints",
    "install_checkpoint",
    "list_checkpoints",
    "stamp_digest",
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
    if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()):
        return None
    return Checkpoint(key=key, cursor_ms=int(parts[0]), stamp_digest=parts[1])


def list_checkpoints(store: ObjectStore) -> list[Checkpoint]:
    """Every checkpoint in the bucket, oldest first."""
    found = (_parse(info.key) for info in store.list(CHECKPOINT_PREFIX))
    return sorted((c for c in found if c is not None), key=lambda c: (c.cursor_ms, c.key))


# -- the expected shape ----------------------------------------------------------------


_Shape = set[tuple[str, str, frozenset[str]]]


def _schema_of(connection: sqlite3.Connection) -> _Shape:
    """(type, name, clauses) of every object in the schema, SQLite's own included.

    The clauses of each CREATE statement as a set: MLflow's models list their
    constraints in an order that depends on what a process opened before, so only
    the order may differ. A constraint, column, index, trigger or view more or less
    is a different shape.
    """
    shape = set()
    rows = connection.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master")
    for kind, name, sql in rows.fetchall():
        clauses = frozenset(part.strip().rstrip(",") for part in str(sql).split("\n"))
        shape.add((str(kind), str(name), clauses))
    return shape


_expected: _Shape | None = None


def _expected_schema() -> _Shape:
    """The schema of an index of this version, as SQLite records it."""
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


def _root_id(root: str) -> str:
    return root.rpartition(" #")[2]


#: Rows that no mirrored document vouches for, deleted before a checkpoint is used: a
#: document row must sit under its own key, a run or experiment row needs its document
#: row, the rows of a run or experiment need their run or experiment, and a mirrored
#: document needs its row (else the bucket's listing would never read it again).
_UNVOUCHED = (
    """DELETE FROM bucket_documents WHERE NOT (
        (kind = 'run' AND key = 'experiments/' || experiment_id || '/runs/' || entity_id
            || '.json')
        OR (kind = 'experiment' AND entity_id = experiment_id
            AND key = 'experiments/' || experiment_id || '/experiment.json'))""",
    # ``+column`` keeps SQLite from looking rows up by (kind, experiment_id): one probe
    # would visit every run of the experiment, 100,000 x 100,000 rows for a large one.
    """DELETE FROM runs WHERE NOT EXISTS (SELECT 1 FROM bucket_documents AS d
        WHERE +d.kind = 'run' AND d.entity_id = runs.run_uuid
        AND +d.experiment_id = CAST(runs.experiment_id AS TEXT))""",
    """DELETE FROM experiments WHERE NOT EXISTS (SELECT 1 FROM bucket_documents AS d
        WHERE +d.kind = 'experiment'
        AND d.entity_id = CAST(experiments.experiment_id AS TEXT))""",
    "DELETE FROM tags WHERE run_uuid NOT IN (SELECT run_uuid FROM runs)",
    "DELETE FROM params WHERE run_uuid NOT IN (SELECT run_uuid FROM runs)",
    "DELETE FROM latest_metrics WHERE run_uuid NOT IN (SELECT run_uuid FROM runs)",
    "DELETE FROM inputs WHERE destination_id NOT IN (SELECT run_uuid FROM runs)",
    "DELETE FROM input_tags WHERE input_uuid NOT IN (SELECT input_uuid FROM inputs)",
    """DELETE FROM experiment_tags
        WHERE experiment_id NOT IN (SELECT experiment_id FROM experiments)""",
    # A mirrored document whose rows went (above, or unreadable) is read again.
    """DELETE FROM bucket_documents WHERE body != '' AND (
        (kind = 'run' AND entity_id NOT IN (SELECT run_uuid FROM runs))
        OR (kind = 'experiment'
            AND entity_id NOT IN (SELECT CAST(experiment_id AS TEXT) FROM experiments)))""",
)
#: Tables whose text a search hands back to Python (the rest is only compared in SQL).
_RETURNED_TEXT = ("bucket_documents", "runs", "experiments", "datasets", "input_tags")


def _drop_undecodable(connection: sqlite3.Connection) -> None:
    """Delete rows holding text that is not UTF-8: reading them would fail every search."""
    tables = {
        table: [str(c[1]) for c in connection.execute(f"PRAGMA table_info({table})")]
        for table in _RETURNED_TEXT
    }
    connection.text_factory = bytes
    for table, columns in tables.items():
        bad = []
        for row in connection.execute(f"SELECT rowid, {', '.join(columns)} FROM {table}"):
            try:
                for value in row[1:]:
                    if isinstance(value, bytes):
                        value.decode("utf-8")
            except UnicodeDecodeError:
                bad.append((row[0],))
        connection.executemany(f"DELETE FROM {table} WHERE rowid = ?", bad)
    connection.text_factory = str


def _check_and_adopt(path: Path, root: str) -> int:
    """Check the downloaded database is an index of this version and of ``root``; drop
    what no document vouches for; make it ``root``'s. Returns its journal cursor.

    Its schema must be exactly an index's (no view, trigger or constraint more), checked
    before any table is read, and nothing in it runs.
    """
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.execute("PRAGMA trusted_schema=OFF")
            if _schema_of(connection) != _expected_schema():
                raise _Unusable("its tables are not those of this version's index")
            meta = dict(connection.execute(f"SELECT name, value FROM {IndexMeta.__tablename__}"))
            if meta.get("version") != index_stamp():
                raise _Unusable(f"it is an index of version {meta.get('version')!r}")
            if _root_id(str(meta.get("root"))) != _root_id(root):
                raise _Unusable("it is the index of another root (its root id differs)")
            cursor = connection.execute(
                f"SELECT value FROM {IndexState.__tablename__} WHERE name = 'journal_cursor_ms'"
            ).fetchone()
            if cursor is None or not isinstance(cursor[0], int):
                raise _Unusable("it has no change-journal cursor")
            if cursor[0] > change_journal.now_ms() + change_journal.MARGIN_MS:
                raise _Unusable("its journal cursor is in the future (its writer's clock)")
            connection.execute("BEGIN")
            _drop_undecodable(connection)
            for statement in _UNVOUCHED:
                connection.execute(statement)
            connection.execute(
                f"UPDATE {IndexMeta.__tablename__} SET value = ? WHERE name = 'root'", (root,)
            )
            # Its writer's count of writes means nothing here (and may be any value).
            connection.execute(
                f"DELETE FROM {IndexState.__tablename__} WHERE name = ?", (WRITE_GENERATION,)
            )
            connection.execute("COMMIT")
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


def install_checkpoint(
    store: ObjectStore,
    path: Path,
    root: str,
    on_download: Callable[[Checkpoint], object] | None = None,
) -> Checkpoint | None:
    """Put the newest usable checkpoint at ``path`` (which must not exist yet).

    Returns the checkpoint installed, or None (no usable one: the index is built from
    the bucket). Never raises: a bad checkpoint, an unreachable bucket or a folder
    that cannot be written only costs speed. ``on_download(checkpoint)`` is called as
    each candidate's download starts (the caller may list the journal from its cursor
    meanwhile).
    """
    trusted_since = change_journal.now_ms() - change_journal.TRUST_MS
    try:
        ours = [c for c in list_checkpoints(store) if c.stamp_digest == stamp_digest()]
    except ObjectStoreError as exc:
        _log.warning("index checkpoints could not be listed (%s): building the index", exc)
        return None
    candidates = [c for c in ours if c.cursor_ms > trusted_since]
    if ours and not candidates:
        _log.warning(
            "index checkpoint %s is skipped: older than the change journal's trust of %d days",
            ours[-1].key,
            change_journal.TRUST_MS // 86_400_000,
        )
    for checkpoint in reversed(candidates[-KEEP:]):  # the newest first
        try:
            with _scratch(path.parent) as packed, _scratch(path.parent) as unpacked:
                if on_download is not None:
                    on_download(checkpoint)
                store.get_file(checkpoint.key, packed)
                _decompress(packed, unpacked)
                _check_and_adopt(unpacked, root)
                os.chmod(unpacked, 0o600)
                return checkpoint if _place(unpacked, path) else None
        except (NotFound, _Unusable, OSError, pa.ArrowException, ObjectStoreError) as exc:
            _log.warning("index checkpoint %s is skipped: %s", checkpoint.key, exc)
    return None


def _place(unpacked: Path, path: Path) -> bool:
    """Move the checked database to ``path`` unless an index appeared there meanwhile."""
    try:
        # Only where no index exists: a process that got there first keeps its own.
        os.link(unpacked, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        if path.exists():
            return False
        os.replace(unpacked, path)
    return True


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

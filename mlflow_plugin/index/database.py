"""Opening the index database: where it lives, SQLite settings, version and root checks.

The default is one SQLite file per root under the user's cache folder, in WAL mode so
that the server's worker processes read while one of them syncs. Writers take the
database lock when their transaction begins (``BEGIN IMMEDIATE``): two syncs then
queue instead of failing half-way. An index written by another version of this code,
of the bucket format or of MLflow's tables, or for another root, is dropped and
rebuilt: it is only a cache of the bucket.

A SQLite file that is damaged ("file is not a database", "database disk image is
malformed") or is not an index at all (someone else's tables, no version record) is
moved aside to ``<file>.damaged`` with one warning and rebuilt, under the same
cross-process lock, so processes opening it at once replace it only once.
``repair_index_database`` does the same for damage met later, by a query.

On PostgreSQL (a shared index for server replicas on several hosts) the same rules hold
with the server's advisory locks in place of SQLite's: every write transaction takes one
transaction-level lock first, so syncs of several processes queue instead of deleting
and inserting the same rows at once (duplicate keys, deadlocks); table setup and a
version rebuild hold it session-wide; readers see one snapshot per search (REPEATABLE
READ), as SQLite's WAL readers do; LIKE patterns have no escape character, as on
SQLite (PostgreSQL's default one is the backslash), so searches answer as MLflow's
``sqlite:///`` store does. A server database that holds tables but no version record
is someone else's: it is refused, never dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler

from mlflow_plugin.cache.paths import default_index_dir, root_digest
from mlflow_plugin.index.schema import (
    INDEX_MLFLOW_METADATA,
    INDEX_MLFLOW_TABLES,
    MLFLOW_TABLES,
    IndexBase,
    IndexedDocument,
    IndexMeta,
    MlflowBase,
    index_stamp,
)
from mlflow_plugin.index.state import count_write

__all__ = [
    "IndexDatabase",
    "clear_index",
    "default_index_url",
    "is_damaged_database",
    "open_index_database",
    "repair_index_database",
    "sqlite_path",
    "unusable_index",
]

_log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 60_000
_DAMAGE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
# The advisory lock of an index's writers on PostgreSQL (a bigint; a lock is per database).
_POSTGRES_LOCK = int.from_bytes(
    hashlib.sha256(b"mlflow-bucket index writers").digest()[:8], "big", signed=True
)


def default_index_url(root: str, folder: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<folder>/<hash of root>.sqlite``; the folder is created user-only."""
    base = Path(folder) if folder else default_index_dir()
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{base / root_digest(root)}.sqlite"


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    # As MLflow's SQL store sets it: LIKE is case-sensitive, ILIKE is not.
    cursor.execute("PRAGMA case_sensitive_like=true")
    cursor.close()


@dataclass
class IndexDatabase:
    """A read engine and a write engine on one database."""

    url: str
    reader: Engine
    writer: Engine
    #: (device, inode) of the SQLite file when it was opened: which file a repair replaces.
    file_id: tuple[int, int] | None = None

    def read(self) -> Session:
        return Session(self.reader)

    @contextlib.contextmanager
    def write(self, *, bookkeeping: bool = False) -> Iterator[Session]:
        """A transaction that holds the database's write lock from its first statement.

        Counted in the index's write generation (``state.write_generation``) unless it is
        ``bookkeeping``: it writes only the index's own records (listings, the journal's
        cursor), none of the rows a search reads.
        """
        with Session(self.writer) as session, session.begin():
            if _is_postgres(self.writer):  # SQLite's writer engine begins IMMEDIATE instead
                session.execute(select(func.pg_advisory_xact_lock(_POSTGRES_LOCK)))
            yield session
            if not bookkeeping:
                count_write(session)

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


def _is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _engines(url: str) -> tuple[Engine, Engine]:
    path = sqlite_path(url)
    if path is None:
        engine = create_engine(url, pool_pre_ping=True)
        if _is_postgres(engine):
            engine.dialect.statement_compiler = _without_like_escape(
                engine.dialect.statement_compiler
            )
            # One snapshot per search (a page and its documents agree), on the same pool.
            return engine.execution_options(isolation_level="REPEATABLE READ"), engine
        return engine, engine
    if not path.exists():
        _create_file(path)
    # NullPool: a forked server worker must not inherit its parent's open connections.
    reader = create_engine(url, poolclass=NullPool)
    writer = create_engine(url, poolclass=NullPool)
    event.listen(reader, "connect", _sqlite_pragmas)
    event.listen(writer, "connect", _sqlite_pragmas)

    @event.listens_for(writer, "connect")
    def _no_implicit_begin(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # pysqlite would BEGIN late, as a deferred reader

    @event.listens_for(writer, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return reader, writer


def _without_like_escape(compiler: type[SQLCompiler]) -> type[SQLCompiler]:
    """``compiler`` rendering LIKE and ILIKE with ``ESCAPE ''`` unless one is given.

    Set on this engine's dialect only: other engines of the process are left alone.
    """

    def unescaped(visit: Any) -> Any:
        def visit_unescaped(self: SQLCompiler, binary: Any, operator: Any, **kw: Any) -> str:
            if binary.modifiers.get("escape") is None:
                binary = binary._clone()
                binary.modifiers = {**binary.modifiers, "escape": ""}
            return str(visit(self, binary, operator, **kw))

        return visit_unescaped

    names = ["visit_like_op_binary", "visit_not_like_op_binary"]
    names += ["visit_ilike_op_binary", "visit_not_ilike_op_binary"]
    methods = {name: unescaped(getattr(compiler, name)) for name in names}
    return type(f"Unescaped{compiler.__name__}", (compiler,), methods)


@contextlib.contextmanager
def _setup_lock(url: str, writer: Engine) -> Iterator[None]:
    """Serialise creating, checking and rebuilding one index across processes.

    A lock file beside a SQLite file; on PostgreSQL, the writers' advisory lock held by
    one connection for the whole setup (concurrent CREATE TABLEs of one name collide in
    PostgreSQL's catalogue, and writers must not fill tables being rebuilt).
    """
    path = sqlite_path(url)
    if path is None:
        if not _is_postgres(writer):
            yield
            return
        with writer.connect() as connection:
            _advisory(connection, func.pg_advisory_lock)
            try:
                yield
            finally:
                # A broken connection has lost the lock with its session already.
                with contextlib.suppress(SQLAlchemyError):
                    _advisory(connection, func.pg_advisory_unlock)
        return
    fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _advisory(connection: Connection, lock: Any) -> None:
    # Session-level: it outlives this statement's transaction, which is ended at once so
    # that the connection does not sit idle in a transaction while the setup runs.
    connection.execute(select(lock(_POSTGRES_LOCK)))
    connection.commit()


def _meta(session: Session) -> dict[str, str]:
    return {row.name: row.value for row in session.scalars(select(IndexMeta))}


def is_damaged_database(exc: BaseException) -> bool:
    """Whether ``exc`` says the SQLite file itself is damaged or not a database."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(cause, "sqlite_errorcode", None)
    return (
        isinstance(cause, sqlite3.DatabaseError)
        and code is not None
        and (code & 0xFF in _DAMAGE_CODES)
    )


class _NotAnIndex(Exception):
    """The database holds tables, but not an index's."""


def _file_id(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _create_file(path: Path) -> None:
    # Created user-only before SQLite opens it: it mirrors everything in the bucket.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _move_aside(path: Path, reason: str) -> None:
    """Replace a damaged index file by an empty one; keep the old one for inspection."""
    aside = path.with_name(f"{path.name}.damaged")
    os.replace(path, aside)
    # Its journals belong to the old file: SQLite must not replay them into the new one.
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _create_file(path)
    _log.warning(
        "the search index %s is damaged or not an index (%s): moved aside to %s and "
        "rebuilt from the bucket",
        path,
        reason,
        aside.name,
    )


def _prepare(writer: Engine, wanted: dict[str, str], is_file: bool) -> None:
    """Create the tables, or drop and recreate them when the index is of another kind."""
    tables = set(inspect(writer).get_table_names())
    if tables and IndexMeta.__tablename__ not in tables:
        raise _NotAnIndex(f"tables {', '.join(sorted(tables)[:5])} but no version record")
    IndexBase.metadata.create_all(writer)
    try:
        with Session(writer) as session:
            current = _meta(session)
    except SQLAlchemyError as exc:
        if not is_file or is_damaged_database(exc):
            raise
        raise _NotAnIndex(f"its version record cannot be read: {_reason(exc)}") from exc
    if current != wanted:
        # Another version's tables may differ in shape: drop them all, then rebuild.
        # Dropped in the order of MLflow's foreign keys, which older indexes still have.
        MlflowBase.metadata.drop_all(writer, tables=MLFLOW_TABLES)
        IndexBase.metadata.drop_all(writer)
        IndexBase.metadata.create_all(writer)
        INDEX_MLFLOW_METADATA.create_all(writer)
        with Session(writer) as session, session.begin():
            session.add_all(IndexMeta(name=k, value=v) for k, v in wanted.items())
    else:
        INDEX_MLFLOW_METADATA.create_all(writer)


def _reason(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return str(cause).splitlines()[0] if str(cause) else type(cause).__name__


def unusable_index(exc: BaseException) -> MlflowException:
    """The ``MlflowException`` for an index database that cannot be used at all.

    A missing driver is a setting to fix (INVALID_PARAMETER_VALUE); a database that
    fails (unreachable server, a file that cannot be opened) is TEMPORARILY_UNAVAILABLE.
    """
    if isinstance(exc, (ImportError, ArgumentError)):
        return MlflowException(
            f"cannot use the search index: its database driver is not installed ({exc})",
            INVALID_PARAMETER_VALUE,
        )
    return MlflowException(f"cannot use the search index: {_reason(exc)}", TEMPORARILY_UNAVAILABLE)


def open_index_database(url: str, root: str) -> IndexDatabase:
    """Open (creating or rebuilding as needed) the index of ``root`` at ``url``.

    Raises ``MlflowException`` (see ``unusable_index``) when the database cannot be used.
    """
    try:
        return _open(url, root)
    except (ImportError, SQLAlchemyError, OSError) as exc:
        # OSError: an index folder or file that cannot be created or locked.
        raise unusable_index(exc) from exc


def _open(url: str, root: str) -> IndexDatabase:
    reader, writer = _engines(url)
    path = sqlite_path(url)
    wanted = {"version": index_stamp(), "root": root}
    with _setup_lock(url, writer):
        try:
            _prepare(writer, wanted, path is not None)
        except (SQLAlchemyError, _NotAnIndex) as exc:
            if path is None and isinstance(exc, _NotAnIndex):
                # A server database is not ours to move aside (it may be MLflow's own).
                raise MlflowException(
                    f"the search index database {make_url(url).render_as_string()} is not an "
                    f"index ({exc}): give the index a database of its own",
                    INVALID_PARAMETER_VALUE,
                ) from None
            if path is None or not (isinstance(exc, _NotAnIndex) or is_damaged_database(exc)):
                raise
            _move_aside(path, _reason(exc))
            _prepare(writer, wanted, True)
        file_id = _file_id(path)
    return IndexDatabase(url=url, reader=reader, writer=writer, file_id=file_id)


def repair_index_database(database: IndexDatabase, root: str, exc: BaseException) -> IndexDatabase:
    """Replace the damaged SQLite file a query of ``database`` failed on; reopen it.

    Only the file that ``database`` opened is moved aside: if another process already
    replaced it, the replacement is opened as it is.
    """
    path = sqlite_path(database.url)
    if path is None:
        raise exc
    database.dispose()
    with _setup_lock(database.url, database.writer):
        if database.file_id is not None and _file_id(path) == database.file_id:
            _move_aside(path, _reason(exc))
    return open_index_database(database.url, root)


def clear_index(database: IndexDatabase) -> None:
    """Delete every mirrored row, keeping the tables and the version record."""
    with database.write() as session:
        for table in [*reversed(INDEX_MLFLOW_TABLES), IndexedDocument.__table__]:
            session.execute(table.delete())

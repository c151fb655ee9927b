"""Opening the index database: where it lives, SQLite settings, version and root checks.

The default is one SQLite file per root under the user's cache folder, in WAL mode so
that the server's worker processes read while one of them syncs. Writers take the
database lock when their transaction begins (``BEGIN IMMEDIATE``): two syncs then
queue instead of failing half-way. An index written by another version of this code,
or for another root, is dropped and rebuilt: it is only a cache of the bucket.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from mlflow_plugin.format.version import FORMAT_VERSION
from mlflow_plugin.index.paths import default_index_dir, root_digest
from mlflow_plugin.index.schema import (
    INDEX_VERSION,
    MLFLOW_TABLES,
    IndexBase,
    IndexedDocument,
    IndexMeta,
    MlflowBase,
)

__all__ = [
    "IndexDatabase",
    "clear_index",
    "default_index_url",
    "open_index_database",
    "sqlite_path",
]

_BUSY_TIMEOUT_MS = 60_000


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

    def read(self) -> Session:
        return Session(self.reader)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that holds the database's write lock from its first statement."""
        with Session(self.writer) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


def _engines(url: str) -> tuple[Engine, Engine]:
    path = sqlite_path(url)
    if path is None:
        engine = create_engine(url, pool_pre_ping=True)
        return engine, engine
    if not path.exists():
        # Created user-only before SQLite opens it: it mirrors everything in the bucket.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
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


@contextlib.contextmanager
def _setup_lock(url: str) -> Iterator[None]:
    """Serialise creating, checking and rebuilding one SQLite file across processes."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _meta(session: Session) -> dict[str, str]:
    return {row.name: row.value for row in session.scalars(select(IndexMeta))}


def open_index_database(url: str, root: str) -> IndexDatabase:
    """Open (creating or rebuilding as needed) the index of ``root`` at ``url``."""
    reader, writer = _engines(url)
    # The bucket's format version too: documents of another format may mirror differently.
    wanted = {"version": f"{INDEX_VERSION}.{FORMAT_VERSION}", "root": root}
    with _setup_lock(url):
        IndexBase.metadata.create_all(writer)
        with Session(writer) as session:
            current = _meta(session)
        if current != wanted:
            # Another version's tables may differ in shape: drop them all, then rebuild.
            MlflowBase.metadata.drop_all(writer, tables=MLFLOW_TABLES)
            IndexBase.metadata.drop_all(writer)
            IndexBase.metadata.create_all(writer)
            MlflowBase.metadata.create_all(writer, tables=MLFLOW_TABLES)
            with Session(writer) as session, session.begin():
                session.add_all(IndexMeta(name=k, value=v) for k, v in wanted.items())
        else:
            MlflowBase.metadata.create_all(writer, tables=MLFLOW_TABLES)
    return IndexDatabase(url=url, reader=reader, writer=writer)


def clear_index(database: IndexDatabase) -> None:
    """Delete every mirrored row, keeping the tables and the version record."""
    with database.write() as session:
        for table in [*reversed(MLFLOW_TABLES), IndexedDocument.__table__]:
            session.execute(table.delete())

"""What an index database knows of its own freshness, shared by every process using it.

``bucket_index_scopes`` records, per scope, when its last full listing began (the
writer's wall clock, milliseconds) and how many documents it found; ``bucket_index_state``
holds the change journal's cursor: the time of the newest journal entry applied to
every listed scope. Another process opening the same database (a restarted server
worker, a replica on a shared PostgreSQL index, a machine that loaded a checkpoint)
then knows which scopes it may bring up to date from the journal alone. The state
also counts the index's write transactions (``IndexDatabase.write`` adds one in
each): a search compares the counts before its early query and after its sync.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import BigInteger, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from mlflow_plugin.index.schema import IndexBase

__all__ = [
    "IndexScope",
    "IndexState",
    "WRITE_GENERATION",
    "ScopeListing",
    "count_write",
    "forget_listings",
    "journal_cursor",
    "listed_scopes",
    "move_journal_cursor",
    "record_listing",
    "record_listings",
    "write_generation",
]

_JOURNAL_CURSOR = "journal_cursor_ms"
_GENERATION = "write_generation"
#: The state's row of the write generation (a checkpoint drops its writer's count).
WRITE_GENERATION = _GENERATION
_IN_CHUNK = 500  # scopes per IN (...) clause, under every database's parameter limit


class IndexScope(IndexBase):
    """A scope (``experiments``, ``runs/<id>``) that a full listing has mirrored."""

    __tablename__ = "bucket_index_scopes"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    listed_at_ms: Mapped[int] = mapped_column(BigInteger)
    documents: Mapped[int] = mapped_column(Integer)


class IndexState(IndexBase):
    """Named integers: the change journal's cursor, the write generation."""

    __tablename__ = "bucket_index_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class ScopeListing(NamedTuple):
    listed_at_ms: int
    documents: int


def listed_scopes(session: Session, only: Sequence[str] | None = None) -> dict[str, ScopeListing]:
    """Every listed scope, or those of ``only`` (plain tuples: thousands are read
    before many searches)."""
    query = select(IndexScope.scope, IndexScope.listed_at_ms, IndexScope.documents)
    if only is None:
        return {scope: ScopeListing(at, n) for scope, at, n in session.execute(query)}
    return {
        scope: ScopeListing(at, n)
        for start in range(0, len(only), _IN_CHUNK)
        for scope, at, n in session.execute(
            query.where(IndexScope.scope.in_(only[start : start + _IN_CHUNK]))
        )
    }


def journal_cursor(session: Session) -> int | None:
    row = session.get(IndexState, _JOURNAL_CURSOR)
    return None if row is None else row.value


def write_generation(session: Session) -> int:
    """How many write transactions the index has committed (by any process): equal
    counts read before and after some work mean nothing was written in between."""
    value = session.scalar(select(IndexState.value).where(IndexState.name == _GENERATION))
    return value or 0


def count_write(session: Session) -> None:
    """Add this write transaction to the write generation (the caller holds the
    database's write lock, so no other writer inserts the row at the same time).

    A database without the row (new, rebuilt, or a checkpoint just adopted) starts at
    a random count: a count read from a file another process has since replaced is
    not met again by chance.
    """
    counted = session.execute(
        update(IndexState).where(IndexState.name == _GENERATION).values(value=IndexState.value + 1)
    )
    if counted.rowcount == 0:  # type: ignore[attr-defined]
        session.add(IndexState(name=_GENERATION, value=secrets.randbits(62)))


def move_journal_cursor(session: Session, at_ms: int, *, back: bool = False) -> None:
    """Move the cursor forward to ``at_ms`` (or back to it, with ``back``); never the
    other way: concurrent processes may apply the journal in any order."""
    row = session.get(IndexState, _JOURNAL_CURSOR, with_for_update=True)
    if row is None:
        session.add(IndexState(name=_JOURNAL_CURSOR, value=at_ms))
    elif (at_ms < row.value) if back else (at_ms > row.value):
        row.value = at_ms


def record_listing(session: Session, scope: str, started_ms: int, documents: int) -> None:
    """A full listing of ``scope`` that began at ``started_ms`` is mirrored.

    The journal cursor moves back to its start (entries written while it ran may name
    documents it read before they changed), and forward to the oldest listing of any
    scope (every scope has been listed in full since).
    """
    record_listings(session, [scope], started_ms, documents)


def record_listings(
    session: Session, scopes: Sequence[str], started_ms: int, documents: int
) -> None:
    """``record_listing`` for many scopes listed at once, each with ``documents``."""
    rows: dict[str, IndexScope] = {}
    for start in range(0, len(scopes), _IN_CHUNK):
        query = (
            select(IndexScope)
            .where(IndexScope.scope.in_(scopes[start : start + _IN_CHUNK]))
            .with_for_update()
        )
        rows.update((row.scope, row) for row in session.scalars(query))
    for scope in scopes:
        row = rows.get(scope)
        if row is None:
            rows[scope] = IndexScope(scope=scope, listed_at_ms=started_ms, documents=documents)
            session.add(rows[scope])
        else:
            row.listed_at_ms = max(row.listed_at_ms, started_ms)
            row.documents = documents
    move_journal_cursor(session, started_ms, back=True)
    session.flush()
    # Every scope listed in full since the oldest of their listings: no entry before it
    # is still needed, so the cursor stays young while listings alone keep the index.
    oldest = session.scalar(select(func.min(IndexScope.listed_at_ms)))
    if oldest is not None:
        move_journal_cursor(session, oldest)


def forget_listings(session: Session) -> None:
    """No scope is mirrored any more (the index was emptied). The write generation
    stays: it only ever grows, so a count read before this never reappears."""
    session.execute(delete(IndexScope))
    session.execute(delete(IndexState).where(IndexState.name != _GENERATION))

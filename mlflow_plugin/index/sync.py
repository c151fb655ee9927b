"""Bringing the index up to date with the bucket: list, fetch what changed, mirror it.

A scope (the experiments, or one experiment's runs) is listed again when it is older
than the staleness bound; only documents whose ETag differs from the indexed one are
fetched, in parallel, and mirrored in transactions of a few hundred documents;
documents gone from the listing are removed. Concurrent callers share one listing per
scope. Documents this process wrote are re-read before its next search of their
scope, with no listing, so a process always finds its own writes.

A scope bigger than one listing page is not listed again while a request waits: it is
brought up to date from the change journal (``format.change_journal``: one listing
for every scope, of the entries written since the last look, then a read of each
document whose ETag differs), and listed in full in the background at most every
``FULL_LISTING_MS`` (or ten listing-durations), which finds what a writer without
journal entries changed. The database records which scopes a full listing mirrored,
when, and the journal's cursor (``index.state``): another process on the same
database (a restarted worker, a replica on a shared PostgreSQL index, a machine that
loaded a checkpoint) starts from there instead of listing everything again.

A search naming many experiments (up to thousands: the UI's compare view, a script
searching everything) lists the experiment folders once and lists no scope of an id
that has none (those are recorded empty together); the others are listed in parallel.
When the experiments come from the journal, the folder listing starts beside the
journal's look (``fresh_experiments_and_runs``). When the expired scopes of one
request hold more than one listing page together, they are treated as one large
scope: the journal brings them up to date, and they are listed in the background.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.format.documents import decode_document
from mlflow_plugin.format.schema import RUN
from mlflow_plugin.index.database import IndexDatabase
from mlflow_plugin.index.mlflow_internals import (
    SqlDataset,
    SqlExperiment,
    SqlExperimentTag,
    SqlInput,
    SqlInputTag,
    SqlLatestMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow_plugin.index.names import names_left_out
from mlflow_plugin.index.rows import (
    ExperimentRows,
    RunRows,
    UnmirrorableDocument,
    experiment_rows,
    run_rows,
)
from mlflow_plugin.index.schema import IndexedDocument
from mlflow_plugin.index.state import (
    ScopeListing,
    journal_cursor,
    listed_scopes,
    move_journal_cursor,
    record_listing,
    record_listings,
)
from mlflow_plugin.objectstore import NotFound, ObjectStore, StoredObject
from mlflow_plugin.objectstore.errors import CorruptObject

__all__ = [
    "EXPERIMENTS_SCOPE",
    "FULL_LISTING_MS",
    "RESCAN_DELAY_S",
    "TAIL_MS",
    "WINDOW_RESCAN_S",
    "IndexSync",
    "JournalLook",
    "SyncReport",
    "runs_scope",
]

_log = logging.getLogger(__name__)

EXPERIMENTS_SCOPE = "experiments"
_CHUNK = 400  # documents per transaction: bounds memory and the length of a write lock
_IN_CHUNK = 500  # ids per IN (...) clause, under every database's parameter limit
_INLINE_LIMIT = 1000  # one listing page: cheap enough to re-list while a request waits
_LISTERS = 16  # scopes listed at once for one search naming many experiments
#: One listing page of run documents costs as many requests as this many experiments.
_EXPERIMENT_HEADS_PER_LISTING_PAGE = 20
#: How often a large scope, kept fresh by the change journal, is listed in full anyway
#: (in the background): what a writer without journal entries changed is found then.
FULL_LISTING_MS = 10 * 60 * 1000
#: A look lists the journal from this long before the newest entry this process saw
#: (or the database's cursor): writers a few seconds apart in clock or in latency. The
#: whole margin is listed again in the background every ``WINDOW_RESCAN_S``.
TAIL_MS = 10_000
WINDOW_RESCAN_S = 60.0
#: The margin's rescan waits this long first: the search whose look started it (a new
#: machine's first) answers without sharing the interpreter with thousands of entries.
RESCAN_DELAY_S = 2.0


def runs_scope(experiment_id: str) -> str:
    return f"runs/{experiment_id}"


@dataclass
class SyncReport:
    listed: int = 0
    fetched: int = 0
    removed: int = 0
    unmirrorable: int = 0

    def add(self, other: SyncReport) -> None:
        self.listed += other.listed
        self.fetched += other.fetched
        self.removed += other.removed
        self.unmirrorable += other.unmirrorable


@dataclass(frozen=True)
class JournalLook:
    """A listing of the journal's tail from ``cursor_ms`` (``changes_since(store,
    cursor_ms, TAIL_MS)``), started before the index it is for was opened: a new
    machine lists it while it downloads a checkpoint whose cursor is ``cursor_ms``."""

    cursor_ms: int
    started: float  # monotonic
    changes: Future[list[change_journal.Change]]

    @classmethod
    def start(cls, pool: ThreadPoolExecutor, store: ObjectStore, cursor_ms: int) -> JournalLook:
        """Start listing the journal from ``cursor_ms`` on ``pool``."""
        started = time.monotonic()
        changes = pool.submit(change_journal.changes_since, store, cursor_ms, TAIL_MS)
        return cls(cursor_ms, started, changes)


@dataclass(frozen=True)
class _FolderListing:
    """The experiment folders, and when the listing that found them began."""

    started: float  # monotonic
    started_ms: int  # this machine's clock, as listings are recorded
    ids: list[str]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class IndexSync:
    """Keeps one index database in step with one bucket root."""

    def __init__(
        self,
        store: ObjectStore,
        database: IndexDatabase,
        staleness: float,
        fetchers: ThreadPoolExecutor,
        listers: ThreadPoolExecutor | None = None,
        on_listed: Callable[[str, SyncReport], None] | None = None,
        first_look: JournalLook | None = None,
    ) -> None:
        self._store = store
        self._database = database
        self._staleness = staleness
        self._fetchers = fetchers
        # Not the fetchers: a listing task waits on fetch tasks, which must not queue behind it.
        self._listers = listers or ThreadPoolExecutor(_LISTERS, thread_name_prefix="index-list")
        self._on_listed = on_listed
        self._synced_at: dict[str, float] = {}  # scope -> when its last listing began
        self._listed: dict[str, int] = {}  # scope -> documents its last listing found
        self._list_seconds: dict[str, float] = {}  # scope -> how long that listing took
        self._written: dict[str, set[str]] = {}  # scope -> keys this process wrote since
        # Scopes whose written keys a search took and is re-reading (see ``_taking_written``).
        self._rereading: dict[str, int] = {}
        self._must_list: set[str] = set()
        self._background: set[str] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._rereads_done = threading.Condition(self._lock)
        self._scope_locks: dict[str, threading.Lock] = {}
        # The change journal is read for every scope at once, at most once per bound.
        self._journal_lock = threading.Lock()
        self._journal_read_at: float | None = None
        self._journal_tail: int | None = None  # the newest entry this process saw
        self._first_look = first_look  # taken by the first look, if it is still fresh
        self._window_scanned_at: float | None = None  # the last rescan of the margin began
        self._window_rescanning = False
        self._experiment_folders: _FolderListing | None = None  # the newest
        self._folders_listing: tuple[float, Future[_FolderListing]] | None = None  # in flight
        # False after ``forget``: scopes the database lists as mirrored are listed again.
        self._trust_database = True
        #: Scopes that listed more documents than this re-list in the background.
        self.inline_limit = _INLINE_LIMIT
        #: How often such a scope is listed in full (see ``FULL_LISTING_MS``).
        self.full_listing_ms = FULL_LISTING_MS

    # -- freshness ---------------------------------------------------------------------

    def note_write(self, key: str) -> None:
        """This process wrote ``key``: the next read of its scope re-reads that document."""
        document = keys.document_of_key(key)
        with self._lock:
            if document is not None:
                kind, experiment_id, _ = document
                scope = EXPERIMENTS_SCOPE if kind == "experiment" else runs_scope(experiment_id)
                self._written.setdefault(scope, set()).add(key)
            elif key.startswith(keys.experiments_prefix()) and key.endswith("/"):
                # A whole folder went: list every scope again before answering.
                self._must_list.update(self._synced_at)

    def forget(self) -> None:
        """Treat every scope as never synced (the database was emptied or rebuilt)."""
        with self._lock:
            self._synced_at.clear()
            self._written.clear()
            self._trust_database = False
            self._journal_read_at = None
            self._journal_tail = None
            self._window_scanned_at = None

    def _scope_lock(self, scope: str) -> threading.Lock:
        with self._lock:
            return self._scope_locks.setdefault(scope, threading.Lock())

    def _known_scopes(self) -> dict[str, ScopeListing]:
        """The scopes a full listing has mirrored into the database (by any process)."""
        if not self._trust_database:
            return {}
        with self._database.read() as session:
            return listed_scopes(session)

    def _inline_limit(self, scope: str) -> int:
        # Listing the experiments costs one HEAD per experiment (their documents lie in
        # folders of their own), and every run search keeps them fresh: past a few dozen,
        # the journal keeps them fresh instead.
        if scope == EXPERIMENTS_SCOPE:
            return self.inline_limit // _EXPERIMENT_HEADS_PER_LISTING_PAGE
        return self.inline_limit

    def _documents(self, scope: str, known: dict[str, ScopeListing]) -> int:
        if scope in self._listed:
            return self._listed[scope]
        row = known.get(scope)
        return row.documents if row is not None else 0

    def _fresh(self, scope: str, kind: str, sync: Callable[[], SyncReport]) -> SyncReport:
        """Make ``scope`` fresh enough to answer from; return what it took.

        Never listed (by this process, nor by any process into this database), or a
        write of this process it cannot place: list and sync now. Documents this
        process wrote: re-read just those, now. Older than the bound: a scope of one
        listing page is listed again, now; a bigger one, whose listing would hold the
        request up for seconds, is brought up to date from the change journal (one
        listing for every scope) and listed in full in the background now and then.
        """
        with self._taking_written([scope]) as taken:
            written = taken[scope]
            with self._lock:
                synced_at = self._synced_at.get(scope)
                flagged = scope in self._must_list
            must_list, large, list_now = self._plan(scope, synced_at, flagged)
            report = SyncReport()
            if list_now:
                report.add(self._list_and_sync(scope, sync, synced_at))
            else:
                if large:
                    report.add(self._catch_up_journal())
                if written:
                    report.add(self._reread(scope, kind, sorted(written)))
        if large and not must_list and self._full_listing_due([scope]):
            self._sync_in_background(scope, sync)
        return report

    @contextlib.contextmanager
    def _taking_written(self, scopes: Sequence[str]) -> Iterator[dict[str, set[str]]]:
        """Take this process's writes to ``scopes`` not yet re-read: the caller re-reads
        (or lists) them before it answers; if it fails, they are put back.

        Another thread's search may have taken some of them (this caller's own write
        among them) and still be re-reading them: those re-reads are waited for first,
        so no search answers before the writes of its own thread are in the index.
        """
        with self._lock:
            self._rereads_done.wait_for(lambda: not any(s in self._rereading for s in scopes))
            taken = {scope: self._written.pop(scope, set()) for scope in scopes}
            busy = [scope for scope, keys in taken.items() if keys]
            for scope in busy:
                self._rereading[scope] = self._rereading.get(scope, 0) + 1
        try:
            yield taken
        except BaseException:
            with self._lock:
                for scope in busy:
                    self._written.setdefault(scope, set()).update(taken[scope])
            raise
        finally:
            with self._lock:
                for scope in busy:
                    self._rereading[scope] -= 1
                    if not self._rereading[scope]:
                        del self._rereading[scope]
                self._rereads_done.notify_all()

    def _plan(
        self,
        scope: str,
        synced_at: float | None,
        flagged: bool,
        known: dict[str, ScopeListing] | None = None,
    ) -> tuple[bool, bool, bool]:
        """``_fresh``'s choice for ``scope``: (must it be listed, is it large, is it listed
        on the request's path). ``known``: the database's listings, if already read."""
        if known is None:
            known = self._known_scopes() if synced_at is None and not flagged else {}
        must_list = flagged or (synced_at is None and scope not in known)
        large = self._documents(scope, known) > self._inline_limit(scope)
        expired = synced_at is None or time.monotonic() - synced_at > self._staleness
        return must_list, large, must_list or (expired and not large)

    def _lists_now(self, scope: str, known: dict[str, ScopeListing]) -> bool:
        """Whether the next ``_fresh(scope)`` lists the scope before answering."""
        with self._lock:
            synced_at = self._synced_at.get(scope)
            flagged = scope in self._must_list
        return self._plan(scope, synced_at, flagged, known)[2]

    def _full_listing_due(self, scopes: Sequence[str]) -> list[str]:
        """Those of ``scopes`` whose last full listing (by any process) is older than
        ``full_listing_ms``, or than ten times what it took this process."""
        with self._database.read() as session:
            known = listed_scopes(session, scopes)
        now = change_journal.now_ms()
        due = []
        for scope in scopes:
            row = known.get(scope)
            every = max(self.full_listing_ms, 10_000 * self._list_seconds.get(scope, 0.0))
            # A listing time in the future is another machine's clock: list again.
            future = row is not None and row.listed_at_ms > now + change_journal.MARGIN_MS
            if row is None or future or now - row.listed_at_ms > every:
                due.append(scope)
        return due

    def _list_and_sync(
        self, scope: str, sync: Callable[[], SyncReport], seen_synced_at: float | None
    ) -> SyncReport:
        with self._scope_lock(scope):
            with self._lock:
                if self._synced_at.get(scope) != seen_synced_at and scope not in self._must_list:
                    return SyncReport()  # a concurrent caller synced it meanwhile: share that
                self._must_list.discard(scope)
            started, started_ms = time.monotonic(), change_journal.now_ms()
            report = sync()
            with self._database.write(bookkeeping=True) as session:
                record_listing(session, scope, started_ms, report.listed)
            with self._lock:
                self._synced_at[scope] = started
                self._listed[scope] = report.listed
                self._list_seconds[scope] = time.monotonic() - started
        if self._on_listed is not None:
            self._on_listed(scope, report)
        return report

    def _reread(self, scope: str, kind: str, written: list[str]) -> SyncReport:
        # Under the scope's lock: a listing sync that fetched an older copy of one of these
        # documents before this process wrote it must not commit after this re-read.
        with self._scope_lock(scope):
            return self._fetch_and_mirror(kind, written)

    def reread(self, document_keys: Sequence[str]) -> SyncReport:
        """Read these documents from the bucket now and mirror them (or their absence)."""
        by_scope: dict[tuple[str, str], list[str]] = {}
        for key in document_keys:
            document = keys.document_of_key(key)
            if document is not None:
                kind, experiment_id, _ = document
                scope = EXPERIMENTS_SCOPE if kind == "experiment" else runs_scope(experiment_id)
                by_scope.setdefault((scope, kind), []).append(key)
        report = SyncReport()
        for (scope, kind), scope_keys in by_scope.items():
            report.add(self._reread(scope, kind, sorted(scope_keys)))
        return report

    # -- the change journal ------------------------------------------------------------

    def _catch_up_journal(self) -> SyncReport:
        """Apply the journal's entries since the cursor to every listed scope.

        One listing for every scope, at most once per staleness bound (concurrent
        callers share it). Only documents whose ETag differs from the indexed one are
        read; an entry for a whole folder lists that scope again. The listing starts
        ``TAIL_MS`` before the newest entry this process saw (on its first look, before
        the database's cursor): a look costs O(changes), not O(entries in the margin),
        also for a new machine starting from a checkpoint. On the first look and every
        ``WINDOW_RESCAN_S``, the whole margin before the cursor is listed again in the
        background (entries that landed late, or from a writer whose clock lags), and
        only that rescan moves the database's cursor: a process that ends before its
        rescan is done leaves the cursor where the next process rescans the same margin.
        A cursor older than the journal's ``TRUST_MS`` (entries may have been
        collected): every scope is listed again.
        """
        with self._journal_lock:
            read_at = self._journal_read_at
            if read_at is not None and time.monotonic() - read_at <= self._staleness:
                return SyncReport()
            started = time.monotonic()
            with self._database.read() as session:
                cursor = journal_cursor(session)
                known = listed_scopes(session)
            report = SyncReport()
            now = change_journal.now_ms()
            if cursor is None:
                pass  # nothing listed yet: every scope is listed when first read
            elif now - cursor > change_journal.TRUST_MS:
                with self._lock:
                    self._must_list.update(known)
                with self._database.write(bookkeeping=True) as session:  # listings move it back
                    move_journal_cursor(session, now - change_journal.MARGIN_MS)
                self._journal_tail = None
            else:
                tail = self._journal_tail
                early = self._early_look(cursor) if tail is None else None
                if early is not None:
                    started, changes = early
                else:
                    changes = change_journal.changes_since(
                        self._store, cursor if tail is None else tail, TAIL_MS
                    )
                report = self._apply_changes(changes, set(known))
                # Never past this machine's clock: a fast writer's entry, or a cursor a
                # fast clock recorded, must not hide the entries written meanwhile.
                newest = max((c.at_ms for c in changes), default=cursor)
                self._journal_tail = min(max(tail or 0, newest), now)
                last_rescan = self._window_scanned_at
                if last_rescan is None or started - last_rescan > WINDOW_RESCAN_S:
                    self._window_scanned_at = started
                    self._rescan_window_in_background(cursor, known)
            self._journal_read_at = started
            return report

    def _early_look(self, cursor: int) -> tuple[float, list[change_journal.Change]] | None:
        """The ``first_look`` listing (when it began, what it found) if it listed from
        the database's ``cursor`` within the staleness bound; once only."""
        look, self._first_look = self._first_look, None
        if look is None or look.cursor_ms != cursor:
            return None
        if time.monotonic() - look.started > self._staleness:
            return None
        try:
            return look.started, look.changes.result()
        except Exception:  # listed again by the caller, which raises what it meets
            return None

    def _rescan_window_in_background(self, cursor: int, known: dict[str, ScopeListing]) -> None:
        """Apply every entry of the margin before ``cursor``, then move the database's
        cursor (see ``_catch_up_journal``); off the request path: the margin may hold
        thousands of entries."""
        with self._lock:
            if self._window_rescanning:
                return
            self._window_rescanning = True

        def rescan() -> None:
            time.sleep(RESCAN_DELAY_S)
            if self._closed:
                return
            changes = change_journal.changes_since(self._store, cursor)
            if self._closed:
                return
            self._apply_changes(changes, set(known))
            if changes and not self._closed:
                newest = max(c.at_ms for c in changes)
                self._advance_cursor(min(newest, change_journal.now_ms()), known)

        def done() -> None:
            with self._lock:
                self._window_rescanning = False

        self._in_background("rescanning the change journal's margin", rescan, done)

    def _advance_cursor(self, to_ms: int, known: dict[str, ScopeListing]) -> None:
        """Move the database's cursor forward to ``to_ms``, but never past the start of a
        listing recorded since ``known`` was read: its scope's entries were not applied."""
        with self._database.write(bookkeeping=True) as session:
            relisted = [
                row.listed_at_ms
                for scope, row in listed_scopes(session).items()
                if scope not in known or row.listed_at_ms != known[scope].listed_at_ms
            ]
            move_journal_cursor(session, min([to_ms, *relisted]))

    def _apply_changes(
        self, changes: Sequence[change_journal.Change], known: set[str]
    ) -> SyncReport:
        wanted: dict[str, dict[str, str | None]] = {}  # scope -> document key -> digest
        for change in changes:
            scope = runs_scope(change.experiment_id)
            if change.every_run:
                if scope in known:
                    with self._lock:
                        self._must_list.add(scope)
                scope, key = EXPERIMENTS_SCOPE, keys.experiment_key(change.experiment_id)
                digest = None
            else:
                if change.run_id is None:
                    scope = EXPERIMENTS_SCOPE
                key, digest = str(change.document_key), change.digest
            if scope in known:
                # The newest entry of a document decides; an unknown outcome reads it.
                wanted.setdefault(scope, {})[key] = digest
        digests = {
            key: digest for documents in wanted.values() for key, digest in documents.items()
        }
        indexed = self._indexed_etags(list(digests))
        stale = [
            key
            for key, digest in digests.items()
            if digest is None
            or key not in indexed
            or change_journal.etag_digest(indexed[key]) != digest
        ]
        return self.reread(stale)

    def _indexed_etags(self, document_keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._database.read() as session:
            for chunk in _chunks(document_keys, _IN_CHUNK):
                query = select(IndexedDocument.key, IndexedDocument.etag).where(
                    IndexedDocument.key.in_(chunk)
                )
                found.update({key: etag for key, etag in session.execute(query)})
        return found

    def _sync_in_background(self, scope: str, sync: Callable[[], SyncReport]) -> None:
        with self._lock:
            if scope in self._background:
                return
            self._background.add(scope)

        def work() -> None:
            with self._lock:
                seen = self._synced_at.get(scope)
            self._list_and_sync(scope, sync, seen)

        def done() -> None:
            with self._lock:
                self._background.discard(scope)

        self._in_background("background sync of the search index", work, done)

    def _in_background(
        self, what: str, work: Callable[[], object], done: Callable[[], None]
    ) -> None:
        """Run ``work`` on a thread of its own, then ``done``; a failure is logged (a
        later look tries again), unless the index was closed meanwhile."""

        def run() -> None:
            try:
                if not self._closed:
                    work()
            except Exception:
                if not self._closed:
                    _log.warning("%s failed", what, exc_info=True)
            finally:
                done()

        thread = threading.Thread(target=run, name="mlflow-bucket-index-sync", daemon=True)
        try:
            thread.start()
        except BaseException:
            done()
            raise

    def close(self) -> None:
        """This index is replaced or closed: background work still running stops before
        its next write where it can, and what fails from now on is not logged."""
        self._closed = True

    def fresh_experiments(self) -> SyncReport:
        return self._fresh(EXPERIMENTS_SCOPE, "experiment", self._sync_experiments)

    def fresh_experiments_and_runs(self, experiment_ids: Iterable[str]) -> SyncReport:
        """``fresh_experiments()``, then ``fresh_runs(experiment_ids)``, with one overlap.

        When the experiments come from the journal (their folders are not listed) and
        some of many ids were never listed (a new machine starting from a checkpoint,
        ids of deleted experiments), the folder listing that tells which of those ids
        exist starts now, beside the journal's look: two waits on the bucket at once
        instead of one after the other. (With a bound of 0, no listing is reused.)
        """
        ids = list(dict.fromkeys(experiment_ids))
        with self._lock:
            unseen = [e for e in ids if runs_scope(e) not in self._synced_at]
        # Two or more unlisted ids: ``_list_many`` asks for the folders only then.
        if self._staleness > 0 and len(unseen) > 1:
            known = self._known_scopes()
            unlisted = sum(runs_scope(e) not in known for e in unseen)
            if unlisted > 1 and not self._lists_now(EXPERIMENTS_SCOPE, known):
                self._list_folders_in_background()
        report = self.fresh_experiments()
        report.add(self.fresh_runs(ids))
        return report

    def _list_folders_in_background(self) -> None:
        """Start a listing of the experiment folders, unless one is fresh or in flight
        (the search that wants it waits for it in ``_folder_listing``)."""
        with self._lock:
            listed = self._experiment_folders
            fresh = listed is not None and time.monotonic() - listed.started <= self._staleness
            if fresh or self._folders_listing is not None:
                return
        with contextlib.suppress(RuntimeError):  # the pool is shut down: the index closes
            self._listers.submit(self._folder_listing, self._staleness)

    def fresh_runs(self, experiment_ids: Iterable[str]) -> SyncReport:
        ids = list(dict.fromkeys(experiment_ids))
        if len(ids) > 1:
            return self._fresh_many(ids)
        report = SyncReport()
        for experiment_id in ids:
            report.add(
                self._fresh(
                    runs_scope(experiment_id),
                    "run",
                    functools.partial(self._sync_runs, experiment_id),
                )
            )
        return report

    def _fresh_many(self, ids: list[str]) -> SyncReport:
        """``_fresh`` for the run scopes of many experiments at once (see the module doc)."""
        now = time.monotonic()
        with self._taking_written([runs_scope(e) for e in ids]) as taken:
            written = {e: taken[runs_scope(e)] for e in ids}
            with self._lock:
                seen = {e: self._synced_at.get(runs_scope(e)) for e in ids}
                flagged = {e for e in ids if runs_scope(e) in self._must_list}
            known = self._known_scopes() if any(t is None for t in seen.values()) else {}
            must_list = [
                e for e in ids if e in flagged or (seen[e] is None and runs_scope(e) not in known)
            ]
            expired = [
                e
                for e in ids
                if e not in must_list
                and (seen[e] is None or now - (seen[e] or now) > self._staleness)
            ]
            large = sum(self._documents(runs_scope(e), known) for e in expired) > self.inline_limit
            inline = must_list if large else must_list + expired
            report = SyncReport()
            report.add(self._list_many(inline, seen, {e for e in inline if written[e]}))
            if large:
                report.add(self._catch_up_journal())
            for e in ids:
                if e not in inline and written[e]:
                    report.add(self._reread(runs_scope(e), "run", sorted(written[e])))
        if large:
            due = set(self._full_listing_due([runs_scope(e) for e in expired]))
            self._list_many_in_background([e for e in expired if runs_scope(e) in due], seen)
        return report

    def _list_many(
        self, ids: list[str], seen: dict[str, float | None], written: Set[str] = frozenset()
    ) -> SyncReport:
        """List the run scopes of ``ids`` in parallel; those with no experiment folder
        (``written``: ids this process wrote runs into since, whatever a folder listing
        up to a bound old says) are mirrored as empty, together."""
        report = SyncReport()
        if not ids:
            return report
        started = time.monotonic()
        listed = set(ids)
        if len(ids) > 1:
            folders = self._folder_listing(max_age=self._staleness)
            present = set(folders.ids) | written
            listed = {e for e in ids if e in present}
            listed.update(self._record_absent([e for e in ids if e not in present], seen, folders))

        def one(experiment_id: str) -> SyncReport:
            sync = functools.partial(self._sync_runs, experiment_id)
            return self._list_and_sync(runs_scope(experiment_id), sync, seen[experiment_id])

        for part in self._listers.map(one, [e for e in ids if e in listed]):
            report.add(part)
        took = time.monotonic() - started
        with self._lock:
            for experiment_id in ids:  # the group's time bounds how often it is re-listed
                self._list_seconds[runs_scope(experiment_id)] = took
        return report

    def _record_absent(
        self, ids: list[str], seen: dict[str, float | None], folders: _FolderListing
    ) -> list[str]:
        """Record the run scopes of ids with no experiment folder as listed and empty,
        in one transaction for them all (a search naming a thousand deleted ids
        commits once, not a thousand times), dated when the folder listing began.
        Returns the ids whose scopes the index still holds runs of: those are listed
        for real (a LIST each), which removes them in bounded transactions and
        settles whether the folder is really gone. As ``_list_and_sync`` per scope:
        under the scope's lock, skipped where a concurrent caller synced it meanwhile."""
        if not ids:
            return []
        with contextlib.ExitStack() as held:
            for scope in sorted(runs_scope(e) for e in ids):  # one order: no deadlock
                held.enter_context(self._scope_lock(scope))
            with self._lock:
                ids = [
                    e
                    for e in ids
                    if self._synced_at.get(runs_scope(e)) == seen[e]
                    or runs_scope(e) in self._must_list
                ]
            with self._database.read() as session:
                holding = {
                    experiment_id
                    for chunk in _chunks(ids, _IN_CHUNK)
                    for experiment_id in session.scalars(
                        select(IndexedDocument.experiment_id)
                        .where(
                            IndexedDocument.kind == "run", IndexedDocument.experiment_id.in_(chunk)
                        )
                        .distinct()
                    )
                }
            empty = [runs_scope(e) for e in ids if e not in holding]
            if empty:
                with self._database.write(bookkeeping=True) as session:
                    record_listings(session, empty, folders.started_ms, 0)
                with self._lock:
                    self._must_list.difference_update(empty)
                    for scope in empty:
                        self._synced_at[scope] = folders.started
                        self._listed[scope] = 0
        return sorted(holding)

    def _list_many_in_background(self, ids: list[str], seen: dict[str, float | None]) -> None:
        with self._lock:
            ids = [e for e in ids if runs_scope(e) not in self._background]
            self._background.update(runs_scope(e) for e in ids)
        if not ids:
            return

        def done() -> None:
            with self._lock:
                self._background.difference_update(runs_scope(e) for e in ids)

        self._in_background(
            "background sync of the search index", lambda: self._list_many(ids, seen), done
        )

    def mirror_every_scope(self) -> None:
        """List every scope no full listing has mirrored yet (the experiments, and each
        experiment's runs), so that the index holds the whole bucket."""
        self.fresh_experiments()
        with self._database.read() as session:
            known = listed_scopes(session)
        missing = [e for e in self.experiment_ids() if runs_scope(e) not in known]
        if missing:
            self.fresh_runs(missing)

    def experiment_ids(self, max_age: float = 0.0) -> list[str]:
        """The experiment folders; the last listing's if it is younger than ``max_age``
        seconds (a search listing the experiments, then many scopes, lists them once)."""
        return self._folder_listing(max_age).ids

    def _folder_listing(self, max_age: float = 0.0) -> _FolderListing:
        """``experiment_ids`` with when its listing began. With ``max_age``, a listing
        in flight that began within it is waited for rather than started again."""
        now = time.monotonic()
        with self._lock:
            listed, pending = self._experiment_folders, self._folders_listing
            if listed is not None and now - listed.started <= max_age:
                return listed
            if pending is not None and max_age > 0 and now - pending[0] <= max_age:
                waiting = pending[1]
            else:
                waiting = None
                mine: Future[_FolderListing] = Future()
                self._folders_listing = (now, mine)
        if waiting is not None:
            return waiting.result()
        listing: _FolderListing | None = None
        failure: BaseException | None = None
        try:
            started_ms = change_journal.now_ms()
            folders = self._store.list_dir(keys.experiments_prefix()).folders
            ids = [f.split("/")[1] for f in folders]
            listing = _FolderListing(now, started_ms, [e for e in ids if keys.is_valid_id(e)])
        except BaseException as exc:
            failure = exc
        with self._lock:
            if self._folders_listing is not None and self._folders_listing[1] is mine:
                self._folders_listing = None
            newest = self._experiment_folders
            if listing is not None and (newest is None or now >= newest.started):
                self._experiment_folders = listing  # unless a later listing's is there
        if listing is None:
            assert failure is not None
            mine.set_exception(failure)
            raise failure
        mine.set_result(listing)
        return listing

    # -- syncing -----------------------------------------------------------------------

    def _indexed(self, kind: str, experiment_id: str | None) -> dict[str, str]:
        query = select(IndexedDocument.key, IndexedDocument.etag).where(
            IndexedDocument.kind == kind
        )
        if experiment_id is not None:
            query = query.where(IndexedDocument.experiment_id == experiment_id)
        with self._database.read() as session:
            return {key: etag for key, etag in session.execute(query)}

    def _fetch(self, key: str) -> tuple[str, StoredObject | None]:
        try:
            return key, self._store.get(key)
        except NotFound:
            return key, None

    def _head(self, key: str) -> tuple[str, str | None]:
        try:
            return key, self._store.head(key).etag
        except NotFound:
            return key, None

    def _sync_runs(self, experiment_id: str) -> SyncReport:
        listed = {
            info.key: info.etag
            for info in self._store.list(keys.experiment_runs_prefix(experiment_id))
            if RUN.is_key(info.key)  # a stray object there is no run
        }
        return self._mirror("run", experiment_id, listed)

    def _sync_experiments(self) -> SyncReport:
        experiment_keys = [keys.experiment_key(e) for e in self.experiment_ids()]
        heads = self._fetchers.map(self._head, experiment_keys)
        listed = {key: etag for key, etag in heads if etag is not None}
        return self._mirror("experiment", None, listed)

    def _mirror(self, kind: str, experiment_id: str | None, listed: dict[str, str]) -> SyncReport:
        indexed = self._indexed(kind, experiment_id)
        changed = [key for key, etag in listed.items() if indexed.get(key) != etag]
        vanished = [key for key in indexed if key not in listed]
        report = self._fetch_and_mirror(kind, changed)
        report.listed = len(listed)
        for chunk in _chunks(vanished, _IN_CHUNK):
            with self._database.write() as session:
                self._remove(session, kind, chunk)
            report.removed += len(chunk)
        return report

    def _fetch_and_mirror(self, kind: str, document_keys: Sequence[str]) -> SyncReport:
        """Read the documents now and mirror them; the ones gone leave the index."""
        report = SyncReport()
        for chunk in _chunks(document_keys, _CHUNK):
            fetched = list(self._fetchers.map(self._fetch, chunk))
            gone = [key for key, stored in fetched if stored is None]
            present = [(key, stored) for key, stored in fetched if stored is not None]
            with self._database.write() as session:
                self._remove(session, kind, gone)
                report.unmirrorable += self._replace(session, kind, present)
            report.fetched += len(present)
            report.removed += len(gone)
        return report

    # -- writing rows ------------------------------------------------------------------

    def _remove(self, session: Session, kind: str, document_keys: Sequence[str]) -> None:
        if not document_keys:
            return
        entity_ids = [keys.document_of_key(key) for key in document_keys]
        if kind == "run":
            _delete_runs(session, [(d[1], d[2]) for d in entity_ids if d is not None])
        else:
            numbers = [_row_experiment_id(d[1]) for d in entity_ids if d is not None]
            _delete_experiments(session, [n for n in numbers if n is not None])
        session.execute(delete(IndexedDocument).where(IndexedDocument.key.in_(document_keys)))

    def _replace(
        self, session: Session, kind: str, fetched: Sequence[tuple[str, StoredObject]]
    ) -> int:
        """Mirror fetched documents over their previous rows; return how many were unusable."""
        self._remove(session, kind, [key for key, _ in fetched])
        mirrors = [_mirror_of(kind, key, stored) for key, stored in fetched]
        if kind == "experiment":  # two documents of one name: one is listed (index.names)
            mirrors = self._unique_names(session, mirrors)
        try:
            with session.begin_nested():
                _insert_mirrors(session, mirrors)
        except _ROW_ERRORS:
            # A row the database refuses (a duplicate key, a value its driver cannot bind)
            # must not keep the other documents out: one savepoint per document.
            refused = 0
            for mirror in mirrors:
                try:
                    with session.begin_nested():
                        _insert_mirrors(session, [mirror])
                except _ROW_ERRORS as exc:
                    _warn_refused(self._store.location, mirror, exc)
                    refused += mirror.rows is not None
                    with session.begin_nested():
                        _insert_mirrors(session, [mirror.refused()])
            return refused + sum(mirror.rows is None for mirror in mirrors)
        return sum(mirror.rows is None for mirror in mirrors)

    def _unique_names(self, session: Session, mirrors: list[_Mirror]) -> list[_Mirror]:
        named = [
            (m.rows.experiment["experiment_id"], m.rows.experiment["name"])
            for m in mirrors
            if isinstance(m.rows, ExperimentRows)
        ]
        left_out = {str(e) for e in names_left_out(session, self._store, named)}
        return [
            _Mirror(m.key, {**m.document, "etag": "", "body": ""}, None)
            if m.document["entity_id"] in left_out
            else m
            for m in mirrors
        ]


#: What the database (or its driver, binding a value) raises for one bad row.
_ROW_ERRORS = (SQLAlchemyError, ValueError, TypeError, OverflowError)


@dataclass
class _Mirror:
    """One fetched document: its bookkeeping row, and its table rows (None: unusable)."""

    key: str
    document: dict[str, Any]
    rows: RunRows | ExperimentRows | None

    def refused(self) -> _Mirror:
        # Kept with no ETag: what the database refused may depend on other rows (a run
        # id indexed under another experiment), so every sync fetches it again.
        return _Mirror(self.key, {**self.document, "etag": "", "body": ""}, None)


_warned_refused: set[tuple[str, str, str]] = set()  # (root, key, ETag): warned once
_warned_lock = threading.Lock()


def _warn_refused(root: str, mirror: _Mirror, exc: BaseException) -> None:
    seen = (root, mirror.key, str(mirror.document["etag"]))
    with _warned_lock:
        if seen in _warned_refused:
            return
        _warned_refused.add(seen)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    _log.warning("%s is left out of the search index: %s", mirror.key, reason)


def _mirror_of(kind: str, key: str, stored: StoredObject) -> _Mirror:
    document = keys.document_of_key(key)
    assert document is not None  # listed keys were filtered on it
    _, experiment_id, run_id = document
    bookkeeping = {
        "key": key,
        "kind": kind,
        "entity_id": run_id if kind == "run" else experiment_id,
        "experiment_id": experiment_id,
        "etag": stored.etag,
        "body": "",
    }
    rows: RunRows | ExperimentRows
    try:
        # Checked against the format's schema first: the rows then hold only well-typed text.
        doc = decode_document(key, stored.data)
        if kind == "run":
            rows = run_rows(doc, run_id, experiment_id)
        else:
            rows = experiment_rows(doc, experiment_id)
    except (CorruptObject, UnmirrorableDocument, ValueError, KeyError, TypeError) as exc:
        _log.warning("%s is left out of the search index: %s", key, exc)
        return _Mirror(key, bookkeeping, None)
    # decode_document succeeded, so the bytes are UTF-8.
    return _Mirror(key, {**bookkeeping, "body": stored.data.decode("utf-8")}, rows)


def _insert_mirrors(session: Session, mirrors: Sequence[_Mirror]) -> None:
    _insert_runs(session, [m.rows for m in mirrors if isinstance(m.rows, RunRows)])
    _insert_experiments(session, [m.rows for m in mirrors if isinstance(m.rows, ExperimentRows)])
    if mirrors:
        session.execute(insert(IndexedDocument), [m.document for m in mirrors])


def _row_experiment_id(experiment_id: str) -> int | None:
    """The id as MLflow's tables hold it; None for a folder name no experiment can have."""
    if not experiment_id.isdigit() or int(experiment_id) >= 2**63:
        return None
    return int(experiment_id)


def _delete_runs(session: Session, runs: Sequence[tuple[str, str]]) -> None:
    """Remove the rows of (experiment id, run id): only a run the experiment holds, so a
    copy of a run's document in another experiment's folder never removes the original."""
    by_experiment: dict[int, list[str]] = {}
    for experiment_id, run_id in runs:
        number = _row_experiment_id(experiment_id)
        if number is not None:
            by_experiment.setdefault(number, []).append(run_id)
    for number, run_ids in by_experiment.items():
        for chunk in _chunks(run_ids, _IN_CHUNK):
            held: list[str] = list(
                session.scalars(
                    select(SqlRun.run_uuid).where(
                        SqlRun.run_uuid.in_(chunk), SqlRun.experiment_id == number
                    )
                )
            )
            if not held:
                continue
            inputs: Any = select(SqlInput.input_uuid).where(SqlInput.destination_id.in_(held))
            session.execute(delete(SqlInputTag).where(SqlInputTag.input_uuid.in_(inputs)))
            session.execute(delete(SqlInput).where(SqlInput.destination_id.in_(held)))
            for table in (SqlTag, SqlParam, SqlLatestMetric):
                session.execute(delete(table).where(table.run_uuid.in_(held)))
            session.execute(delete(SqlRun).where(SqlRun.run_uuid.in_(held)))


def _delete_experiments(session: Session, experiment_ids: Sequence[int]) -> None:
    session.execute(
        delete(SqlExperimentTag).where(SqlExperimentTag.experiment_id.in_(experiment_ids))
    )
    session.execute(delete(SqlExperiment).where(SqlExperiment.experiment_id.in_(experiment_ids)))


def _insert_runs(session: Session, runs: Sequence[RunRows]) -> None:
    if not runs:
        return
    session.execute(insert(SqlRun), [r.run for r in runs])
    for table, rows in (
        (SqlTag, [row for r in runs for row in r.tags]),
        (SqlParam, [row for r in runs for row in r.params]),
        (SqlLatestMetric, [row for r in runs for row in r.latest_metrics]),
        (SqlInput, [row for r in runs for row in r.inputs]),
        (SqlInputTag, [row for r in runs for row in r.input_tags]),
    ):
        if rows:
            session.execute(insert(table), rows)
    _insert_missing_datasets(session, [row for r in runs for row in r.datasets])


def _insert_missing_datasets(session: Session, datasets: Sequence[dict[str, object]]) -> None:
    # Datasets are shared by the runs of an experiment (MLflow's key: experiment, name, digest).
    wanted = {(d["experiment_id"], d["name"], d["digest"]): d for d in datasets}
    if not wanted:
        return
    columns = tuple_(SqlDataset.experiment_id, SqlDataset.name, SqlDataset.digest)
    present: set[tuple[Any, ...]] = set()
    pks = list(wanted)
    for start in range(0, len(pks), _IN_CHUNK // 3):
        found: Any = session.execute(
            select(SqlDataset.experiment_id, SqlDataset.name, SqlDataset.digest).where(
                columns.in_(pks[start : start + _IN_CHUNK // 3])
            )
        )
        present.update(tuple(row) for row in found)
    missing = [row for pk, row in wanted.items() if pk not in present]
    if missing:
        session.execute(insert(SqlDataset), missing)


def _insert_experiments(session: Session, experiments: Sequence[ExperimentRows]) -> None:
    if not experiments:
        return
    session.execute(insert(SqlExperiment), [e.experiment for e in experiments])
    tags = [row for e in experiments for row in e.tags]
    if tags:
        session.execute(insert(SqlExperimentTag), tags)

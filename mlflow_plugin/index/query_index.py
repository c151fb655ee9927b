"""``QueryIndex``: what the tracking store asks of its index.

Opened lazily by the first search, so a process that only logs never creates it. Each
search first makes the scopes it reads fresh (see ``sync``), then answers from SQL and
returns the indexed documents of the page. The query also starts beside the freshening,
on the database as it stands: if nothing was written to the database meanwhile (by any
process: its write generation is unchanged), that answer is the one a query after the
freshening gives, so a search past the staleness bound waits for its look at the bucket
or its query, not for one and then the other. If the database file disappears (a user
deleted the cache), it is recreated and filled again on the next search; if a query
finds the file damaged, it is moved aside, rebuilt, and the call retried once. A SQLite
index that does not exist yet starts from the bucket's newest index checkpoint, if there
is a usable one (see ``checkpoints``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mlflow_plugin.format.documents import Document, decode_document, decode_text
from mlflow_plugin.format.run_stage import with_effective_stage
from mlflow_plugin.index import checkpoints, queries
from mlflow_plugin.index.database import (
    IndexDatabase,
    clear_index,
    is_damaged_database,
    open_index_database,
    repair_index_database,
    sqlite_path,
    unusable_index,
)
from mlflow_plugin.index.mlflow_internals import _DatasetSummary
from mlflow_plugin.index.state import forget_listings, write_generation
from mlflow_plugin.index.sync import IndexSync, JournalLook, SyncReport
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.objectstore.errors import CorruptObject

__all__ = ["CheckedBodies", "QueryIndex"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_FETCHERS = 16
_LISTERS = 16
_QUERIERS = 4  # queries started beside their freshening


class QueryIndex:
    """The query index of one bucket root.

    >>> index = QueryIndex(store, "bucket+file:/data", "sqlite:////tmp/i.db", 2)  # doctest: +SKIP
    >>> docs, _ = index.search_runs(["0"], "metrics.acc > 0", 1, 100, None, None)  # doctest: +SKIP
    """

    def __init__(self, store: ObjectStore, root: str, url: str, staleness: float) -> None:
        self._store = store
        self._root = root
        self._url = url
        self._staleness = staleness
        self._fetchers = ThreadPoolExecutor(_FETCHERS, thread_name_prefix="mlflow-bucket-index")
        self._listers = ThreadPoolExecutor(_LISTERS, thread_name_prefix="mlflow-bucket-list")
        self._queriers = ThreadPoolExecutor(_QUERIERS, thread_name_prefix="mlflow-bucket-query")
        self._last_sync_wrote_nothing = True  # see ``_fresh_answer``
        self._checked = CheckedBodies()
        self._open_lock = threading.Lock()
        # Checkpoint writing (see ``_after_listing``), guarded by ``_open_lock``.
        self._checkpointing = False
        self._checkpoint_wanted = False
        self._fetched_since_checkpoint = 0
        self._file = sqlite_path(url)
        self._database, self._sync = self._open()

    def _open(self, database: IndexDatabase | None = None) -> tuple[IndexDatabase, IndexSync]:
        first_look: JournalLook | None = None
        if database is None and self._file is not None and not self._file.exists():
            # A new machine (or a deleted cache): start from the bucket's checkpoint.
            try:
                self._file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise unusable_index(exc) from exc
            looks: list[JournalLook] = []

            def look_ahead(checkpoint: checkpoints.Checkpoint) -> None:
                # The journal from the checkpoint's cursor, listed meanwhile: the first
                # search's look at the journal is then done (see ``IndexSync``).
                if self._staleness > 0:  # with a bound of 0 no look is reused
                    with contextlib.suppress(RuntimeError):  # the pool is shut down: closing
                        cursor = checkpoint.cursor_ms
                        looks.append(JournalLook.start(self._listers, self._store, cursor))

            installed = checkpoints.install_checkpoint(
                self._store, self._file, self._root, look_ahead
            )
            if installed is not None and looks and looks[-1].cursor_ms == installed.cursor_ms:
                first_look = looks[-1]
        database = database or open_index_database(self._url, self._root)
        return database, IndexSync(
            self._store,
            database,
            self._staleness,
            self._fetchers,
            self._listers,
            on_listed=self._after_listing,
            first_look=first_look,
        )

    def _after_listing(self, scope: str, report: SyncReport) -> None:
        """Once listings fetched many documents, leave a checkpoint for other machines.

        Written in the background, once the index holds every experiment (the scopes
        not yet listed are listed first): a newer checkpoint never holds less than the
        one it replaces.
        """
        if self._file is None:
            return
        with self._open_lock:
            self._fetched_since_checkpoint += report.fetched
            if self._fetched_since_checkpoint < checkpoints.AUTO_CHECKPOINT_FETCHES:
                return
            self._checkpoint_wanted = True
            if self._checkpointing:
                return  # the running writer looks again when it is done
            self._checkpointing = True

        def write() -> None:
            try:
                while True:
                    with self._open_lock:
                        if not self._checkpoint_wanted:
                            return
                        self._checkpoint_wanted = False
                    _, sync = self._current()
                    sync.mirror_every_scope()
                    self.write_checkpoint()
                    with self._open_lock:
                        self._fetched_since_checkpoint = 0
                        self._checkpoint_wanted = False
            except Exception:
                _log.warning("writing an index checkpoint failed", exc_info=True)
            finally:
                with self._open_lock:
                    self._checkpointing = False

        threading.Thread(target=write, name="mlflow-bucket-checkpoint", daemon=True).start()

    def write_checkpoint(self) -> checkpoints.Checkpoint | None:
        """Snapshot this index into the bucket (a SQLite index only)."""
        if self._file is None:
            raise MlflowException(
                "index checkpoints are snapshots of a SQLite index; this index is "
                f"{self.url_for_display}",
                INVALID_PARAMETER_VALUE,
            )
        return checkpoints.write_checkpoint(self._store, self._file)

    @property
    def url(self) -> str:
        return self._url

    def note_write(self, key: str) -> None:
        self._sync.note_write(key)

    def _current(self) -> tuple[IndexDatabase, IndexSync]:
        if self._file is not None and not self._file.exists():
            with self._open_lock:
                if not self._file.exists():
                    self._sync.close()
                    self._database.dispose()
                    self._database, self._sync = self._open()
        return self._database, self._sync

    def _repairing(self, call: Callable[[], _T]) -> _T:
        """``call()``; if it finds the SQLite file damaged, rebuild the file and call again.

        Any other database failure is an ``MlflowException`` (see ``unusable_index``):
        the tracking store lets no raw SQLAlchemy error reach MLflow.
        """
        failed = self._database
        try:
            return call()
        except SQLAlchemyError as exc:
            if self._file is None or not is_damaged_database(exc):
                raise unusable_index(exc) from exc
            with self._open_lock:
                if self._database is failed:  # not yet repaired by another thread
                    self._sync.close()
                    self._database, self._sync = self._open(
                        repair_index_database(failed, self._root, exc)
                    )
        try:
            return call()
        except SQLAlchemyError as exc:
            raise unusable_index(exc) from exc

    def _read(self, query: Callable[[Session], _T]) -> _T:
        database, _ = self._current()
        with database.read() as session:
            return query(session)

    # -- searches ----------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        view_type: int,
        max_results: int | None,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> tuple[list[Document], str | None]:
        def query(session: Session, damaged: list[str]) -> tuple[list[Document], str | None]:
            run_ids, token = queries.search_run_ids(
                session, experiment_ids, filter_string, view_type, max_results, order_by, page_token
            )
            bodies = queries.document_bodies(session, "run", run_ids)
            runs = self._checked.readable(bodies, run_ids, damaged)
            # Each run as its experiment's stage makes it (``format.run_stage``).
            parent_ids = sorted({str(run["experiment_id"]) for run in runs})
            parents = queries.document_bodies(session, "experiment", parent_ids)
            experiments = {
                str(e["experiment_id"]): e
                for e in self._checked.readable(parents, parent_ids, damaged)
            }
            return [
                with_effective_stage(run, experiments.get(str(run["experiment_id"])))
                for run in runs
            ], token

        def search() -> tuple[list[Document], str | None]:
            # The experiments too: deleting one changes the stage of all its runs, and
            # only the experiment's document says so.
            return self._fresh_answer(
                lambda sync: sync.fresh_experiments_and_runs(experiment_ids), query
            )

        return self._repairing(search)

    def search_experiments(
        self,
        view_type: int,
        max_results: int,
        filter_string: str | None,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> tuple[list[Document], str | None]:
        def query(session: Session, damaged: list[str]) -> tuple[list[Document], str | None]:
            ids, token = queries.search_experiment_ids(
                session, view_type, max_results, filter_string, order_by, page_token
            )
            bodies = queries.document_bodies(session, "experiment", ids)
            return self._checked.readable(bodies, ids, damaged), token

        def search() -> tuple[list[Document], str | None]:
            return self._fresh_answer(IndexSync.fresh_experiments, query)

        return self._repairing(search)

    def dataset_summaries(self, experiment_ids: Sequence[str]) -> list[_DatasetSummary]:
        def summaries() -> list[_DatasetSummary]:
            _, sync = self._current()
            sync.fresh_runs(experiment_ids)
            return self._read(lambda session: queries.dataset_summaries(session, experiment_ids))

        return self._repairing(summaries)

    def _fresh_answer(
        self, freshen: Callable[[IndexSync], object], query: Callable[[Session, list[str]], _T]
    ) -> _T:
        """``freshen`` the scopes ``query`` reads, then answer it (see the module doc).

        The early query is tried while the last freshening wrote nothing: where syncs
        keep writing (a bucket busy with writers) it would mostly be thrown away, and
        searches query after freshening only, until one finds nothing to write.
        """
        database, sync = self._current()
        early = self._early_query(database, query)
        before = None if early is not None else _generation(database)
        try:
            freshen(sync)
        finally:
            if early is not None and early.cancel():
                early = None  # never started (every querier was busy): nothing to check
        current, sync = self._current()
        after = _generation(current) if current is database else None
        if early is not None:
            with contextlib.suppress(Exception):  # asked again below, raising it there
                before, answer, damaged = early.result()
        if before is not None:
            self._last_sync_wrote_nothing = before == after
        if early is None or not self._last_sync_wrote_nothing or before is None:
            return self._answer(sync, query)
        if damaged:
            sync.reread(damaged)
            return self._read(lambda session: query(session, []))
        return answer

    def _early_query(
        self, database: IndexDatabase, query: Callable[[Session, list[str]], _T]
    ) -> Future[tuple[int, _T, list[str]]] | None:
        if not self._last_sync_wrote_nothing:
            return None
        with contextlib.suppress(RuntimeError):  # the pool is shut down: the index closes
            return self._queriers.submit(_generation_and_answer, database, query)
        return None

    def _answer(self, sync: IndexSync, query: Callable[[Session, list[str]], _T]) -> _T:
        """``query``'s answer; if it met damaged indexed copies (a checkpoint's rows come
        unchecked), those documents are read from the bucket and the query asked again."""
        damaged: list[str] = []
        answer = self._read(lambda session: query(session, damaged))
        if damaged:
            sync.reread(damaged)
            answer = self._read(lambda session: query(session, []))
        return answer

    # -- maintenance -------------------------------------------------------------------

    def sync_everything(
        self, on_progress: Callable[[str, SyncReport], Any] | None = None
    ) -> SyncReport:
        """Sync every scope now, whatever its age (``reindex`` and benchmarks)."""

        def sync_all() -> SyncReport:
            _, sync = self._current()
            sync.forget()
            report = sync.fresh_experiments()
            if on_progress is not None:
                on_progress("experiments", report)
            for experiment_id in sync.experiment_ids():
                part = sync.fresh_runs([experiment_id])
                report.add(part)
                if on_progress is not None:
                    on_progress(experiment_id, part)
            return report

        return self._repairing(sync_all)

    def experiment_count(self) -> int:
        _, sync = self._current()
        return len(sync.experiment_ids())

    def clear(self) -> None:
        """Empty the index (its next sync fetches every document again)."""

        def clear() -> None:
            database, sync = self._current()
            clear_index(database)
            with database.write(bookkeeping=True) as session:
                forget_listings(session)
            sync.forget()

        self._repairing(clear)

    @property
    def url_for_display(self) -> str:
        """The database URL without its password."""
        return make_url(self._url).render_as_string(hide_password=True)

    def close(self) -> None:
        self._sync.close()
        self._fetchers.shutdown(wait=False)
        self._listers.shutdown(wait=False)
        self._queriers.shutdown(wait=False)
        self._database.dispose()


def _generation(database: IndexDatabase) -> int:
    with database.read() as session:
        return write_generation(session)


def _generation_and_answer(
    database: IndexDatabase, query: Callable[[Session, list[str]], _T]
) -> tuple[int, _T, list[str]]:
    """The database's write generation, then ``query``'s answer in the same read (one
    snapshot on PostgreSQL; on SQLite, statements after it: an unchanged generation
    read later says no write came between them)."""
    damaged: list[str] = []
    with database.read() as session:
        generation = write_generation(session)
        return generation, query(session, damaged), damaged


class CheckedBodies:
    """Turns indexed document texts into documents, each text checked once per process.

    Mirrored documents were checked when they were read from the bucket, but a
    checkpoint's rows come as they are, so every indexed text is checked against its
    schema the first time this process reads it; one that is not a valid document is
    left out (with a warning) and its key added to ``damaged``. The check was a third of
    a warm search's time (1,000 runs and their experiments a page), so the texts found
    valid are remembered by a keyed digest of (key, text): a changed text digests anew
    and is checked again, and with a key drawn per process nobody can make a damaged
    row collide with a valid one (Python's ``hash`` is predictable under a fixed
    ``PYTHONHASHSEED``). Past ``limit`` digests (about 90 bytes each: 22 MB for the
    default) the memory starts over.
    """

    def __init__(self, limit: int = 250_000) -> None:
        self._valid: set[bytes] = set()
        self._limit = limit
        self._secret = os.urandom(16)

    def _digest(self, key: str, body: str) -> bytes:
        text = f"{len(key)}:{key}{body}".encode("utf-8", "surrogatepass")
        return hashlib.blake2b(text, digest_size=16, key=self._secret).digest()

    def readable(
        self, bodies: dict[str, tuple[str, str]], ids: Sequence[str], damaged: list[str]
    ) -> list[Document]:
        """The indexed documents of ``ids`` that ``bodies`` holds, in that order."""
        documents = []
        for entity_id in ids:
            if entity_id not in bodies:
                continue
            key, body = bodies[entity_id]
            fingerprint = self._digest(key, body)
            try:
                if fingerprint in self._valid:
                    documents.append(decode_text(body))
                    continue
                documents.append(decode_document(key, body.encode("utf-8")))
            except (CorruptObject, ValueError) as exc:
                _log.warning("%s: its indexed copy is damaged, read again (%s)", key, exc)
                damaged.append(key)
                continue
            if len(self._valid) >= self._limit:
                self._valid.clear()
            self._valid.add(fingerprint)
        return documents

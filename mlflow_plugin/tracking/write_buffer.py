"""The buffered write path: ``log_batch`` appends in memory; a flusher uploads.

Each run has one *open* batch that ``append`` extends (no I/O), and a queue of
*sealed* batches. A flush seals every open batch (giving it the writer's next
sequence number), then uploads each run's sealed batches in order: one Parquet
segment plus one compare-and-swap of the run document per batch. A sealed batch
never changes again, so retrying it after an error is safe and, thanks to the
sequence recorded in the run document, idempotent. A run whose upload fails keeps
its queue (later batches wait behind the failed one) and is retried at the next
flush; one run's failure, whatever it is, never stops the other runs' uploads. A
batch for a run that another process deleted (by itself or with its experiment) is
stored all the same (the run is soft-deleted) and the store is told, so that the run's
next call is refused. A batch
is lost only when its run's document is gone (purged), or when it was kept unsent for
longer than the writer retention (``run_batches.BatchTooOld``); a refused batch fails
the run's next call, or the store's next ``flush``, whichever comes first. Tags carry this writer's
clock (``run_batches``), so the order of uploads never decides a tag's value.

Flushes happen on a timer (``flush_interval`` seconds), when ``flush_points``
points are buffered, before any read or other change of the same run in this
process (so a process always sees its own writes), on ``flush()``, and at
interpreter exit. In a forked child and after ``close`` (``synchronous``) the store
uploads after each call itself, so that the upload's errors reach the caller as MLflow's. Past
``max_buffered_points`` (an endpoint that stays down), sealed batches that are safe
in the spool leave memory (they are read back from disk when uploaded), so memory
stays bounded while the spool grows, with a warning. Without a spool, ``append``
then flushes synchronously, the only time logging waits.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, read_or_none, update_document
from mlflow_plugin.format.run_batches import (
    BatchTooOld,
    Clock,
    ClockSource,
    RunBatch,
    StatusWrite,
    apply_batch,
    newest_clock,
)
from mlflow_plugin.format.run_stage import effective_stage
from mlflow_plugin.format.schema import ACTIVE
from mlflow_plugin.format.segments import (
    MetricPoint,
    SegmentCache,
    SegmentInfo,
    encode_table,
    points_table,
)
from mlflow_plugin.objectstore import NotFound, ObjectStore, ObjectStoreError
from mlflow_plugin.objectstore.backoff import Backoff
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.tracking.spool import OpenLine, Spool

__all__ = ["RunNotWritable", "WriteBuffer", "WriteSettings", "close_live_buffers"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteSettings:
    """When the buffer flushes (see the README's configuration table)."""

    flush_interval: float = 5.0
    flush_points: int = 20_000
    max_buffered_points: int = 2_000_000


class RunNotWritable(Exception):
    """The run's document is gone (purged) before its buffered points arrived."""


@dataclass
class _RunQueue:
    experiment_id: str
    open_points: list[MetricPoint]
    open_tags: dict[str, str]
    sealed: deque[RunBatch]
    open_clocks: dict[str, Clock]
    open_status: StatusWrite | None = None

    def has_open(self) -> bool:
        return bool(self.open_points or self.open_tags or self.open_status)


_live_buffers: weakref.WeakSet[WriteBuffer] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for buffer in list(_live_buffers):
        buffer.after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)


# Flush intervals with nothing to upload before the flusher thread stops.
_IDLE_WAKES_BEFORE_STOPPING = 2

# How long closing keeps retrying uploads that fail: with no spool, unsent points would
# be lost, so longer; with one, they are safe on disk for `sync` or the next process.
_CLOSE_RETRY_SECONDS = 60.0
_CLOSE_RETRY_SECONDS_SPOOLED = 10.0
_CLOSE_BACKOFF = Backoff(first=0.1, ceiling=2.0)


@atexit.register
def close_live_buffers() -> None:
    """Close every write buffer of this process, as its exit does: after this, a buffer
    uploads each call before the call returns."""
    # Closing also removes an empty spool folder. MLflow's own exit hook (end_run) may
    # still log after this one; the buffer keeps working, without the spool.
    for buffer in list(_live_buffers):
        buffer.close()


class WriteBuffer:
    """Per-process buffer of metric points and tags, flushed run by run."""

    def __init__(
        self,
        store: ObjectStore,
        writer_id: str,
        settings: WriteSettings,
        segment_cache: SegmentCache,
        after_upload: Callable[[str, str, int], None],
        spool: Spool | None = None,
        on_inactive: Callable[[str], None] = lambda run_id: None,
    ) -> None:
        self._store = store
        self._spool = spool
        self._writer_id = writer_id
        self._settings = settings
        self._segment_cache = segment_cache
        self._after_upload = after_upload  # (experiment_id, run_id, segments in manifest)
        # Told when an upload finds the run deleted or gone: the points are stored (a
        # deleted run keeps its data) and the store refuses the run's next call.
        self._on_inactive = on_inactive
        self.clocks = ClockSource(writer_id)  # stamps every tag write of this writer
        self._sequence = itertools.count(1)
        self._runs: dict[str, _RunQueue] = {}
        self._buffered = 0  # points in memory: open and sealed-but-not-uploaded
        self._open = 0  # points not sealed yet: what the flush threshold counts
        self._synchronous = False  # see ``synchronous``
        self._offloaded: set[int] = set()  # sequences whose points live only in the spool
        # Runs whose last upload met a damaged document: retrying within seconds cannot
        # help, so closing does not wait for them (their batches stay in the spool).
        self._damaged: set[str] = set()
        # Batches refused as too old (``BatchTooOld``), per run, until a caller is told
        # (``take_refusals``): the run's next call, or the next ``flush`` of the store.
        self.refusals: dict[str, list[BatchTooOld]] = {}
        self._lock = threading.Lock()  # guards _runs and the counters
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        _live_buffers.add(self)
        if spool is not None:
            # A buffer dropped unclosed (its store no longer used) has uploaded everything
            # (its flusher keeps it alive until then): its folder is left, unlocked, to the
            # next recovery, as a dead writer's is.
            weakref.finalize(self, spool.close, remove=False).atexit = False

    # -- the hot path ------------------------------------------------------------------

    @property
    def synchronous(self) -> bool:
        """Whether every call must be uploaded before it returns: in a forked child, after
        ``close``, and when no flusher thread could be started."""
        return self._synchronous

    def append(
        self, run_id: str, experiment_id: str, points: list[MetricPoint], tags: dict[str, str]
    ) -> None:
        if not points and not tags:
            return  # a call with params only: nothing for the spool or the upload
        with self._lock:
            # Stamped under the lock: appends and clocks of this writer are in one order.
            clock = self.clocks.tick() if tags else None
            if self._spool is not None:
                self._spool.append(OpenLine(run_id, experiment_id, points, tags, clock))
            queue = self._runs.get(run_id)
            if queue is None:
                queue = self._runs[run_id] = _RunQueue(experiment_id, [], {}, deque(), {})
            queue.open_points.extend(points)
            queue.open_tags.update(tags)
            if clock is not None:
                queue.open_clocks.update(dict.fromkeys(tags, clock))
            self._buffered += len(points)
            self._open += len(points)
            buffered, waiting = self._buffered, self._open
            if self._thread is None:
                self._start_flusher()
        # A spool the disk refused (full, say) is off: memory is then bounded as without one.
        spooled = self._spool is not None and self._spool.usable
        if spooled and waiting >= self._settings.max_buffered_points // 2:
            self._seal()  # sealing puts the points on disk; past the bound they leave memory
        elif not spooled and buffered >= self._settings.max_buffered_points:
            self.flush(raise_errors=False)
        elif waiting >= self._settings.flush_points:
            self._wake.set()

    def append_status(self, run_id: str, experiment_id: str, write: StatusWrite) -> None:
        """Keep a run's final status for upload (sealed at once: on disk before returning)."""
        with self._lock:
            queue = self._runs.get(run_id)
            if queue is None:
                queue = self._runs[run_id] = _RunQueue(experiment_id, [], {}, deque(), {})
            queue.open_status = write
            if self._thread is None:
                self._start_flusher()
        self._seal()

    def pending(self, run_id: str) -> bool:
        with self._lock:
            queue = self._runs.get(run_id)
            return bool(queue and (queue.has_open() or queue.sealed))

    # -- flushing ----------------------------------------------------------------------

    def _start_flusher(self) -> None:
        thread = threading.Thread(
            target=self._flush_loop, name="mlflow-bucket-flusher", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a limit, or interpreter shutdown)
            # Then nothing would upload in the background: each call uploads itself, the
            # one being accepted included (the store checks ``synchronous`` after it).
            self._synchronous = True
            return
        self._thread = thread

    def _flush_loop(self) -> None:
        idle_wakes = 0
        while not self._closed:
            self._wake.wait(self._settings.flush_interval)
            self._wake.clear()
            try:
                self.flush(raise_errors=False)
            except Exception:  # the flusher must outlive any one failure; the data stays queued
                _logger.exception("background flush failed; retrying at the next interval")
            # A thread that never ends would keep its buffer, and the store that owns it,
            # alive for the life of the process, however idle; the next write starts one.
            with self._lock:
                idle_wakes = 0 if self._holds_anything() else idle_wakes + 1
                if idle_wakes >= _IDLE_WAKES_BEFORE_STOPPING:
                    self._thread = None
                    return

    def _holds_anything(self) -> bool:
        return any(queue.has_open() or queue.sealed for queue in self._runs.values())

    def _seal(self) -> None:
        """Seal every run's open batch (all at once: the spool's open log is one file)."""
        with self._lock:
            sealed: list[RunBatch] = []
            for run_id, queue in self._runs.items():
                if not queue.has_open():
                    continue
                batch = RunBatch(
                    run_id=run_id,
                    experiment_id=queue.experiment_id,
                    writer_id=self._writer_id,
                    sequence=next(self._sequence),
                    points=queue.open_points,
                    tags=queue.open_tags,
                    tag_clocks=queue.open_clocks,
                    status=queue.open_status,
                )
                queue.sealed.append(batch)
                sealed.append(batch)
                queue.open_points, queue.open_tags, queue.open_clocks = [], {}, {}
                queue.open_status = None
            self._open = 0
            if self._spool is not None and sealed:
                self._spool.seal(sealed)
                if self._spool.usable:  # else these batches are in memory only
                    self._offload_over_bound()

    def _offload_over_bound(self) -> None:
        """Drop the points of the oldest spooled batches from memory while over the bound."""
        if self._buffered < self._settings.max_buffered_points:
            return
        # Never a queue's head: it may be uploading right now, reading its points.
        oldest_first = sorted(
            (
                batch
                for queue in self._runs.values()
                for batch in list(queue.sealed)[1:]
                if batch.sequence not in self._offloaded
            ),
            key=lambda batch: batch.sequence,
        )
        if oldest_first and not self._offloaded:
            _logger.warning(
                "%d metric points are waiting for the store; keeping the oldest on local disk "
                "only (spool: %s) until uploads succeed again",
                self._buffered,
                self._spool.folder if self._spool else None,
            )
        for batch in oldest_first:
            self._offloaded.add(batch.sequence)
            self._buffered -= len(batch.points)
            batch.points = []

    def flush(self, run_id: str | None = None, raise_errors: bool = True) -> None:
        """Upload buffered data (of one run, or all); keep what fails for the next flush."""
        with self._flush_lock:
            self._seal()
            with self._lock:
                run_ids = [run_id] if run_id is not None else list(self._runs)
            first_error: Exception | None = None
            for rid in run_ids:
                try:
                    self._upload_run(rid)
                except Exception as exc:  # logged by _upload_run; the run keeps its queue
                    first_error = first_error or exc
            if first_error is not None and raise_errors:
                raise first_error

    def take_refusals(self, run_id: str | None = None) -> list[BatchTooOld]:
        """Refusals of ``run_id``'s batches (or of every run's) no caller was told of yet;
        each is returned once."""
        with self._lock:
            if run_id is not None:
                return self.refusals.pop(run_id, [])
            taken = [refusal for refused in self.refusals.values() for refusal in refused]
            self.refusals.clear()
            return taken

    def _upload_run(self, run_id: str) -> None:
        with self._lock:
            queue = self._runs.get(run_id)
        while queue is not None and queue.sealed:
            batch = queue.sealed[0]
            try:
                self._upload(batch)
            except CorruptObject as exc:
                self._damaged.add(run_id)
                _logger.warning(
                    "upload of %d buffered metric points for run %s failed (%s); keeping them "
                    "until the document is repaired",
                    len(batch.points),
                    run_id,
                    exc,
                )
                raise
            except RunNotWritable:
                self._forget(queue, batch)
                _logger.warning(
                    "%d metric points and %d tags for run %s were not stored: the run's "
                    "document is gone (purged) before they were uploaded",
                    len(batch.points),
                    len(batch.tags),
                    run_id,
                )
                raise
            except BatchTooOld as exc:
                # No later try can apply it (kept unsent past the writer retention):
                # retrying would fail at every flush for ever. Dropped and kept for the
                # run's next call (or the store's next flush) to raise; the run's later
                # batches go on.
                self._forget(queue, batch)
                with self._lock:
                    self.refusals.setdefault(run_id, []).append(exc)
                _logger.error("%d metric points not stored: %s", len(batch.points), exc)
                continue
            except ObjectStoreError as exc:
                _logger.warning(
                    "upload of %d buffered metric points for run %s failed (%s); keeping them "
                    "for the next flush",
                    len(batch.points),
                    run_id,
                    exc,
                )
                raise
            except Exception:
                # Not a storage error: a bug, or damage no check knew of. Kept all the same,
                # and the other runs' uploads go on.
                _logger.exception(
                    "upload of %d buffered metric points for run %s failed; keeping them for "
                    "the next flush",
                    len(batch.points),
                    run_id,
                )
                raise
            self._damaged.discard(run_id)
            self._forget(queue, batch)
        with self._lock:
            if queue is not None and not (queue.sealed or queue.has_open()):
                self._runs.pop(run_id, None)

    def _forget(self, queue: _RunQueue, batch: RunBatch) -> None:
        """A sealed batch is settled (uploaded, or its run is gone): drop it everywhere."""
        with self._lock:
            queue.sealed.popleft()
            self._buffered -= len(batch.points)  # 0 for an offloaded batch: counted already
            self._offloaded.discard(batch.sequence)
            if self._spool is not None:
                self._spool.done(batch)

    def upload(self, batch: RunBatch) -> None:
        """Upload one sealed batch now (a dead writer's, replayed from its spool)."""
        self._upload(batch)

    def _upload(self, batch: RunBatch) -> None:
        # A dead writer's batch replayed by recovery may share a sequence with one of ours.
        offloaded = batch.writer_id == self._writer_id and batch.sequence in self._offloaded
        if offloaded and self._spool is not None:
            batch = self._spool.load(batch.sequence)  # the full batch, back from disk
        segment: SegmentInfo | None = None
        if batch.points:
            table = points_table(batch.points)
            data, segment = encode_table(batch.segment, table)
            key = keys.metric_segment_key(batch.experiment_id, batch.run_id, batch.segment)
            self._store.put(key, data)
            self._segment_cache.put(batch.segment, table)

        key = keys.run_key(batch.experiment_id, batch.run_id)

        def mutate(doc: Document) -> Document:
            # A deleted run is soft-deleted: its points are stored all the same. A damaged
            # document is CorruptObject naming the key (update_document checks it against
            # the run schema); the batch waits in the queue.
            return apply_batch(doc, batch, segment)

        try:
            doc, _ = update_document(self._store, key, mutate)
        except NotFound:
            self._on_inactive(batch.run_id)
            raise RunNotWritable(batch.run_id) from None
        self.clocks.observe(newest_clock(doc))  # later calls are stamped after what it holds
        if doc["lifecycle_stage"] != ACTIVE or self._experiment_deleted(doc):
            self._on_inactive(batch.run_id)
        if segment is not None:
            self._after_upload(batch.experiment_id, batch.run_id, len(doc["segments"]))

    def _experiment_deleted(self, run: Document) -> bool:
        """Whether the run's experiment deletion covers it (``format.run_stage``): a run
        deleted with its experiment refuses its next call like one deleted by itself."""
        try:
            found = read_or_none(self._store, keys.experiment_key(run["experiment_id"]))
        except (ObjectStoreError, keys.InvalidId):
            return False  # the batch is stored; the run's next check reads it again
        return found is not None and effective_stage(run, found[0]) != ACTIVE

    def after_fork_in_child(self) -> None:
        """A forked child starts afresh: its own writer id and locks, no inherited data.

        The parent uploads what it had buffered. The child writes through (a
        ``multiprocessing`` child ends with ``os._exit``, skipping exit hooks) and has no
        spool (the parent's file descriptors are not its to use).
        """
        self._writer_id = uuid.uuid4().hex[:16]
        self.clocks = ClockSource(self._writer_id)
        self._sequence = itertools.count(1)
        self._runs = {}
        self._buffered = self._open = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._spool = None
        self._offloaded = set()
        self.refusals = {}  # the parent's to tell its callers
        self._synchronous = True

    def _pending(self) -> bool:
        with self._lock:
            return any(queue.sealed or queue.open_points for queue in self._runs.values())

    def _retryable(self) -> bool:
        """Whether anything is waiting that a retry may yet upload (no damaged run's batch)."""
        with self._lock:
            return any(
                queue.sealed or queue.open_points
                for run_id, queue in self._runs.items()
                if run_id not in self._damaged
            )

    def close(self) -> None:
        """Flush everything, stop the flusher thread, release the spool.

        An upload that fails now (a run document many writers are changing, an
        endpoint answering errors) is tried again for a while: without a spool what
        is left here at exit is lost, and with one it waits for the next process.
        """
        # From now on a call is uploaded before it returns: no flusher and no spool will
        # be left to keep it (a dropped store is freed, not flushed at exit), and a call
        # racing this close must not slip in after its last flush.
        self._synchronous = True
        spooled = self._spool is not None and self._spool.usable
        deadline = time.monotonic() + (
            _CLOSE_RETRY_SECONDS_SPOOLED if spooled else _CLOSE_RETRY_SECONDS
        )
        self.flush(raise_errors=False)
        attempt = 0
        while self._retryable() and time.monotonic() < deadline:
            _CLOSE_BACKOFF.sleep(attempt)
            attempt += 1
            self.flush(raise_errors=False)
        if self._pending():
            _logger.warning(
                "mlflow-bucket: some logged metrics could not be uploaded before closing; %s",
                "they stay in the local spool for `python -m mlflow_plugin sync`"
                if spooled
                else "they are lost (the spool is off, or the disk refused it)",
            )
        self._closed = True
        self._wake.set()
        with self._lock:  # appends and seals check the spool under this lock
            if self._spool is not None:
                self._spool.close(remove=not self._runs)
                self._spool = None

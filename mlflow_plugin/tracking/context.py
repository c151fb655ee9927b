"""What the tracking store's collaborators share: storage, caches, the write buffer, run documents.

One ``StoreContext`` is built per ``BucketTrackingStore`` and handed to each
collaborator (``Runs``, ``Experiments``, ``LoggedModels``, ``MetricHistory``,
``RunInputs``, ``HardDelete``). It owns the state they all need and the accessors
of run documents every one of them reads or changes:

- ``run_experiment(run_id)``: a run's experiment, through the immutable
  ``run-locations/<run_id>`` pointer, cached in-process forever;
- ``run_doc`` (after this process's buffered writes and any crash recovery of the
  run), ``read_run`` (as stored now), ``update_run`` / ``cas_run`` (compare-and-swap,
  with or without uploading buffered writes first);
- ``segment_table``: one immutable metric segment, from memory, local disk or the
  bucket;
- ``index()``: the query index, opened by the first search.

It also decides when compaction runs (after an upload leaves more than
``COMPACT_AFTER_SEGMENTS`` segments); ``format.compaction`` does the storage work.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from mlflow_plugin.cache.segment_files import local_caches
from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.format.compaction import compact_segments
from mlflow_plugin.format.documents import Document, read_document, update_document
from mlflow_plugin.format.run_batches import newest_clock
from mlflow_plugin.format.segments import MetricPoint, SegmentCache, decode_table, table_points
from mlflow_plugin.format.version import open_root
from mlflow_plugin.objectstore import (
    NotFound,
    ObjectStore,
    ObjectStoreError,
    StoreLocation,
    check_conditional_writes_once,
    open_object_store,
)
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.objectstore.observed import ObservedObjectStore
from mlflow_plugin.objectstore.uri import root_identity
from mlflow_plugin.tracking.history import HistoryCache
from mlflow_plugin.tracking.recovery import SpoolRecovery, wait_for_recovery
from mlflow_plugin.tracking.settings import (
    cache_max_bytes,
    index_settings,
    spool_settings,
    write_settings,
)
from mlflow_plugin.tracking.spool import Spool, spool_root
from mlflow_plugin.tracking.write_buffer import RunNotWritable, WriteBuffer

if TYPE_CHECKING:
    from mlflow_plugin.index.query_index import QueryIndex

__all__ = [
    "COMPACT_AFTER_SEGMENTS",
    "StoreContext",
    "check_active",
    "check_run_active",
    "check_run_id",
    "not_found_run",
]

_logger = logging.getLogger(__name__)

# A manifest with more segments than this is compacted after the upload that grew it.
COMPACT_AFTER_SEGMENTS = 16

_READ_WORKERS = 16

# How long a read of a run waits for the background recovery of that run (an endpoint
# that is down makes recovery slow; the reader then goes on with what is stored).
_RECOVERY_WAIT_SECONDS = 60.0

# Set by `mlflow server` for its workers (mlflow.server.constants.BACKEND_STORE_URI_ENV_VAR).
_SERVER_BACKEND_ENV = "_MLFLOW_SERVER_FILE_STORE"


def not_found_run(run_id: str) -> MlflowException:
    return MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)


def check_run_id(run_id: object) -> str:
    """``run_id`` if it can name a run; anything else names none (as in MLflow's SQL store)."""
    try:
        return keys.check_id(run_id, "run id")
    except keys.InvalidId:
        raise not_found_run(str(run_id)) from None


def check_active(doc: Document, kind: str) -> None:
    """MLflow's error for a change to a deleted ``kind`` ("run", "experiment")."""
    if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
        raise MlflowException(
            f"The {kind} {doc[f'{kind}_id']} must be in the 'active' state. "
            f"Current state is {doc['lifecycle_stage']}.",
            INVALID_PARAMETER_VALUE,
        )


def check_run_active(doc: Document) -> None:
    check_active(doc, "run")


# Weakly held: a hook registered per context would keep every store a process ever
# opened alive (os.register_at_fork never lets go of its callables).
_live_contexts: weakref.WeakSet[StoreContext] = weakref.WeakSet()


def _new_readers_after_fork() -> None:
    for context in list(_live_contexts):
        context._new_readers()


os.register_at_fork(after_in_child=_new_readers_after_fork)


class StoreContext:
    """The state one tracking store's collaborators share; raises storage errors as they are.

    ``objects`` may be replaced (tests wrap it to pause or fail writes); the write
    buffer keeps the object store it was built with.
    """

    def __init__(
        self,
        location: StoreLocation,
        store_uri: str,
        artifact_root_uri: str | None,
        *,
        recover_in_background: bool,
    ) -> None:
        self._query_index: QueryIndex | None = None
        self._query_index_lock = threading.Lock()
        self.location = location
        self.store_uri = store_uri
        # Observed: a search right after this process's own write re-reads what it wrote.
        # Journaled: other readers learn of each document write with one listing.
        inner = open_object_store(location)
        self.objects: ObjectStore = ObservedObjectStore(
            inner, self._note_write, functools.partial(change_journal.record, inner)
        )
        if location.is_s3:
            check_conditional_writes_once(self.objects)
        # Creates the format document, migrates an older root, refuses a newer one.
        self.format_document = open_root(self.objects)
        # Stored in every experiment: the writer's own settings (flush interval, spool,
        # index) must not travel with it.
        self.artifact_root_uri = (
            artifact_root_uri or location.addressing_only().join("artifacts").to_uri()
        )
        self.writer_id = uuid.uuid4().hex[:16]
        # Inside `mlflow server` each worker process has its own store: a REST client's
        # metrics are uploaded before the call returns, so every worker (and every other
        # reader) sees them at once, as with MLflow's SQL store.
        self.write_through = os.environ.get(_SERVER_BACKEND_ENV) is not None
        self.run_experiments: dict[str, str] = {}
        self.writable_runs: dict[str, str] = {}  # run id -> experiment id, checked once
        self.segment_cache = SegmentCache()
        self.history_cache = HistoryCache()
        # Local disk caches of immutable segments and of long sorted histories (no I/O
        # until a history is read: a process that only logs creates neither folder).
        self.segment_files, self.history_files = local_caches(
            root_identity(location), cache_max_bytes(location)
        )
        self.readers = ThreadPoolExecutor(_READ_WORKERS, thread_name_prefix="mlflow-bucket-read")
        # A forked child cannot use the parent's pool threads; give it a pool of its own.
        _live_contexts.add(self)
        spool_dir = spool_settings(location)
        self.spool_root = spool_root(spool_dir, root_identity(location)) if spool_dir else None
        self.buffer = WriteBuffer(
            self.objects,
            self.writer_id,
            write_settings(location),
            self.segment_cache,
            after_upload=self._maybe_compact,
            spool=Spool(self.spool_root / self.writer_id, store_uri) if self.spool_root else None,
            on_inactive=self.forget_writable,
        )
        self.recovery: SpoolRecovery | None = None
        if self.spool_root is not None and recover_in_background:
            # What a crashed process on this machine left is uploaded in the background;
            # meanwhile a read of a run it holds waits for that run (see run_doc).
            self.recovery = SpoolRecovery(self.spool_root, self.buffer.upload)
            self.recovery.start()

    def _new_readers(self) -> None:
        self.readers = ThreadPoolExecutor(_READ_WORKERS, thread_name_prefix="mlflow-bucket-read")

    # -- the query index -------------------------------------------------------------

    def _note_write(self, key: str) -> None:
        if self._query_index is not None:
            self._query_index.note_write(key)

    def index(self) -> QueryIndex:
        """The query index, opened by the first search (a process that only logs needs none)."""
        if self._query_index is None:
            with self._query_index_lock:
                if self._query_index is None:
                    from mlflow_plugin.index.query_index import QueryIndex

                    settings = index_settings(self.location)
                    # The root's id too: a bucket deleted and created again at the same
                    # URI is another root, and its index starts afresh.
                    root = f"{root_identity(self.location)} #{self.format_document.get('root_id')}"
                    self._query_index = QueryIndex(
                        self.objects, root, settings.url, settings.staleness
                    )
        return self._query_index

    # -- run documents -----------------------------------------------------------------

    def run_experiment(self, run_id: str) -> str:
        experiment_id = self.run_experiments.get(check_run_id(run_id))
        if experiment_id is None:
            location_key = keys.run_location_key(run_id)
            try:
                pointer, _ = read_document(self.objects, location_key)
            except NotFound:
                raise not_found_run(run_id) from None
            if not isinstance(pointer.get("experiment_id"), str | int):
                raise CorruptObject(f"corrupt run pointer {location_key!r}: no experiment id")
            experiment_id = str(pointer["experiment_id"])
            self.run_experiments[run_id] = experiment_id
        return experiment_id

    def run_doc(self, run_id: str) -> Document:
        """The run document, after uploading this process's buffered writes to it.

        Also after the background recovery has replayed what a dead writer left for
        the run, so the first read after a crash is not partial.
        """
        self.flush_run(run_id)
        if self.spool_root is not None:
            wait_for_recovery(self.spool_root, run_id, _RECOVERY_WAIT_SECONDS)
        return self.read_run(run_id)

    def read_run(self, run_id: str) -> Document:
        """The run document as stored now (this process's buffered writes not uploaded)."""
        key = keys.run_key(self.run_experiment(run_id), run_id)
        try:
            doc = read_document(self.objects, key)[0]  # checked against the run schema there
        except NotFound:
            raise not_found_run(run_id) from None
        self.buffer.clocks.observe(newest_clock(doc))  # later calls stamp after what it holds
        return doc

    def update_run(self, run_id: str, mutate: Callable[[Document], Document]) -> Document:
        """Compare-and-swap the run document, after uploading buffered writes to it."""
        self.flush_run(run_id)
        return self.cas_run(run_id, mutate)

    def cas_run(self, run_id: str, mutate: Callable[[Document], Document]) -> Document:
        """Compare-and-swap the run document as stored (buffered writes stay buffered)."""
        try:
            # ``mutate`` gets a document update_document checked against the run schema.
            key = keys.run_key(self.run_experiment(run_id), run_id)
            doc = update_document(self.objects, key, mutate)[0]
        except NotFound:
            raise not_found_run(run_id) from None
        self.buffer.clocks.observe(newest_clock(doc))
        return doc

    def flush_run(self, run_id: str) -> None:
        """Upload this process's buffered writes to a run before reading or changing it."""
        if self.buffer.pending(check_run_id(run_id)):
            # A deleted run is reported by the buffer; the caller's own check answers the caller.
            with contextlib.suppress(RunNotWritable):
                self.buffer.flush(run_id)

    def forget_writable(self, run_id: str) -> None:
        """The run was deleted or is gone: its next logging call checks it again."""
        self.writable_runs.pop(run_id, None)

    # -- metric segments ---------------------------------------------------------------

    def segment_table(self, experiment_id: str, run_id: str, name: str) -> pa.Table:
        """A segment from memory, else from the local disk cache, else from the bucket."""
        cached = self.segment_cache.get(name)
        if cached is not None:
            return cached
        key = keys.metric_segment_key(experiment_id, run_id, name)
        data = self.segment_files.get(key)
        from_disk = data is not None
        if data is None:
            data = self.objects.get(key).data
        try:
            table = decode_table(data)
        except ValueError as exc:
            if from_disk:
                self.segment_files.discard(key)  # a damaged cache file: fetch it again next time
            raise CorruptObject(
                f"corrupt metric segment {key!r} in {self.objects.location}: {exc}"
            ) from None
        if not from_disk:
            self.segment_files.put(key, data)
        self.segment_cache.put(name, table)
        return table

    def _maybe_compact(self, experiment_id: str, run_id: str, segments: int) -> None:
        if segments <= COMPACT_AFTER_SEGMENTS:
            return

        def read_points(name: str) -> list[MetricPoint]:
            return table_points(self.segment_table(experiment_id, run_id, name))

        try:
            # Runs inside a flush: read and swap without flushing again.
            compact_segments(
                self.objects,
                self.read_run(run_id),
                read_points,
                lambda mutate: self.cas_run(run_id, mutate),
                self.segment_cache,
            )
        except ObjectStoreError as exc:
            # The batch is stored already; merging segments is housekeeping that a
            # later flush redoes, so its failure must not fail the caller's write.
            _logger.warning("compacting the segments of run %s failed: %s", run_id, exc)

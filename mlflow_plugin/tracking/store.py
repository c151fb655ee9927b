"""MLflow's tracking store on the bucket: the class MLflow instantiates, and runs.

The store is assembled from one mixin per concern: ``experiments``,
``metrics`` (history and compaction), ``inputs``, ``logged_models`` and ``traces``
(not stored). This module keeps initialisation and the run methods.

Decisions beyond DESIGN.md, written down here:

- A run's experiment is found through the immutable ``run-locations/<run_id>``
  pointer, cached in-process forever.
- ``log_batch`` appends metrics and tags to the write buffer (``write_buffer``).
  Params follow MLflow: re-logging the same value is fine, another value is
  ``INVALID_PARAMETER_VALUE``, so they (and a run name, and the call's tags with
  them) are written at once. Every tag write is stamped with this writer's clock
  when the call is made, and the newest acknowledged write wins (``run_batches``);
  the latest metric per key is MLflow's greatest (step, timestamp, value).
- Points that reach a run another process deleted are stored (the run is
  soft-deleted); the upload tells the store, and the run's next logging call checks
  the run again and answers MLflow's INVALID_PARAMETER_VALUE while it stays deleted.
- A final status that cannot be stored (the endpoint is down) is kept like metrics:
  ``update_run_info`` returns, and the status enters the run when the batch is
  uploaded, unless a newer status was set. A param that cannot be stored is an
  error naming the call and what was not stored.
- Search (runs, experiments, logged models) reads every document of the requested
  experiments and filters in memory with MLflow's own ``SearchUtils``; the query
  index replaces this for large experiments.
- On an S3 endpoint the store probes conditional writes once per process and
  refuses an endpoint that ignores them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mlflow.entities import (
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_param_keys_unique,
    _validate_run_id,
)

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import (
    Document,
    create_document,
    read_document,
    update_document,
)
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.format.run_batches import (
    Clock,
    StatusWrite,
    newest_clock,
    set_status,
    set_tags,
    status_clock,
    tag_clock,
)
from mlflow_plugin.format.run_batches import delete_tag as delete_tag_in
from mlflow_plugin.format.schema import RUN
from mlflow_plugin.format.segments import (
    MetricPoint,
    SegmentCache,
)
from mlflow_plugin.format.version import open_root
from mlflow_plugin.cache.segment_files import local_caches
from mlflow_plugin.mlflow_errors import as_mlflow_exception, invalid_input_errors, mlflow_errors
from mlflow_plugin.objectstore import (
    NotFound,
    ObjectStore,
    ObjectStoreError,
    check_conditional_writes_once,
    open_object_store,
)
from mlflow_plugin.objectstore.errors import CorruptObject, StorageUnavailable
from mlflow_plugin.objectstore.observed import ObservedObjectStore
from mlflow_plugin.objectstore.uri import root_identity
from mlflow_plugin.page_tokens import offset_from_page_token
from mlflow_plugin.store_uri import parse_store_uri
from mlflow_plugin.text_input import check_entries, check_text, check_texts
from mlflow_plugin.tracking.entities import (
    run_from_doc,
    run_info_from_doc,
    runs_from_docs,
)
from mlflow_plugin.tracking.experiments import (
    DEFAULT_EXPERIMENT_ID,
    ExperimentsMixin,
    check_experiment_id,
)
from mlflow_plugin.tracking.hard_delete import HardDeleteMixin
from mlflow_plugin.tracking.history import HistoryCache
from mlflow_plugin.tracking.inputs import RunInputsMixin
from mlflow_plugin.tracking.logged_models import LoggedModelsMixin
from mlflow_plugin.tracking.metrics import COMPACT_AFTER_SEGMENTS, MetricHistoryMixin
from mlflow_plugin.tracking.not_stored import KindsNotStoredMixin
from mlflow_plugin.tracking.recovery import RecoveryReport, SpoolRecovery, wait_for_recovery
from mlflow_plugin.tracking.settings import (
    cache_max_bytes,
    index_settings,
    spool_settings,
    write_settings,
)
from mlflow_plugin.tracking.spool import Spool, spool_root
from mlflow_plugin.tracking.validation import (
    stored_metric_value,
    validate_max_results,
    validate_metric_ranges,
)
from mlflow_plugin.tracking.write_buffer import RunNotWritable, WriteBuffer

if TYPE_CHECKING:
    from mlflow_plugin.index.query_index import QueryIndex

__all__ = ["BucketTrackingStore"]

_logger = logging.getLogger(__name__)

_READ_WORKERS = 16

# How long a read of a run waits for the background recovery of that run (an endpoint
# that is down makes recovery slow; the reader then goes on with what is stored).
_RECOVERY_WAIT_SECONDS = 60.0


# Set by `mlflow server` for its workers (mlflow.server.constants.BACKEND_STORE_URI_ENV_VAR).
_SERVER_BACKEND_ENV = "_MLFLOW_SERVER_FILE_STORE"


def _not_found_run(run_id: str) -> MlflowException:
    return MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)


def _run_id(run_id: object) -> str:
    """``run_id`` if it can name a run; anything else names none (as in MLflow's SQL store)."""
    try:
        return keys.check_id(run_id, "run id")
    except keys.InvalidId:
        raise _not_found_run(str(run_id)) from None


def _described(run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> str:
    """What one logging call carries, for an error saying it was not stored."""
    parts = [
        f"{what} {sorted({item.key for item in items})}"
        for what, items in (("metrics", metrics), ("params", params), ("tags", tags))
        if items
    ]
    return f"{' and '.join(parts) or 'nothing'} of run {run_id} were"


@contextlib.contextmanager
def _unexpected_errors(operation: str) -> Iterator[None]:
    """An upload's failure that is no storage error (a bug) as MLflow's INTERNAL_ERROR.

    Store methods never let a raw Python exception escape; the batch stays queued.
    """
    try:
        yield
    except (MlflowException, ObjectStoreError, RunNotWritable):
        raise
    except Exception as exc:
        raise MlflowException(
            f"{operation}: buffered writes could not be uploaded: {type(exc).__name__}: {exc}",
            INTERNAL_ERROR,
        ) from exc


def _latest_wins(old: dict[str, Any] | None, new: Metric) -> bool:
    """MLflow's rule for the latest value: the greatest (step, timestamp, value)."""
    if old is None:
        return True
    new_value = 0.0 if math.isnan(new.value) else new.value
    old_value = 0.0 if math.isnan(old["value"]) else old["value"]
    return (new.step, new.timestamp, new_value) >= (old["step"], old["timestamp"], old_value)


class BucketTrackingStore(
    KindsNotStoredMixin,
    HardDeleteMixin,
    LoggedModelsMixin,
    RunInputsMixin,
    MetricHistoryMixin,
    ExperimentsMixin,
    AbstractStore,
):
    """``AbstractStore`` for ``bucket+s3://`` and ``bucket+file:`` URIs.

    >>> import mlflow  # doctest: +SKIP
    >>> mlflow.set_tracking_uri("bucket+file:./mlruns-bucket")  # doctest: +SKIP
    """

    def __init__(
        self, store_uri: str, artifact_uri: str | None = None, *, recover_in_background: bool = True
    ) -> None:
        super().__init__()
        self._query_index: QueryIndex | None = None
        self._query_index_lock = threading.Lock()
        with mlflow_errors():
            self._location = parse_store_uri(store_uri)
            # Observed: a search right after this process's own write re-reads what it wrote.
            self._store: ObjectStore = ObservedObjectStore(
                open_object_store(self._location), self._note_write
            )
            if self._location.is_s3:
                check_conditional_writes_once(self._store)
            # Creates the format document, migrates an older root, refuses a newer one.
            self.format_document = open_root(self._store)
        self.store_uri = store_uri
        # Stored in every experiment: the writer's own settings (flush interval, spool,
        # index) must not travel with it.
        self.artifact_root_uri = (
            artifact_uri or self._location.addressing_only().join("artifacts").to_uri()
        )
        self._writer_id = uuid.uuid4().hex[:16]
        # Inside `mlflow server` each worker process has its own store: a REST client's
        # metrics are uploaded before the call returns, so every worker (and every other
        # reader) sees them at once, as with MLflow's SQL store.
        self._write_through = os.environ.get(_SERVER_BACKEND_ENV) is not None
        self._run_experiments: dict[str, str] = {}
        self._writable_runs: dict[str, str] = {}  # run id -> experiment id, checked once
        self._segment_cache = SegmentCache()
        self._history_cache = HistoryCache()
        # Local disk caches of immutable segments and of long sorted histories (no I/O
        # until a history is read: a process that only logs creates neither folder).
        self._segment_files, self._history_files = local_caches(
            root_identity(self._location), cache_max_bytes(self._location)
        )
        self._readers = ThreadPoolExecutor(_READ_WORKERS, thread_name_prefix="mlflow-bucket-read")
        # A forked child cannot use the parent's pool threads; give it a pool of its own.
        os.register_at_fork(after_in_child=self._new_readers)
        spool_dir = spool_settings(self._location)
        self._spool_root = (
            spool_root(spool_dir, root_identity(self._location)) if spool_dir else None
        )
        self._buffer = WriteBuffer(
            self._store,
            self._writer_id,
            write_settings(self._location),
            self._segment_cache,
            after_upload=self._maybe_compact,
            spool=Spool(self._spool_root / self._writer_id, store_uri)
            if self._spool_root
            else None,
            on_inactive=self._forget_writable,
        )
        self._recovery: SpoolRecovery | None = None
        if self._spool_root is not None and recover_in_background:
            # What a crashed process on this machine left is uploaded in the background;
            # meanwhile a read of a run it holds waits for that run (see _run_doc).
            self._recovery = SpoolRecovery(self._spool_root, self._buffer.upload)
            self._recovery.start()
        with mlflow_errors():
            self._ensure_default_experiment()

    def _note_write(self, key: str) -> None:
        if self._query_index is not None:
            self._query_index.note_write(key)

    def _index(self) -> QueryIndex:
        """The query index, opened by the first search (a process that only logs needs none)."""
        if self._query_index is None:
            with self._query_index_lock:
                if self._query_index is None:
                    from mlflow_plugin.index.query_index import QueryIndex

                    settings = index_settings(self._location)
                    # The root's id too: a bucket deleted and created again at the same
                    # URI is another root, and its index starts afresh.
                    root = f"{root_identity(self._location)} #{self.format_document.get('root_id')}"
                    self._query_index = QueryIndex(
                        self._store, root, settings.url, settings.staleness
                    )
        return self._query_index

    def _new_readers(self) -> None:
        self._readers = ThreadPoolExecutor(_READ_WORKERS, thread_name_prefix="mlflow-bucket-read")

    @property
    def object_store(self) -> ObjectStore:
        return self._store

    # Storage errors (a bad id included: InvalidId is an InvalidKey) -> MlflowException.
    _errors = staticmethod(mlflow_errors)

    # -- experiments -----------------------------------------------------------------

    # -- runs: reading -----------------------------------------------------------------

    def _run_experiment(self, run_id: str) -> str:
        experiment_id = self._run_experiments.get(_run_id(run_id))
        if experiment_id is None:
            location_key = keys.run_location_key(run_id)
            try:
                pointer, _ = read_document(self._store, location_key)
            except NotFound:
                raise _not_found_run(run_id) from None
            if not isinstance(pointer.get("experiment_id"), str | int):
                raise CorruptObject(f"corrupt run pointer {location_key!r}: no experiment id")
            experiment_id = str(pointer["experiment_id"])
            self._run_experiments[run_id] = experiment_id
        return experiment_id

    def _run_key(self, run_id: str) -> str:
        return keys.run_key(self._run_experiment(run_id), run_id)

    def _run_doc(self, run_id: str) -> Document:
        """The run document, after uploading this process's buffered writes to it.

        Also after the background recovery has replayed what a dead writer left for
        the run, so the first read after a crash is not partial.
        """
        self._flush_run(run_id)
        if self._spool_root is not None:
            wait_for_recovery(self._spool_root, run_id, _RECOVERY_WAIT_SECONDS)
        return self._read_run(run_id)

    def _read_run(self, run_id: str) -> Document:
        key = self._run_key(run_id)
        try:
            doc = read_document(self._store, key)[0]  # checked against the run schema there
        except NotFound:
            raise _not_found_run(run_id) from None
        self._buffer.clocks.observe(newest_clock(doc))  # later calls stamp after what it holds
        return doc

    def _run_docs(self, experiment_ids: list[str], view_type: int) -> list[Document]:
        # This process's writes first; a failing upload (reported by the buffer) must not
        # fail a search of other runs.
        self._buffer.flush(raise_errors=False)
        run_keys = [
            info.key
            for experiment_id in experiment_ids
            for info in self._store.list(keys.experiment_runs_prefix(experiment_id))
            if RUN.is_key(info.key)  # a stray object there is no run
        ]
        read = functools.partial(read_listed, self._store)
        docs = [doc for doc in self._readers.map(read, run_keys) if doc is not None]
        return [
            doc
            for doc in docs
            if LifecycleStage.matches_view_type(view_type, doc["lifecycle_stage"])
        ]

    def get_run(self, run_id: str) -> Run:
        with self._errors():
            return run_from_doc(self._run_doc(run_id))

    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        validate_max_results(max_results, allow_null=True)
        offset_from_page_token(page_token)  # a forged token is INVALID_PARAMETER_VALUE
        check_text("filter", filter_string)  # the index's SQL driver cannot bind it
        check_texts("order_by", order_by or [])
        with self._errors():
            # An id no experiment can have (negative, beyond 64 bits) simply matches no run.
            ids = [i for i in map(check_experiment_id, experiment_ids) if 0 <= int(i) < 2**63]
            # This process's writes first; a failing upload (reported by the buffer) must not
            # fail a search of other runs.
            self._buffer.flush(raise_errors=False)
            docs, next_token = self._index().search_runs(
                ids, filter_string, run_view_type, max_results, order_by, page_token
            )
        return runs_from_docs(docs), next_token

    # -- runs: lifecycle -------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int | None,
        tags: list[RunTag] | None,
        run_name: str | None,
    ) -> Run:
        check_text("user id", user_id)
        check_text("run name", run_name)
        check_entries("tag", tags)
        with self._errors():
            experiment = self._experiment_doc(experiment_id or DEFAULT_EXPERIMENT_ID)
            self._check_experiment_active(experiment)
            tags = list(tags or [])
            name_tag = next((t.value for t in tags if t.key == MLFLOW_RUN_NAME), None)
            if run_name and name_tag and run_name != name_tag:
                raise MlflowException(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                    f"different values (run_name='{run_name}', mlflow.runName='{name_tag}').",
                    INVALID_PARAMETER_VALUE,
                )
            run_name = run_name or name_tag or _generate_random_name()
            if not name_tag:
                tags.append(RunTag(MLFLOW_RUN_NAME, run_name))
            run_id = uuid.uuid4().hex
            experiment_id = experiment["experiment_id"]
            clock = list(self._buffer.clocks.tick())
            doc: Document = {
                "run_id": run_id,
                "experiment_id": experiment_id,
                "run_name": run_name,
                "user_id": user_id,
                "status": RunStatus.to_string(RunStatus.RUNNING),
                "start_time": start_time,
                "end_time": None,
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "deleted_time": None,
                "artifact_uri": append_to_uri_path(
                    experiment["artifact_location"], run_id, "artifacts"
                ),
                "params": {},
                "tags": {tag.key: tag.value for tag in tags},
                # When each tag's value was written: a late batch never overwrites a newer one.
                "tag_clocks": {tag.key: clock for tag in tags},
                "latest_metrics": {},
                "segments": [],
                "inputs": [],
                "model_inputs": [],
                "model_outputs": [],
                "writers": {},
            }
            create_document(
                self._store, keys.run_location_key(run_id), {"experiment_id": experiment_id}
            )
            create_document(self._store, keys.run_key(experiment_id, run_id), doc)
            self._run_experiments[run_id] = experiment_id
            return run_from_doc(doc, with_outputs=False)  # as the SQL store's create_run

    def _update_run(self, run_id: str, mutate: Callable[[Document], Document]) -> Document:
        """Compare-and-swap the run document, after uploading buffered writes to it."""
        self._flush_run(run_id)
        return self._cas_run(run_id, mutate)

    def _cas_run(self, run_id: str, mutate: Callable[[Document], Document]) -> Document:
        try:
            # ``mutate`` gets a document update_document checked against the run schema.
            doc = update_document(self._store, self._run_key(run_id), mutate)[0]
        except NotFound:
            raise _not_found_run(run_id) from None
        self._buffer.clocks.observe(newest_clock(doc))
        return doc

    @staticmethod
    def _check_run_active(doc: Document) -> None:
        if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The run {doc['run_id']} must be in the 'active' state. "
                f"Current state is {doc['lifecycle_stage']}.",
                INVALID_PARAMETER_VALUE,
            )

    def update_run_info(
        self, run_id: str, run_status: int | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        check_text("run name", run_name)

        clock = self._buffer.clocks.tick()
        status = (
            None
            if run_status is None
            else StatusWrite(RunStatus.to_string(run_status), end_time, clock)
        )

        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            if status is not None:
                set_status(doc, status)  # with its clock: a late spooled status stays out
            elif end_time is not None:
                doc["end_time"] = end_time
            if run_name:
                set_tags(doc, {MLFLOW_RUN_NAME: run_name}, clock)  # the run name follows
            return doc

        changes = [
            f"status {RunStatus.to_string(run_status)}" if run_status is not None else "",
            "end time" if end_time is not None else "",
            f"name {run_name!r}" if run_name else "",
        ]
        what = " and ".join(change for change in changes if change) or "update"
        operation = "set_terminated" if end_time is not None else "update_run"
        verb = "were" if " and " in what else "was"
        try:
            with self._not_stored(operation, f"{what} of run {run_id} {verb}"):
                doc = self._update_run(run_id, mutate)
        except MlflowException as exc:
            if status is None or run_name or not isinstance(exc.__cause__, StorageUnavailable):
                raise
            return self._keep_status(run_id, status, exc)
        self._observe(doc, [MLFLOW_RUN_NAME] if run_name else [])
        if status is not None:
            self._buffer.clocks.observe(status_clock(doc))
        return run_info_from_doc(doc)

    def _keep_status(self, run_id: str, status: StatusWrite, error: MlflowException) -> RunInfo:
        """The store is unreachable: keep the status like metrics, uploaded when it is back.

        ``end_run`` in a training script must not leave the run RUNNING forever because
        the endpoint was down at that moment. The status travels in a sealed batch (on
        disk when the spool is on) and enters the run unless a newer status was set.
        """
        experiment_id = self._run_experiments.get(run_id)
        if experiment_id is None:  # never seen here: nothing says which run document
            raise error
        self._buffer.append_status(run_id, experiment_id, status)
        _logger.warning(
            "status %s of run %s is kept for upload when the store is reachable again (%s)",
            status.status,
            run_id,
            error.message,
        )
        return RunInfo(
            run_id=run_id,
            experiment_id=experiment_id,
            user_id="",
            status=status.status,  # MLflow's RunInfo takes the status's name too
            start_time=0,  # not known without the document (MLflow's RunInfo needs a number)
            end_time=status.end_time,
            lifecycle_stage=LifecycleStage.ACTIVE,
        )

    def _set_run_stage(self, run_id: str, stage: str, check: bool = True) -> None:
        self._writable_runs.pop(_run_id(run_id), None)

        def mutate(doc: Document) -> Document:
            doc["lifecycle_stage"] = stage
            doc["deleted_time"] = (
                get_current_time_millis() if stage == LifecycleStage.DELETED else None
            )
            return doc

        if check:
            self._run_doc(run_id)
        self._update_run(run_id, mutate)

    def delete_run(self, run_id: str) -> None:
        with self._errors():
            self._set_run_stage(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        with self._errors():
            self._set_run_stage(run_id, LifecycleStage.ACTIVE)

    def _get_deleted_runs(self, older_than: int = 0) -> list[str]:
        with self._errors():
            cutoff = get_current_time_millis() - older_than
            return [
                doc["run_id"]
                for doc in self._run_docs(self._experiment_ids(), ViewType.DELETED_ONLY)
                if (doc.get("deleted_time") or 0) <= cutoff
            ]

    # -- runs: logging -----------------------------------------------------------------

    # As in MLflow's SQL store, only log_batch checks the run id's format; the single-item
    # calls answer a malformed id as an unknown run.
    def log_metric(self, run_id: str, metric: Metric) -> None:
        self._log(run_id, metrics=[metric], params=[], tags=[], operation="log_metric")

    def log_param(self, run_id: str, param: Param) -> None:
        self._log(run_id, metrics=[], params=[param], tags=[], operation="log_param")

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self._log(run_id, metrics=[], params=[], tags=[tag], operation="set_tag")

    def delete_tag(self, run_id: str, key: str) -> None:
        clock = self._buffer.clocks.tick()

        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            if key not in doc["tags"]:
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}", RESOURCE_DOES_NOT_EXIST
                )
            # A tombstone: a batch of an older set_tag arriving later stays out.
            return delete_tag_in(doc, key, clock)

        with self._not_stored("delete_tag", f"the deletion of tag {key!r} of run {run_id} was"):
            doc = self._update_run(run_id, mutate)
        self._observe(doc, [key])

    def log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        """Validate, then append metrics and tags to the write buffer (no I/O per call).

        Params (rare, and refused when re-logged with another value) and a run-name
        tag change the run document at once, so their errors reach the caller.
        """
        with invalid_input_errors("run id"):
            _validate_run_id(run_id)
        self._log(run_id, metrics, params, tags, operation="log_batch")

    def _log(
        self,
        run_id: str,
        metrics: list[Metric],
        params: list[Param],
        tags: list[RunTag],
        operation: str,
    ) -> None:
        with invalid_input_errors("metric, param or tag"):
            metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
            _validate_batch_log_limits(metrics, params, tags)
            _validate_param_keys_unique(params)
        # MLflow's name checks refuse what has no UTF-8 form in keys; values are checked here.
        if params or tags:
            check_texts("param value", (p.value for p in params))
            check_texts("tag value", (t.value for t in tags))
        validate_metric_ranges(metrics)
        experiment_id = self._writable_runs.get(_run_id(run_id))
        run_name = next((t.value for t in tags if t.key == MLFLOW_RUN_NAME), None)
        if (
            experiment_id is None
            or params
            or run_name is not None
            or self._has_model_metric(metrics)
        ):
            with self._not_stored(operation, _described(run_id, metrics, params, tags)):
                self._log_batch_slow(run_id, metrics, params, tags, run_name)
            return
        # The hot path (metrics and tags of a run already checked): memory and spool only.
        points = [
            MetricPoint(m.key, stored_metric_value(m.value), int(m.timestamp), int(m.step))
            for m in metrics
        ]
        self._buffer.append(run_id, experiment_id, points, {t.key: t.value for t in tags})
        if self._uploads_each_call():
            with self._errors(), _unexpected_errors(f"{operation} of run {run_id}"):
                self._upload_call(run_id)

    @staticmethod
    def _has_model_metric(metrics: list[Metric]) -> bool:
        return any(m.model_id for m in metrics)

    def _log_batch_slow(
        self,
        run_id: str,
        metrics: list[Metric],
        params: list[Param],
        tags: list[RunTag],
        run_name: str | None,
    ) -> None:
        experiment_id = self._writable_run(run_id)
        tag_values = {t.key: t.value for t in tags}
        if params or run_name is not None:
            # Checked against the stored params, so written now; the call's tags (a run
            # name among them) go in the same swap.
            self._log_params_now(run_id, params, tag_values)
            tag_values = {}
        points = [
            MetricPoint(m.key, stored_metric_value(m.value), int(m.timestamp), int(m.step))
            for m in metrics
        ]
        self._buffer.append(run_id, experiment_id, points, tag_values)  # nothing: no line
        if self._uploads_each_call():
            with _unexpected_errors(f"log_batch of run {run_id}"):
                self._upload_call(run_id)
        self._record_model_metrics(run_id, metrics)

    def _uploads_each_call(self) -> bool:
        """Whether a logging call is uploaded before it returns: in a server worker, and in
        a forked child (``WriteBuffer.synchronous``), which may end with ``os._exit``,
        skipping exit hooks, and has no spool. The upload's errors are then the caller's.
        """
        return self._write_through or self._buffer.synchronous

    def _upload_call(self, run_id: str) -> None:
        """Upload a call's writes before it returns; a purged run is MLflow's unknown run."""
        try:
            self._buffer.flush(run_id)
        except RunNotWritable:  # the call's data could not be stored anywhere
            raise _not_found_run(run_id) from None

    def _writable_run(self, run_id: str) -> str:
        """The run's experiment, after checking once per process that the run is active."""
        experiment_id = self._writable_runs.get(run_id)
        if experiment_id is None:
            doc = self._run_doc(run_id)
            self._check_run_active(doc)
            experiment_id = self._writable_runs[run_id] = doc["experiment_id"]
        return experiment_id

    def _log_params_now(self, run_id: str, params: list[Param], tags: dict[str, str]) -> None:
        clock = self._buffer.clocks.tick()

        def mutate(current: Document) -> Document:
            self._check_run_active(current)
            self._check_params(current, params, run_id)
            current["params"].update({p.key: p.value for p in params})
            return set_tags(current, tags, clock)

        # No flush first: params do not depend on buffered points, and the clocks order
        # these tags against buffered ones whatever lands first.
        self._observe(self._cas_run(run_id, mutate), list(tags))

    def _forget_writable(self, run_id: str) -> None:
        """An upload found the run deleted or gone: the next call checks it again."""
        self._writable_runs.pop(run_id, None)

    def _observe(self, doc: Document, tag_keys: list[str]) -> None:
        """Later calls of this writer must be stamped after the clocks it just wrote."""
        clocks: list[Clock] = [tag_clock(doc, key) for key in tag_keys]
        if clocks:
            self._buffer.clocks.observe(max(clocks))

    @contextlib.contextmanager
    def _not_stored(self, operation: str, what: str) -> Iterator[None]:
        """A storage error as MLflow's, saying which call's data was not stored."""
        try:
            yield
        except ObjectStoreError as exc:
            error = as_mlflow_exception(exc)
            raise MlflowException(
                f"{operation}: {what} not stored: {exc}", error.error_code
            ) from exc

    def _flush_run(self, run_id: str) -> None:
        """Upload this process's buffered writes to a run before reading or changing it."""
        if self._buffer.pending(_run_id(run_id)):
            # A deleted run is reported by the buffer; the caller's own check answers the caller.
            with contextlib.suppress(RunNotWritable):
                self._buffer.flush(run_id)

    def flush(self) -> None:
        """Upload everything this process has buffered.

        Every run is tried; the first failure is raised after the others are uploaded.
        """
        with self._errors(), _unexpected_errors("flush"):
            try:
                self._buffer.flush()
            except RunNotWritable as exc:
                raise MlflowException(
                    f"buffered writes for run {exc} were not stored: the run's document is "
                    "gone (purged)",
                    INVALID_STATE,
                ) from exc

    def recover_spools(self) -> RecoveryReport:
        """Upload what dead writers left in this root's spool; report what is left.

        Every batch is tried; a run whose batch fails keeps it and its later batches in
        the spool (``tracking/recovery.py``). Replays are idempotent: sealed batches
        keep their writer and sequence, open lines get an identity derived from their
        writer and generation.
        """
        if self._spool_root is None:
            return RecoveryReport()
        return SpoolRecovery(self._spool_root, self._buffer.upload).run()

    def close(self) -> None:
        """Upload everything buffered and release the spool; the store stays readable."""
        self._buffer.close()

    def flush_async_logging(self) -> None:
        super().flush_async_logging()
        self.flush()

    def _maybe_compact(self, experiment_id: str, run_id: str, segments: int) -> None:
        if segments > COMPACT_AFTER_SEGMENTS:
            try:
                self._compact(experiment_id, run_id)
            except ObjectStoreError as exc:
                # The batch is stored already; merging segments is housekeeping that a
                # later flush redoes, so its failure must not fail the caller's write.
                _logger.warning("compacting the segments of run %s failed: %s", run_id, exc)

    @staticmethod
    def _check_params(doc: Document, params: list[Param], run_id: str) -> None:
        changed = [
            {"key": p.key, "old_value": doc["params"][p.key], "new_value": p.value}
            for p in params
            if p.key in doc["params"] and doc["params"][p.key] != p.value
        ]
        if changed:
            raise MlflowException(
                f"Changing param values is not allowed. Params were already logged='{changed}' "
                f"for run ID='{run_id}'.",
                INVALID_PARAMETER_VALUE,
            )

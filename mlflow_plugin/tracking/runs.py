"""Runs: create, read, search, update, delete, restore, and the logging write path.

Decisions beyond DESIGN.md, written down here:

- ``log_batch`` appends metrics and tags to the write buffer (``write_buffer``):
  no network round trip per call; a background flusher uploads one segment and one
  compare-and-swap per run per flush, and the spool keeps each batch on local disk
  until then. Params follow MLflow: re-logging the same value is fine, another value
  is ``INVALID_PARAMETER_VALUE``, so they (and a run name, and the call's tags with
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
- ``search_runs`` reads through the query index (``index/``), after uploading this
  process's own buffered writes.
- A run's stage is its own, or its experiment's deletion (``run_lifecycle``): every
  read and every check of it reads the experiment's document too.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import cast

from mlflow.entities import (
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    DATA_LOSS,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_param_keys_unique,
    _validate_run_id,
)

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, create_document
from mlflow_plugin.format.run_batches import (
    Clock,
    StatusWrite,
    set_status,
    set_tags,
    status_clock,
    tag_clock,
)
from mlflow_plugin.format.run_batches import delete_tag as delete_tag_in
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.mlflow_errors import as_mlflow_exception, invalid_input_errors, mlflow_errors
from mlflow_plugin.objectstore import ObjectStoreError
from mlflow_plugin.objectstore.errors import StorageUnavailable
from mlflow_plugin.page_tokens import offset_from_page_token
from mlflow_plugin.text_input import check_entries, check_text, check_texts
from mlflow_plugin.tracking.context import (
    StoreContext,
    check_run_active,
    check_run_id,
    not_found_run,
)
from mlflow_plugin.tracking.entities import run_from_doc, run_info_from_doc, runs_from_docs
from mlflow_plugin.tracking.experiments import (
    DEFAULT_EXPERIMENT_ID,
    Experiments,
    check_experiment_active,
    check_experiment_id,
)
from mlflow_plugin.tracking.logged_models import LoggedModels
from mlflow_plugin.tracking.recovery import RecoveryReport, SpoolRecovery
from mlflow_plugin.tracking.run_lifecycle import RunLifecycle
from mlflow_plugin.tracking.validation import (
    plain_metric_points,
    plain_points,
    stored_metric_value,
    validate_max_results,
    validate_metric_ranges,
)
from mlflow_plugin.tracking.write_buffer import RunNotWritable

__all__ = ["Runs"]

_logger = logging.getLogger(__name__)


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


def _metric_points(metrics: list[Metric]) -> list[MetricPoint]:
    return [
        MetricPoint(m.key, stored_metric_value(m.value), int(m.timestamp), int(m.step))
        for m in metrics
    ]


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


class Runs:
    """Run methods of the tracking store, over the shared ``StoreContext``."""

    def __init__(
        self, context: StoreContext, experiments: Experiments, models: LoggedModels
    ) -> None:
        self._context = context
        self._experiments = experiments
        self._models = models
        self._lifecycle = RunLifecycle(context)
        # Read on every logging call: one attribute lookup each (the objects never change).
        self._buffer = context.buffer
        self._writable_runs = context.writable_runs

    def get_run(self, run_id: str) -> Run:
        with mlflow_errors():
            return run_from_doc(self._lifecycle.run_doc(run_id))

    def search_runs(
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
        with mlflow_errors():
            # An id no experiment can have (negative, beyond 64 bits) simply matches no run.
            ids = [i for i in map(check_experiment_id, experiment_ids) if 0 <= int(i) < 2**63]
            # This process's writes first; a failing upload (reported by the buffer) must not
            # fail a search of other runs.
            self._buffer.flush(raise_errors=False)
            docs, next_token = self._context.index().search_runs(
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
        with mlflow_errors():
            experiment = self._experiments.experiment_doc(experiment_id or DEFAULT_EXPERIMENT_ID)
            check_experiment_active(experiment)
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
                self._context.objects,
                keys.run_location_key(run_id),
                {"experiment_id": experiment_id},
            )
            create_document(self._context.objects, keys.run_key(experiment_id, run_id), doc)
            self._context.run_experiments[run_id] = experiment_id
            return run_from_doc(doc, with_outputs=False)  # as the SQL store's create_run

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
                doc = self._lifecycle.update_active_run(run_id, mutate)
        except MlflowException as exc:
            if status is None or run_name or not isinstance(exc.__cause__, StorageUnavailable):
                raise
            return self._keep_status(run_id, status, exc)
        self._observe(doc, [MLFLOW_RUN_NAME] if run_name else [])
        if status is not None:
            self._buffer.clocks.observe(status_clock(doc))
        if self._buffer.refusals:  # stored first: end_run must not leave the run RUNNING
            self.raise_refusals(run_id, f"the run's {what} {verb} stored")
        return run_info_from_doc(doc)

    def _keep_status(self, run_id: str, status: StatusWrite, error: MlflowException) -> RunInfo:
        """The store is unreachable: keep the status like metrics, uploaded when it is back.

        ``end_run`` in a training script must not leave the run RUNNING forever because
        the endpoint was down at that moment. The status travels in a sealed batch (on
        disk when the spool is on) and enters the run unless a newer status was set.
        """
        experiment_id = self._context.run_experiments.get(run_id)
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

    def delete_run(self, run_id: str) -> None:
        with mlflow_errors():
            self._lifecycle.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        with mlflow_errors():
            self._lifecycle.restore_run(run_id)

    def get_deleted_runs(self, older_than: int = 0) -> list[str]:
        """Runs deleted ``older_than`` ms ago or earlier, by themselves or with their
        experiment (``mlflow gc``)."""
        with mlflow_errors():
            cutoff = get_current_time_millis() - older_than
            return self._lifecycle.deleted_run_ids(self._experiments.experiment_ids(), cutoff)

    # -- runs: logging -----------------------------------------------------------------

    # As in MLflow's SQL store, only log_batch checks the run id's format; the single-item
    # calls answer a malformed id as an unknown run.
    def delete_tag(self, run_id: str, key: str) -> None:
        clock = self._buffer.clocks.tick()

        def mutate(doc: Document) -> Document:
            if key not in doc["tags"]:
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}", RESOURCE_DOES_NOT_EXIST
                )
            # A tombstone: a batch of an older set_tag arriving later stays out.
            return delete_tag_in(doc, key, clock)

        with self._not_stored("delete_tag", f"the deletion of tag {key!r} of run {run_id} was"):
            doc = self._lifecycle.update_active_run(run_id, mutate)
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
        self.log(run_id, metrics, params, tags, operation="log_batch")

    def log(
        self,
        run_id: str,
        metrics: list[Metric],
        params: list[Param],
        tags: list[RunTag],
        operation: str,
    ) -> None:
        """One logging call (``operation`` names it in errors): validated, then buffered."""
        # Plain metrics, the usual call, pass MLflow's per-metric checks and our ranges by
        # construction: one pass. Any other batch takes the full checks and their errors.
        with invalid_input_errors("metric, param or tag"):
            points = plain_metric_points(metrics)
            _, params, tags = _validate_batch_log_data(
                metrics if points is None else [], params, tags
            )
            _validate_batch_log_limits(metrics, params, tags)
            _validate_param_keys_unique(params)
        # MLflow's name checks refuse what has no UTF-8 form in keys; values are checked here.
        if params or tags:
            check_texts("param value", (p.value for p in params))
            check_texts("tag value", (t.value for t in tags))
        if points is None:
            validate_metric_ranges(metrics)
        if self._buffer.refusals:
            self.raise_refusals(run_id, f"this {operation} call was not stored either")
        experiment_id = self._writable_runs.get(check_run_id(run_id))
        run_name = next((t.value for t in tags if t.key == MLFLOW_RUN_NAME), None)
        if (
            experiment_id is None
            or params
            or run_name is not None
            or any(m.model_id for m in metrics)
        ):
            with self._not_stored(operation, _described(run_id, metrics, params, tags)):
                self._log_batch_slow(run_id, metrics, params, tags, run_name)
            return
        # The hot path (metrics and tags of a run already checked): memory and spool only.
        if points is None:
            points = _metric_points(metrics)
        self._buffered(run_id, experiment_id, points, {t.key: t.value for t in tags}, operation)

    def log_points(self, run_id: str, points: list[MetricPoint]) -> None:
        """``log_batch`` of metrics given as points, with no ``Metric`` per point (what the
        PyTorch helpers drain, thousands at a time). Plain points are checked in one pass;
        any other batch, or a run not yet checked, takes ``log_batch``'s path and errors.
        """
        batch = points if type(points) is list else None  # an untyped caller's generator...
        stored = None if batch is None else plain_points(batch)
        experiment_id = self._writable_runs.get(run_id) if type(run_id) is str else None
        if stored is None or experiment_id is None or len(stored) > MAX_METRICS_PER_BATCH:
            # Anything but a list of points meets log_batch's checks (and errors) as it is.
            metrics = (
                [Metric(*p) if type(p) is MetricPoint else cast(Metric, p) for p in batch]
                if batch is not None
                else cast(list[Metric], points)
            )
            self.log_batch(run_id, metrics, [], [])
            return
        if self._buffer.refusals:
            self.raise_refusals(run_id, "this log_batch call was not stored either")
        self._buffered(run_id, experiment_id, stored, {}, "log_batch")

    def _buffered(
        self,
        run_id: str,
        experiment_id: str,
        points: list[MetricPoint],
        tags: dict[str, str],
        operation: str,
    ) -> None:
        """Append a checked call to the write buffer; uploaded at once where calls must be."""
        self._buffer.append(run_id, experiment_id, points, tags)
        if self._uploads_each_call():
            with mlflow_errors(), _unexpected_errors(f"{operation} of run {run_id}"):
                self._upload_call(run_id)

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
        points = _metric_points(metrics)
        self._buffer.append(run_id, experiment_id, points, tag_values)  # nothing: no line
        if self._uploads_each_call():
            with _unexpected_errors(f"log_batch of run {run_id}"):
                self._upload_call(run_id)
        self._models.record_model_metrics(run_id, metrics)

    def _uploads_each_call(self) -> bool:
        """Whether a logging call is uploaded before it returns: in a server worker, and in
        a forked child (``WriteBuffer.synchronous``), which may end with ``os._exit``,
        skipping exit hooks, and has no spool. The upload's errors are then the caller's.
        """
        return self._context.write_through or self._buffer.synchronous

    def _upload_call(self, run_id: str) -> None:
        """Upload a call's writes before it returns; a purged run is MLflow's unknown run."""
        try:
            self._buffer.flush(run_id)
        except RunNotWritable:  # the call's data could not be stored anywhere
            raise not_found_run(run_id) from None

    def _writable_run(self, run_id: str) -> str:
        """The run's experiment, after checking once per process that the run is active."""
        experiment_id = self._writable_runs.get(run_id)
        if experiment_id is None:
            doc = self._lifecycle.run_doc(run_id)
            check_run_active(doc)
            experiment_id = self._writable_runs[run_id] = doc["experiment_id"]
        return experiment_id

    def _log_params_now(self, run_id: str, params: list[Param], tags: dict[str, str]) -> None:
        clock = self._buffer.clocks.tick()
        check = self._lifecycle.active_check(run_id)

        def mutate(current: Document) -> Document:
            check(current)
            _check_params(current, params, run_id)
            current["params"].update({p.key: p.value for p in params})
            return set_tags(current, tags, clock)

        # No flush first: params do not depend on buffered points, and the clocks order
        # these tags against buffered ones whatever lands first.
        self._observe(self._context.cas_run(run_id, mutate), list(tags))

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

    def raise_refusals(self, run_id: str | None, this_call: str) -> None:
        """DATA_LOSS naming the batches of ``run_id`` (or of any run) that a flush refused
        as older than the writer retention and no caller was told of yet."""
        refused = self._buffer.take_refusals(run_id)
        if refused:
            raise MlflowException(
                f"{len(refused)} buffered batches were not stored ({this_call}): "
                + "; ".join(str(refusal) for refusal in refused),
                DATA_LOSS,
            ) from refused[0]

    def flush(self) -> None:
        """Upload everything this process has buffered.

        Every run is tried; the first failure is raised after the others are uploaded.
        """
        with mlflow_errors(), _unexpected_errors("flush"):
            try:
                self._buffer.flush()
            except RunNotWritable as exc:
                raise MlflowException(
                    f"buffered writes for run {exc} were not stored: the run's document is "
                    "gone (purged)",
                    INVALID_STATE,
                ) from exc
        self.raise_refusals(None, "everything else was uploaded")

    def recover_spools(self) -> RecoveryReport:
        """Upload what dead writers left in this root's spool; report what is left.

        Every batch is tried; a run whose batch fails keeps it and its later batches in
        the spool (``tracking/recovery.py``). Replays are idempotent: sealed batches
        keep their writer and sequence, open lines get an identity derived from their
        writer and generation.
        """
        if self._context.spool_root is None:
            return RecoveryReport()
        return SpoolRecovery(self._context.spool_root, self._buffer.upload).run()

    def close(self) -> None:
        """Upload everything buffered and release the spool; the store stays readable."""
        self._buffer.close()

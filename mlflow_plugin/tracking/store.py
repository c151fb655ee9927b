"""MLflow's tracking store on the bucket: experiments, runs, metrics, params, tags, inputs.

Decisions beyond DESIGN.md, written down here:

- Experiment ids are random 18-digit integers (as MLflow's file store made them):
  unique without a shared counter; ``put_if_absent`` of the experiment document
  settles the astronomically rare collision. The default experiment is "0".
- Experiment names are claimed by ``put_if_absent`` on ``experiment-names/<sha256>``
  *before* the experiment document is written. A claim whose experiment document
  never appeared (its creator died in between) is taken over after a minute. A
  deleted experiment keeps its name, as in MLflow's SQL store.
- A run's experiment is found through the immutable ``run-locations/<run_id>``
  pointer, cached in-process forever.
- ``log_batch`` is synchronous for now: one Parquet segment plus one
  compare-and-swap of the run document per call. When a run's manifest grows past
  ``COMPACT_AFTER_SEGMENTS`` small segments, the writer merges them into one in the
  same swap and deletes the merged objects after the swap succeeds.
- Metric history comes back in MLflow's SQL order (timestamp, step, value) with
  exact duplicates (same key, step, timestamp, value) dropped, as the SQL store's
  primary key drops them.
- Search (runs, experiments, logged models) reads every document of the requested
  experiments and filters in memory with MLflow's own ``SearchUtils``; the query
  index replaces this for large experiments.
- Traces are not stored: reads answer empty, writes raise ``MlflowException``.
"""

from __future__ import annotations

import functools
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

from mlflow.entities import (
    DatasetInput,
    Experiment,
    ExperimentTag,
    LifecycleStage,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_LOGGED_MODELS, MLFLOW_RUN_NAME
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_dataset_inputs,
    _validate_experiment_artifact_location_length,
    _validate_experiment_name,
    _validate_experiment_tag,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import (
    Document,
    create_document,
    encode,
    read_document,
    update_document,
)
from mlflow_plugin.format.segments import MetricPoint, SegmentInfo, decode_segment, encode_segment
from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import (
    AlreadyExists,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    check_conditional_writes_once,
    open_object_store,
    parse_store_uri,
)
from mlflow_plugin.tracking.entities import (
    dataset_input_to_json,
    experiment_from_doc,
    run_from_doc,
    run_info_from_doc,
)
from mlflow_plugin.tracking.logged_models import LoggedModelsMixin
from mlflow_plugin.tracking.traces import TracesNotStoredMixin

__all__ = ["BucketTrackingStore"]

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
FORMAT_VERSION = 1
COMPACT_AFTER_SEGMENTS = 16
_SMALL_SEGMENT_ROWS = 50_000
_STALE_CLAIM_MS = 60_000
_READ_WORKERS = 16


def _not_found_run(run_id: str) -> MlflowException:
    return MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)


def _not_found_experiment(experiment_id: str) -> MlflowException:
    return MlflowException(f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST)


def _check_experiment_id(experiment_id: Any) -> str:
    try:
        return str(int(experiment_id))
    except (TypeError, ValueError):
        raise MlflowException(
            f"Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer.",
            INVALID_PARAMETER_VALUE,
        ) from None


def _latest_wins(old: dict[str, Any] | None, new: Metric) -> bool:
    """MLflow's rule for the latest value: the greatest (step, timestamp, value)."""
    if old is None:
        return True
    new_value = 0.0 if math.isnan(new.value) else new.value
    old_value = 0.0 if math.isnan(old["value"]) else old["value"]
    return (new.step, new.timestamp, new_value) >= (old["step"], old["timestamp"], old_value)


def _history_order(point: MetricPoint) -> tuple[int, int, float]:
    return (point.timestamp, point.step, 0.0 if math.isnan(point.value) else point.value)


class BucketTrackingStore(TracesNotStoredMixin, LoggedModelsMixin, AbstractStore):
    """``AbstractStore`` for ``bucket+s3://`` and ``bucket+file:`` URIs.

    >>> import mlflow  # doctest: +SKIP
    >>> mlflow.set_tracking_uri("bucket+file:./mlruns-bucket")  # doctest: +SKIP
    """

    def __init__(self, store_uri: str, artifact_uri: str | None = None) -> None:
        super().__init__()
        with mlflow_errors():
            self._location = parse_store_uri(store_uri)
            self._store: ObjectStore = open_object_store(self._location)
            if self._location.is_s3:
                check_conditional_writes_once(self._store)
            create_or_keep(
                self._store, keys.FORMAT_KEY, {"format": "mlflow-bucket", "version": FORMAT_VERSION}
            )
        self.store_uri = store_uri
        self.artifact_root_uri = artifact_uri or self._location.join("artifacts").to_uri()
        self._writer_id = uuid.uuid4().hex[:16]
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        self._run_experiments: dict[str, str] = {}
        self._segment_cache: dict[str, list[MetricPoint]] = {}
        self._readers = ThreadPoolExecutor(_READ_WORKERS, thread_name_prefix="mlflow-bucket-read")
        with mlflow_errors():
            self._ensure_default_experiment()

    @property
    def object_store(self) -> ObjectStore:
        return self._store

    @contextmanager
    def _errors(self) -> Iterator[None]:
        with mlflow_errors():
            try:
                yield
            except keys.InvalidId as exc:
                raise MlflowException(str(exc), INVALID_PARAMETER_VALUE) from exc

    # -- experiments -----------------------------------------------------------------

    def _ensure_default_experiment(self) -> None:
        if self._store.exists(keys.experiment_key(DEFAULT_EXPERIMENT_ID)):
            return
        try:
            self._create_experiment_with_id(
                DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID, None, []
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _default_artifact_location(self, experiment_id: str) -> str:
        return str(append_to_uri_path(self.artifact_root_uri, experiment_id))

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: list[ExperimentTag] | None = None,
    ) -> str:
        _validate_experiment_name(name)
        if artifact_location:
            _validate_experiment_artifact_location_length(artifact_location)
        for tag in tags or []:
            _validate_experiment_tag(tag.key, tag.value)
        experiment_id = str(uuid.uuid4().int % 10**18)
        with self._errors():
            return self._create_experiment_with_id(
                name, experiment_id, artifact_location, tags or []
            )

    def _claim_name(self, name: str, experiment_id: str) -> None:
        claim = {
            "name": name,
            "experiment_id": experiment_id,
            "claimed_at": get_current_time_millis(),
        }
        key = keys.experiment_name_key(name)
        try:
            create_document(self._store, key, claim)
            return
        except AlreadyExists:
            pass
        existing, etag = read_document(self._store, key)
        owner = self._read_experiment_doc(existing["experiment_id"])
        if owner is not None and owner["name"] == name:
            if owner["lifecycle_stage"] == LifecycleStage.DELETED:
                raise MlflowException(
                    f"Experiment {name!r} already exists in deleted state. Restore it, or "
                    "permanently delete it before reusing the name.",
                    RESOURCE_ALREADY_EXISTS,
                )
            raise MlflowException(
                f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS
            )
        if (
            owner is None
            and get_current_time_millis() - existing.get("claimed_at", 0) < _STALE_CLAIM_MS
        ):
            # Another process is creating this experiment right now.
            raise MlflowException(
                f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS
            )
        try:  # the claim is stale (its creator died, or the experiment was renamed): take it
            self._store.put_if_match(key, encode(claim), etag)
        except (PreconditionFailed, NotFound):
            raise MlflowException(
                f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS
            ) from None

    def _create_experiment_with_id(
        self,
        name: str,
        experiment_id: str,
        artifact_location: str | None,
        tags: list[ExperimentTag],
    ) -> str:
        self._claim_name(name, experiment_id)
        now = get_current_time_millis()
        doc = {
            "experiment_id": experiment_id,
            "name": name,
            "artifact_location": artifact_location
            or self._default_artifact_location(experiment_id),
            "lifecycle_stage": LifecycleStage.ACTIVE,
            "creation_time": now,
            "last_update_time": now,
            "tags": {tag.key: tag.value for tag in tags},
        }
        try:
            create_document(self._store, keys.experiment_key(experiment_id), doc)
        except AlreadyExists:
            raise MlflowException(
                f"Experiment id {experiment_id} already exists", RESOURCE_ALREADY_EXISTS
            ) from None
        return experiment_id

    def _read_experiment_doc(self, experiment_id: str) -> Document | None:
        try:
            return read_document(self._store, keys.experiment_key(experiment_id))[0]
        except NotFound:
            return None

    def _experiment_doc(self, experiment_id: Any, view_type: int = ViewType.ALL) -> Document:
        experiment_id = _check_experiment_id(experiment_id)
        doc = self._read_experiment_doc(experiment_id)
        if doc is None or not LifecycleStage.matches_view_type(view_type, doc["lifecycle_stage"]):
            raise _not_found_experiment(experiment_id)
        return doc

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self._errors():
            return experiment_from_doc(self._experiment_doc(experiment_id))

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        with self._errors():
            try:
                claim, _ = read_document(self._store, keys.experiment_name_key(experiment_name))
            except NotFound:
                return None
            doc = self._read_experiment_doc(claim["experiment_id"])
            if doc is None or doc["name"] != experiment_name:
                return None
            return experiment_from_doc(doc)

    def _experiment_ids(self) -> list[str]:
        return [
            folder.split("/")[1]
            for folder in self._store.list_dir(keys.experiments_prefix()).folders
        ]

    def _all_experiment_docs(self) -> list[Document]:
        docs = self._readers.map(self._read_experiment_doc, self._experiment_ids())
        return [doc for doc in docs if doc is not None]

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        if not isinstance(max_results, int) or max_results < 1:
            raise MlflowException(
                f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
                "a positive integer",
                INVALID_PARAMETER_VALUE,
            )
        if max_results > SEARCH_MAX_RESULTS_THRESHOLD:
            raise MlflowException(
                f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
                f"most {SEARCH_MAX_RESULTS_THRESHOLD}",
                INVALID_PARAMETER_VALUE,
            )
        with self._errors():
            experiments = [
                experiment_from_doc(doc)
                for doc in self._all_experiment_docs()
                if LifecycleStage.matches_view_type(view_type, doc["lifecycle_stage"])
            ]
        filtered = SearchExperimentsUtils.filter(experiments, filter_string)
        ordered = SearchExperimentsUtils.sort(
            filtered, order_by or ["creation_time DESC", "experiment_id ASC"]
        )
        page, next_token = SearchUtils.paginate(ordered, page_token, max_results)
        return PagedList(page, next_token)

    def _update_experiment(
        self, experiment_id: str, mutate: Callable[[Document], Document]
    ) -> Document:
        return update_document(self._store, keys.experiment_key(experiment_id), mutate)[0]

    def _set_experiment_stage(self, experiment_id: str, stage: str, required: int) -> None:
        doc = self._experiment_doc(experiment_id, required)

        def mutate(current: Document) -> Document:
            if not LifecycleStage.matches_view_type(required, current["lifecycle_stage"]):
                raise _not_found_experiment(current["experiment_id"])
            current["lifecycle_stage"] = stage
            current["last_update_time"] = get_current_time_millis()
            return current

        self._update_experiment(doc["experiment_id"], mutate)
        # MLflow's SQL store moves the experiment's runs along with it.
        run_stage = (
            LifecycleStage.DELETED if stage == LifecycleStage.DELETED else LifecycleStage.ACTIVE
        )
        for run in self._run_docs([doc["experiment_id"]], ViewType.ALL):
            self._set_run_stage(run["run_id"], run_stage, check=False)

    def delete_experiment(self, experiment_id: str) -> None:
        with self._errors():
            self._set_experiment_stage(experiment_id, LifecycleStage.DELETED, ViewType.ACTIVE_ONLY)

    def restore_experiment(self, experiment_id: str) -> None:
        with self._errors():
            self._set_experiment_stage(experiment_id, LifecycleStage.ACTIVE, ViewType.DELETED_ONLY)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        _validate_experiment_name(new_name)
        with self._errors():
            doc = self._experiment_doc(experiment_id)
            if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
            old_name = doc["name"]
            if old_name == new_name:
                return
            self._claim_name(new_name, doc["experiment_id"])

            def mutate(current: Document) -> Document:
                current["name"] = new_name
                current["last_update_time"] = get_current_time_millis()
                return current

            self._update_experiment(doc["experiment_id"], mutate)
            self._store.delete(keys.experiment_name_key(old_name))

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        _validate_experiment_tag(tag.key, tag.value)
        with self._errors():
            doc = self._experiment_doc(experiment_id)
            self._check_experiment_active(doc)

            def mutate(current: Document) -> Document:
                current["tags"][tag.key] = tag.value
                return current

            self._update_experiment(doc["experiment_id"], mutate)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        with self._errors():
            doc = self._experiment_doc(experiment_id)
            self._check_experiment_active(doc)

            def mutate(current: Document) -> Document:
                if key not in current["tags"]:
                    raise MlflowException(
                        f"No tag with name: {key} in experiment with id {experiment_id}",
                        RESOURCE_DOES_NOT_EXIST,
                    )
                del current["tags"][key]
                return current

            self._update_experiment(doc["experiment_id"], mutate)

    @staticmethod
    def _check_experiment_active(doc: Document) -> None:
        if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The experiment {doc['experiment_id']} must be in the 'active' state. "
                f"Current state is {doc['lifecycle_stage']}.",
                INVALID_PARAMETER_VALUE,
            )

    # -- runs: reading -----------------------------------------------------------------

    def _run_experiment(self, run_id: str) -> str:
        experiment_id = self._run_experiments.get(run_id)
        if experiment_id is None:
            try:
                pointer, _ = read_document(self._store, keys.run_location_key(run_id))
            except NotFound:
                raise _not_found_run(run_id) from None
            experiment_id = str(pointer["experiment_id"])
            self._run_experiments[run_id] = experiment_id
        return experiment_id

    def _run_key(self, run_id: str) -> str:
        _validate_run_id(run_id)
        return keys.run_key(self._run_experiment(run_id), run_id)

    def _run_doc(self, run_id: str) -> Document:
        try:
            return read_document(self._store, self._run_key(run_id))[0]
        except NotFound:
            raise _not_found_run(run_id) from None

    def _read_run_key(self, key: str) -> Document | None:
        try:
            return read_document(self._store, key)[0]
        except NotFound:
            return None

    def _run_docs(self, experiment_ids: list[str], view_type: int) -> list[Document]:
        run_keys = [
            info.key
            for experiment_id in experiment_ids
            for info in self._store.list(keys.experiment_runs_prefix(experiment_id))
            if info.key.endswith(".json")
        ]
        docs = [doc for doc in self._readers.map(self._read_run_key, run_keys) if doc is not None]
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
        if max_results > SEARCH_MAX_RESULTS_THRESHOLD:
            raise MlflowException(
                "Invalid value for request parameter max_results. It must be at "
                f"most {SEARCH_MAX_RESULTS_THRESHOLD}, but got value {max_results}",
                INVALID_PARAMETER_VALUE,
            )
        with self._errors():
            ids = [_check_experiment_id(e) for e in experiment_ids]
            runs = [run_from_doc(doc) for doc in self._run_docs(ids, run_view_type)]
        filtered = SearchUtils.filter(runs, filter_string)
        ordered = SearchUtils.sort(filtered, order_by)
        page, next_token = SearchUtils.paginate(ordered, page_token, max_results)
        return page, next_token

    # -- runs: lifecycle -------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int | None,
        tags: list[RunTag] | None,
        run_name: str | None,
    ) -> Run:
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
            return run_from_doc(doc)

    def _update_run(self, run_id: str, mutate: Callable[[Document], Document]) -> Document:
        try:
            return update_document(self._store, self._run_key(run_id), mutate)[0]
        except NotFound:
            raise _not_found_run(run_id) from None

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
        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            if run_status is not None:
                doc["status"] = RunStatus.to_string(run_status)
            if end_time is not None:
                doc["end_time"] = end_time
            if run_name:
                doc["run_name"] = run_name
                doc["tags"][MLFLOW_RUN_NAME] = run_name
            return doc

        with self._errors():
            return run_info_from_doc(self._update_run(run_id, mutate))

    def _set_run_stage(self, run_id: str, stage: str, check: bool = True) -> None:
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

    def log_metric(self, run_id: str, metric: Metric) -> None:
        self.log_batch(run_id, metrics=[metric], params=[], tags=[])

    def log_param(self, run_id: str, param: Param) -> None:
        self.log_batch(run_id, metrics=[], params=[param], tags=[])

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self.log_batch(run_id, metrics=[], params=[], tags=[tag])

    def delete_tag(self, run_id: str, key: str) -> None:
        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            if key not in doc["tags"]:
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}", RESOURCE_DOES_NOT_EXIST
                )
            del doc["tags"][key]
            return doc

        with self._errors():
            self._update_run(run_id, mutate)

    def _next_segment_name(self) -> tuple[str, int]:
        with self._sequence_lock:
            self._sequence += 1
            return f"{self._writer_id}-{self._sequence:010d}", self._sequence

    def log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        _validate_run_id(run_id)
        metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
        _validate_batch_log_limits(metrics, params, tags)
        _validate_param_keys_unique(params)
        with self._errors():
            doc = self._run_doc(run_id)
            self._check_run_active(doc)
            self._check_params(doc, params, run_id)
            segment: SegmentInfo | None = None
            if metrics:
                name, _ = self._next_segment_name()
                points = [
                    MetricPoint(m.key, float(m.value), int(m.timestamp), int(m.step))
                    for m in metrics
                ]
                data, segment = encode_segment(name, points)
                self._store.put(keys.metric_segment_key(doc["experiment_id"], run_id, name), data)
                self._segment_cache[name] = points

            def mutate(current: Document) -> Document:
                self._check_run_active(current)
                self._check_params(current, params, run_id)
                current["params"].update({p.key: p.value for p in params})
                for tag in tags:
                    current["tags"][tag.key] = tag.value
                    if tag.key == MLFLOW_RUN_NAME:
                        current["run_name"] = tag.value
                latest = current["latest_metrics"]
                for metric in metrics:
                    if _latest_wins(latest.get(metric.key), metric):
                        latest[metric.key] = {
                            "value": float(metric.value),
                            "timestamp": int(metric.timestamp),
                            "step": int(metric.step),
                        }
                if segment is not None:
                    current["segments"].append(segment.to_json())
                return current

            self._update_run(run_id, mutate)
            self._record_model_metrics(run_id, metrics)
            if segment is not None and len(doc["segments"]) + 1 > COMPACT_AFTER_SEGMENTS:
                self._compact(doc["experiment_id"], run_id)

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

    def _compact(self, experiment_id: str, run_id: str) -> None:
        """Merge the run's small segments into one; drop the merged objects after the swap."""
        doc = self._run_doc(run_id)
        small = [
            SegmentInfo.from_json(s) for s in doc["segments"] if s["rows"] < _SMALL_SEGMENT_ROWS
        ]
        if len(small) < 2:
            return
        points = [
            p for info in small for p in self._segment_points(experiment_id, run_id, info.name)
        ]
        name, _ = self._next_segment_name()
        data, merged = encode_segment(name, points)
        self._store.put(keys.metric_segment_key(experiment_id, run_id, name), data)
        merged_names = {info.name for info in small}

        def mutate(current: Document) -> Document:
            present = {s["name"] for s in current["segments"]}
            if not merged_names <= present:
                raise _CompactionLost()
            kept = [s for s in current["segments"] if s["name"] not in merged_names]
            current["segments"] = [merged.to_json(), *kept]
            return current

        try:
            self._update_run(run_id, mutate)
        except _CompactionLost:
            # Another writer compacted first; our merged copy is named by no manifest.
            self._store.delete(keys.metric_segment_key(experiment_id, run_id, name))
            return
        self._segment_cache[name] = points
        for old in merged_names:
            self._segment_cache.pop(old, None)
            self._store.delete(keys.metric_segment_key(experiment_id, run_id, old))

    # -- metric history ----------------------------------------------------------------

    def _segment_points(self, experiment_id: str, run_id: str, name: str) -> list[MetricPoint]:
        cached = self._segment_cache.get(name)
        if cached is None:
            stored = self._store.get(keys.metric_segment_key(experiment_id, run_id, name))
            cached = decode_segment(stored.data)
            self._segment_cache[name] = cached
        return cached

    def _metric_points(self, run_id: str, metric_key: str) -> list[MetricPoint]:
        for _ in range(3):
            doc = self._run_doc(run_id)
            wanted = [s["name"] for s in doc["segments"] if metric_key in s["keys"]]
            try:
                read = functools.partial(self._segment_points, doc["experiment_id"], run_id)
                chunks = list(self._readers.map(read, wanted))
                break
            except NotFound:
                continue  # compacted between reading the manifest and the segment: re-read
        else:
            raise MlflowException(f"metric history of run {run_id} kept changing while read")
        seen: set[tuple[int, int, float | str]] = set()
        points: list[MetricPoint] = []
        for chunk in chunks:
            for point in chunk:
                if point.key != metric_key:
                    continue
                identity = (
                    point.step,
                    point.timestamp,
                    "nan" if math.isnan(point.value) else point.value,
                )
                if identity not in seen:
                    seen.add(identity)
                    points.append(point)
        points.sort(key=_history_order)
        return points

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        with self._errors():
            points = self._metric_points(run_id, metric_key)
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        page = points[offset:] if max_results is None else points[offset : offset + max_results]
        next_token = None
        if max_results is not None and len(points) > offset + max_results:
            next_token = SearchUtils.create_page_token(offset + max_results)
        return PagedList([Metric(p.key, p.value, p.timestamp, p.step) for p in page], next_token)

    # -- inputs and outputs ------------------------------------------------------------

    def log_inputs(
        self,
        run_id: str,
        datasets: list[DatasetInput] | None = None,
        models: list[LoggedModelInput] | None = None,
    ) -> None:
        _validate_run_id(run_id)
        if datasets is not None:
            if not isinstance(datasets, list):
                raise MlflowException(
                    f"Argument 'datasets' should be a list, got '{type(datasets)}'",
                    INVALID_PARAMETER_VALUE,
                )
            _validate_dataset_inputs(datasets)
        new_inputs = [dataset_input_to_json(d) for d in datasets or []]

        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            for entry in new_inputs:
                same = [
                    existing
                    for existing in doc["inputs"]
                    if existing["dataset"]["name"] == entry["dataset"]["name"]
                    and existing["dataset"]["digest"] == entry["dataset"]["digest"]
                ]
                if not same:
                    doc["inputs"].append(entry)
            for model in models or []:
                if model.model_id not in doc["model_inputs"]:
                    doc["model_inputs"].append(model.model_id)
            return doc

        with self._errors():
            self._update_run(run_id, mutate)

    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        _validate_run_id(run_id)

        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            known = {o["model_id"] for o in doc["model_outputs"]}
            for model in models or []:
                if model.model_id not in known:
                    doc["model_outputs"].append({"model_id": model.model_id, "step": model.step})
            return doc

        with self._errors():
            self._update_run(run_id, mutate)

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        import json

        from mlflow.models import Model

        if not isinstance(mlflow_model, Model):
            raise TypeError(
                f"Argument 'mlflow_model' should be mlflow.models.Model, got '{type(mlflow_model)}'"
            )
        model_dict = mlflow_model.get_tags_dict()

        def mutate(doc: Document) -> Document:
            self._check_run_active(doc)
            previous = json.loads(doc["tags"].get(MLFLOW_LOGGED_MODELS, "[]"))
            value = json.dumps([*previous, model_dict])
            _validate_tag(MLFLOW_LOGGED_MODELS, value)
            doc["tags"][MLFLOW_LOGGED_MODELS] = value
            return doc

        with self._errors():
            self._update_run(run_id, mutate)

    def _search_datasets(self, experiment_ids: list[str]) -> list[_DatasetSummary]:
        summaries: dict[tuple[str, str, str, str | None], None] = {}
        with self._errors():
            ids = [_check_experiment_id(e) for e in experiment_ids]
            for doc in self._run_docs(ids, ViewType.ALL):
                for entry in doc.get("inputs", []):
                    context = entry.get("tags", {}).get(MLFLOW_DATASET_CONTEXT)
                    dataset = entry["dataset"]
                    summaries[
                        (doc["experiment_id"], dataset["name"], dataset["digest"], context)
                    ] = None
        return [
            _DatasetSummary(experiment_id=e, name=n, digest=d, context=c)
            for (e, n, d, c) in list(summaries)[:1000]
        ]


class _CompactionLost(Exception):
    """The segments this compaction merged are no longer all in the manifest."""


def create_or_keep(store: ObjectStore, key: str, doc: Document) -> None:
    """Create a document unless it exists (the format marker at initialisation)."""
    with suppress(AlreadyExists):
        create_document(store, key, doc)

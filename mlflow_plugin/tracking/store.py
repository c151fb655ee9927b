"""MLflow's tracking store on the bucket: the class MLflow instantiates, as a thin facade.

``BucketTrackingStore`` keeps MLflow's method names and signatures and hands every
call to one collaborator, each a plain class over the shared ``StoreContext``
(``tracking/context.py``: object store, caches, write buffer, run documents, the
query index):

- ``Runs`` (``runs.py``): create, read, search, update, delete, restore, and the
  write path (``log_batch`` appends to the write buffer and its spool; a background
  flusher uploads);
- ``Experiments`` (``experiments.py``): name claims, documents, search, lifecycle;
- ``LoggedModels`` (``logged_models.py``), ``RunInputs`` (``inputs.py``),
  ``MetricHistory`` (``metrics.py``: history and chart reads), ``HardDelete``
  (``hard_delete.py``: ``mlflow gc``'s hooks);
- ``KindsNotStoredMixin`` (``not_stored.py``): stateless answers for traces and the
  GenAI kinds this store does not keep.

Searches of runs and experiments read through the query index (``index/``); a
search of logged models reads their documents. Every collaborator translates
storage errors into MLflow's (``mlflow_errors``), so no other exception escapes.
On an S3 endpoint the store probes conditional writes once per process and refuses
an endpoint that ignores them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflow.entities import (
    DatasetInput,
    Experiment,
    ExperimentTag,
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInfo,
    RunTag,
    ViewType,
)
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.entities.metric import MetricWithRunId
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
from mlflow.store.tracking.abstract_store import AbstractStore

from mlflow_plugin.format.documents import Document
from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.store_uri import parse_store_uri
from mlflow_plugin.tracking.context import StoreContext
from mlflow_plugin.tracking.experiments import Experiments
from mlflow_plugin.tracking.hard_delete import HardDelete
from mlflow_plugin.tracking.inputs import RunInputs
from mlflow_plugin.tracking.logged_models import LoggedModels
from mlflow_plugin.tracking.metrics import MetricHistory
from mlflow_plugin.tracking.not_stored import KindsNotStoredMixin
from mlflow_plugin.tracking.recovery import RecoveryReport
from mlflow_plugin.tracking.runs import Runs

if TYPE_CHECKING:
    from mlflow_plugin.index.query_index import QueryIndex

__all__ = ["BucketTrackingStore"]


class BucketTrackingStore(KindsNotStoredMixin, AbstractStore):
    """``AbstractStore`` for ``bucket+s3://`` and ``bucket+file:`` URIs.

    >>> import mlflow  # doctest: +SKIP
    >>> mlflow.set_tracking_uri("bucket+file:./mlruns-bucket")  # doctest: +SKIP
    """

    def __init__(
        self, store_uri: str, artifact_uri: str | None = None, *, recover_in_background: bool = True
    ) -> None:
        super().__init__()
        with mlflow_errors():
            location = parse_store_uri(store_uri)
            self.context = StoreContext(
                location, store_uri, artifact_uri, recover_in_background=recover_in_background
            )
        self._experiments = Experiments(self.context)
        self._models = LoggedModels(self.context, self._experiments)
        self._runs = Runs(self.context, self._experiments, self._models)
        self._history = MetricHistory(self.context)
        self._inputs = RunInputs(self.context)
        self._hard_delete = HardDelete(self.context, self._experiments, self._models)
        with mlflow_errors():
            self._experiments.ensure_default_experiment()

    # -- what tools and tests read ---------------------------------------------------

    @property
    def store_uri(self) -> str:
        return self.context.store_uri

    @property
    def artifact_root_uri(self) -> str:
        return self.context.artifact_root_uri

    @property
    def format_document(self) -> Document:
        return self.context.format_document

    @property
    def object_store(self) -> ObjectStore:
        return self.context.objects

    def _index(self) -> QueryIndex:
        """The query index (``reindex`` and the index tests open it through the store)."""
        return self.context.index()

    # -- experiments -----------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: list[ExperimentTag] | None = None,
    ) -> str:
        return self._experiments.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiments.get_experiment(experiment_id)

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        return self._experiments.get_experiment_by_name(experiment_name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        return self._experiments.search_experiments(
            view_type, max_results, filter_string, order_by, page_token
        )

    def delete_experiment(self, experiment_id: str) -> None:
        self._experiments.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self._experiments.restore_experiment(experiment_id)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._experiments.rename_experiment(experiment_id, new_name)

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        self._experiments.set_experiment_tag(experiment_id, tag)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._experiments.delete_experiment_tag(experiment_id, key)

    # -- runs --------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int | None,
        tags: list[RunTag] | None,
        run_name: str | None,
    ) -> Run:
        return self._runs.create_run(experiment_id, user_id, start_time, tags, run_name)

    def get_run(self, run_id: str) -> Run:
        return self._runs.get_run(run_id)

    def _search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        return self._runs.search_runs(
            experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
        )

    def update_run_info(
        self, run_id: str, run_status: int | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        return self._runs.update_run_info(run_id, run_status, end_time, run_name)

    def delete_run(self, run_id: str) -> None:
        self._runs.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self._runs.restore_run(run_id)

    def _get_deleted_runs(self, older_than: int = 0) -> list[str]:
        return self._runs.get_deleted_runs(older_than)

    # As in MLflow's SQL store, only log_batch checks the run id's format; the single-item
    # calls answer a malformed id as an unknown run. The hot path: one lookup, one call.
    def log_metric(self, run_id: str, metric: Metric) -> None:
        self._runs.log(run_id, [metric], [], [], "log_metric")

    def log_param(self, run_id: str, param: Param) -> None:
        self._runs.log(run_id, [], [param], [], "log_param")

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self._runs.log(run_id, [], [], [tag], "set_tag")

    def delete_tag(self, run_id: str, key: str) -> None:
        self._runs.delete_tag(run_id, key)

    def log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        """Validate, then append metrics and tags to the write buffer (no I/O per call)."""
        self._runs.log_batch(run_id, metrics, params, tags)

    def flush(self) -> None:
        """Upload everything this process has buffered (see ``Runs.flush``)."""
        self._runs.flush()

    def flush_async_logging(self) -> None:
        super().flush_async_logging()
        self._runs.flush()

    def recover_spools(self) -> RecoveryReport:
        """Upload what dead writers left in this root's spool; report what is left."""
        return self._runs.recover_spools()

    def close(self) -> None:
        """Upload everything buffered and release the spool; the store stays readable."""
        self._runs.close()

    # -- inputs and outputs ------------------------------------------------------------

    def log_inputs(
        self,
        run_id: str,
        datasets: list[DatasetInput] | None = None,
        models: list[LoggedModelInput] | None = None,
    ) -> None:
        self._inputs.log_inputs(run_id, datasets, models)

    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        self._inputs.log_outputs(run_id, models)

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        self._inputs.record_logged_model(run_id, mlflow_model)

    def _search_datasets(self, experiment_ids: list[str]) -> list[_DatasetSummary]:
        return self._inputs.search_datasets(experiment_ids)

    # -- metric history ----------------------------------------------------------------

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        return self._history.get_metric_history(run_id, metric_key, max_results, page_token)

    def get_metric_history_bulk_interval(
        self,
        run_ids: list[str],
        metric_key: str,
        max_results: int,
        start_step: int | None,
        end_step: int | None,
    ) -> list[MetricWithRunId]:
        return self._history.get_metric_history_bulk_interval(
            run_ids, metric_key, max_results, start_step, end_step
        )

    def get_metric_history_bulk_interval_from_steps(
        self, run_id: str, metric_key: str, steps: list[int], max_results: int
    ) -> list[MetricWithRunId]:
        return self._history.get_metric_history_bulk_interval_from_steps(
            run_id, metric_key, steps, max_results
        )

    def get_metric_history_bulk(
        self, run_ids: list[str], metric_key: str, max_results: int
    ) -> list[MetricWithRunId]:
        return self._history.get_metric_history_bulk(run_ids, metric_key, max_results)

    # -- logged models -----------------------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: list[LoggedModelTag] | None = None,
        params: list[LoggedModelParameter] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        return self._models.create_logged_model(
            experiment_id, name, source_run_id, tags, params, model_type
        )

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._models.get_logged_model(model_id, allow_deleted)

    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        return self._models.finalize_logged_model(model_id, status)

    def log_logged_model_params(self, model_id: str, params: list[LoggedModelParameter]) -> None:
        self._models.log_logged_model_params(model_id, params)

    def set_logged_model_tags(self, model_id: str, tags: list[LoggedModelTag]) -> None:
        self._models.set_logged_model_tags(model_id, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self._models.delete_logged_model_tag(model_id, key)

    def delete_logged_model(self, model_id: str) -> None:
        self._models.delete_logged_model(model_id)

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        return self._models.search_logged_models(
            experiment_ids, filter_string, datasets, max_results, order_by, page_token
        )

    # -- mlflow gc ---------------------------------------------------------------------

    def _get_deleted_logged_models(self, older_than: int = 0) -> list[str]:
        return self._hard_delete.get_deleted_logged_models(older_than)

    def _hard_delete_run(self, run_id: str) -> None:
        self._hard_delete.hard_delete_run(run_id)

    def _hard_delete_experiment(self, experiment_id: str) -> None:
        self._hard_delete.hard_delete_experiment(experiment_id)

    def _hard_delete_logged_model(self, model_id: str) -> None:
        self._hard_delete.hard_delete_logged_model(model_id)

"""MLflow's tracking store on the bucket: the class MLflow instantiates, as a thin facade.

``BucketTrackingStore`` keeps MLflow's method names and hands every call to one
collaborator (``Delegated``: the facade's method is the collaborator's own, with its
signature), each a plain class over the shared ``StoreContext``
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

from typing import TYPE_CHECKING

from mlflow.entities import Metric, Param, RunTag
from mlflow.store.tracking.abstract_store import AbstractStore

from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.store_uri import parse_store_uri
from mlflow_plugin.text_input import check_text
from mlflow_plugin.tracking.context import StoreContext
from mlflow_plugin.tracking.delegation import Delegated
from mlflow_plugin.tracking.experiments import Experiments
from mlflow_plugin.tracking.hard_delete import HardDelete
from mlflow_plugin.tracking.inputs import RunInputs
from mlflow_plugin.tracking.logged_models import LoggedModels
from mlflow_plugin.tracking.metrics import MetricHistory
from mlflow_plugin.tracking.not_stored import KindsNotStoredMixin, unsaved_user_queue
from mlflow_plugin.tracking.runs import Runs

if TYPE_CHECKING:
    from mlflow.genai.review_queues.review_queues import ReviewQueue

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
        super().__init__()  # after the collaborators: MLflow's base keeps ``self.log_batch``
        # What tools and tests read (MLflow's stores carry the first two too).
        self.store_uri = store_uri
        self.artifact_root_uri = self.context.artifact_root_uri
        self.format_document = self.context.format_document
        with mlflow_errors():
            self._experiments.ensure_default_experiment()

    @property
    def object_store(self) -> ObjectStore:
        return self.context.objects

    def _index(self) -> QueryIndex:
        """The query index (``reindex`` and the index tests open it through the store)."""
        return self.context.index()

    # -- experiments -----------------------------------------------------------------

    create_experiment = Delegated("_experiments", Experiments.create_experiment)
    get_experiment = Delegated("_experiments", Experiments.get_experiment)
    get_experiment_by_name = Delegated("_experiments", Experiments.get_experiment_by_name)
    search_experiments = Delegated("_experiments", Experiments.search_experiments)
    delete_experiment = Delegated("_experiments", Experiments.delete_experiment)
    restore_experiment = Delegated("_experiments", Experiments.restore_experiment)
    rename_experiment = Delegated("_experiments", Experiments.rename_experiment)
    set_experiment_tag = Delegated("_experiments", Experiments.set_experiment_tag)
    delete_experiment_tag = Delegated("_experiments", Experiments.delete_experiment_tag)

    # -- runs --------------------------------------------------------------------------

    create_run = Delegated("_runs", Runs.create_run)
    get_run = Delegated("_runs", Runs.get_run)
    _search_runs = Delegated("_runs", Runs.search_runs)
    update_run_info = Delegated("_runs", Runs.update_run_info)
    delete_run = Delegated("_runs", Runs.delete_run)
    restore_run = Delegated("_runs", Runs.restore_run)
    _get_deleted_runs = Delegated("_runs", Runs.get_deleted_runs)
    delete_tag = Delegated("_runs", Runs.delete_tag)
    log_batch = Delegated("_runs", Runs.log_batch)
    log_points = Delegated("_runs", Runs.log_points)
    flush = Delegated("_runs", Runs.flush)
    recover_spools = Delegated("_runs", Runs.recover_spools)
    close = Delegated("_runs", Runs.close)

    # As in MLflow's SQL store, only log_batch checks the run id's format; the single-item
    # calls answer a malformed id as an unknown run. The hot path: one lookup, one call.
    def log_metric(self, run_id: str, metric: Metric) -> None:
        self._runs.log(run_id, [metric], [], [], "log_metric")

    def log_param(self, run_id: str, param: Param) -> None:
        self._runs.log(run_id, [], [param], [], "log_param")

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self._runs.log(run_id, [], [], [tag], "set_tag")

    def flush_async_logging(self) -> None:
        super().flush_async_logging()
        self._runs.flush()

    # -- inputs and outputs ------------------------------------------------------------

    log_inputs = Delegated("_inputs", RunInputs.log_inputs)
    log_outputs = Delegated("_inputs", RunInputs.log_outputs)
    record_logged_model = Delegated("_inputs", RunInputs.record_logged_model)
    _search_datasets = Delegated("_inputs", RunInputs.search_datasets)

    # -- metric history ----------------------------------------------------------------

    get_metric_history = Delegated("_history", MetricHistory.get_metric_history)
    get_metric_history_bulk = Delegated("_history", MetricHistory.get_metric_history_bulk)
    get_metric_history_bulk_interval = Delegated(
        "_history", MetricHistory.get_metric_history_bulk_interval
    )
    get_metric_history_bulk_interval_from_steps = Delegated(
        "_history", MetricHistory.get_metric_history_bulk_interval_from_steps
    )

    # -- logged models -----------------------------------------------------------------

    create_logged_model = Delegated("_models", LoggedModels.create_logged_model)
    get_logged_model = Delegated("_models", LoggedModels.get_logged_model)
    finalize_logged_model = Delegated("_models", LoggedModels.finalize_logged_model)
    log_logged_model_params = Delegated("_models", LoggedModels.log_logged_model_params)
    set_logged_model_tags = Delegated("_models", LoggedModels.set_logged_model_tags)
    delete_logged_model_tag = Delegated("_models", LoggedModels.delete_logged_model_tag)
    delete_logged_model = Delegated("_models", LoggedModels.delete_logged_model)
    search_logged_models = Delegated("_models", LoggedModels.search_logged_models)

    # -- review queues (not stored) ----------------------------------------------------

    def get_or_create_user_queue(self, experiment_id: str, *, user: str) -> ReviewQueue:
        check_text("user", user)  # echoed in the answer: it must have a UTF-8 form
        with mlflow_errors():
            # RESOURCE_DOES_NOT_EXIST for an unknown experiment, as MLflow's SQL store.
            experiment = self.get_experiment(experiment_id)
        return unsaved_user_queue(experiment_id, user, experiment.creation_time or 0)

    # -- mlflow gc ---------------------------------------------------------------------

    _get_deleted_logged_models = Delegated("_hard_delete", HardDelete.get_deleted_logged_models)
    _hard_delete_run = Delegated("_hard_delete", HardDelete.hard_delete_run)
    _hard_delete_experiment = Delegated("_hard_delete", HardDelete.hard_delete_experiment)
    _hard_delete_logged_model = Delegated("_hard_delete", HardDelete.hard_delete_logged_model)

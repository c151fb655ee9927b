"""MLflow's own ``mlflow gc`` on a bucket store: the hard-delete hooks its command calls.

``mlflow gc --backend-store-uri bucket+...`` chooses what goes (deleted runs, logged
models and experiments, by age or by id), deletes run and model artifacts through the
artifact repository, then calls these hooks one item at a time. Each hands its item
to ``format.garbage``, which removes it exactly as ``mlflow-bucket gc`` does
(segments, pointer, artifacts under the root, document last).
"""

from __future__ import annotations

from mlflow.entities import LifecycleStage, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.time import get_current_time_millis

from mlflow_plugin.format import garbage
from mlflow_plugin.format.documents import Document
from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import InvalidStoreUri, parse_store_uri
from mlflow_plugin.tracking.context import StoreContext
from mlflow_plugin.tracking.experiments import Experiments
from mlflow_plugin.tracking.logged_models import LoggedModels
from mlflow_plugin.tracking.run_lifecycle import RunLifecycle

__all__ = ["HardDelete"]


class HardDelete:
    """``_hard_delete_run``, ``_hard_delete_experiment``, ``_hard_delete_logged_model``."""

    def __init__(
        self, context: StoreContext, experiments: Experiments, models: LoggedModels
    ) -> None:
        self._context = context
        self._experiments = experiments
        self._models = models
        self._lifecycle = RunLifecycle(context)

    def _artifacts_destination(self) -> str | None:
        """``mlflow gc --artifacts-destination``: it reaches the store as its artifact root."""
        try:
            parse_store_uri(self._context.artifact_root_uri)
        except InvalidStoreUri:
            return None  # not a bucket URI: mlflow-artifacts:/ then means <root>/artifacts
        return self._context.artifact_root_uri

    def get_deleted_logged_models(self, older_than: int = 0) -> list[str]:
        """Ids of deleted logged models last updated ``older_than`` ms ago or earlier."""
        cutoff = get_current_time_millis() - older_than
        with mlflow_errors():
            return [
                doc["model_id"]
                for doc in self._models.model_docs(self._experiments.experiment_ids())
                if doc["lifecycle_stage"] == LifecycleStage.DELETED
                and (doc.get("last_updated_timestamp") or 0) <= cutoff
            ]

    def hard_delete_run(self, run_id: str) -> None:
        """Permanently delete a deleted run (only ``mlflow gc`` calls this)."""
        with mlflow_errors():
            doc = self._lifecycle.run_doc(run_id)  # deleted by itself or with its experiment
            _check_deleted(doc, f"Run {run_id}")
            garbage.purge_run(
                self._context.objects,
                self._context.location,
                doc["experiment_id"],
                doc["run_id"],
                artifacts_destination=self._artifacts_destination(),
            )

    def hard_delete_experiment(self, experiment_id: str) -> None:
        """Permanently delete a deleted experiment with its runs and logged models."""
        with mlflow_errors():
            doc = self._experiments.experiment_doc(experiment_id, ViewType.DELETED_ONLY)
            garbage.purge_experiment(
                self._context.objects,
                self._context.location,
                doc["experiment_id"],
                artifacts_destination=self._artifacts_destination(),
            )

    def hard_delete_logged_model(self, model_id: str) -> None:
        """Permanently delete a deleted logged model."""
        with mlflow_errors():
            doc = self._models.model_doc(model_id, allow_deleted=True)
            _check_deleted(doc, f"Logged model {model_id}")
            garbage.purge_logged_model(
                self._context.objects,
                self._context.location,
                doc["model_id"],
                artifacts_destination=self._artifacts_destination(),
            )


def _check_deleted(doc: Document, what: str) -> None:
    if doc["lifecycle_stage"] != LifecycleStage.DELETED:
        raise MlflowException(
            f"{what} is not in the deleted lifecycle stage; only deleted items can be "
            "permanently deleted.",
            INVALID_PARAMETER_VALUE,
        )

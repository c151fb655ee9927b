"""Run inputs (datasets, models), outputs (models) and the logged-models tag."""

from __future__ import annotations

from typing import Any

from mlflow.entities import (
    DatasetInput,
    LoggedModelInput,
    LoggedModelOutput,
)
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
)
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS
from mlflow.utils.validation import (
    _validate_dataset_inputs,
    _validate_run_id,
    _validate_tag,
)

from mlflow_plugin.format.documents import (
    Document,
)
from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.text_input import check_entries, check_texts
from mlflow_plugin.tracking.context import StoreContext
from mlflow_plugin.tracking.entities import (
    dataset_input_to_json,
)
from mlflow_plugin.tracking.experiments import check_experiment_id
from mlflow_plugin.tracking.run_lifecycle import RunLifecycle

__all__ = ["RunInputs"]


class RunInputs:
    """Inputs and outputs of runs, over the shared ``StoreContext``."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context
        self._lifecycle = RunLifecycle(context)

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
            for entry in datasets:
                dataset = entry.dataset
                fields = (dataset.name, dataset.digest, dataset.source_type, dataset.source)
                check_texts("dataset field", (*fields, dataset.schema, dataset.profile))
                check_entries("dataset input tag", entry.tags)
        new_inputs = [dataset_input_to_json(d) for d in datasets or []]

        def mutate(doc: Document) -> Document:
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

        with mlflow_errors():
            self._lifecycle.update_active_run(run_id, mutate)

    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        _validate_run_id(run_id)

        def mutate(doc: Document) -> Document:
            known = {o["model_id"] for o in doc["model_outputs"]}
            for model in models or []:
                if model.model_id not in known:
                    doc["model_outputs"].append({"model_id": model.model_id, "step": model.step})
            return doc

        with mlflow_errors():
            self._lifecycle.update_active_run(run_id, mutate)

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        import json

        from mlflow.models import Model

        if not isinstance(mlflow_model, Model):
            raise TypeError(
                f"Argument 'mlflow_model' should be mlflow.models.Model, got '{type(mlflow_model)}'"
            )
        model_dict = mlflow_model.get_tags_dict()

        def mutate(doc: Document) -> Document:
            previous = json.loads(doc["tags"].get(MLFLOW_LOGGED_MODELS, "[]"))
            value = json.dumps([*previous, model_dict])
            _validate_tag(MLFLOW_LOGGED_MODELS, value)
            doc["tags"][MLFLOW_LOGGED_MODELS] = value
            return doc

        with mlflow_errors():
            self._lifecycle.update_active_run(run_id, mutate)

    def search_datasets(self, experiment_ids: list[str]) -> list[_DatasetSummary]:
        with mlflow_errors():
            ids = [check_experiment_id(e) for e in experiment_ids]
            summaries: list[_DatasetSummary] = self._context.index().dataset_summaries(ids)
            return summaries

"""MLflow 3 logged models on the bucket: one CAS document per model under ``models/``.

Search reads the model documents and filters them in memory with MLflow's own
``SearchLoggedModelsUtils`` (as MLflow's file store did); metrics logged with a
``model_id`` are appended to the model document by ``log_batch``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from mlflow.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.search_utils import SearchLoggedModelsUtils
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import _validate_logged_model_name, _validate_param

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, create_document, read_document, update_document
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.format.schema import LOGGED_MODEL
from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import NotFound
from mlflow_plugin.page_tokens import logged_model_page
from mlflow_plugin.text_input import check_entries, check_text
from mlflow_plugin.tracking.context import StoreContext
from mlflow_plugin.tracking.entities import logged_model_from_doc
from mlflow_plugin.tracking.experiments import Experiments, check_experiment_active
from mlflow_plugin.tracking.model_search import model_matches_filter, parse_model_filter

__all__ = [
    "SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT",
    "LoggedModels",
]

SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT = 100


def _not_found(model_id: str) -> MlflowException:
    return MlflowException(f"Logged model with ID '{model_id}' not found.", RESOURCE_DOES_NOT_EXIST)


class LoggedModels:
    """Logged-model methods of the tracking store, over the shared ``StoreContext``."""

    def __init__(self, context: StoreContext, experiments: Experiments) -> None:
        self._context = context
        self._experiments = experiments

    def model_doc(self, model_id: str, allow_deleted: bool = False) -> Document:
        try:
            doc = read_document(self._context.objects, keys.logged_model_key(model_id))[0]
        except (NotFound, keys.InvalidId):
            raise _not_found(model_id) from None
        if doc["lifecycle_stage"] == LifecycleStage.DELETED and not allow_deleted:
            raise _not_found(model_id)
        return doc

    def _update_model(
        self,
        model_id: str,
        mutate: Callable[[Document], Document],
        allow_deleted: bool = False,
    ) -> Document:
        self.model_doc(model_id, allow_deleted)
        try:
            return update_document(self._context.objects, keys.logged_model_key(model_id), mutate)[
                0
            ]
        except NotFound:
            raise _not_found(model_id) from None

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: list[LoggedModelTag] | None = None,
        params: list[LoggedModelParameter] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        _validate_logged_model_name(name)  # the SQL store checks only the name
        check_text("logged model name", name)
        check_text("model type", model_type)
        check_entries("logged model tag", tags)
        check_entries("logged model param", params)
        with mlflow_errors():
            experiment = self._experiments.experiment_doc(experiment_id)
            check_experiment_active(experiment)
            model_id = f"m-{uuid.uuid4().hex}"
            now = get_current_time_millis()
            doc: Document = {
                "model_id": model_id,
                "experiment_id": experiment["experiment_id"],
                "name": name or _generate_random_name(),
                "artifact_location": append_to_uri_path(
                    experiment["artifact_location"], "models", model_id, "artifacts"
                ),
                "creation_timestamp": now,
                "last_updated_timestamp": now,
                "model_type": model_type,
                "source_run_id": source_run_id,
                "status": LoggedModelStatus.PENDING.to_int(),
                "status_message": None,
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "tags": {tag.key: tag.value for tag in tags or []},
                "params": {param.key: param.value for param in params or []},
                "metrics": [],
            }
            create_document(self._context.objects, keys.logged_model_key(model_id), doc)
            return logged_model_from_doc(doc)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        with mlflow_errors():
            return logged_model_from_doc(self.model_doc(model_id, allow_deleted))

    def _touch(self, doc: Document) -> Document:
        doc["last_updated_timestamp"] = get_current_time_millis()
        return doc

    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        def mutate(doc: Document) -> Document:
            doc["status"] = status.to_int()
            return self._touch(doc)

        with mlflow_errors():
            return logged_model_from_doc(self._update_model(model_id, mutate))

    def log_logged_model_params(self, model_id: str, params: list[LoggedModelParameter]) -> None:
        for param in params:
            _validate_param(param.key, param.value)
        check_entries("logged model param", params)

        def mutate(doc: Document) -> Document:
            # Logged-model params are written once: the SQL store refuses any re-log
            # (a primary-key violation it reports as BAD_REQUEST), even of the same value.
            logged = [p.key for p in params if p.key in doc["params"]]
            if logged:
                raise MlflowException(
                    f"Params {logged} were already logged for model {model_id!r}.", BAD_REQUEST
                )
            doc["params"].update({param.key: param.value for param in params})
            return self._touch(doc)

        with mlflow_errors():
            self._update_model(model_id, mutate)

    def set_logged_model_tags(self, model_id: str, tags: list[LoggedModelTag]) -> None:
        # Like MLflow's SQL store, any key and value: they are data in the model document,
        # never part of an object key. Text with no UTF-8 form is refused, as everywhere.
        check_entries("logged model tag", tags)

        def mutate(doc: Document) -> Document:
            doc["tags"].update({tag.key: tag.value for tag in tags})
            return self._touch(doc)

        with mlflow_errors():
            self._update_model(model_id, mutate)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        def mutate(doc: Document) -> Document:
            if key not in doc["tags"]:
                raise MlflowException(
                    f"No tag with key {key!r} found for model with ID {model_id!r}.",
                    RESOURCE_DOES_NOT_EXIST,
                )
            del doc["tags"][key]
            return self._touch(doc)

        with mlflow_errors():
            self._update_model(model_id, mutate)

    def delete_logged_model(self, model_id: str) -> None:
        def mutate(doc: Document) -> Document:
            doc["lifecycle_stage"] = LifecycleStage.DELETED
            return self._touch(doc)

        with mlflow_errors():
            self._update_model(model_id, mutate, allow_deleted=True)

    def record_model_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        """Append metrics logged with a ``model_id`` to that model's document."""
        by_model: dict[str, list[Metric]] = {}
        for metric in metrics:
            if metric.model_id:
                by_model.setdefault(metric.model_id, []).append(metric)
        for model_id, model_metrics in by_model.items():
            entries = [
                {
                    "key": m.key,
                    "value": float(m.value),
                    "timestamp": int(m.timestamp),
                    "step": int(m.step),
                    "dataset_name": m.dataset_name,
                    "dataset_digest": m.dataset_digest,
                    "run_id": run_id,
                }
                for m in model_metrics
            ]

            def mutate(doc: Document, entries: list[dict[str, Any]] = entries) -> Document:
                known = {_metric_identity(m) for m in doc["metrics"]}
                doc["metrics"].extend(m for m in entries if _metric_identity(m) not in known)
                return doc

            self._update_model(model_id, mutate)

    def model_docs(self, experiment_ids: list[str]) -> Iterator[Document]:
        wanted = {str(e) for e in experiment_ids}
        model_keys = [
            info.key
            for info in self._context.objects.list(keys.logged_models_prefix())
            if LOGGED_MODEL.is_key(info.key)  # a stray object there is no model
        ]

        def read(key: str) -> Document | None:
            # One damaged model must not fail a search of the others.
            return read_listed(self._context.objects, key, "the search")

        for doc in self._context.readers.map(read, model_keys):
            if doc is not None and doc["experiment_id"] in wanted:
                yield doc

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        datasets: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: list[dict[str, Any]] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        if datasets and not all(d.get("dataset_name") for d in datasets):
            raise MlflowException(
                "`dataset_name` in the `datasets` clause must be specified.",
                INVALID_PARAMETER_VALUE,
            )
        max_results = max_results or SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT
        comparisons = parse_model_filter(filter_string)
        with mlflow_errors():
            docs = [
                doc
                for doc in self.model_docs(experiment_ids)
                if doc["lifecycle_stage"] != LifecycleStage.DELETED
            ]
        models = [
            logged_model_from_doc(doc)
            for doc in docs
            if model_matches_filter(doc, comparisons, datasets)
        ]
        ordered = SearchLoggedModelsUtils.sort(models, order_by)
        page, next_token = logged_model_page(
            ordered, page_token, max_results, experiment_ids, filter_string, order_by
        )
        return PagedList(page, next_token)


def _metric_identity(m: dict[str, Any]) -> tuple[Any, ...]:
    value = "nan" if isinstance(m["value"], float) and math.isnan(m["value"]) else m["value"]
    return (m["key"], m["step"], m["timestamp"], value, m.get("dataset_name"), m.get("run_id"))

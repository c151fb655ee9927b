"""Documents <-> MLflow entities. Pure functions, no I/O.

Document shapes (JSON; ``docs/FORMAT.md`` is the normative description):

experiment: ``{experiment_id, name, artifact_location, lifecycle_stage,
creation_time, last_update_time, tags: {k: v}}``

run: ``{run_id, experiment_id, run_name, user_id, status, start_time, end_time,
lifecycle_stage, deleted_time, artifact_uri, params: {k: v}, tags: {k: v},
latest_metrics: {key: {value, timestamp, step}}, segments: [SegmentInfo...],
inputs: [{dataset: {...}, tags: {k: v}}], model_inputs: [model_id...],
model_outputs: [{model_id, step}], writers: {writer_id: last_sequence}}``

logged model: ``{model_id, experiment_id, name, artifact_location,
creation_timestamp, last_updated_timestamp, model_type, source_run_id, status,
status_message, lifecycle_stage, tags: {k: v}, params: {k: v}, metrics: [...]}``
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mlflow.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    InputTag,
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunTag,
)

from mlflow_plugin.format.documents import Document

_logger = logging.getLogger(__name__)

__all__ = [
    "dataset_input_to_json",
    "experiment_from_doc",
    "logged_model_from_doc",
    "metric_to_json",
    "run_from_doc",
    "run_info_from_doc",
    "runs_from_docs",
]


def experiment_from_doc(doc: Document) -> Experiment:
    return Experiment(
        experiment_id=doc["experiment_id"],
        name=doc["name"],
        artifact_location=doc["artifact_location"],
        lifecycle_stage=doc["lifecycle_stage"],
        tags=[ExperimentTag(k, v) for k, v in doc.get("tags", {}).items()],
        creation_time=doc.get("creation_time"),
        last_update_time=doc.get("last_update_time"),
    )


def run_info_from_doc(doc: Document) -> RunInfo:
    return RunInfo(
        run_id=doc["run_id"],
        experiment_id=doc["experiment_id"],
        user_id=doc.get("user_id") or "",
        status=doc["status"],
        start_time=doc.get("start_time"),  # type: ignore[arg-type]  # MLflow allows None
        end_time=doc.get("end_time"),
        lifecycle_stage=doc["lifecycle_stage"],
        artifact_uri=doc.get("artifact_uri"),
        run_name=doc.get("run_name"),
    )


def metric_to_json(metric: Metric) -> Document:
    return {"value": metric.value, "timestamp": metric.timestamp, "step": metric.step}


def dataset_input_to_json(dataset_input: DatasetInput) -> Document:
    dataset = dataset_input.dataset
    return {
        "dataset": {
            "name": dataset.name,
            "digest": dataset.digest,
            "source_type": dataset.source_type,
            "source": dataset.source,
            "schema": dataset.schema,
            "profile": dataset.profile,
        },
        "tags": {tag.key: tag.value for tag in dataset_input.tags},
    }


_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def _dataset_input_from_json(doc: Document) -> DatasetInput:
    dataset = doc["dataset"]
    return DatasetInput(
        # Only the fields MLflow's Dataset takes: a newer writer may store more.
        dataset=Dataset(**{name: dataset.get(name) for name in _DATASET_FIELDS}),
        tags=[InputTag(k, v) for k, v in doc.get("tags", {}).items()],
    )


def run_from_doc(doc: Document, with_outputs: bool = True) -> Run:
    metrics = [
        Metric(key, latest["value"], latest["timestamp"], latest["step"])
        for key, latest in doc.get("latest_metrics", {}).items()
    ]
    data = RunData(
        metrics=metrics,
        params=[Param(k, v) for k, v in doc.get("params", {}).items()],
        tags=[RunTag(k, v) for k, v in doc.get("tags", {}).items()],
    )
    inputs = RunInputs(
        dataset_inputs=[_dataset_input_from_json(d) for d in doc.get("inputs", [])],
        model_inputs=[LoggedModelInput(model_id) for model_id in doc.get("model_inputs", [])],
    )
    outputs = RunOutputs(
        model_outputs=[
            LoggedModelOutput(o["model_id"], o["step"]) for o in doc.get("model_outputs", [])
        ]
    )
    return Run(
        run_info=run_info_from_doc(doc),
        run_data=data,
        run_inputs=inputs,
        run_outputs=outputs if with_outputs else None,
    )


def runs_from_docs(docs: Iterable[Document]) -> list[Run]:
    """The runs of checked documents; one that still cannot become a run is left out.

    The index checks what it mirrors, so this is a last guard (an index filled by an
    older version of the checks): one bad run costs its own row, never the whole page.
    """
    runs = []
    for doc in docs:
        try:
            runs.append(run_from_doc(doc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            _logger.warning("run %r left out: its document is damaged (%r)", doc.get("run_id"), exc)
    return runs


def logged_model_from_doc(doc: Document) -> LoggedModel:
    return LoggedModel(
        experiment_id=doc["experiment_id"],
        model_id=doc["model_id"],
        name=doc["name"],
        artifact_location=doc["artifact_location"],
        creation_timestamp=doc["creation_timestamp"],
        last_updated_timestamp=doc["last_updated_timestamp"],
        model_type=doc.get("model_type"),
        source_run_id=doc.get("source_run_id"),
        status=LoggedModelStatus.from_int(doc["status"]),
        status_message=doc.get("status_message"),
        tags=[LoggedModelTag(k, v) for k, v in doc.get("tags", {}).items()],
        params=[LoggedModelParameter(k, v) for k, v in doc.get("params", {}).items()],
        metrics=[
            Metric(
                key=m["key"],
                value=m["value"],
                timestamp=m["timestamp"],
                step=m["step"],
                dataset_name=m.get("dataset_name"),
                dataset_digest=m.get("dataset_digest"),
                run_id=m.get("run_id"),
                model_id=doc["model_id"],
            )
            for m in doc.get("metrics", [])
        ],
    )

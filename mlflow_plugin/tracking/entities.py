"""Documents <-> MLflow entities. Pure functions, no I/O.

Document shapes (JSON, written by ``store.py``):

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

from typing import Any

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
    RunStatus,
    RunTag,
)

from mlflow_plugin.objectstore.errors import CorruptObject

Document = dict[str, Any]

__all__ = [
    "check_run_document",
    "dataset_input_to_json",
    "experiment_from_doc",
    "logged_model_from_doc",
    "metric_to_json",
    "run_from_doc",
    "run_info_from_doc",
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


def _dataset_input_from_json(doc: Document) -> DatasetInput:
    return DatasetInput(
        dataset=Dataset(**doc["dataset"]),
        tags=[InputTag(k, v) for k, v in doc.get("tags", {}).items()],
    )


_RUN_FIELDS: dict[str, type] = {
    "run_id": str,
    "experiment_id": str,
    "status": str,
    "lifecycle_stage": str,
    "params": dict,
    "tags": dict,
    "latest_metrics": dict,
    "segments": list,
}
_SEGMENT_FIELDS: dict[str, type] = {
    "name": str,
    "keys": list,
    "rows": int,
    "min_step": int,
    "max_step": int,
}


def _run_document_problems(doc: Document, run_id: str, experiment_id: str) -> list[str]:
    problems = [
        f"{name!r} is missing or not a {kind.__name__}"
        for name, kind in _RUN_FIELDS.items()
        if not isinstance(doc.get(name), kind)
    ]
    if problems:
        return problems
    if doc["run_id"] != run_id or doc["experiment_id"] != experiment_id:
        problems.append(f"it names run {doc['run_id']!r} of experiment {doc['experiment_id']!r}")
    if doc["status"] not in {RunStatus.to_string(s) for s in RunStatus.all_status()}:
        problems.append(f"unknown status {doc['status']!r}")
    if doc["lifecycle_stage"] not in ("active", "deleted"):
        problems.append(f"unknown lifecycle stage {doc['lifecycle_stage']!r}")
    for field in ("params", "tags"):
        if not all(isinstance(v, str) for v in doc[field].values()):
            problems.append(f"a value in {field!r} is not a string")
    for key, latest in doc["latest_metrics"].items():
        if not (
            isinstance(latest, dict)
            and isinstance(latest.get("value"), int | float)
            and isinstance(latest.get("timestamp"), int)
            and isinstance(latest.get("step"), int)
        ):
            problems.append(f"latest value of metric {key!r} is malformed")
    for segment in doc["segments"]:
        if not isinstance(segment, dict) or not all(
            isinstance(segment.get(name), kind) for name, kind in _SEGMENT_FIELDS.items()
        ):
            problems.append(f"malformed segment entry {str(segment)[:100]}")
    return problems


def check_run_document(doc: Document, key: str) -> Document:
    """``doc`` if it is the run document its key ``experiments/<e>/runs/<r>.json`` says.

    Anything else (missing or mistyped fields, another run's document copied over this
    one) is ``CorruptObject`` naming the key, rather than a ``KeyError`` deep in a read.
    """
    parts = key.split("/")
    run_id = parts[-1].removesuffix(".json")
    experiment_id = parts[-3] if len(parts) >= 3 else ""
    problems = _run_document_problems(doc, run_id, experiment_id)
    if problems:
        raise CorruptObject(f"corrupt run document {key!r}: {'; '.join(problems)}")
    return doc


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


def is_terminal(status: str) -> bool:
    return RunStatus.is_terminated(RunStatus.from_string(status))

"""Run and experiment documents -> rows of MLflow's SQL tables. Pure functions, no I/O.

A document that does not have the shape the store writes raises ``UnmirrorableDocument``;
the sync leaves it out of the index (searches skip it, ``get_run`` reports it).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import LifecycleStage, RunStatus, SourceType

from mlflow_plugin.format.run_stage import RESTORED_DURING
from mlflow_plugin.format.schema import DELETED

__all__ = [
    "ExperimentRows",
    "Row",
    "RunRows",
    "UnmirrorableDocument",
    "experiment_rows",
    "run_rows",
]

Row = dict[str, Any]
_ROW_NAMESPACE = uuid.UUID("0b6f4f0e-6c41-4d55-9d1c-3c1b1c0d1e7a")
_STAGES = {LifecycleStage.ACTIVE, LifecycleStage.DELETED}
_STATUSES = {RunStatus.to_string(status) for status in RunStatus.all_status()}


class UnmirrorableDocument(ValueError):
    """The document is not shaped like one this store writes."""


@dataclass
class RunRows:
    run: Row
    tags: list[Row] = field(default_factory=list)
    params: list[Row] = field(default_factory=list)
    latest_metrics: list[Row] = field(default_factory=list)
    datasets: list[Row] = field(default_factory=list)
    inputs: list[Row] = field(default_factory=list)
    input_tags: list[Row] = field(default_factory=list)


@dataclass
class ExperimentRows:
    experiment: Row
    tags: list[Row] = field(default_factory=list)


def _text_map(doc: dict[str, Any], name: str) -> dict[str, str | None]:
    value = doc.get(name, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UnmirrorableDocument(f"{name} is not a mapping of names")
    return {k: v if v is None else str(v) for k, v in value.items()}


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnmirrorableDocument(f"{name} is not an integer")
    return value


def _experiment_number(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise UnmirrorableDocument(f"experiment id {value!r} is not a number") from None


def run_rows(doc: dict[str, Any], run_id: str, experiment_id: str) -> RunRows:
    """The rows of the run stored under ``experiments/<experiment_id>/runs/<run_id>.json``."""
    if doc.get("run_id") != run_id or str(doc.get("experiment_id")) != experiment_id:
        raise UnmirrorableDocument("the document names another run or experiment than its key")
    status = doc.get("status")
    if status not in _STATUSES or doc.get("lifecycle_stage") not in _STAGES:
        raise UnmirrorableDocument("unknown run status or lifecycle stage")
    experiment = _experiment_number(experiment_id)
    rows = RunRows(
        run={
            "run_uuid": run_id,
            "name": doc.get("run_name"),
            "source_type": SourceType.to_string(SourceType.UNKNOWN),
            "source_name": "",
            "entry_point_name": "",
            "user_id": doc.get("user_id"),
            "status": status,
            "start_time": _optional_int(doc.get("start_time"), "start_time"),
            "end_time": _optional_int(doc.get("end_time"), "end_time"),
            # An active run's holds its restored_during: what the effective-stage
            # condition compares with its experiment's deletion (``queries``); MLflow's
            # searches never read this column.
            "deleted_time": _optional_int(
                doc.get("deleted_time" if doc["lifecycle_stage"] == DELETED else RESTORED_DURING),
                "deleted_time",
            ),
            "source_version": "",
            "lifecycle_stage": doc["lifecycle_stage"],
            "artifact_uri": doc.get("artifact_uri"),
            "experiment_id": experiment,
        }
    )
    rows.tags = [
        {"key": k, "value": v, "run_uuid": run_id} for k, v in _text_map(doc, "tags").items()
    ]
    rows.params = [
        {"key": k, "value": v, "run_uuid": run_id} for k, v in _text_map(doc, "params").items()
    ]
    latest = doc.get("latest_metrics", {})
    if not isinstance(latest, dict):
        raise UnmirrorableDocument("latest_metrics is not a mapping")
    for key, point in latest.items():
        try:
            value = float(point["value"])
            timestamp, step = int(point["timestamp"]), int(point["step"])
        except (KeyError, TypeError, ValueError):
            raise UnmirrorableDocument(f"latest value of metric {key!r} is malformed") from None
        # MLflow's SQL store keeps NaN as 0 with is_nan set; its filters rely on it.
        is_nan = math.isnan(value)
        rows.latest_metrics.append(
            {
                "key": key,
                "value": 0.0 if is_nan else value,
                "timestamp": timestamp,
                "step": step,
                "is_nan": is_nan,
                "run_uuid": run_id,
            }
        )
    _add_dataset_inputs(rows, doc, run_id, experiment)
    return rows


def _add_dataset_inputs(rows: RunRows, doc: dict[str, Any], run_id: str, experiment: int) -> None:
    inputs = doc.get("inputs", [])
    if not isinstance(inputs, list):
        raise UnmirrorableDocument("inputs is not a list")
    for entry in inputs:
        try:
            dataset = entry["dataset"]
            name, digest = str(dataset["name"]), str(dataset["digest"])
            tags = _text_map(entry, "tags")
        except (KeyError, TypeError):
            raise UnmirrorableDocument("a dataset input is malformed") from None
        dataset_uuid = uuid.uuid5(_ROW_NAMESPACE, f"{experiment}\0{name}\0{digest}").hex
        input_uuid = uuid.uuid5(_ROW_NAMESPACE, f"{run_id}\0{dataset_uuid}").hex
        rows.datasets.append(
            {
                "dataset_uuid": dataset_uuid,
                "experiment_id": experiment,
                "name": name,
                "digest": digest,
                "dataset_source_type": str(dataset.get("source_type", "")),
                "dataset_source": str(dataset.get("source", "")),
                "dataset_schema": dataset.get("schema"),
                "dataset_profile": dataset.get("profile"),
            }
        )
        rows.inputs.append(
            {
                "input_uuid": input_uuid,
                "source_type": "DATASET",
                "source_id": dataset_uuid,
                "destination_type": "RUN",
                "destination_id": run_id,
                "step": 0,
            }
        )
        rows.input_tags.extend(
            {"input_uuid": input_uuid, "name": k, "value": v}
            for k, v in tags.items()
            if v is not None
        )


def experiment_rows(doc: dict[str, Any], experiment_id: str) -> ExperimentRows:
    """The rows of the experiment stored under ``experiments/<experiment_id>/experiment.json``."""
    if str(doc.get("experiment_id")) != experiment_id or not isinstance(doc.get("name"), str):
        raise UnmirrorableDocument("the document names another experiment than its key")
    if doc.get("lifecycle_stage") not in _STAGES:
        raise UnmirrorableDocument("unknown lifecycle stage")
    number = _experiment_number(experiment_id)
    return ExperimentRows(
        experiment={
            "experiment_id": number,
            "name": doc["name"],
            "artifact_location": doc.get("artifact_location"),
            "lifecycle_stage": doc["lifecycle_stage"],
            "creation_time": _optional_int(doc.get("creation_time"), "creation_time"),
            "last_update_time": _optional_int(doc.get("last_update_time"), "last_update_time"),
        },
        tags=[
            {"key": k, "value": v, "experiment_id": number}
            for k, v in _text_map(doc, "tags").items()
        ],
    )

"""The stored documents, one ``TypedDict`` per kind: what a type checker knows of each.

Why ``TypedDict`` and not dataclasses (or msgspec, pydantic): a document is
read-modify-written under compare-and-swap (``format.documents.update_document``), and
must keep every field a newer writer added; a dataclass would drop the fields it does
not declare. A ``TypedDict`` is the decoded ``dict`` itself, so the hot path (a batch
entering a run document) pays nothing for it. At run time the check is the field
tables of ``format.schema``, applied at the one decode boundary
(``decode_document``/``check_document``); a test keeps the two in step (the required
and optional keys here are the schema's required and optional fields), and
``docs/FORMAT.md`` is rendered from the tables (``format.protocol_doc``).

>>> doc: RunDocument = read_document(store, key)[0]  # doctest: +SKIP
>>> doc["latest_metrics"]["loss"]["step"]  # doctest: +SKIP
"""

# No ``from __future__ import annotations`` here: Python 3.11's TypedDict sees
# ``NotRequired`` only in evaluated annotations (as strings, every key counts as required).
from typing import NotRequired, TypedDict

__all__ = [
    "DOCUMENT_TYPES",
    "NESTED_TYPES",
    "Dataset",
    "DatasetInput",
    "ExperimentDocument",
    "ExperimentNameClaimDocument",
    "FormatDocument",
    "LatestMetric",
    "LoggedModelDocument",
    "Migration",
    "ModelMetric",
    "ModelOutput",
    "ModelVersionDocument",
    "RegisteredModelDocument",
    "RegisteredModelNameClaimDocument",
    "RunDocument",
    "RunLocationDocument",
    "SegmentEntry",
    "StoredClock",
]

#: A logical clock as stored: ``[acknowledged_us, writer_id, counter]`` (``run_batches``).
StoredClock = list[int | str]

# ``from`` is a keyword: the functional form names it.
Migration = TypedDict("Migration", {"from": int, "to": int, "by": str, "at": int})


class FormatDocument(TypedDict):
    format: str
    version: int
    root_id: NotRequired[str]
    created_by: NotRequired[str]
    migrations: NotRequired[list[Migration]]


class ExperimentNameClaimDocument(TypedDict):
    name: str
    experiment_id: str
    claimed_at: NotRequired[int]


class ExperimentDocument(TypedDict):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: NotRequired[int | None]
    last_update_time: NotRequired[int | None]
    tags: dict[str, str]
    pending_name: NotRequired[str | None]


class SegmentEntry(TypedDict):
    name: str
    keys: list[str]
    rows: int
    min_step: int
    max_step: int


class LatestMetric(TypedDict):
    value: float
    timestamp: int
    step: int


class Dataset(TypedDict):
    name: str
    digest: str
    source_type: str
    source: str
    schema: NotRequired[str | None]
    profile: NotRequired[str | None]


class DatasetInput(TypedDict):
    dataset: Dataset
    tags: NotRequired[dict[str, str]]


class ModelOutput(TypedDict):
    model_id: str
    step: int


class RunDocument(TypedDict):
    run_id: str
    experiment_id: str
    run_name: NotRequired[str | None]
    user_id: NotRequired[str | None]
    status: str
    start_time: int
    end_time: NotRequired[int | None]
    lifecycle_stage: str
    deleted_time: NotRequired[int | None]
    artifact_uri: NotRequired[str | None]
    params: dict[str, str]
    tags: dict[str, str]
    latest_metrics: dict[str, LatestMetric]
    segments: list[SegmentEntry]
    inputs: NotRequired[list[DatasetInput]]
    model_inputs: NotRequired[list[str]]
    model_outputs: NotRequired[list[ModelOutput]]
    writers: NotRequired[dict[str, int]]
    tag_clocks: NotRequired[dict[str, StoredClock]]
    status_clock: NotRequired[StoredClock | None]
    writer_times: NotRequired[dict[str, int]]
    writers_watermark: NotRequired[int]
    restored_during: NotRequired[int | None]


class RunLocationDocument(TypedDict):
    experiment_id: str | int


class ModelMetric(TypedDict):
    key: str
    value: float
    timestamp: int
    step: int
    dataset_name: NotRequired[str | None]
    dataset_digest: NotRequired[str | None]
    run_id: NotRequired[str | None]


class LoggedModelDocument(TypedDict):
    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    creation_timestamp: int
    last_updated_timestamp: int
    model_type: NotRequired[str | None]
    source_run_id: NotRequired[str | None]
    status: int
    status_message: NotRequired[str | None]
    lifecycle_stage: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[ModelMetric]


class RegisteredModelNameClaimDocument(TypedDict):
    name: str
    model_key: str
    claimed_at: NotRequired[int]


class RegisteredModelDocument(TypedDict):
    model_key: str
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: NotRequired[str | None]
    tags: dict[str, str]
    aliases: dict[str, int]
    deployment_job_id: NotRequired[str | None]
    pending_name: NotRequired[str | None]


class ModelVersionDocument(TypedDict):
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    description: NotRequired[str | None]
    user_id: NotRequired[str | None]
    current_stage: str
    source: NotRequired[str | None]
    storage_location: NotRequired[str | None]
    run_id: NotRequired[str | None]
    run_link: NotRequired[str | None]
    status: str
    status_message: NotRequired[str | None]
    tags: dict[str, str]
    model_id: NotRequired[str | None]


#: Each stored kind's type, by its schema's ``kind`` (``format.schema.DOCUMENT_SCHEMAS``).
DOCUMENT_TYPES: dict[str, type] = {
    "format": FormatDocument,
    "experiment name claim": ExperimentNameClaimDocument,
    "experiment": ExperimentDocument,
    "run": RunDocument,
    "run location": RunLocationDocument,
    "logged model": LoggedModelDocument,
    "registered model name claim": RegisteredModelNameClaimDocument,
    "registered model": RegisteredModelDocument,
    "model version": ModelVersionDocument,
}
#: The objects nested in documents, by their table's name (``format.schema.NESTED_TABLES``).
NESTED_TYPES: dict[str, type] = {
    "migration": Migration,
    "segment entry": SegmentEntry,
    "latest metric": LatestMetric,
    "dataset input": DatasetInput,
    "dataset": Dataset,
    "model output": ModelOutput,
    "model metric": ModelMetric,
}

"""The documents' schema: what it calls damaged, and that it agrees with MLflow's vocabulary."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from mlflow.entities import LoggedModelStatus, RunStatus
from mlflow.entities.model_registry.model_version_stages import ALL_STAGES, STAGE_DELETED_INTERNAL
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus

from mlflow_plugin.format import schema
from mlflow_plugin.format.documents import decode_document, encode
from mlflow_plugin.objectstore.errors import CorruptObject

RUN_KEY = "experiments/1/runs/abc.json"


def _run(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "run_id": "abc",
        "experiment_id": "1",
        "run_name": "r",
        "user_id": "u",
        "status": "RUNNING",
        "start_time": 1,
        "end_time": None,
        "lifecycle_stage": "active",
        "deleted_time": None,
        "artifact_uri": "bucket+file:///a",
        "params": {"lr": "0.1"},
        "tags": {"mlflow.runName": "r"},
        "latest_metrics": {"loss": {"value": float("nan"), "timestamp": 1, "step": 0}},
        "segments": [{"name": "s1", "keys": ["loss"], "rows": 1, "min_step": 0, "max_step": 0}],
        "inputs": [],
        "model_inputs": [],
        "model_outputs": [{"model_id": "m-1", "step": 0}],
        "writers": {"w": 3},
    }
    doc.update(changes)
    return doc


def test_mlflow_vocabulary_is_the_formats() -> None:
    assert tuple(RunStatus.to_string(s) for s in RunStatus.all_status()) == schema.RUN_STATUSES
    assert tuple(s.to_int() for s in LoggedModelStatus) == schema.LOGGED_MODEL_STATUSES
    assert (*ALL_STAGES, STAGE_DELETED_INTERNAL) == schema.VERSION_STAGES
    assert (
        tuple(ModelVersionStatus.to_string(s) for s in ModelVersionStatus.all_status())
        == schema.VERSION_STATUSES
    )


def test_a_sound_run_passes_and_keeps_unknown_fields() -> None:
    doc = _run(tag_clocks={"x": [1, "w", 1]})
    decoded = decode_document(RUN_KEY, encode(doc))
    assert decoded["tag_clocks"] == doc["tag_clocks"]
    assert encode(decoded) == encode(doc)  # NaN != NaN: compare the stored form


@pytest.mark.parametrize(
    "changes",
    [
        {"user_id": ["a"]},
        {"run_name": 5},
        {"start_time": "yesterday"},
        {"start_time": True},
        {"start_time": 2**70},
        {"model_outputs": "garbage"},
        {"model_outputs": [{"model_id": 1}]},
        {"inputs": {"dataset": 1}},
        {"tags": {"mlflow.source.name": "train\udc80.py"}},
        {"tags": {"\ud800": "v"}},
        {"status": "EXPLODED"},
        {"latest_metrics": {"loss": {"value": "high", "timestamp": 1, "step": 0}}},
        {"segments": [{"name": "../x", "keys": [], "rows": 1, "min_step": 0, "max_step": 0}]},
        {"run_id": "another"},
    ],
    ids=repr,
)
def test_damaged_run_documents_are_named(changes: dict[str, Any]) -> None:
    with pytest.raises(CorruptObject) as raised:
        decode_document(RUN_KEY, encode(_run(**changes)))
    assert RUN_KEY in str(raised.value)
    assert next(iter(changes)) in str(raised.value) or "surrogate" in str(raised.value)


def test_missing_required_field_and_optional_field() -> None:
    doc = _run()
    del doc["params"]
    assert schema.document_problems(RUN_KEY, doc) == ["'params' is missing"]
    doc = _run()
    del doc["inputs"]  # older writers did not write it
    assert schema.document_problems(RUN_KEY, doc) == []


def test_name_claims_must_hash_to_their_key() -> None:
    digest = hashlib.sha256(b"exp").hexdigest()
    key = f"experiment-names/{digest}.json"
    assert schema.document_problems(key, {"name": "exp", "experiment_id": "3"}) == []
    assert schema.document_problems(key, {"name": "other", "experiment_id": "3"})


def test_every_kind_has_a_key_and_unknown_keys_need_only_be_objects() -> None:
    assert {s.kind for s in schema.DOCUMENT_SCHEMAS} == {
        "format",
        "experiment name claim",
        "experiment",
        "run",
        "run location",
        "logged model",
        "registered model name claim",
        "registered model",
        "model version",
    }
    assert schema.document_problems("something/else.json", {"any": "thing"}) == []
    assert schema.document_problems("something/else.json", [1]) != []

"""Registry documents <-> MLflow entities, as pure functions.

A model document (``registry/models/<key>/model.json``)::

    {"model_key": "...", "name": "digits-cnn", "creation_timestamp": 1700000000000,
     "last_updated_timestamp": ..., "description": null, "tags": {"team": "vision"},
     "aliases": {"champion": 3}, "deployment_job_id": null}

A version document (``registry/models/<key>/versions/0000000003.json``)::

    {"version": 3, "creation_timestamp": ..., "last_updated_timestamp": ...,
     "description": null, "user_id": null, "current_stage": "None",
     "source": "models:/m-...", "storage_location": "bucket+s3://.../artifacts",
     "run_id": "...", "run_link": null, "status": "READY", "status_message": null,
     "tags": {}, "model_id": "m-..."}

A version's name is not stored: it is its model's, so a rename touches one document.
Aliases live in the model document, as in MLflow's SQL schema.
"""

from __future__ import annotations

from typing import Any

from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL

from mlflow_plugin.format.documents import Document

__all__ = [
    "aliases_of",
    "latest_versions",
    "model_version_from_doc",
    "redact_version",
    "registered_model_from_doc",
]


def aliases_of(model: Document, version: int) -> list[str]:
    """The aliases pointing at ``version``, in the order they were set."""
    return [alias for alias, target in model["aliases"].items() if target == version]


def model_version_from_doc(
    model: Document, doc: Document, *, with_aliases: bool = True
) -> ModelVersion:
    # An int, as MLflow's SQL store returns it (the entity's annotation says str).
    version: Any = int(doc["version"])
    return ModelVersion(
        name=model["name"],
        version=version,
        creation_timestamp=doc["creation_timestamp"],
        last_updated_timestamp=doc["last_updated_timestamp"],
        description=doc.get("description"),
        user_id=doc.get("user_id"),
        current_stage=doc["current_stage"],
        source=doc.get("source"),
        run_id=doc.get("run_id"),
        status=doc["status"],
        status_message=doc.get("status_message"),
        tags=[ModelVersionTag(k, v) for k, v in doc["tags"].items()],
        run_link=doc.get("run_link"),
        aliases=aliases_of(model, version) if with_aliases else [],
        model_id=doc.get("model_id"),
    )


def latest_versions(versions: list[Document], stages: set[str] | None = None) -> list[Document]:
    """The highest live version per stage, stages in order of first appearance (as SQL does)."""
    latest: dict[str, Document] = {}
    for doc in sorted(versions, key=lambda d: int(d["version"])):
        stage = doc["current_stage"]
        if stage == STAGE_DELETED_INTERNAL or (stages is not None and stage not in stages):
            continue
        latest[stage] = doc
    return list(latest.values())


def registered_model_from_doc(model: Document, versions: list[Document]) -> RegisteredModel:
    return RegisteredModel(
        name=model["name"],
        creation_timestamp=model["creation_timestamp"],
        last_updated_timestamp=model["last_updated_timestamp"],
        description=model.get("description"),
        latest_versions=[
            model_version_from_doc(model, doc, with_aliases=False)
            for doc in latest_versions(versions)
        ],
        tags=[RegisteredModelTag(k, v) for k, v in model["tags"].items()],
        aliases=[
            RegisteredModelAlias(alias, version) for alias, version in model["aliases"].items()
        ],
        deployment_job_id=model.get("deployment_job_id"),
    )


def redact_version(doc: Document, now: int) -> Document:
    """A deleted version keeps its number (never reused) and loses what identified it (as SQL)."""
    redacted: dict[str, Any] = dict(doc)
    redacted.update(
        current_stage=STAGE_DELETED_INTERNAL,
        last_updated_timestamp=now,
        description=None,
        user_id=None,
        source="REDACTED-SOURCE-PATH",
        storage_location=None,
        run_id="REDACTED-RUN-ID",
        run_link="REDACTED-RUN-LINK",
        status_message=None,
    )
    return redacted

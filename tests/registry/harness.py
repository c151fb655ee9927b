"""The registry suite's scenario book: serialisation and normalisation of registry entities.

A scenario (see ``tests/differential/book.py``) drives an ``MlflowClient`` whose tracking
and registry URIs are the same store. It runs on MLflow's ``SqlAlchemyStore``
(``sqlite:///``, the reference) and on the bucket store; the normalised results must be
equal. Scenarios read ``attempt``'s results as plain JSON.

Normalisation hides only what legitimately differs between two stores:

- wall-clock timestamps become ``"<now>"``; run and logged-model ids become placeholders;
- a version's ``model_id`` is dropped (the SQL schema has no column for it);
- aliases of versions *inside* search pages and ``latest_versions`` are dropped (the SQL
  store leaves them empty there; the bucket store fills them in), while the aliases of a
  version read directly, and a model's alias map, are compared;
- lists whose order no store defines (a model's ``latest_versions``, a version's aliases)
  are sorted.

Errors are compared as (class name, error code), never by message.
"""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.store.entities.paged_list import PagedList

from tests.differential.book import ScenarioBook, plain_json
from tests.differential.normalise import Normaliser

normalise = Normaliser(
    timestamp_keys=frozenset({"creation_timestamp", "last_updated_timestamp"}),
    id_keys={"run_id": "run", "source_run_id": "run", "logged_model_id": "model"},
)


def version_json(mv: ModelVersion, *, with_aliases: bool = True) -> dict[str, object]:
    result: dict[str, object] = {
        "name": mv.name,
        "version": str(mv.version),
        "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
        "description": mv.description,
        "user_id": mv.user_id,
        "current_stage": mv.current_stage,
        "source": mv.source,
        "run_id": mv.run_id,
        "run_link": mv.run_link,
        "status": mv.status,
        "status_message": mv.status_message,
        "tags": dict(mv.tags),
    }
    if with_aliases:
        result["aliases"] = sorted(mv.aliases)
    return result


def model_json(rm: RegisteredModel) -> dict[str, object]:
    return {
        "name": rm.name,
        "creation_timestamp": rm.creation_timestamp,
        "last_updated_timestamp": rm.last_updated_timestamp,
        "description": rm.description,
        "tags": dict(rm._tags),  # reserved (prompt) tags included
        "aliases": {alias: str(version) for alias, version in rm.aliases.items()},
        "latest_versions": sorted(
            (version_json(mv, with_aliases=False) for mv in rm.latest_versions or []),
            key=lambda v: int(str(v["version"])),
        ),
    }


def to_json(value: object) -> object:
    """MLflow registry entities (and containers of them) as plain JSON values."""
    if isinstance(value, PagedList):
        items = [
            version_json(item, with_aliases=False)
            if isinstance(item, ModelVersion)
            else to_json(item)
            for item in value
        ]
        return {"items": items, "has_next_page": bool(value.token)}
    if isinstance(value, RegisteredModel):
        return model_json(value)
    if isinstance(value, ModelVersion):
        return version_json(value)
    return plain_json(value, to_json)


BOOK = ScenarioBook(to_json, normalise, attempts_to_json=True, max_pages=50)
scenario = BOOK.scenario
attempt = BOOK.attempt
all_pages = BOOK.all_pages

"""Harness for the registry differential suite: scenarios, serialisation, normalisation.

A scenario is ``scenario(client) -> object``: it drives an ``MlflowClient`` whose tracking
and registry URIs are the same store and returns what a user could observe. It runs on
MLflow's ``SqlAlchemyStore`` (``sqlite:///``, the reference) and on the bucket store; the
normalised results must be equal.

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

import difflib
import json
from collections.abc import Callable
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.store.entities.paged_list import PagedList

Scenario = Callable[[MlflowClient], object]

SCENARIOS: dict[str, Scenario] = {}

WALL_CLOCK_FLOOR = 10**12
_TIMESTAMP_KEYS = frozenset({"creation_timestamp", "last_updated_timestamp"})
_ID_KEYS = {"run_id": "run", "source_run_id": "run", "logged_model_id": "model"}


def scenario(fn: Scenario) -> Scenario:
    """Register a scenario under its function name."""
    if fn.__name__ in SCENARIOS:
        raise ValueError(f"duplicate scenario name {fn.__name__}")
    SCENARIOS[fn.__name__] = fn
    return fn


def attempt(fn: Callable[..., object], *args: Any, **kwargs: Any) -> object:
    """Call ``fn``; on failure return ``["error", class name, error code]``."""
    try:
        return to_json(fn(*args, **kwargs))
    except Exception as exc:
        return ["error", type(exc).__name__, getattr(exc, "error_code", None)]


def all_pages(fetch: Callable[[str | None], PagedList[Any]]) -> list[object]:
    """Follow page tokens from the first page to the last."""
    pages: list[object] = []
    token: str | None = None
    for _ in range(50):
        page = fetch(token)
        pages.append(to_json(page))
        token = page.token
        if not token:
            return pages
    raise AssertionError("more than 50 pages: a page token never ran out")


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
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"scenario returned a {type(value).__name__}, which to_json does not know")


def normalise(value: object) -> object:
    """Placeholders for run and logged-model ids, ``"<now>"`` for wall-clock timestamps."""
    placeholders: dict[str, str] = {}

    def placeholder(kind: str, raw: str) -> str:
        if raw not in placeholders:
            placeholders[raw] = (
                f"<{kind}{sum(p.startswith(f'<{kind}') for p in placeholders.values()) + 1}>"
            )
        return placeholders[raw]

    def collect(node: object, key: str | None) -> None:
        if isinstance(node, dict):
            for k in sorted(node):
                collect(node[k], k)
        elif isinstance(node, list):
            for item in node:
                collect(item, key)
        elif isinstance(node, str) and key in _ID_KEYS and node:
            placeholder(_ID_KEYS[key], node)

    def substitute(text: str) -> str:
        for raw, name in placeholders.items():
            text = text.replace(raw, name)
        return text

    def walk(node: object, key: str | None) -> object:
        if isinstance(node, dict):
            return {k: walk(node[k], k) for k in sorted(node)}
        if isinstance(node, list):
            return [walk(item, key) for item in node]
        if key in _TIMESTAMP_KEYS and isinstance(node, int) and node >= WALL_CLOCK_FLOOR:
            return "<now>"
        if isinstance(node, str):
            return substitute(node)
        return node

    collect(value, None)
    return walk(value, None)


def render(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def difference(expected: object, actual: object) -> str:
    """A unified diff of two normalised results, reference first."""
    return "\n".join(
        difflib.unified_diff(
            render(expected).splitlines(),
            render(actual).splitlines(),
            fromfile="sqlite (reference)",
            tofile="bucket",
            lineterm="",
            n=4,
        )
    )

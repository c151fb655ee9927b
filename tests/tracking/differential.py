"""Harness for the differential suite: scenarios, serialisation of MLflow entities, normalisation.

A scenario is a plain function ``scenario(client) -> object`` that drives an ``MlflowClient``
and returns what a user could observe. The same scenario runs against MLflow's own
``SqlAlchemyStore`` on ``sqlite:///`` (the reference) and against the bucket store; both
results go through ``to_json`` and ``normalise`` and must be equal.

Normalisation only hides what legitimately differs between two stores: generated ids
(replaced by placeholders in order of first appearance), wall-clock timestamps (coarsened to
``"<now>"``; small explicit timestamps that scenarios pass in are kept) and artifact
locations (dropped). Everything else is compared: names, statuses, lifecycle stages,
params, tags, metric values and steps, ordering, page sizes, whether another page exists,
and the error class and code of every call that fails (not the message text).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunTag,
)
from mlflow.store.entities.paged_list import PagedList

Scenario = Callable[[MlflowClient], object]

SCENARIOS: dict[str, Scenario] = {}

# Explicit timestamps that scenarios pass in stay below this; wall-clock milliseconds
# (about 1.7e12 today) are above it and get coarsened.
WALL_CLOCK_FLOOR = 10**12

_TIMESTAMP_KEYS = frozenset(
    {
        "start_time",
        "end_time",
        "creation_time",
        "last_update_time",
        "creation_timestamp",
        "last_updated_timestamp",
        "timestamp",
        "deleted_time",
    }
)
_DROPPED_KEYS = frozenset({"artifact_uri", "artifact_location", "model_uri"})
# Values under these keys are ids of the named kind (a string or a list of strings).
_ID_KEYS = {
    "run_id": "run",
    "run_ids": "run",
    "source_run_id": "run",
    "mlflow.parentRunId": "run",
    "experiment_id": "exp",
    "experiment_ids": "exp",
    "model_id": "model",
    "model_ids": "model",
}


def scenario(fn: Scenario) -> Scenario:
    """Register a scenario under its function name."""
    if fn.__name__ in SCENARIOS:
        raise ValueError(f"duplicate scenario name {fn.__name__}")
    SCENARIOS[fn.__name__] = fn
    return fn


_OPERATOR_WORDS = [
    (">=", " ge "),
    ("<=", " le "),
    ("!=", " ne "),
    (">", " gt "),
    ("<", " lt "),
    ("=", " eq "),
    ("%", " pct "),
    ("-", " minus "),
    ("'", " q "),
    ('"', " dq "),
    ("`", " bt "),
]


def slug(text: str) -> str:
    """A scenario-name fragment for a filter or order_by string: operators become words."""
    for operator, word in _OPERATOR_WORDS:
        text = text.replace(operator, word)
    return "_".join("".join(c if c.isalnum() else " " for c in text).split())


def attempt(fn: Callable[..., object], *args: Any, **kwargs: Any) -> object:
    """Call ``fn``; on failure return ``["error", class name, error code]`` instead of raising.

    The message text is not part of the result: stores may word errors differently.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return ["error", type(exc).__name__, getattr(exc, "error_code", None)]


def all_pages(fetch: Callable[[str | None], PagedList[Any]]) -> list[dict[str, object]]:
    """Follow page tokens from the first page to the last; each page as ``to_json`` shows it."""
    pages: list[dict[str, object]] = []
    token: str | None = None
    for _ in range(100):
        page = fetch(token)
        pages.append(_page(page))
        token = page.token
        if not token:
            return pages
    raise AssertionError("more than 100 pages: a page token never ran out")


# --- serialisation -------------------------------------------------------------------


def to_json(value: object) -> object:
    """MLflow entities (and containers of them) as plain lists, dicts and scalars."""
    if isinstance(value, PagedList):
        return _page(value)
    if isinstance(value, Run):
        return _run(value)
    if isinstance(value, Experiment):
        return _experiment(value)
    if isinstance(value, LoggedModel):
        return _logged_model(value)
    if isinstance(value, Metric):
        return _metric(value)
    if isinstance(value, Param | RunTag | InputTag | LoggedModelTag | LoggedModelParameter):
        return {"key": value.key, "value": value.value}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"scenario returned a {type(value).__name__}, which to_json does not know")


def _page(page: PagedList[Any]) -> dict[str, object]:
    return {"items": [to_json(item) for item in page], "has_next_page": bool(page.token)}


def _metric(metric: Metric) -> dict[str, object]:
    return {
        "key": metric.key,
        "value": metric.value,
        "step": metric.step,
        "timestamp": metric.timestamp,
        "model_id": metric.model_id,
        "dataset_name": metric.dataset_name,
        "dataset_digest": metric.dataset_digest,
        "run_id": metric.run_id,
    }


def _experiment(experiment: Experiment) -> dict[str, object]:
    return {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "lifecycle_stage": experiment.lifecycle_stage,
        "tags": dict(experiment.tags),
        "creation_time": experiment.creation_time,
        "last_update_time": experiment.last_update_time,
    }


def _dataset(dataset: Dataset) -> dict[str, object]:
    return {
        "name": dataset.name,
        "digest": dataset.digest,
        "source_type": dataset.source_type,
        "source": dataset.source,
        "schema": dataset.schema,
        "profile": dataset.profile,
    }


def _dataset_input(dataset_input: DatasetInput) -> dict[str, object]:
    return {
        "dataset": _dataset(dataset_input.dataset),
        "tags": sorted((t.key, t.value) for t in dataset_input.tags),
    }


def _run(run: Run) -> dict[str, object]:
    info = run.info
    result: dict[str, object] = {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "run_name": info.run_name,
        "status": info.status,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
        "tags": dict(run.data.tags),
    }
    if run.inputs is not None:
        result["dataset_inputs"] = sorted(
            (_dataset_input(d) for d in run.inputs.dataset_inputs),
            key=lambda d: json.dumps(d, sort_keys=True),
        )
        result["model_inputs"] = [
            _model_input(m) for m in (getattr(run.inputs, "model_inputs", None) or [])
        ]
    if run.outputs is not None:
        result["model_outputs"] = [_model_output(m) for m in run.outputs.model_outputs]
    return result


def _model_input(model_input: LoggedModelInput) -> dict[str, object]:
    return {"model_id": model_input.model_id}


def _model_output(model_output: LoggedModelOutput) -> dict[str, object]:
    return {"model_id": model_output.model_id, "step": model_output.step}


def _logged_model(model: LoggedModel) -> dict[str, object]:
    return {
        "model_id": model.model_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "status": str(model.status),
        "status_message": model.status_message,
        "model_type": model.model_type,
        "source_run_id": model.source_run_id,
        "tags": dict(model.tags),
        "params": dict(model.params),
        "metrics": [_metric(m) for m in (model.metrics or [])],
        "creation_timestamp": model.creation_timestamp,
        "last_updated_timestamp": model.last_updated_timestamp,
    }


# --- normalisation -------------------------------------------------------------------


def normalise(value: object) -> object:
    """Placeholders for generated ids, coarse wall-clock timestamps, no artifact locations."""
    ids: dict[str, dict[str, str]] = {"run": {}, "exp": {}, "model": {}}
    _collect_ids(value, ids, kind=None)
    placeholders: dict[str, str] = {}
    counters = {"run": 0, "exp": 0, "model": 0}

    def placeholder(kind: str, raw: str) -> str:
        if kind == "exp" and raw == "0":
            return "0"  # the default experiment has the same id everywhere
        key = f"{kind}:{raw}"
        if key not in placeholders:
            counters[kind] += 1
            placeholders[key] = f"<{kind}{counters[kind]}>"
        return placeholders[key]

    def substitute(text: str) -> str:
        # Run and model ids are long and random: safe to replace wherever they appear.
        for kind in ("run", "model"):
            for raw in ids[kind]:
                if raw in text:
                    text = text.replace(raw, placeholder(kind, raw))
        return text

    def walk(node: object, key: str | None) -> object:
        if isinstance(node, dict):
            out: dict[str, object] = {}
            for k in sorted(node, key=str):
                if k in _DROPPED_KEYS:
                    continue
                out[substitute(k) if isinstance(k, str) else k] = walk(node[k], k)
            return out
        if isinstance(node, list):
            return [walk(item, key) for item in node]
        if isinstance(node, float):
            if math.isnan(node):
                return "NaN"
            if math.isinf(node):
                return "+inf" if node > 0 else "-inf"
        if key in _TIMESTAMP_KEYS and isinstance(node, int | float) and node >= WALL_CLOCK_FLOOR:
            return "<now>"
        if isinstance(node, str):
            kind = _ID_KEYS.get(key or "")
            if kind is not None:
                return placeholder(kind, node)
            return substitute(node)
        return node

    return walk(value, None)


def _collect_ids(node: object, ids: dict[str, dict[str, str]], kind: str | None) -> None:
    if isinstance(node, dict):
        for k in sorted(node, key=str):
            _collect_ids(node[k], ids, _ID_KEYS.get(k))
    elif isinstance(node, list):
        for item in node:
            _collect_ids(item, ids, kind)
    elif isinstance(node, str) and kind is not None and node:
        ids[kind][node] = node


def render(value: object) -> str:
    return json.dumps(_shorten(value), indent=1, sort_keys=True, default=str)


def _shorten(value: object, limit: int = 60) -> object:
    """Long strings cut for the diff (a 6000-character param would drown it); lengths kept."""
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}...({len(value)} chars)"
    return value


def difference(expected: object, actual: object) -> str:
    """A unified diff of two normalised results, reference first."""
    return "\n".join(
        difflib.unified_diff(
            render(expected).splitlines(),
            render(actual).splitlines(),
            fromfile="sqlite (reference)",
            tofile="candidate",
            lineterm="",
            n=4,
        )
    )

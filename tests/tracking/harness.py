"""The tracking suite's scenario book: serialisation of MLflow entities, normalisation.

A scenario (see ``tests/differential/book.py``) runs on MLflow's own ``SqlAlchemyStore``
on ``sqlite:///`` (the reference) and on the bucket store; both results go through
``to_json`` and ``normalise`` and must be equal.

Normalisation hides generated ids, wall-clock timestamps (``tests/differential/normalise.py``)
and artifact locations (dropped). Everything else is compared: names, statuses, lifecycle
stages, params, tags, metric values and steps, ordering, page sizes, whether another page
exists, and the error class and code of every call that fails (not the message text).
Scenarios read ``attempt``'s results as MLflow entities.
"""

from __future__ import annotations

import json
from typing import Any

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

from tests.differential.book import ScenarioBook, plain_json
from tests.differential.normalise import Normaliser

normalise = Normaliser(
    timestamp_keys=frozenset(
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
    ),
    # Values under these keys are ids of the named kind (a string or a list of strings).
    id_keys={
        "run_id": "run",
        "run_ids": "run",
        "source_run_id": "run",
        "mlflow.parentRunId": "run",
        "experiment_id": "exp",
        "experiment_ids": "exp",
        "model_id": "model",
        "model_ids": "model",
    },
    dropped_keys=frozenset({"artifact_uri", "artifact_location", "model_uri"}),
    shared_ids=frozenset({("exp", "0")}),  # the default experiment has the same id everywhere
)


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
    return plain_json(value, to_json)


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


BOOK = ScenarioBook(to_json, normalise)
scenario = BOOK.scenario
attempt = BOOK.attempt
all_pages = BOOK.all_pages


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

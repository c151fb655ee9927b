"""Differential scenarios: dataset inputs, logged models (MLflow 3) and traces."""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
)

from tests.tracking.harness import all_pages, attempt, scenario

T0 = 1_000_000


def _dataset_input(name: str, digest: str, context: str | None) -> DatasetInput:
    dataset = Dataset(
        name=name,
        digest=digest,
        source_type="local",
        source=f'{{"uri": "/data/{name}"}}',
        schema='{"mlflow_colspec": [{"type": "double", "name": "x"}]}',
        profile='{"num_rows": 10}',
    )
    tags = [InputTag("mlflow.data.context", context)] if context else []
    return DatasetInput(dataset, tags=tags)


def _summaries(client: MlflowClient, experiment_ids: list[str]) -> object:
    store = client._tracking_client.store
    summaries = store._search_datasets(experiment_ids)
    rows = [
        {"experiment_id": s.experiment_id, "name": s.name, "digest": s.digest, "context": s.context}
        for s in summaries
    ]
    return sorted(rows, key=lambda r: (r["name"], r["digest"], str(r["context"])))


# --- inputs ----------------------------------------------------------------------------


@scenario
def inputs_log_and_get(client: MlflowClient) -> object:
    exp_id = client.create_experiment("inputs")
    run_id = client.create_run(exp_id, start_time=T0, run_name="r").info.run_id
    client.log_inputs(
        run_id,
        [_dataset_input("train", "aaa", "training"), _dataset_input("test", "bbb", "testing")],
    )
    return client.get_run(run_id)


@scenario
def inputs_same_dataset_twice(client: MlflowClient) -> object:
    exp_id = client.create_experiment("inputs-dup")
    run_id = client.create_run(exp_id, start_time=T0, run_name="r").info.run_id
    client.log_inputs(run_id, [_dataset_input("train", "aaa", "training")])
    client.log_inputs(run_id, [_dataset_input("train", "aaa", "training")])
    client.log_inputs(run_id, [_dataset_input("train", "aaa", "eval")])
    return client.get_run(run_id)


@scenario
def inputs_search_datasets(client: MlflowClient) -> object:
    first = client.create_experiment("ds-first")
    second = client.create_experiment("ds-second")
    a = client.create_run(first, start_time=T0, run_name="a").info.run_id
    b = client.create_run(first, start_time=T0 + 1, run_name="b").info.run_id
    c = client.create_run(second, start_time=T0 + 2, run_name="c").info.run_id
    client.log_inputs(a, [_dataset_input("train", "aaa", "training")])
    client.log_inputs(b, [_dataset_input("train", "aaa", "training")])
    client.log_inputs(b, [_dataset_input("eval", "ccc", None)])
    client.log_inputs(c, [_dataset_input("train", "zzz", "training")])
    return {
        "experiment_ids": [first, second],
        "first": _summaries(client, [first]),
        "both": _summaries(client, [first, second]),
        "empty": _summaries(client, [client.create_experiment("ds-none")]),
    }


@scenario
def inputs_invalid(client: MlflowClient) -> object:
    exp_id = client.create_experiment("inputs-bad")
    run_id = client.create_run(exp_id, start_time=T0, run_name="r").info.run_id
    client.delete_run(run_id)
    return {
        "deleted_run": attempt(client.log_inputs, run_id, [_dataset_input("t", "a", "training")]),
        "unknown_run": attempt(client.log_inputs, "f" * 32, [_dataset_input("t", "a", None)]),
    }


# --- logged models -----------------------------------------------------------------------


def _order(field: str, ascending: bool = True) -> list[dict[str, Any]]:
    return [{"field_name": field, "ascending": ascending}]


@scenario
def model_create_and_get(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models")
    model = client.create_logged_model(
        exp_id, name="net", params={"layers": "3"}, tags={"arch": "cnn"}, model_type="torch"
    )
    return {"created": model, "get": client.get_logged_model(model.model_id)}


@scenario
def model_create_with_source_run(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-run")
    run_id = client.create_run(exp_id, start_time=T0, run_name="trainer").info.run_id
    model = client.create_logged_model(exp_id, name="from-run", source_run_id=run_id)
    return {"run_id": run_id, "model": client.get_logged_model(model.model_id)}


@scenario
def model_create_without_name(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-unnamed")
    model = client.create_logged_model(exp_id)
    return {"has_name": bool(model.name), "status": str(model.status)}


@scenario
def model_create_invalid(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-bad")
    deleted = client.create_experiment("models-deleted")
    client.delete_experiment(deleted)
    return {
        "unknown_experiment": attempt(client.create_logged_model, "987654", name="m"),
        "deleted_experiment": attempt(client.create_logged_model, deleted, name="m"),
        "bad_param_key": attempt(
            client.create_logged_model, exp_id, name="m", params={"../x": "1"}
        ),
        "long_param": attempt(
            client.create_logged_model, exp_id, name="m", params={"p": "v" * 7000}
        ),
        "unknown_source_run": attempt(
            client.create_logged_model, exp_id, name="m", source_run_id="f" * 32
        ),
    }


@scenario
def model_finalize(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-final")
    ready = client.create_logged_model(exp_id, name="ready").model_id
    failed = client.create_logged_model(exp_id, name="failed").model_id
    return {
        "model_ids": [ready, failed],
        "ready": client.finalize_logged_model(ready, LoggedModelStatus.READY),
        "failed": client.finalize_logged_model(failed, "FAILED"),
        "get_ready": client.get_logged_model(ready),
        "unknown": attempt(client.finalize_logged_model, "m-" + "0" * 32, "READY"),
    }


@scenario
def model_tags(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-tags")
    model_id = client.create_logged_model(exp_id, name="m", tags={"a": "1"}).model_id
    client.set_logged_model_tags(model_id, {"a": "2", "b": "3", "c": 4})
    client.delete_logged_model_tag(model_id, "b")
    return {
        "model_id": model_id,
        "after": client.get_logged_model(model_id),
        "delete_missing": attempt(client.delete_logged_model_tag, model_id, "zzz"),
        "unknown_model": attempt(client.set_logged_model_tags, "m-" + "0" * 32, {"a": "1"}),
    }


@scenario
def model_params(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-params")
    model_id = client.create_logged_model(exp_id, name="m", params={"a": "1"}).model_id
    return {
        "model_id": model_id,
        "add": attempt(client.log_model_params, model_id, {"b": "2", "c": "3"}),
        "same": attempt(client.log_model_params, model_id, {"a": "1"}),
        "change": attempt(client.log_model_params, model_id, {"a": "9"}),
        "after": client.get_logged_model(model_id),
    }


@scenario
def model_delete(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-delete")
    model_id = client.create_logged_model(exp_id, name="m").model_id
    keep = client.create_logged_model(exp_id, name="keep").model_id
    client.delete_logged_model(model_id)
    return {
        "model_ids": [model_id, keep],
        "get_deleted": attempt(client.get_logged_model, model_id),
        "delete_again": attempt(client.delete_logged_model, model_id),
        "search": client.search_logged_models([exp_id]),
    }


@scenario
def model_unknown_id(client: MlflowClient) -> object:
    missing = "m-" + "0" * 32
    return {
        "get": attempt(client.get_logged_model, missing),
        "delete": attempt(client.delete_logged_model, missing),
        "params": attempt(client.log_model_params, missing, {"a": "1"}),
        "delete_tag": attempt(client.delete_logged_model_tag, missing, "a"),
        "garbage": attempt(client.get_logged_model, "not-a-model"),
    }


@scenario
def model_metrics_from_runs(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-metrics")
    run_id = client.create_run(exp_id, start_time=T0, run_name="trainer").info.run_id
    model_id = client.create_logged_model(exp_id, name="m", source_run_id=run_id).model_id
    client.log_batch(
        run_id,
        metrics=[
            Metric("acc", 0.5, T0, 0, model_id=model_id),
            Metric("acc", 0.9, T0 + 1, 1, model_id=model_id),
            Metric("loss", 0.2, T0, 0),
        ],
    )
    return {
        "run_id": run_id,
        "model_id": model_id,
        "model": client.get_logged_model(model_id),
        "run": client.get_run(run_id),
    }


@scenario
def model_run_inputs_and_outputs(client: MlflowClient) -> object:
    exp_id = client.create_experiment("models-io")
    run_id = client.create_run(exp_id, start_time=T0, run_name="r").info.run_id
    produced = client.create_logged_model(exp_id, name="out").model_id
    consumed = client.create_logged_model(exp_id, name="in").model_id
    client.log_outputs(run_id, [LoggedModelOutput(produced, step=3)])
    client.log_inputs(run_id, models=[LoggedModelInput(consumed)])
    return {"model_ids": [produced, consumed], "run": client.get_run(run_id)}


def _models_fixture(client: MlflowClient) -> tuple[list[str], list[str]]:
    first = client.create_experiment("search-models")
    second = client.create_experiment("search-models-2")
    ids = []
    models = [
        ("alpha", "0.1", "vision", True),
        ("beta", "0.01", "nlp", False),
        ("gamma", "0.1", "vision", True),
        ("delta", "0.5", "nlp", True),
    ]
    for i, (name, lr, team, ready) in enumerate(models):
        exp_id = second if i == 3 else first
        model_id = client.create_logged_model(
            exp_id, name=name, params={"lr": lr}, tags={"team": team}
        ).model_id
        if ready:
            client.finalize_logged_model(model_id, LoggedModelStatus.READY)
        ids.append(model_id)
    return [first, second], ids


def _model_names(found: object) -> object:
    if isinstance(found, list) and found[:1] == ["error"]:
        return found
    return [m.name for m in found]  # type: ignore[attr-defined]


@scenario
def model_search_filters(client: MlflowClient) -> object:
    exp_ids, ids = _models_fixture(client)
    first = exp_ids[:1]
    # Not compared, because the reference is wrong there: sqlite finds nothing for
    # "status = 'READY'" (it compares the string with an integer column) and answers an
    # unknown attribute ("nosuch = 'x'") with INTERNAL_ERROR.
    filters = [
        "name = 'alpha'",
        "name != 'alpha'",
        "name LIKE '%a'",
        "name ILIKE 'G%'",
        "params.lr = '0.1'",
        "tags.team = 'vision'",
        "tags.team != 'vision'",
        "name = 'alpha' AND params.lr = '0.1'",
        "metrics.acc > 0.5",
        "name = alpha",
        "name = 'a' OR name = 'b'",
    ]
    return {
        "experiment_ids": exp_ids,
        "model_ids": ids,
        "found": {
            f: _model_names(attempt(client.search_logged_models, first, f, order_by=_order("name")))
            for f in filters
        },
    }


@scenario
def model_search_order_and_paging(client: MlflowClient) -> object:
    exp_ids, ids = _models_fixture(client)
    return {
        "experiment_ids": exp_ids,
        "model_ids": ids,
        "name_desc": _model_names(
            client.search_logged_models(exp_ids, order_by=_order("name", False))
        ),
        "both_experiments": client.search_logged_models(exp_ids, order_by=_order("name")),
        "pages": all_pages(
            lambda token: client.search_logged_models(
                exp_ids, max_results=3, order_by=_order("name"), page_token=token
            )
        ),
        "bad_field": _model_names(
            attempt(client.search_logged_models, exp_ids, order_by=_order("nosuch"))
        ),
        "unknown_experiment": _model_names(attempt(client.search_logged_models, ["987654"])),
    }


# --- traces ----------------------------------------------------------------------------


@scenario
def traces_search_is_empty(client: MlflowClient) -> object:
    exp_id = client.create_experiment("traces")
    found = client.search_traces(locations=[exp_id])
    return {"count": len(found), "has_next_page": bool(found.token)}

"""Differential scenarios: search_runs (filter grammar, ordering, paging, view types, datasets)."""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType

from tests.tracking.harness import all_pages, attempt, scenario, slug

T0 = 1_000_000

# name, status, metrics, params, tags, datasets (name, digest, context)
_RUNS: list[tuple[str, str, dict[str, float], dict[str, str], dict[str, str], list[Any]]] = [
    (
        "r1",
        "FINISHED",
        {"loss": 0.5, "acc": 0.9, "my metric": 1.0},
        {"lr": "0.1", "opt": "adam", "model.depth": "3"},
        {"team": "vision", "priority": "high", "note key": "x"},
        [("ds_train", "d1", "training")],
    ),
    (
        "r2",
        "RUNNING",
        {"loss": 0.8, "acc": 0.7},
        {"lr": "0.01", "opt": "sgd"},
        {"team": "nlp"},
        [("ds_eval", "d2", "eval")],
    ),
    (
        "r3",
        "FAILED",
        {"loss": 0.5},
        {"lr": "0.1", "opt": "Adam"},
        {"team": "Vision"},
        [("ds_train", "d1", "eval")],
    ),
    ("r4", "FINISHED", {}, {"opt": "adamw"}, {}, []),
    (
        "r5",
        "KILLED",
        {"loss": -1.0, "acc": 1.0},
        {"lr": "0.001"},
        {"team": "vision", "priority": "low"},
        [],
    ),
]


def _dataset_input(name: str, digest: str, context: str) -> DatasetInput:
    dataset = Dataset(name=name, digest=digest, source_type="local", source=f"/data/{name}")
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def _populate(client: MlflowClient, exp_id: str, offset: int = 0) -> list[str]:
    ids = []
    for i, (name, status, metrics, params, tags, datasets) in enumerate(_RUNS, start=1):
        run_id = client.create_run(exp_id, start_time=T0 + offset + i, run_name=name).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, T0 + i, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if datasets:
            client.log_inputs(run_id, [_dataset_input(*d) for d in datasets])
        if status == "RUNNING":
            client.update_run(run_id, status="RUNNING")
        else:
            client.set_terminated(run_id, status=status, end_time=T0 + offset + 100 + i)
        ids.append(run_id)
    return ids


def _fixture(client: MlflowClient) -> tuple[str, list[str]]:
    """Five active runs r1..r5 and one deleted run r6 in one experiment."""
    exp_id = client.create_experiment("search")
    ids = _populate(client, exp_id)
    deleted = client.create_run(exp_id, start_time=T0 + 6, run_name="r6").info.run_id
    client.log_batch(deleted, metrics=[Metric("loss", 0.1, T0, 0)], tags=[RunTag("team", "vision")])
    client.delete_run(deleted)
    return exp_id, [*ids, deleted]


def _names(found: object) -> object:
    if isinstance(found, list) and found[:1] == ["error"]:
        return found
    return [run.info.run_name for run in found]  # type: ignore[attr-defined]


def _filter_case(filter_string: str) -> None:
    def run(client: MlflowClient) -> object:
        exp_id, ids = _fixture(client)
        return {
            "run_ids": ids,
            "found": _names(attempt(client.search_runs, [exp_id], filter_string)),
        }

    run.__name__ = f"search_runs_filter_{slug(filter_string) or 'empty'}"
    scenario(run)


def _order_case(order_by: list[str]) -> None:
    def run(client: MlflowClient) -> object:
        exp_id, ids = _fixture(client)
        return {
            "run_ids": ids,
            "found": _names(attempt(client.search_runs, [exp_id], order_by=order_by)),
        }

    run.__name__ = f"search_runs_order_{slug(' '.join(order_by))}"
    scenario(run)


_FILTERS = [
    "",
    # metrics
    "metrics.loss > 0.5",
    "metrics.loss >= 0.5",
    "metrics.loss < 0.5",
    "metrics.loss <= 0.5",
    "metrics.loss = 0.5",
    "metrics.loss != 0.5",
    "metrics.loss > -2",
    "metric.acc > 0.8",
    "metrics.`my metric` = 1",
    "metrics.loss >= 0.5 AND metrics.acc < 1",
    "metrics.loss = 5e-1",
    "metrics.nosuch > 0",
    # params
    "params.lr = '0.1'",
    "params.lr != '0.1'",
    "params.opt LIKE 'adam%'",
    "params.opt ILIKE 'adam%'",
    "params.opt LIKE '%am%'",
    "params.opt LIKE 'adam'",
    "params.opt IN ('adam', 'sgd')",
    "params.opt NOT IN ('adam')",
    "params.`model.depth` = '3'",
    "params.model.depth = '3'",
    'params.opt = "adam"',
    "params.lr IS NULL",
    "params.lr IS NOT NULL",
    "param.lr = '0.1' AND params.opt = 'Adam'",
    # tags
    "tags.team = 'vision'",
    "tags.team != 'vision'",
    "tags.team LIKE 'V%'",
    "tags.team ILIKE 'v%'",
    "tags.team IN ('vision', 'nlp')",
    "tags.`note key` = 'x'",
    "tags.priority IS NULL",
    "tags.priority IS NOT NULL",
    "tags.mlflow.runName = 'r3'",
    "tags.`mlflow.runName` LIKE 'r%'",
    "tags.team = 'vision' and params.opt = 'adam'",
    # attributes
    "attributes.status = 'FINISHED'",
    "status != 'FINISHED'",
    "attributes.status LIKE 'F%'",
    "attributes.status IN ('FINISHED', 'FAILED')",
    "attributes.run_name = 'r2'",
    "attributes.run_name LIKE 'r%'",
    "run_name ILIKE 'R1'",
    "attributes.run_name != 'r2'",
    "`Run name` = 'r1'",
    f"attributes.start_time > {T0 + 2}",
    f"start_time >= {T0 + 2}",
    f"start_time = {T0 + 3}",
    f"created < {T0 + 3}",
    f"attributes.end_time <= {T0 + 103}",
    "end_time > 0",
    "attributes.user_id != 'nobody'",
    # datasets
    "datasets.name = 'ds_train'",
    "datasets.digest = 'd2'",
    "datasets.context = 'eval'",
    "datasets.name IN ('ds_train', 'ds_eval')",
    "datasets.name = 'ds_train' AND datasets.context = 'training'",
    "datasets.name LIKE 'ds%'",
    "datasets.nosuch = 'x'",
    # malformed
    "metrics.loss >",
    "metrics.loss > 'a'",
    "params.lr = 0.1",
    "foo.bar = 'x'",
    "attributes.nosuch = 'x'",
    "metrics.loss > 1 OR metrics.loss < 0",
    "metrics.loss LIKE '%'",
    "params.opt < 'b'",
    "status IS NULL",
    "metrics.loss IS NULL",
    "params.lr",
    "params.lr = 'a' AND",
    "(metrics.loss > 0)",
    "metrics.loss > 0; metrics.acc > 0",
    "start_time > 'x'",
    "run_id IN ('a', 'b') AND run_id IN 'c'",
    "tags.team = 'unterminated",
]

for _filter in _FILTERS:
    _filter_case(_filter)

_ORDERS = [
    ["metrics.loss ASC"],
    ["metrics.loss DESC"],
    ["metrics.loss"],
    ["metrics.`my metric` DESC"],
    ["params.lr ASC"],
    ["params.lr DESC"],
    ["tags.team ASC"],
    ["tags.priority DESC"],
    ["attributes.run_name DESC"],
    ["start_time ASC"],
    ["attributes.end_time DESC"],
    ["status ASC"],
    ["created DESC"],
    ["metrics.loss ASC", "params.opt DESC"],
    ["params.lr DESC", "metrics.acc ASC"],
    ["metrics.nosuch ASC"],
    ["metrics.loss UP"],
    ["nosuch.x ASC"],
    ["attributes.nosuch"],
    ["metrics.loss ASC DESC"],
]

for _order in _ORDERS:
    _order_case(_order)


@scenario
def search_runs_returns_full_entities(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    return {"run_ids": ids, "found": client.search_runs([exp_id], "attributes.run_name = 'r1'")}


@scenario
def search_runs_by_run_id(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    quoted = ", ".join(f"'{i}'" for i in ids[1:3])
    return {
        "run_ids": ids,
        "in": _names(client.search_runs([exp_id], f"attributes.run_id IN ({quoted})")),
        "not_in": _names(client.search_runs([exp_id], f"run_id NOT IN ({quoted})")),
        "eq": _names(client.search_runs([exp_id], f"attributes.run_id = '{ids[3]}'")),
        "neq": _names(client.search_runs([exp_id], f"run_id != '{ids[3]}'")),
        "deleted": _names(client.search_runs([exp_id], f"run_id = '{ids[5]}'")),
    }


@scenario
def search_runs_view_types(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    return {
        "run_ids": ids,
        "active": _names(client.search_runs([exp_id], run_view_type=ViewType.ACTIVE_ONLY)),
        "deleted": _names(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)),
        "all": _names(client.search_runs([exp_id], run_view_type=ViewType.ALL)),
        "deleted_filtered": _names(
            client.search_runs(
                [exp_id], "tags.team = 'vision'", run_view_type=ViewType.DELETED_ONLY
            )
        ),
    }


@scenario
def search_runs_restored_run_is_active(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    client.restore_run(ids[5])
    client.delete_run(ids[0])
    return {
        "run_ids": ids,
        "active": _names(client.search_runs([exp_id])),
        "deleted": _names(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)),
    }


@scenario
def search_runs_pagination(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)

    def pages(max_results: int, **kwargs: Any) -> list[dict[str, object]]:
        return all_pages(
            lambda token: client.search_runs(
                [exp_id], max_results=max_results, page_token=token, **kwargs
            )
        )

    return {
        "run_ids": ids,
        "default_order_by_2": pages(2),
        "by_opt_1": pages(1, order_by=["params.opt ASC"]),
        "filtered_by_2": pages(2, filter_string="metrics.loss >= 0.5"),
        "all_view_by_3": pages(3, run_view_type=ViewType.ALL, order_by=["metrics.loss DESC"]),
        "exact_fit_5": pages(5),
    }


@scenario
def search_runs_bad_paging(client: MlflowClient) -> object:
    exp_id, _ = _fixture(client)
    return {
        "zero": _names(attempt(client.search_runs, [exp_id], max_results=0)),
        "too_many": _names(attempt(client.search_runs, [exp_id], max_results=50_001)),
        "max_allowed": len(client.search_runs([exp_id], max_results=50_000)),
        "bad_token": _names(attempt(client.search_runs, [exp_id], page_token="garbage")),
    }


@scenario
def search_runs_across_experiments(client: MlflowClient) -> object:
    first = client.create_experiment("first")
    second = client.create_experiment("second")
    ids = _populate(client, first) + _populate(client, second, offset=10)
    return {
        "run_ids": ids,
        "experiment_ids": [first, second],
        "both": [
            {"name": r.info.run_name, "experiment_id": r.info.experiment_id}
            for r in client.search_runs([first, second], "params.opt LIKE 'adam%'")
        ],
        "both_by_loss": [
            {"name": r.info.run_name, "experiment_id": r.info.experiment_id}
            for r in client.search_runs(
                [second, first], order_by=["metrics.loss DESC", "start_time ASC"]
            )
        ],
        "only_second": _names(client.search_runs([second], "tags.team = 'vision'")),
    }


@scenario
def search_runs_unknown_and_empty_experiments(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    empty = client.create_experiment("empty")
    return {
        "run_ids": ids,
        "empty_experiment": _names(client.search_runs([empty])),
        "unknown_experiment": _names(attempt(client.search_runs, ["987654"])),
        "no_experiments": _names(attempt(client.search_runs, [])),
        "with_unknown": _names(attempt(client.search_runs, [exp_id, "987654"])),
    }


@scenario
def search_runs_deleted_experiment(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    client.delete_experiment(exp_id)
    return {
        "run_ids": ids,
        "active": _names(attempt(client.search_runs, [exp_id])),
        "all": _names(attempt(client.search_runs, [exp_id], run_view_type=ViewType.ALL)),
    }


@scenario
def search_runs_sees_updates(client: MlflowClient) -> object:
    exp_id, ids = _fixture(client)
    client.log_metric(ids[3], "loss", 0.05, timestamp=T0, step=0)
    client.set_tag(ids[3], "team", "vision")
    client.delete_tag(ids[0], "team")
    client.update_run(ids[1], name="renamed")
    client.log_metric(ids[1], "loss", 0.01, timestamp=T0 + 50, step=9)
    return {
        "run_ids": ids,
        "vision": _names(client.search_runs([exp_id], "tags.team = 'vision'")),
        "low_loss": _names(client.search_runs([exp_id], "metrics.loss < 0.1")),
        "renamed": _names(client.search_runs([exp_id], "run_name = 'renamed'")),
        "old_name": _names(client.search_runs([exp_id], "run_name = 'r2'")),
    }

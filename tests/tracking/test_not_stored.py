"""No HTTP 500 for what the tracking store does not store: every MLflow method answers.

The methods come from MLflow itself (its ``AbstractStore`` and what its server calls),
so a method a new MLflow adds fails ``test_every_method_is_...`` by name until it is
implemented, answered in ``mlflow_plugin/tracking/not_stored.py``, or checked to work as
a base-class default and listed below. Each answered or inherited method is then called
on both schemes: it returns, or raises ``MlflowException`` (never another exception),
by its row's rule. Last, a real ``mlflow server`` on both schemes: every REST route
MLflow registers answers a minimal request with something other than a 5xx error,
features not stored answer 501 with a JSON body and their lists answer 200, empty.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.tracing.analysis import TraceFilterCorrelationResult

from mlflow_plugin.not_stored import answers
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint, mlflow_server
from tests.store_methods import call, mlflow_methods, origin

TRACKING_GETTER = "_get_tracking_store"

# Base-class defaults that work through the store's own methods (read in MLflow 3.17).
DEFAULTS_THAT_WORK = {
    "search_runs": "pages over our _search_runs",
    "log_batch_async": "MLflow's async queue over our log_batch",
    "log_metric_async": "MLflow's async queue over our log_batch",
    "log_param_async": "MLflow's async queue over our log_batch",
    "set_tag_async": "MLflow's async queue over our log_batch",
    "end_async_logging": "stops MLflow's async queue",
    "shut_down_async_logging": "stops MLflow's async queue",
    "log_spans_async": "our log_spans in a thread (traces not stored: NOT_IMPLEMENTED)",
    "get_metric_history_bulk_interval_from_steps": "filters our get_metric_history",
    "filter_active_experiment_ids": "our get_experiment per id",
    "list_scorers_across_experiments": "our list_scorers per experiment (empty)",
    "set_model_versions_tags": "our get_logged_model and set_logged_model_tags",
    "resolve_trace_archival_config": "returns the server's defaults, no storage",
}

# Arguments a placeholder would not fit (unannotated parameters, entities).
OVERRIDES: dict[str, object] = {
    "experiment_ids": ["0"],
    "run_view_type": ViewType.ALL,
    "max_results": 10,
    "steps": [0],
    "metrics": [Metric("loss", 1.0, 0, 0)],
    "params": [],
    "tags": [],
    "metric": Metric("loss", 1.0, 0, 0),
    "param": Param("lr", "0.1"),
    "tag": RunTag("team", "vision"),
}

TRACKING_METHODS = mlflow_methods(AbstractStore, TRACKING_GETTER)
ROWS = answers(BucketTrackingStore)


def test_every_method_is_implemented_answered_or_a_default_that_works() -> None:
    origins = {name: origin(BucketTrackingStore, name) for name in sorted(TRACKING_METHODS)}
    unknown = [
        name
        for name, where in origins.items()
        if where == "missing" or (where == "mlflow" and name not in DEFAULTS_THAT_WORK)
    ]
    assert not unknown, (
        f"MLflow {mlflow.__version__}'s tracking store methods {unknown} are neither "
        "implemented by BucketTrackingStore nor answered in "
        "mlflow_plugin/tracking/not_stored.py: add each to that table, or implement it"
    )
    # An entry the store has since implemented is harmless; a name MLflow lacks is a typo.
    typos = [name for name in DEFAULTS_THAT_WORK if name not in origins]
    assert not typos, f"not methods of MLflow's store: {typos}"
    strays = [name for name in ROWS if not hasattr(AbstractStore, name)]
    strays = [name for name in strays if name not in TRACKING_METHODS]
    assert not strays, f"table rows for methods MLflow does not have: {strays}"


@pytest.fixture(params=["bucket+file", "bucket+s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BucketTrackingStore]:
    if request.param == "bucket+file":
        uri = f"bucket+file://{tmp_path / 'root'}"
    else:
        moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
        uri = f"bucket+s3://{moto_s3.shared_bucket}/not-stored/{uuid.uuid4().hex}?endpoint_url={moto_s3.url}"
    opened = BucketTrackingStore(uri)
    yield opened
    opened.shut_down_async_logging()
    opened.close()


def _is_empty(value: Any) -> bool:
    if isinstance(value, PagedList):
        return list(value) == [] and value.token is None
    if isinstance(value, TraceFilterCorrelationResult):
        return value.total_count == 0
    return value in ([], ([], None), 0)


def test_each_method_answers_by_its_row_or_raises_only_mlflow_errors(
    store: BucketTrackingStore,
) -> None:
    wrong: list[str] = []
    for name in sorted(ROWS.keys() | DEFAULTS_THAT_WORK.keys()):
        outcome = call(store, name, AbstractStore, OVERRIDES)
        row = ROWS.get(name)
        if outcome.error is not None and outcome.mlflow_error_code is None:
            wrong.append(f"{name}: {outcome.error!r}")
        elif row is None:
            continue
        elif row.rule == "empty" and not (outcome.error is None and _is_empty(outcome.value)):
            wrong.append(f"{name}: not an empty answer: {outcome}")
        elif row.rule == "get" and outcome.mlflow_error_code != "RESOURCE_DOES_NOT_EXIST":
            wrong.append(f"{name}: not RESOURCE_DOES_NOT_EXIST: {outcome}")
        elif row.rule == "write" and outcome.mlflow_error_code != "NOT_IMPLEMENTED":
            wrong.append(f"{name}: not NOT_IMPLEMENTED: {outcome}")
        elif row.rule != "empty" and f"{row.kind.plural} are not stored" not in str(outcome.error):
            wrong.append(f"{name}: the message does not say what is not stored: {outcome}")
    assert wrong == []


def test_the_legacy_trace_api_answers_not_implemented(store: BucketTrackingStore) -> None:
    # Not in MLflow's base class at all: the server's call used to be an AttributeError.
    for name in ("deprecated_start_trace_v2", "deprecated_end_trace_v2"):
        outcome = call(store, name, AbstractStore, {"experiment_id": "0", "timestamp_ms": 1})
        assert outcome.mlflow_error_code == "NOT_IMPLEMENTED", (name, outcome)


# -- through a real mlflow server ------------------------------------------------------------

REQUEST_TIMEOUT = 30.0


@pytest.fixture(scope="module", params=["bucket+file", "bucket+s3"])
def server_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("not-stored-server")
    if request.param == "bucket+file":
        uri = f"bucket+file://{workdir / 'root'}"
    else:
        moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
        uri = f"bucket+s3://{moto_s3.shared_bucket}/not-stored-server/{uuid.uuid4().hex}?endpoint_url={moto_s3.url}"
    with mlflow_server(uri, workdir=workdir) as server:
        yield server.url


def _routes() -> list[tuple[str, str]]:
    from mlflow.server.handlers import get_endpoints

    # /ajax-api/ routes are the same handlers as /api/ ones; path variables get "x".
    return sorted(
        {
            (re.sub(r"<(?:\w+:)?\w+>", "x", path), method)
            for path, _, methods in get_endpoints()
            for method in methods
            if not path.startswith("/ajax-api/")
        }
    )


def _minimal_request(url: str, path: str, method: str) -> requests.Response:
    if path == "/graphql":  # no query is MLflow's own 500 (it parses None), on any store
        query = {"query": "query { __typename }"}
        return requests.request(method, url + path, json=query, timeout=REQUEST_TIMEOUT)
    if method == "GET":
        return requests.get(url + path, timeout=REQUEST_TIMEOUT)
    return requests.request(method, url + path, json={}, timeout=REQUEST_TIMEOUT)


def test_no_route_answers_a_server_error(server_url: str) -> None:
    routes = _routes()
    assert len(routes) > 150  # MLflow 3.17 registers about 200 (path, method) pairs
    failed = []
    for path, method in routes:
        response = _minimal_request(server_url, path, method)
        # 501: a feature not stored; 503: a feature this server runs without (workspaces).
        if response.status_code >= 500 and response.status_code not in (501, 503):
            failed.append(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
    assert failed == []


@pytest.mark.parametrize(
    ("path", "body", "kind"),
    [
        ("/api/3.0/mlflow/datasets/create", {"name": "evals"}, "Evaluation datasets"),
        (
            "/ajax-api/3.0/mlflow/scorers/register",
            {"experiment_id": "0", "name": "judge", "serialized_scorer": "{}"},
            "Scorers",
        ),
        (
            "/api/3.0/mlflow/gateway/secrets/create",
            {"secret_name": "openai", "secret_value": {"api_key": "k"}, "provider": "openai"},
            "AI gateway secrets",
        ),
        (
            "/api/3.0/mlflow/gateway/endpoints/create",
            {"name": "chat", "model_configs": []},
            "AI gateway endpoints",
        ),
        (
            "/api/3.0/mlflow/traces/tr-1/assessments",
            {
                "assessment": {
                    "assessment_name": "correct",
                    "trace_id": "tr-1",
                    "source": {"source_type": "HUMAN", "source_id": "reviewer"},
                    "feedback": {"value": True},
                }
            },
            "Trace assessments",
        ),
        ("/api/2.0/mlflow/traces", {"experiment_id": "0", "timestamp_ms": 1}, "Traces"),
    ],
)
def test_writes_of_kinds_not_stored_answer_501_with_a_json_body(
    server_url: str, path: str, body: dict[str, Any], kind: str
) -> None:
    response = requests.post(server_url + path, json=body, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 501, response.text
    answer = response.json()
    assert answer["error_code"] == "NOT_IMPLEMENTED"
    assert answer["message"].startswith(f"{kind} are not stored by the mlflow-bucket")


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    [
        ("POST", "/api/3.0/mlflow/datasets/search", {"experiment_ids": ["0"]}, "datasets"),
        ("GET", "/ajax-api/3.0/mlflow/scorers/list", {"experiment_id": "0"}, "scorers"),
        ("GET", "/api/3.0/mlflow/gateway/secrets/list", {}, "secrets"),
        ("GET", "/api/3.0/mlflow/gateway/endpoints/list", {}, "endpoints"),
        ("GET", "/api/3.0/mlflow/gateway/model-definitions/list", {}, "model_definitions"),
        ("GET", "/api/3.0/mlflow/datasets/d-1/records", {}, "records"),
    ],
)
def test_lists_of_kinds_not_stored_answer_200_empty(
    server_url: str, method: str, path: str, params: dict[str, Any], field: str
) -> None:
    if method == "GET":
        response = requests.get(server_url + path, params=params, timeout=REQUEST_TIMEOUT)
    else:
        response = requests.post(server_url + path, json=params, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json().get(field) in (None, [], "[]")


def test_the_review_page_gets_an_empty_unsaved_user_queue(store: BucketTrackingStore) -> None:
    queue = store.get_or_create_user_queue("0", user="alice")
    assert (queue.experiment_id, queue.name, queue.queue_type.value) == ("0", "alice", "user")
    assert (queue.created_by, queue.users) == ("alice", ["alice"])
    # The same queue at every call, and nothing stored for it or into it.
    assert store.get_or_create_user_queue("0", user="alice") == queue
    assert store.get_or_create_user_queue("0", user="bob").queue_id != queue.queue_id
    assert list(store.list_review_queue_items(queue.queue_id)) == []
    refused = call(store, "add_items_to_review_queue", AbstractStore, {"queue_id": queue.queue_id})
    assert refused.mlflow_error_code == "NOT_IMPLEMENTED"
    unknown = call(store, "get_or_create_user_queue", AbstractStore, {"experiment_id": "404"})
    assert unknown.mlflow_error_code == "RESOURCE_DOES_NOT_EXIST"
    odd = call(store, "get_or_create_user_queue", AbstractStore, {"user": "\udc80"})
    assert odd.mlflow_error_code == "INVALID_PARAMETER_VALUE"


def test_the_review_page_request_answers_200_through_the_server(server_url: str) -> None:
    # What MLflow's GenAI Review page sends on load (MLflow's SQL store answers it too).
    response = requests.post(
        server_url + "/ajax-api/3.0/mlflow/review-queues/get-or-create-user",
        json={"experiment_id": "0", "user": "default", "created_by": "default"},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.json()["review_queue"]["name"] == "default"

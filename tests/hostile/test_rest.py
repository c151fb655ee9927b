"""A subset of the corpus through a real ``mlflow server`` on each store, compared over HTTP.

Three servers run for the module: on ``sqlite:///`` (the reference), on ``bucket+file`` and
on ``bucket+s3`` (moto), each started once over a store filled by ``World.build``. Every
request goes to the reference and to a candidate. The candidate never answers a 5xx; where
the reference answers a 4xx, the candidate answers the same status and error code; where
the reference answers a 5xx (MLflow's SQL store choking on the input), the candidate answers
a 4xx. Every error body is MLflow's JSON error, never an HTML traceback.

Damaged objects are the exception: a run whose document was truncated in the bucket is a
server-side fault, answered 500 with MLflow's JSON error naming the object, while the healthy
run beside it still answers 200.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
import requests
from mlflow import MlflowClient

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import open_object_store
from tests.hostile.corpus import World, register
from tests.servers import S3Endpoint, mlflow_server
from tests.sqlite_reference import migrated_sqlite_uri

TIMEOUT = 30.0


@dataclass(frozen=True)
class RestCase:
    method: str
    path: str  # may name {run}, {experiment}, {model}
    payload: dict[str, Any]  # query parameters for GET, JSON body for POST
    # Where the reference's answer is an accident (see tests/hostile/inputs.py): ours.
    diverges: tuple[int, str | None] | None = None


def _token(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


_API = "/api/2.0/mlflow"
CASES: dict[str, RestCase] = {
    "runs_get_traversal": RestCase("GET", f"{_API}/runs/get", {"run_id": "../x"}),
    "runs_get_encoded": RestCase("GET", f"{_API}/runs/get", {"run_id": "%2e%2e%2f"}),
    "runs_get_10k_chars": RestCase("GET", f"{_API}/runs/get", {"run_id": "a" * 10_000}),
    "runs_get_empty": RestCase("GET", f"{_API}/runs/get", {"run_id": ""}),
    "runs_get_nul": RestCase("GET", f"{_API}/runs/get", {"run_id": "a\x00b"}),
    "experiments_get_traversal": RestCase(
        "GET", f"{_API}/experiments/get", {"experiment_id": "../1"}
    ),
    "experiments_get_huge": RestCase("GET", f"{_API}/experiments/get", {"experiment_id": "9" * 40}),
    "experiments_get_by_name_nul": RestCase(
        "GET", f"{_API}/experiments/get-by-name", {"experiment_name": "a\x00b"}
    ),
    "experiments_create_traversal": RestCase(
        "POST", f"{_API}/experiments/create", {"name": "../../etc/passwd"}
    ),
    "experiments_create_int_name": RestCase("POST", f"{_API}/experiments/create", {"name": 123}),
    "experiments_create_list_name": RestCase("POST", f"{_API}/experiments/create", {"name": ["a"]}),
    "experiments_create_no_name": RestCase("POST", f"{_API}/experiments/create", {}),
    "experiments_search_bad_filter": RestCase(
        "POST", f"{_API}/experiments/search", {"filter": "name = 'x", "max_results": 10}
    ),
    "experiments_search_garbage_token": RestCase(
        "POST", f"{_API}/experiments/search", {"page_token": "!!!!", "max_results": 10}
    ),
    "experiments_search_list_token": RestCase(
        "POST", f"{_API}/experiments/search", {"page_token": _token([1]), "max_results": 10}
    ),
    "experiments_search_huge_max_results": RestCase(
        "POST", f"{_API}/experiments/search", {"max_results": 10**9}
    ),
    "runs_search_bad_filter": RestCase(
        "POST", f"{_API}/runs/search", {"experiment_ids": ["{experiment}"], "filter": "metrics.x >"}
    ),
    "runs_search_injection": RestCase(
        "POST",
        f"{_API}/runs/search",
        {"experiment_ids": ["{experiment}"], "filter": "params.a = 'x'; DROP TABLE runs; --"},
    ),
    "runs_search_bad_order_by": RestCase(
        "POST", f"{_API}/runs/search", {"experiment_ids": ["{experiment}"], "order_by": ["a b c"]}
    ),
    "runs_search_negative_offset": RestCase(
        "POST",
        f"{_API}/runs/search",
        {"experiment_ids": ["{experiment}"], "page_token": _token({"offset": -1})},
        diverges=(400, "INVALID_PARAMETER_VALUE"),  # sqlite reads OFFSET -1 as none
    ),
    "runs_search_offset_object": RestCase(
        "POST",
        f"{_API}/runs/search",
        {"experiment_ids": ["{experiment}"], "page_token": _token({"offset": {"a": 1}})},
    ),
    "runs_search_experiment_ids_string": RestCase(
        "POST", f"{_API}/runs/search", {"experiment_ids": "{experiment}"}
    ),
    "runs_search_traversal_experiment": RestCase(
        "POST", f"{_API}/runs/search", {"experiment_ids": ["../1"]}
    ),
    "runs_log_metric_string_value": RestCase(
        "POST",
        f"{_API}/runs/log-metric",
        {"run_id": "{run}", "key": "m", "value": "abc", "timestamp": 1, "step": 0},
    ),
    "runs_log_metric_step_2_pow_64": RestCase(
        "POST",
        f"{_API}/runs/log-metric",
        {"run_id": "{run}", "key": "m", "value": 1.0, "timestamp": 1, "step": 2**64},
    ),
    "runs_log_metric_negative_timestamp": RestCase(
        "POST",
        f"{_API}/runs/log-metric",
        {"run_id": "{run}", "key": "m", "value": 1.0, "timestamp": -1, "step": 0},
    ),
    "runs_log_metric_traversal_key": RestCase(
        "POST",
        f"{_API}/runs/log-metric",
        {"run_id": "{run}", "key": "../../x", "value": 1.0, "timestamp": 1, "step": 0},
    ),
    "runs_log_parameter_nul_key": RestCase(
        "POST", f"{_API}/runs/log-parameter", {"run_id": "{run}", "key": "a\x00b", "value": "v"}
    ),
    "runs_set_tag_traversal_run": RestCase(
        "POST", f"{_API}/runs/set-tag", {"run_id": "../x", "key": "k", "value": "v"}
    ),
    "runs_log_batch_traversal_run": RestCase(
        "POST", f"{_API}/runs/log-batch", {"run_id": "../../x", "params": [{"key": "a"}]}
    ),
    "metrics_history_traversal_key": RestCase(
        "GET", f"{_API}/metrics/get-history", {"run_id": "{run}", "metric_key": "../x"}
    ),
    "metrics_history_traversal_run": RestCase(
        "GET", f"{_API}/metrics/get-history", {"run_id": "../x", "metric_key": "m"}
    ),
    "metrics_history_garbage_token": RestCase(
        "GET",
        f"{_API}/metrics/get-history",
        {"run_id": "{run}", "metric_key": "m", "page_token": "é漢", "max_results": 1},
    ),
    "metrics_bulk_interval_traversal": RestCase(
        "GET",
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        {"run_ids": "../x", "metric_key": "m", "max_results": 10},
    ),
    "artifacts_list_parent": RestCase(
        "GET", f"{_API}/artifacts/list", {"run_id": "{run}", "path": "../.."}
    ),
    "artifacts_list_absolute": RestCase(
        "GET", f"{_API}/artifacts/list", {"run_id": "{run}", "path": "/etc"}
    ),
    "get_artifact_parent": RestCase(
        "GET", "/get-artifact", {"run_id": "{run}", "path": "../../../_format.json"}
    ),
    "get_artifact_absolute": RestCase(
        "GET", "/get-artifact", {"run_id": "{run}", "path": "/etc/passwd"}
    ),
    "registered_models_create_traversal": RestCase(
        "POST", f"{_API}/registered-models/create", {"name": "../x"}
    ),
    "registered_models_get_traversal": RestCase(
        "GET", f"{_API}/registered-models/get", {"name": "../../registry"}
    ),
    "registered_models_search_bad_filter": RestCase(
        "GET", f"{_API}/registered-models/search", {"filter": "name LIKE"}
    ),
    "registered_models_search_list_token": RestCase(
        "GET", f"{_API}/registered-models/search", {"page_token": _token([1])}
    ),
    "model_versions_get_traversal": RestCase(
        "GET", f"{_API}/model-versions/get", {"name": "{model}", "version": "../1"}
    ),
    "model_versions_get_word": RestCase(
        "GET", f"{_API}/model-versions/get", {"name": "{model}", "version": "abc"}
    ),
    "model_versions_search_bad_filter": RestCase(
        "GET", f"{_API}/model-versions/search", {"filter": "run_id IN ()"}
    ),
    "logged_models_search_unknown_attribute": RestCase(
        "POST",
        f"{_API}/logged-models/search",
        {"experiment_ids": ["{experiment}"], "filter": "attributes.bogus = 1"},
    ),
    "logged_models_search_garbage_token": RestCase(
        "POST",
        f"{_API}/logged-models/search",
        {"experiment_ids": ["{experiment}"], "page_token": "Zm9v"},
    ),
    "logged_models_get_encoded_traversal": RestCase(
        "GET", f"{_API}/logged-models/%2e%2e%2f%2e%2e%2fx", {}
    ),
    "logged_models_get_dotdot_id": RestCase("GET", f"{_API}/logged-models/m-%2e%2e", {}),
}
CANDIDATES = ("bucket_file", "bucket_s3")
for _name in CASES:
    for _backend in CANDIDATES:
        register(f"rest_{_name}__{_backend}", "REST endpoints")
for _backend in CANDIDATES:
    register(f"rest_damaged_run_document__{_backend}", "REST endpoints")


@dataclass
class Server:
    url: str
    world: World
    damaged_key: str | None = None  # a run document planted truncated, bucket stores only
    damaged_run: str | None = None

    def send(self, case: RestCase) -> requests.Response:
        names = {
            "{run}": self.world.run_id,
            "{experiment}": self.world.experiment_id,
            "{model}": self.world.model_name,
        }

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                for placeholder, actual in names.items():
                    value = value.replace(placeholder, actual)
                return value
            if isinstance(value, list):
                return [fill(item) for item in value]
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        payload = fill(case.payload)
        url = self.url + case.path
        if case.method == "GET":
            return requests.get(url, params=payload, timeout=TIMEOUT)
        return requests.post(url, json=payload, timeout=TIMEOUT)


def _damage(uri: str, world: World) -> tuple[str, str]:
    """A second run whose document is then truncated in the store: (its id, its key)."""
    run_id = world.client.create_run(world.experiment_id, run_name="damaged").info.run_id
    world.client._tracking_client.store.flush()
    key = keys.run_key(world.experiment_id, run_id)
    store = open_object_store(uri)
    store.put(key, store.get(key).data[:40])
    return run_id, key


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, moto_s3: S3Endpoint
) -> Iterator[dict[str, Server]]:
    folder = tmp_path_factory.mktemp("hostile-rest")
    uris = {
        "sqlite": migrated_sqlite_uri(folder / "reference.db"),
        "bucket_file": f"bucket+file://{folder}/root",
        "bucket_s3": f"bucket+s3://{moto_s3.shared_bucket}/hostile-rest/{uuid4().hex}"
        f"?endpoint_url={moto_s3.url}",
    }
    found: dict[str, Server] = {}
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the sqlite store's default artifact root is ./mlruns
        for backend, uri in uris.items():
            world = World.build(MlflowClient(tracking_uri=uri, registry_uri=uri))
            assert world.model_name and world.logged_model_id
            server = Server("", world)
            if backend != "sqlite":
                server.damaged_run, server.damaged_key = _damage(uri, world)
            store = world.client._tracking_client.store
            if hasattr(store, "flush"):
                store.flush()  # the server is another process: it must see everything
            workdir = folder / f"server-{backend}"
            workdir.mkdir()
            server.url = stack.enter_context(mlflow_server(uri, workdir=workdir)).url
            found[backend] = server
        yield found


NOT_JSON = "(not MLflow's JSON error)"


def _answer(response: requests.Response) -> tuple[int, str | None]:
    """(status, MLflow error code, or NOT_JSON for an error body that is not MLflow's)."""
    if response.status_code < 400:
        return response.status_code, None
    try:
        return response.status_code, response.json().get("error_code")
    except ValueError:
        return response.status_code, NOT_JSON


_references: dict[str, tuple[int, str | None]] = {}


def _reference(name: str, servers: dict[str, Server]) -> tuple[int, str | None]:
    """sqlite's answer, asked once per case: a second create would find the first's result."""
    if name not in _references:
        _references[name] = _answer(servers["sqlite"].send(CASES[name]))
    return _references[name]


@pytest.mark.parametrize("backend", CANDIDATES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_rest_case(name: str, backend: str, servers: dict[str, Server]) -> None:
    case = CASES[name]
    reference_status, reference_code = _reference(name, servers)
    answer = servers[backend].send(case)
    status, code = _answer(answer)
    assert status < 500, f"{name}: {backend} answered {status}: {answer.text[:1000]}"
    if case.diverges is not None:
        assert (status, code) == case.diverges, f"{name}: {backend} {status} {code}"
        return
    if reference_status >= 500:
        assert 400 <= status < 500 and code != NOT_JSON, f"{name}: {backend} answered {status}"
        return
    # A body that is not MLflow's JSON only where the reference's is not either (a URL
    # Flask's router does not match, before any store is asked).
    assert (status, code) == (reference_status, reference_code), (
        f"{name}: sqlite {reference_status} {reference_code}, {backend} {status} {code}: "
        f"{answer.text[:500]}"
    )


@pytest.mark.parametrize("backend", CANDIDATES)
def test_rest_damaged_run_document(backend: str, servers: dict[str, Server]) -> None:
    server = servers[backend]
    assert server.damaged_run and server.damaged_key
    damaged = requests.get(
        f"{server.url}{_API}/runs/get", params={"run_id": server.damaged_run}, timeout=TIMEOUT
    )
    status, code = _answer(damaged)
    assert (status, code) == (500, "INTERNAL_ERROR")
    assert server.damaged_key in damaged.json()["message"]
    healthy = requests.get(
        f"{server.url}{_API}/runs/get", params={"run_id": server.world.run_id}, timeout=TIMEOUT
    )
    assert healthy.status_code == 200
    assert healthy.json()["run"]["data"]["params"] == [{"key": "p", "value": "1"}]

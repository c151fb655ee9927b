"""``mlflow server`` on a bucket store, started as a real subprocess, answers the UI's requests.

A store is filled in-process through ``MlflowClient`` (experiment, run with params, tags,
a 50-step metric, an artifact, a dataset input and a logged model); then
``mlflow server --backend-store-uri <that store>`` runs in a subprocess and each REST
endpoint the UI calls is checked for a 2xx answer *and* the content we logged.
MLflow's own SQLite store runs the same checks as a reference.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.data import from_pandas
from mlflow.entities import (
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
)
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from tests.servers import S3Endpoint, mlflow_server
from tests.sqlite_reference import migrated_sqlite_uri

STEPS = 50
ARTIFACT_PATH = "notes/readme.txt"
ARTIFACT_TEXT = "hello from the bucket store\n"
PARAMS = {"lr": "0.01", "optimizer": "adam"}
TAGS = {"team": "vision", "delete_me": "soon"}
DATASET_NAME = "iris-sample"
MODEL_NAME = "tiny-net"
SERVER_START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0

# What the 3.17 UI sends for the run page (query text from mlflow/server/js/build, with
# the client-only @component directive dropped).
GET_RUN_QUERY = """
query GetRun($data: MlflowGetRunInput!) {
  mlflowGetRun(input: $data) {
    apiError { helpUrl code message }
    run {
      info {
        runName status runUuid experimentId artifactUri endTime lifecycleStage startTime userId
      }
      experiment {
        experimentId name tags { key value } artifactLocation lifecycleStage lastUpdateTime
      }
      modelVersions { status version name source }
      data {
        metrics { key value step timestamp }
        params { key value }
        tags { key value }
      }
      inputs {
        datasetInputs {
          dataset { digest name profile schema source sourceType }
          tags { key value }
        }
        modelInputs { modelId }
      }
      outputs { modelOutputs { modelId step } }
    }
  }
}
"""


@dataclass(frozen=True)
class Logged:
    """What the in-process client logged, for the assertions to compare against."""

    experiment_name: str
    experiment_id: str
    run_id: str
    model_id: str
    dataset_digest: str


@dataclass(frozen=True)
class Server:
    url: str
    logged: Logged

    def get(self, endpoint: str, /, **params: Any) -> requests.Response:
        return _checked(requests.get(self.url + endpoint, params=params, timeout=REQUEST_TIMEOUT))

    def post(self, endpoint: str, body: dict[str, Any]) -> requests.Response:
        return _checked(requests.post(self.url + endpoint, json=body, timeout=REQUEST_TIMEOUT))


def _checked(response: requests.Response) -> requests.Response:
    assert 200 <= response.status_code < 300, (
        f"{response.request.method} {response.url} -> {response.status_code}: "
        f"{response.text[:2000]}"
    )
    return response


@pytest.fixture(scope="module", params=["bucket+file", "bucket+s3", "sqlite"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("server-store")
    if request.param == "bucket+file":
        return f"bucket+file://{root}/root"
    if request.param == "bucket+s3":
        moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
        prefix = f"server/{uuid.uuid4().hex}"
        return f"bucket+s3://{moto_s3.shared_bucket}/{prefix}?endpoint_url={moto_s3.url}"
    return migrated_sqlite_uri(root / "mlflow.db")


def _fill_store(tracking_uri: str, scratch: Path) -> Logged:
    client = MlflowClient(tracking_uri=tracking_uri)
    name = f"server-endpoints-{uuid.uuid4().hex[:8]}"
    # SQLite has no artifact root of its own; the bucket stores default to <root>/artifacts/<id>.
    artifact_location = (
        (scratch / "artifacts").as_uri() if tracking_uri.startswith("sqlite") else None
    )
    experiment_id = client.create_experiment(name, artifact_location=artifact_location)
    run = client.create_run(experiment_id, run_name="server-check")
    run_id = run.info.run_id

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric("loss", 1.0 / (step + 1), now + step, step) for step in range(STEPS)],
        params=[Param(key, value) for key, value in PARAMS.items()],
        tags=[RunTag(key, value) for key, value in TAGS.items()],
    )
    client.log_text(run_id, ARTIFACT_TEXT, ARTIFACT_PATH)

    frame = pd.DataFrame({"x": np.arange(5.0), "y": np.arange(5.0) % 2})
    dataset = from_pandas(frame, name=DATASET_NAME)._to_mlflow_entity()
    client.log_inputs(
        run_id, [DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])]
    )

    model = client.create_logged_model(
        experiment_id, name=MODEL_NAME, source_run_id=run_id, params={"hidden": "8"}
    )
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    # Ending the run flushes buffered metrics: the server is another process.
    client.set_terminated(run_id)
    return Logged(name, experiment_id, run_id, model.model_id, dataset.digest)


@pytest.fixture(scope="module")
def server(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("server")
    logged = _fill_store(tracking_uri, workdir)
    with mlflow_server(tracking_uri, workdir=workdir, timeout=SERVER_START_TIMEOUT) as running:
        yield Server(running.url, logged)


def _tags(entity: dict[str, Any]) -> dict[str, str]:
    return {tag["key"]: tag.get("value", "") for tag in entity.get("tags", [])}


def test_experiments_search_lists_the_experiment(server: Server) -> None:
    body = server.post(
        "/ajax-api/2.0/mlflow/experiments/search",
        {"max_results": 100, "order_by": ["last_update_time DESC"], "view_type": "ACTIVE_ONLY"},
    ).json()
    names = {experiment["name"]: experiment["experiment_id"] for experiment in body["experiments"]}
    assert names.get(server.logged.experiment_name) == server.logged.experiment_id


def test_experiments_get_returns_the_experiment(server: Server) -> None:
    body = server.get(
        "/ajax-api/2.0/mlflow/experiments/get", experiment_id=server.logged.experiment_id
    ).json()
    assert body["experiment"]["name"] == server.logged.experiment_name
    assert body["experiment"]["lifecycle_stage"] == "active"


def test_runs_search_finds_the_run_with_its_data(server: Server) -> None:
    body = server.post(
        "/ajax-api/2.0/mlflow/runs/search",
        {
            "experiment_ids": [server.logged.experiment_id],
            "filter": "params.optimizer = 'adam' and metrics.loss < 1",
            "run_view_type": "ACTIVE_ONLY",
            "max_results": 100,
            "order_by": ["attributes.start_time DESC"],
        },
    ).json()
    assert [run["info"]["run_id"] for run in body["runs"]] == [server.logged.run_id]
    metrics = {metric["key"]: metric for metric in body["runs"][0]["data"]["metrics"]}
    assert metrics["loss"]["step"] == STEPS - 1


def test_runs_get_returns_params_tags_metrics_and_inputs(server: Server) -> None:
    run = server.get("/ajax-api/2.0/mlflow/runs/get", run_id=server.logged.run_id).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    params = {param["key"]: param["value"] for param in run["data"]["params"]}
    assert params == PARAMS
    assert _tags(run["data"]).items() >= TAGS.items()
    [loss] = run["data"]["metrics"]
    assert (loss["key"], loss["step"]) == ("loss", STEPS - 1)
    assert loss["value"] == pytest.approx(1.0 / STEPS)
    [dataset_input] = run["inputs"]["dataset_inputs"]
    assert dataset_input["dataset"]["name"] == DATASET_NAME
    assert dataset_input["dataset"]["digest"] == server.logged.dataset_digest
    assert [output["model_id"] for output in run["outputs"]["model_outputs"]] == [
        server.logged.model_id
    ]


def test_metrics_get_history_returns_every_step(server: Server) -> None:
    body = server.get(
        "/ajax-api/2.0/mlflow/metrics/get-history",
        run_uuid=server.logged.run_id,
        metric_key="loss",
    ).json()
    points = body["metrics"]
    assert sorted(point["step"] for point in points) == list(range(STEPS))
    by_step = {point["step"]: point["value"] for point in points}
    assert by_step[0] == pytest.approx(1.0)
    assert by_step[STEPS - 1] == pytest.approx(1.0 / STEPS)


def test_metrics_get_history_bulk_interval_samples_the_history(server: Server) -> None:
    # The UI's chart request: run_ids repeated, max_results a sample size.
    body = server.get(
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        run_ids=[server.logged.run_id],
        metric_key="loss",
        max_results=10,
    ).json()
    points = body["metrics"]
    assert {point["run_id"] for point in points} == {server.logged.run_id}
    steps = sorted(point["step"] for point in points)
    assert 2 <= len(steps) <= STEPS
    # MLflow's sampling always keeps the first and last step.
    assert steps[0] == 0
    assert steps[-1] == STEPS - 1


def test_metrics_get_history_bulk_interval_within_a_step_range(server: Server) -> None:
    body = server.get(
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        run_ids=[server.logged.run_id],
        metric_key="loss",
        max_results=100,
        start_step=10,
        end_step=19,
    ).json()
    assert sorted(point["step"] for point in body["metrics"]) == list(range(10, 20))


def test_artifacts_list_shows_the_text_file(server: Server) -> None:
    root = server.get("/ajax-api/2.0/mlflow/artifacts/list", run_id=server.logged.run_id).json()
    assert {"path": "notes", "is_dir": True} in [
        {"path": entry["path"], "is_dir": entry.get("is_dir", False)} for entry in root["files"]
    ]
    notes = server.get(
        "/ajax-api/2.0/mlflow/artifacts/list", run_id=server.logged.run_id, path="notes"
    ).json()
    [entry] = notes["files"]
    assert entry["path"] == ARTIFACT_PATH
    assert int(entry["file_size"]) == len(ARTIFACT_TEXT.encode())


def test_get_artifact_returns_the_file_bytes(server: Server) -> None:
    response = server.get("/get-artifact", path=ARTIFACT_PATH, run_uuid=server.logged.run_id)
    assert response.content == ARTIFACT_TEXT.encode()


def test_experiments_search_datasets_returns_the_dataset(server: Server) -> None:
    body = server.post(
        "/ajax-api/2.0/mlflow/experiments/search-datasets",
        {"experiment_ids": [server.logged.experiment_id]},
    ).json()
    summaries = [
        (summary["experiment_id"], summary["name"], summary["digest"], summary.get("context"))
        for summary in body["dataset_summaries"]
    ]
    assert summaries == [
        (server.logged.experiment_id, DATASET_NAME, server.logged.dataset_digest, "training")
    ]


def test_logged_models_search_returns_the_model(server: Server) -> None:
    body = server.post(
        "/ajax-api/2.0/mlflow/logged-models/search",
        {
            "experiment_ids": [server.logged.experiment_id],
            "order_by": [{"field_name": "creation_time", "ascending": False}],
            "max_results": 50,
        },
    ).json()
    [model] = body["models"]
    assert model["info"]["model_id"] == server.logged.model_id
    assert model["info"]["name"] == MODEL_NAME
    assert model["info"]["source_run_id"] == server.logged.run_id
    assert model["info"]["status"] == "LOGGED_MODEL_READY"
    assert {param["key"]: param["value"] for param in model["data"]["params"]} == {"hidden": "8"}


def test_logged_models_get_returns_the_model(server: Server) -> None:
    body = server.get(f"/ajax-api/2.0/mlflow/logged-models/{server.logged.model_id}").json()
    assert body["model"]["info"]["name"] == MODEL_NAME


def test_traces_search_is_empty(server: Server) -> None:
    # The 3.17 UI's traces tab: POST ajax-api/3.0/mlflow/traces/search with locations.
    body = server.post(
        "/ajax-api/3.0/mlflow/traces/search",
        {
            "locations": [
                {
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": server.logged.experiment_id},
                }
            ],
            "filter": "",
            "max_results": 100,
            "order_by": ["timestamp_ms DESC"],
        },
    ).json()
    assert body.get("traces", []) == []
    assert not body.get("next_page_token")


def test_traces_search_v2_is_empty(server: Server) -> None:
    body = server.get(
        "/ajax-api/2.0/mlflow/traces",
        experiment_ids=[server.logged.experiment_id],
        max_results=100,
    ).json()
    assert body.get("traces", []) == []


def test_runs_delete_tag_removes_the_tag(server: Server) -> None:
    server.post(
        "/ajax-api/2.0/mlflow/runs/delete-tag", {"run_id": server.logged.run_id, "key": "delete_me"}
    )
    run = server.get("/ajax-api/2.0/mlflow/runs/get", run_id=server.logged.run_id).json()["run"]
    tags = _tags(run["data"])
    assert "delete_me" not in tags
    assert tags["team"] == "vision"


def test_graphql_get_run_returns_the_run_page(server: Server) -> None:
    body = server.post(
        "/graphql",
        {
            "query": GET_RUN_QUERY,
            "operationName": "GetRun",
            "variables": {"data": {"runId": server.logged.run_id}},
        },
    ).json()
    assert body["errors"] is None, body["errors"]
    result = body["data"]["mlflowGetRun"]
    assert result["apiError"] is None
    run = result["run"]
    assert run["info"]["runUuid"] == server.logged.run_id
    assert run["info"]["status"] == "FINISHED"
    assert run["experiment"]["name"] == server.logged.experiment_name
    assert {param["key"]: param["value"] for param in run["data"]["params"]} == PARAMS
    # GraphQL's LongString sends int64 fields as strings.
    assert [(metric["key"], metric["step"]) for metric in run["data"]["metrics"]] == [
        ("loss", str(STEPS - 1))
    ]
    assert [item["dataset"]["name"] for item in run["inputs"]["datasetInputs"]] == [DATASET_NAME]
    assert [output["modelId"] for output in run["outputs"]["modelOutputs"]] == [
        server.logged.model_id
    ]
    assert run["modelVersions"] == []

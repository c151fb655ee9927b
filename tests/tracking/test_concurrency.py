"""Several threads and processes writing one run, and racing to create one experiment name.

Nothing may be lost: every metric point, tag and param arrives exactly once, and
exactly one experiment exists per name. Runs on bucket+file and on moto's S3.
"""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from tests.processes import SPAWN, run_in_processes
from tests.servers import S3Endpoint


@pytest.fixture(params=["file", "moto"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{endpoint.shared_bucket}/concurrency/{uuid.uuid4().hex}?endpoint_url={endpoint.url}"


def _log_from_process(uri: str, run_id: str, worker: int, steps: int) -> None:
    client = MlflowClient(uri)
    for step in range(steps):
        client.log_batch(
            run_id,
            metrics=[Metric(f"proc{worker}", float(step), 1000 + step, step)],
            tags=[RunTag(f"proc{worker}.step{step}", "x")] if step % 5 == 0 else [],
        )
    client.log_param(run_id, f"param{worker}", str(worker))


def _log_from_threads_in_process(uri: str, run_id: str, worker: int, threads: int) -> None:
    client = MlflowClient(uri)

    def log(thread: int) -> None:
        for step in range(20):
            client.log_batch(
                run_id,
                metrics=[Metric(f"p{worker}t{thread}", float(step), 1000 + step, step)],
                tags=[RunTag(f"p{worker}t{thread}", str(step))],
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(log, range(threads)))


def _create_experiment_in_process(uri: str, name: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        results.put(("created", MlflowClient(uri).create_experiment(name)))
    except MlflowException as exc:
        results.put(("refused", exc.error_code))


def test_threads_logging_one_run_lose_nothing(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment("threads"))
    run_id = run.info.run_id
    threads, batches = 8, 12

    def work(worker: int) -> None:
        for batch in range(batches):
            client.log_batch(
                run_id,
                metrics=[
                    Metric("shared", float(worker * 100 + batch), 1, worker * 100 + batch),
                    Metric(f"t{worker}", float(batch), 2, batch),
                ],
                params=[Param(f"p{worker}.{batch}", str(batch))],
                tags=[RunTag(f"tag{worker}", str(batch))],
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))

    data = client.get_run(run_id).data
    assert len(client.get_metric_history(run_id, "shared")) == threads * batches
    for worker in range(threads):
        history = client.get_metric_history(run_id, f"t{worker}")
        assert sorted(m.step for m in history) == list(range(batches))
        assert data.tags[f"tag{worker}"] in {str(b) for b in range(batches)}
    assert len(data.params) == threads * batches
    assert data.metrics["shared"] == float((threads - 1) * 100 + batches - 1)  # max step wins


def test_processes_logging_one_run_lose_nothing(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("processes")).info.run_id
    workers, steps = 4, 25
    run_in_processes(
        _log_from_process, [(tracking_uri, run_id, w, steps) for w in range(workers)], timeout=180
    )

    run = MlflowClient(tracking_uri).get_run(run_id)
    for worker in range(workers):
        history = client.get_metric_history(run_id, f"proc{worker}")
        assert [m.step for m in history] == list(range(steps))
        assert run.data.params[f"param{worker}"] == str(worker)
        assert all(f"proc{worker}.step{s}" in run.data.tags for s in range(0, steps, 5))


def test_racing_processes_create_exactly_one_experiment(tracking_uri: str) -> None:
    MlflowClient(tracking_uri).search_experiments()  # initialise the root once, up front
    name = f"race-{uuid.uuid4().hex[:8]}"
    results = SPAWN.Queue()
    racers = 6
    run_in_processes(
        _create_experiment_in_process, [(tracking_uri, name, results)] * racers, timeout=180
    )
    outcomes = [results.get(timeout=10) for _ in range(racers)]
    created = [value for kind, value in outcomes if kind == "created"]
    assert len(created) == 1, outcomes
    refused = [value for kind, value in outcomes if kind == "refused"]
    assert refused == ["RESOURCE_ALREADY_EXISTS"] * 5
    experiment = MlflowClient(tracking_uri).get_experiment_by_name(name)
    assert experiment is not None and experiment.experiment_id == created[0]
    # Listed by a reader that looks at the bucket now: the racers' writes are only due
    # in this process's index within its staleness bound.
    listing = f"{tracking_uri}{'&' if '?' in tracking_uri else '?'}index_staleness=0"
    names = [e.name for e in MlflowClient(listing).search_experiments()]
    assert names.count(name) == 1


def test_async_logging_loses_nothing(tracking_uri: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment("async")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        for step in range(60):
            mlflow.log_metrics({"a": float(step), "b": -float(step)}, step=step, synchronous=False)
            if step % 10 == 0:
                mlflow.set_tag(f"t{step}", "v", synchronous=False)
        mlflow.log_param("p", "1", synchronous=False)
    client = MlflowClient(tracking_uri)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "a")] == list(range(60))
    data = client.get_run(run.info.run_id).data
    assert data.metrics == {"a": 59.0, "b": -59.0}
    assert {f"t{s}" for s in range(0, 60, 10)} <= set(data.tags)
    assert data.params == {"p": "1"}


def test_two_processes_of_eight_threads_lose_nothing(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("ranks")).info.run_id
    run_in_processes(
        _log_from_threads_in_process, [(tracking_uri, run_id, w, 8) for w in range(2)], timeout=180
    )
    run = client.get_run(run_id)
    for worker in range(2):
        for thread in range(8):
            key = f"p{worker}t{thread}"
            assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(20))
            assert run.data.tags[key] == "19"

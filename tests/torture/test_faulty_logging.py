"""Processes of threads log through an endpoint that fails a fifth of all requests.

MLflow's async logging is on (``MLFLOW_ENABLE_ASYNC_LOGGING=true``), so several logging
threads per process call ``log_batch`` concurrently. Every thread logs metrics, params
and tags to one run shared by all processes and to its process's own run. The proxy
answers 500 / 503 / SlowDown, resets connections, delays answers and, the nasty case,
applies writes and then loses their answers. Read back directly from the endpoint,
every point, param and tag must be stored exactly once.
"""

from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.faults.proxy import FaultPolicy
from tests.processes import SPAWN
from tests.torture.conftest import FaultyRoot
from tests.torture.figures import Figures, Point, compare_points, record, size, stored_points

pytestmark = pytest.mark.torture

PROCESSES = size(2, 16)
THREADS = 4
STEPS = size(30, 300)
PARAM_EVERY = size(10, 50)
TAG_EVERY = size(5, 10)
FAULT_RATE = 0.2


def _key(worker: int, thread: int) -> str:
    return f"w{worker}t{thread}"


def _points(worker: int, thread: int) -> set[Point]:
    key = _key(worker, thread)
    return {(key, step, 1_000_000 + step, step / 7) for step in range(STEPS)}


def _params(worker: int, thread: int) -> dict[str, str]:
    key = _key(worker, thread)
    return {f"{key}.p{step}": str(step) for step in range(0, STEPS, PARAM_EVERY)}


def _tags(worker: int, thread: int) -> dict[str, str]:
    key = _key(worker, thread)
    return {f"{key}.t{step}": str(step) for step in range(0, STEPS, TAG_EVERY)}


def _train(uri: str, experiment_id: str, shared_run_id: str, worker: int, results: Any) -> None:
    """One training process: THREADS threads logging asynchronously to two runs."""
    try:
        os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"
        import mlflow

        mlflow.config.enable_async_logging(True)
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        own_run_id = client.create_run(experiment_id, run_name=f"worker-{worker}").info.run_id

        def log(thread: int) -> list[Any]:
            key, operations = _key(worker, thread), []
            for step in range(STEPS):
                metrics = [Metric(key, step / 7, 1_000_000 + step, step)]
                params = [Param(f"{key}.p{step}", str(step))] if step % PARAM_EVERY == 0 else []
                tags = [RunTag(f"{key}.t{step}", str(step))] if step % TAG_EVERY == 0 else []
                for run_id in (shared_run_id, own_run_id):
                    operations.append(
                        client.log_batch(run_id, metrics, params, tags, synchronous=False)
                    )
            return operations

        with ThreadPoolExecutor(THREADS) as pool:
            operations = [op for ops in pool.map(log, range(THREADS)) for op in ops]
        for operation in operations:
            operation.wait()  # an async logging failure is raised here
        mlflow.flush_async_logging()
        client.set_terminated(own_run_id)
        results.put((worker, own_run_id, None))
    except BaseException:
        results.put((worker, None, traceback.format_exc()))


@pytest.mark.timeout(size(300, 3600))
def test_async_logging_from_processes_of_threads_through_faults(faulty_root: FaultyRoot) -> None:
    started = time.monotonic()
    setup = MlflowClient(faulty_root.direct_uri)
    experiment_id = setup.create_experiment("faulty-logging")
    shared_run_id = setup.create_run(experiment_id, run_name="shared").info.run_id
    faulty_root.proxy.set_policy(FaultPolicy(rate=FAULT_RATE, seed=20))

    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(
            target=_train, args=(faulty_root.uri, experiment_id, shared_run_id, w, results)
        )
        for w in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=size(240, 3000)) for _ in workers]
    for process in workers:
        process.join(60)
    errors = [error for _, _, error in outcomes if error]
    assert not errors, errors[0]
    assert [process.exitcode for process in workers] == [0] * PROCESSES
    stats = faulty_root.proxy.stats

    store = BucketTrackingStore(faulty_root.direct_uri, recover_in_background=False)
    client = MlflowClient(faulty_root.direct_uri)
    runs = {shared_run_id: list(range(PROCESSES))}
    runs.update({run_id: [worker] for worker, run_id, _ in outcomes})
    figures = Figures("async logging, faults 20%", notes=f"{PROCESSES} processes x {THREADS}")
    figures.add_proxy(stats)
    for run_id, run_workers in runs.items():
        pairs = [(w, t) for w in run_workers for t in range(THREADS)]
        expected = set().union(*(_points(w, t) for w, t in pairs))
        stored = stored_points(store.object_store, run_id)
        lost, duplicated, unexpected = compare_points(expected, stored)
        missing = sorted(expected - set(stored))[:12]
        shared = "shared" if run_id == shared_run_id else "own"
        assert (lost, duplicated, unexpected) == (0, 0, 0), f"{shared} run {run_id}: {missing}"
        for w, t in pairs:
            history = client.get_metric_history(run_id, _key(w, t))
            assert [(m.step, m.timestamp, m.value) for m in history] == [
                (step, 1_000_000 + step, step / 7) for step in range(STEPS)
            ]
        data = client.get_run(run_id).data
        expected_params = {k: v for w, t in pairs for k, v in _params(w, t).items()}
        expected_tags = {k: v for w, t in pairs for k, v in _tags(w, t).items()}
        assert data.params == expected_params
        assert {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")} == (
            expected_tags
        )
        figures.points_written += len(expected)
        figures.points_read += sum(stored.values())
        figures.params += len(data.params)
        figures.tags += len(expected_tags)
        figures.lost += lost
        figures.duplicated += duplicated
    record(figures, started)
    assert stats.total_faults > 0 and stats.retries > 0
    assert figures.points_written == 2 * PROCESSES * THREADS * STEPS

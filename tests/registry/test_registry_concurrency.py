"""Several processes register versions of one model at once: versions 1..N, no gap, no duplicate.

Each worker does what ``mlflow.register_model`` does (create the registered model, or
find it taken, then create a version) after a barrier, so the registrations really race:
on the name claim, on the model document and on every version number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from uuid import uuid4

from mlflow import MlflowClient

from tests.processes import SPAWN
from tests.servers import S3Endpoint

WORKERS = 6
MODEL = "raced-model"


def _register(uri: str, worker: int, barrier: Any, results: Any) -> None:
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_registered_models(max_results=1)  # open the store before the race starts
    barrier.wait()
    try:
        try:
            client.create_registered_model(MODEL)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            MODEL, f"s3://somewhere/worker-{worker}", run_id=f"{worker:032d}"
        )
        results.put((worker, int(version.version), None))
    except Exception as exc:
        results.put((worker, None, f"{type(exc).__name__}: {exc}"))


def _race(uri: str) -> None:
    context = SPAWN
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    workers = [
        context.Process(target=_register, args=(uri, i, barrier, results)) for i in range(WORKERS)
    ]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=240) for _ in workers]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    errors = [error for _, _, error in outcomes if error]
    assert not errors, errors

    returned = sorted(version for _, version, _ in outcomes)
    assert returned == list(range(1, WORKERS + 1))

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    stored = client.search_model_versions(f"name = '{MODEL}'", order_by=["version_number"])
    assert [int(mv.version) for mv in stored] == list(range(1, WORKERS + 1))
    # Each version records the worker that created it: no version was written twice.
    by_version = {int(mv.version): mv.run_id for mv in stored}
    assert {by_version[version] for _, version, _ in outcomes} == {
        f"{worker:032d}" for worker, _, _ in outcomes
    }
    for worker, version, _ in outcomes:
        assert by_version[version] == f"{worker:032d}"
    assert len(client.search_registered_models(f"name = '{MODEL}'")) == 1


def test_concurrent_registration_on_local_folder(tmp_path: Path) -> None:
    _race(f"bucket+file://{tmp_path}/root")


def test_concurrent_registration_on_moto(moto_s3: S3Endpoint) -> None:
    assert os.environ.get("AWS_ACCESS_KEY_ID")  # spawned workers inherit the test credentials
    _race(f"bucket+s3://{moto_s3.shared_bucket}/race/{uuid4().hex}?endpoint_url={moto_s3.url}")

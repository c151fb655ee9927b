"""Each test logs into a fresh root (bucket+file:, or bucket+s3 on moto for
``any_client``) and reads back through MlflowClient."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_plugin.torch import flush
from tests.servers import S3Endpoint


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MlflowClient]:
    yield from _tracking_to(f"bucket+file://{tmp_path}/root")


@pytest.fixture(params=["file", "s3"])
def any_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MlflowClient]:
    """A fresh root on each scheme in turn: bucket+file, then bucket+s3 (moto)."""
    if request.param == "file":
        yield from _tracking_to(f"bucket+file://{tmp_path}/root")
        return
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    root = f"{moto.shared_bucket}/torch/{uuid.uuid4().hex}"
    yield from _tracking_to(f"bucket+s3://{root}?endpoint_url={moto.url}")


def _tracking_to(uri: str) -> Iterator[MlflowClient]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield MlflowClient(uri)
    finally:
        flush()
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a metric, in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifact_paths(client: MlflowClient, run_id: str, folder: str | None = None) -> list[str]:
    """Every file under ``folder``, recursively."""
    found: list[str] = []
    for entry in client.list_artifacts(run_id, folder):
        if entry.is_dir:
            found.extend(artifact_paths(client, run_id, entry.path))
        else:
            found.append(entry.path)
    return sorted(found)


def image_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    """Steps of the step images MLflow stored for ``key`` (images/<key>+step+<n>+...png)."""
    prefix = key.replace("/", "~") + "+step+"
    steps = [
        int(Path(p).name[len(prefix) :].split("+")[0])
        for p in artifact_paths(client, run_id, "images")
        if Path(p).name.startswith(prefix) and p.endswith(".png")
    ]
    return sorted(steps)

"""Each test logs into a fresh bucket+file: root and reads back through MlflowClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_plugin.torch import flush


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MlflowClient]:
    previous = mlflow.get_tracking_uri()
    uri = f"bucket+file://{tmp_path}/root"
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

"""The acceptance path: log a torch model, register it, alias it, load it in a fresh process.

``mlflow.register_model("runs:/<run>/model", ...)`` resolves to the run's logged model
(``models:/m-...``); the registry keeps that source and its artifact location, and a new
interpreter that only has ``MLFLOW_TRACKING_URI`` loads ``models:/name@alias`` and
``models:/name/version`` through ``mlflow.pytorch`` and ``mlflow.pyfunc``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from tests.processes import run_python
from tests.servers import S3Endpoint

MODEL = "digits-cnn"

# The model is saved with torch.export for the input example's shape, so inputs have batch 1.
LOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import mlflow, numpy as np, torch

    net = mlflow.pytorch.load_model("models:/digits-cnn@champion")
    with torch.no_grad():
        out = net(torch.ones((1, 4)))
    print("pytorch", tuple(out.shape), round(float(out.sum()), 4))

    pyfunc = mlflow.pyfunc.load_model("models:/digits-cnn/1")
    pred = pyfunc.predict(np.ones((1, 4), dtype=np.float32))
    print("pyfunc", tuple(np.asarray(pred).shape), round(float(np.asarray(pred).sum()), 4))
    """
)


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def bucket_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "bucket_file":
        uri = f"bucket+file://{tmp_path}/root"
    else:
        moto: S3Endpoint = request.getfixturevalue("moto_s3")
        uri = f"bucket+s3://{moto.shared_bucket}/load/{uuid4().hex}?endpoint_url={moto.url}"
    # Both: the process-wide registry URI may hold what a test before this one set.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_register_alias_and_load_in_fresh_process(bucket_uri: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with mlflow.start_run() as run:
        mlflow.pytorch.log_model(
            net, name="model", input_example=np.zeros((1, 4), dtype=np.float32)
        )
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL)
    assert int(version.version) == 1
    client = MlflowClient()
    client.set_registered_model_alias(MODEL, "champion", 1)

    registered = client.get_model_version(MODEL, 1)
    assert registered.run_id == run.info.run_id
    assert registered.source.startswith("models:/m-")
    assert client.get_model_version_by_alias(MODEL, "champion").version == registered.version
    assert registered.model_id is not None
    logged = client.get_logged_model(registered.model_id)
    assert registered.source == f"models:/{logged.model_id}"
    assert client.get_model_version_download_uri(MODEL, 1) == logged.artifact_location

    with torch.no_grad():
        expected = net(torch.ones((1, 4)))
    env = {**os.environ, "MLFLOW_TRACKING_URI": bucket_uri}
    env.pop("MLFLOW_REGISTRY_URI", None)
    done = run_python(["-c", LOAD_IN_FRESH_PROCESS], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    total = round(float(expected.sum()), 4)
    assert f"pytorch (1, 3) {total}" in done.stdout
    assert f"pyfunc (1, 3) {total}" in done.stdout

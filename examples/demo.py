"""The demo: track a small training run in a bucket-layout folder, read it back, and browse it.

    python examples/demo.py                       # writes ./mlruns-bucket
    MLFLOW_TRACKING_URI=bucket+s3://my-bucket/team python examples/demo.py

Everything goes through MLflow's standard APIs; the only change from a plain
MLflow script is the tracking URI.
"""

from __future__ import annotations

import math
import os
import random

import mlflow
from mlflow import MlflowClient

DEFAULT_URI = "bucket+file:./mlruns-bucket"


def train(epochs: int = 30) -> str:
    """A stand-in training loop: a noisy decaying loss and a rising accuracy."""
    random.seed(0)
    mlflow.set_experiment("demo")
    with mlflow.start_run(run_name="demo-run") as run:
        mlflow.log_params({"optimizer": "adam", "lr": 0.01, "epochs": epochs})
        mlflow.set_tags({"team": "vision", "stage": "demo"})
        for epoch in range(epochs):
            loss = 2.0 * math.exp(-epoch / 8) + random.uniform(0, 0.05)
            mlflow.log_metrics(
                {"Loss/train": loss, "Accuracy/train": 1 - loss / 2.2}, step=epoch, synchronous=False
            )
        mlflow.log_dict({"layers": [64, 32, 10], "dropout": 0.1}, "config/model.json")
        mlflow.log_text("epoch,loss\n0,2.0\n", "logs/summary.csv")
        return str(run.info.run_id)


def read_back(run_id: str) -> None:
    client = MlflowClient()
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "Loss/train")
    artifacts = [f.path for f in client.list_artifacts(run_id)]
    print(f"run {run.info.run_name} ({run_id}): {run.info.status}")
    print(f"  params:    {run.data.params}")
    print(f"  metrics:   { {k: round(v, 4) for k, v in run.data.metrics.items()} }")
    print(f"  history:   {len(history)} points of Loss/train")
    print(f"  artifacts: {artifacts}")
    config = mlflow.artifacts.load_dict(f"runs:/{run_id}/config/model.json")
    assert config["layers"] == [64, 32, 10]
    assert len(history) == int(run.data.params["epochs"])


def main() -> None:
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    mlflow.set_tracking_uri(uri)
    print(f"tracking to {uri}")
    run_id = train()
    read_back(run_id)
    print("\nBrowse it with:")
    print(f"  mlflow ui --backend-store-uri '{uri}'")


if __name__ == "__main__":
    main()

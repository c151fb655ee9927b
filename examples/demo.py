"""The demo: log artifacts to a bucket-layout folder through MLflow's APIs and read them back.

python examples/demo.py                       # writes ./mlruns-bucket
MLFLOW_BUCKET_DEMO_ROOT=bucket+s3://b/p python examples/demo.py
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository


def main() -> None:
    root = os.environ.get("MLFLOW_BUCKET_DEMO_ROOT", "bucket+file:./mlruns-bucket")
    artifact_uri = f"{root.rstrip('/')}/artifacts/demo/{uuid.uuid4().hex}"
    repo = get_artifact_repository(artifact_uri)
    print(f"artifact repository: {type(repo).__module__}.{type(repo).__name__}")

    with tempfile.TemporaryDirectory() as scratch:
        outputs = Path(scratch) / "outputs"
        (outputs / "plots").mkdir(parents=True)
        (outputs / "config.json").write_text(json.dumps({"lr": 0.01, "epochs": 3}))
        (outputs / "plots" / "loss.csv").write_text("step,loss\n0,2.3\n1,1.1\n2,0.6\n")
        repo.log_artifacts(str(outputs))

        listed = [(f.path, f.is_dir, f.file_size) for f in repo.list_artifacts()]
        print(f"listed: {listed}")
        config = mlflow.artifacts.load_dict(f"{artifact_uri}/config.json")
        print(f"config read back: {config}")
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{artifact_uri}/plots")
        print(f"downloaded plots/: {sorted(os.listdir(local))}")
        assert config == {"lr": 0.01, "epochs": 3}

    # The tracking store on the bucket is not there yet: MLflow's own SQLite store
    # tracks this run while its artifacts live in the bucket folder.
    mlflow.set_tracking_uri(f"sqlite:///{Path(scratch).parent / 'mlflow-bucket-demo.db'}")
    experiment_name = f"bucket-artifacts-{uuid.uuid4().hex[:8]}"
    experiment_id = mlflow.create_experiment(
        experiment_name, artifact_location=f"{root.rstrip('/')}/artifacts/{experiment_name}"
    )
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_dict({"optimizer": {"name": "adam", "lr": 0.001}}, "config/train.json")
        mlflow.log_text("epoch 1: loss 0.42\n", "logs/train.txt")
    files = [f.path for f in MlflowClient().list_artifacts(run.info.run_id, "config")]
    print(f"run {run.info.run_id} artifacts at {run.info.artifact_uri}: {files}")
    print("demo finished: artifacts logged and read back through the bucket layout")


if __name__ == "__main__":
    main()

"""Quickstart: track a PyTorch run in a bucket or a folder, then read it back from another process.

    python examples/quickstart.py                    # tracks into ./mlruns-bucket
    MLFLOW_TRACKING_URI=bucket+file:///tmp/mlflow-store python examples/quickstart.py
    MLFLOW_TRACKING_URI='bucket+s3://my-bucket/mlflow?endpoint_url=http://localhost:9000' \\
        python examples/quickstart.py
    mlflow ui --backend-store-uri bucket+file:./mlruns-bucket   # then browse the run

The writer trains a tiny network with MLflow's ordinary fluent API: params, tags,
3 metrics x 1,000 steps, a text artifact and ``mlflow.pytorch.log_model``. It then starts
``python examples/quickstart.py --read RUN_ID`` as a second process, which uses only
``MlflowClient`` (and ``mlflow.pytorch.load_model``) to read everything back, prints a
summary and exits non-zero if anything is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from mlflow import MlflowClient

DEFAULT_TRACKING_URI = "bucket+file:./mlruns-bucket"
EXPERIMENT = "quickstart"
STEPS = 1_000
METRICS = ("loss", "grad_norm", "lr")
PARAMS = {"lr": "0.05", "hidden": "16", "steps": str(STEPS), "optimizer": "sgd"}
TAGS = {"project": "quickstart", "stage": "demo"}
NOTES_PATH = "notes/summary.txt"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def train_and_log() -> str:
    """Train a tiny regression network and log it; returns the run id."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a network this small only loses time to thread hand-offs
    inputs = torch.randn(256, 4)
    targets = inputs @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = torch.nn.Sequential(
        torch.nn.Linear(4, int(PARAMS["hidden"])),
        torch.nn.ReLU(),
        torch.nn.Linear(int(PARAMS["hidden"]), 1),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=float(PARAMS["lr"]))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS)

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="tiny-regression") as run:
        mlflow.log_params(PARAMS)
        mlflow.set_tags(TAGS)
        for step in range(STEPS):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
            optimizer.step()
            mlflow.log_metrics(
                {
                    "loss": loss.item(),
                    "grad_norm": grad_norm.item(),
                    "lr": schedule.get_last_lr()[0],
                },
                step=step,
            )
            schedule.step()
        mlflow.log_text(f"final loss {loss.item():.6f} after {STEPS} steps\n", NOTES_PATH)
        example = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
        mlflow.pytorch.log_model(model, name="model", input_example=example)
        return str(run.info.run_id)


def read_back(run_id: str) -> list[str]:
    """Read the run through ``MlflowClient`` alone; returns the problems found (none: all there)."""
    client = MlflowClient(tracking_uri=tracking_uri())
    problems: list[str] = []
    run = client.get_run(run_id)
    print(f"run {run_id}: status {run.info.status}, experiment {run.info.experiment_id}")

    if run.data.params != PARAMS:
        problems.append(f"params {run.data.params} != {PARAMS}")
    missing_tags = {k: v for k, v in TAGS.items() if run.data.tags.get(k) != v}
    if missing_tags:
        problems.append(f"tags missing or wrong: {missing_tags}")
    print(f"params: {len(run.data.params)}, tags: {len(TAGS) - len(missing_tags)}/{len(TAGS)}")

    for key in METRICS:
        steps = sorted(metric.step for metric in client.get_metric_history(run_id, key))
        span = f"steps {steps[0]}..{steps[-1]}" if steps else "no steps"
        print(f"metric {key}: {len(steps)} points, {span}")
        if steps != list(range(STEPS)):
            problems.append(f"metric {key}: expected steps 0..{STEPS - 1}, got {len(steps)} points")

    with tempfile.TemporaryDirectory() as scratch:
        notes = Path(client.download_artifacts(run_id, NOTES_PATH, scratch)).read_text()
    print(f"artifact {NOTES_PATH}: {notes.strip()!r}")
    if not notes.startswith("final loss"):
        problems.append(f"artifact {NOTES_PATH} has unexpected content {notes!r}")

    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    if len(models) != 1:
        problems.append(f"expected one logged model for the run, found {len(models)}")
        return problems
    logged = client.get_logged_model(models[0].model_id)
    network = mlflow.pytorch.load_model(f"models:/{logged.model_id}")
    shape = tuple(network(torch.zeros(3, 4)).shape)
    print(f"model {logged.model_id} ({logged.name}, {logged.status}): forward -> {shape}")
    if shape != (3, 1):
        problems.append(f"model forward pass gave shape {shape}, expected (3, 1)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", metavar="RUN_ID", help="only read RUN_ID back (the 2nd process)")
    args = parser.parse_args()

    if args.read:
        problems = read_back(args.read)
        for problem in problems:
            print(f"MISSING: {problem}", file=sys.stderr)
        print("read back: FAILED" if problems else "read back: OK")
        return 1 if problems else 0

    run_id = train_and_log()
    print(f"logged run {run_id} to {tracking_uri()}")
    # A fresh interpreter proves the data is in the store, not in this process's memory.
    reader = subprocess.run(
        [sys.executable, __file__, "--read", run_id],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri()},
        check=False,
    )
    return reader.returncode


if __name__ == "__main__":
    sys.exit(main())

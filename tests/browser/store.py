"""A store filled the way a user fills one: ``examples/demo.py``, then a registered model.

Both steps run in fresh interpreters with ``MLFLOW_TRACKING_URI`` set, as a user's
scripts would; the second one also reads back what the tests compare the UI against.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.processes import run_python

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
EXPERIMENT_NAME = "digits-demo"
REGISTERED_MODEL = "digits-cnn"
ALIAS = "champion"
# The demo's per-epoch histogram of the test logits, logged as a step image.
HISTOGRAM_IMAGE_KEY = "histograms/test/logits"
# Left to an earlier test by MLflow (set_registry_uri exports its URI), they would send
# the demo's model to that test's store.
REGISTRY_AND_EXPERIMENT = ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")

# Registers the demo run's model and reads back the facts the page checks compare with.
REGISTER_AND_DESCRIBE = f"""
import json
from pathlib import PurePosixPath

import mlflow
from mlflow import MlflowClient

client = MlflowClient()
experiment = client.get_experiment_by_name({EXPERIMENT_NAME!r})
[run] = client.search_runs([experiment.experiment_id])
version = mlflow.register_model(f"runs:/{{run.info.run_id}}/model", {REGISTERED_MODEL!r})
client.set_registered_model_alias({REGISTERED_MODEL!r}, {ALIAS!r}, version.version)

prefix = {HISTOGRAM_IMAGE_KEY!r}.replace("/", "~") + "+step+"
names = [PurePosixPath(f.path).name for f in client.list_artifacts(run.info.run_id, "images")]
steps = sorted(int(n[len(prefix):].split("+")[0]) for n in names
               if n.startswith(prefix) and n.endswith(".png"))
config = mlflow.artifacts.load_text(f"runs:/{{run.info.run_id}}/config.yaml")
graph = mlflow.artifacts.load_text(f"runs:/{{run.info.run_id}}/model_graph/graph.svg")
print(json.dumps({{
    "experiment_id": experiment.experiment_id,
    "run_id": run.info.run_id,
    "run_name": run.info.run_name,
    "model_id": version.model_id,
    "version": str(version.version),
    "params": run.data.params,
    "metric_count": len(run.data.metrics),
    "histogram_steps": steps,
    "config_yaml": config,
    "graph_svg": graph,
}}))
"""


@dataclass(frozen=True)
class DemoStore:
    """A tracking URI holding the demo run, and what the store says it holds."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    run_name: str
    model_id: str
    version: str
    params: dict[str, str]
    metric_count: int
    histogram_steps: list[int]
    config_yaml: str
    graph_svg: str


def fill_with_demo(tracking_uri: str, workdir: Path) -> DemoStore:
    """Train the demo into ``tracking_uri``, register its model with an alias, describe it."""
    # Only the tracking URI, as a user's shell would have: the registry follows it.
    inherited = {k: v for k, v in os.environ.items() if k not in REGISTRY_AND_EXPERIMENT}
    env = {**inherited, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    for args in ([str(DEMO)], ["-c", REGISTER_AND_DESCRIBE]):
        result = run_python(args, env=env, cwd=workdir)
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed with {result.returncode}:\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
            )
    facts = json.loads(result.stdout.splitlines()[-1])
    if facts["version"] != "1":  # the demo's model went to a registry that held one already
        raise RuntimeError(f"the demo's model is version {facts['version']} in a new store")
    return DemoStore(tracking_uri=tracking_uri, **facts)

"""MLflow's own ``mlflow gc`` on a bucket store: it works, through the store's hard-delete hooks.

``mlflow gc`` chooses what to delete (here: one deleted run by id, every deleted logged
model, every deleted experiment with its runs); the store removes each item as
``mlflow-bucket gc`` would. What MLflow did not choose, and everything live, stays.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.objectstore import open_object_store
from tests.cli.conftest import cli_env


@pytest.fixture(params=["file", "moto"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'root'}"
    moto_uri: str = request.getfixturevalue("moto_uri")
    return moto_uri


@dataclass
class Logged:
    kept_experiment: str
    live_run: str
    chosen_run: str  # deleted, and named by --run-ids
    other_deleted_run: str  # deleted, not named: MLflow leaves it
    gone_experiment: str
    gone_experiment_run: str
    deleted_model: str


def _log(uri: str) -> Logged:
    client = MlflowClient(uri)
    kept = client.create_experiment("kept")

    def run_with_data(experiment_id: str) -> str:
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "loss", 0.5, step=1)
        client.log_text(run_id, "notes", "notes.txt")
        client.set_terminated(run_id)
        return run_id

    live, chosen, other = (run_with_data(kept) for _ in range(3))
    client.delete_run(chosen)
    client.delete_run(other)
    gone = client.create_experiment("gone")
    gone_run = run_with_data(gone)
    client.delete_experiment(gone)
    model = client.create_logged_model(kept, name="tiny").model_id
    client.delete_logged_model(model)
    return Logged(kept, live, chosen, other, gone, gone_run, model)


def _mlflow_gc(uri: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # MLflow's gc wants a tracking URI too, whatever the backend.
    env = {**cli_env(), "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri, *args]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_mlflow_gc_permanently_deletes_what_it_chose(uri: str, tmp_path: Path) -> None:
    logged = _log(uri)
    kept_artifact = f"artifacts/{logged.kept_experiment}/{logged.live_run}/artifacts/notes.txt"

    result = _mlflow_gc(uri, tmp_path, "--run-ids", logged.chosen_run)

    assert result.returncode == 0, result.stderr[-3000:]
    for line in (
        f"Run with ID {logged.chosen_run} has been permanently deleted.",
        f"Run with ID {logged.gone_experiment_run} has been permanently deleted.",
        f"Logged model with ID {logged.deleted_model} has been permanently deleted.",
        f"Experiment with ID {logged.gone_experiment} has been permanently deleted.",
    ):
        assert line in result.stdout
    objects = open_object_store(uri)
    # Journal entries name deleted runs for a while: they are not the run's objects.
    remaining = {
        info.key
        for info in objects.list("")
        if not info.key.startswith(change_journal.JOURNAL_PREFIX)
    }
    for run_id in (logged.chosen_run, logged.gone_experiment_run):
        assert not [key for key in remaining if run_id in key], run_id
    assert not [
        key for key in remaining if key.startswith(f"experiments/{logged.gone_experiment}/")
    ]
    assert keys.experiment_name_key("gone") not in remaining
    assert keys.logged_model_key(logged.deleted_model) not in remaining
    # What MLflow did not choose, and everything live, is untouched.
    assert kept_artifact in remaining
    assert keys.run_location_key(logged.other_deleted_run) in remaining
    client = MlflowClient(uri)
    assert client.get_run(logged.live_run).data.metrics == {"loss": 0.5}
    assert client.get_run(logged.other_deleted_run).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as gone:
        client.get_run(logged.chosen_run)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment(client.create_experiment("gone")).name == "gone"  # name freed

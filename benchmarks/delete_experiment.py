"""Deleting (and restoring) an experiment of many runs, against MLflow's ``sqlite:///`` store.

    .venv/bin/python benchmarks/delete_experiment.py [RUNS]     # RUNS defaults to 500

Fills one experiment with RUNS runs on sqlite:///, bucket+file and bucket+s3 (a moto
server in a process of its own, and SeaweedFS), then times ``delete_experiment`` and
``restore_experiment`` three times each and prints the fastest as a ratio to sqlite
measured in the same run (never an absolute target). Filling is not timed. Each
delete and restore is checked: every run ends in the experiment's new stage.

A delete is one compare-and-swap of the experiment document (its runs follow it:
``format.run_stage``), whatever the number of runs. A restore lists the runs and reads
each one in parallel, rewriting only those deleted by themselves, so it grows with the
number of runs: moto answers in Python, one request at a time per CPU, so SeaweedFS
(and a real endpoint, where each request mostly waits on the network) shows the
parallel reads better.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlflow import MlflowClient
from mlflow.entities import ViewType

from tests.servers import TEST_CREDENTIALS, moto_process_endpoint, seaweedfs_endpoint

os.environ.update(TEST_CREDENTIALS)
logging.getLogger("werkzeug").setLevel(logging.ERROR)


def fill(client: MlflowClient, runs: int) -> str:
    experiment_id = client.create_experiment(f"delete-{uuid.uuid4().hex[:8]}")
    for number in range(runs):
        client.create_run(experiment_id, tags={"n": str(number)})
    return experiment_id


def timed_delete_and_restore(uri: str, runs: int, rounds: int = 3) -> tuple[float, float]:
    """The fastest of ``rounds`` deletes and of ``rounds`` restores of one experiment.

    The fastest, not the mean: on a shared machine the others measure its load.
    """
    client = MlflowClient(uri)
    experiment_id = fill(client, runs)
    deletes, restores = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        client.delete_experiment(experiment_id)
        deletes.append(time.perf_counter() - started)
        deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
        assert len(deleted) == min(runs, 1000), f"{len(deleted)} of {runs} runs deleted on {uri}"
        started = time.perf_counter()
        client.restore_experiment(experiment_id)
        restores.append(time.perf_counter() - started)
        assert len(client.search_runs([experiment_id])) == min(runs, 1000)
    return min(deletes), min(restores)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    scratch = Path(tempfile.mkdtemp(prefix="mlflow-bucket-delete-bench-"))
    os.environ.setdefault("MLFLOW_BUCKET_INDEX_DIR", str(scratch / "index"))
    os.environ.setdefault("MLFLOW_BUCKET_SPOOL_DIR", str(scratch / "spool"))
    print(f"{runs} runs per experiment; {platform.python_version()}, {os.cpu_count()} CPUs")
    results: dict[str, tuple[float, float]] = {
        "sqlite:///": timed_delete_and_restore(f"sqlite:///{scratch / 'mlflow.db'}", runs),
        "bucket+file": timed_delete_and_restore(f"bucket+file://{scratch / 'root'}", runs),
    }
    for name, endpoint_of in (("moto", moto_process_endpoint), ("SeaweedFS", seaweedfs_endpoint)):
        with endpoint_of() as endpoint:
            bucket = endpoint.create_bucket("delete-bench")
            uri = f"bucket+s3://{bucket}/root?endpoint_url={endpoint.url}"
            results[f"bucket+s3 ({name})"] = timed_delete_and_restore(uri, runs)
    base_delete, base_restore = results["sqlite:///"]
    print(f"{'store':<22} {'delete s':>9} {'x sqlite':>9} {'restore s':>10} {'x sqlite':>9}")
    for name, (delete_s, restore_s) in results.items():
        print(
            f"{name:<22} {delete_s:>9.3f} {delete_s / base_delete:>9.2f} "
            f"{restore_s:>10.3f} {restore_s / base_restore:>9.2f}"
        )


if __name__ == "__main__":
    main()

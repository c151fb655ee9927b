"""Stray objects in an experiment's runs folder never redirect or break another run.

A backup restored into the wrong folder leaves a copy of one experiment's run document
in another experiment's ``runs/`` folder, or an object that is no run document at all.
Deleting that experiment writes no run document, and restoring it restores its own
runs only: where a run lives is its
immutable ``run-locations`` pointer, so the copied run stays where it is, readable and
writable in this process and every other.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from uuid import uuid4

import pytest
from mlflow.entities import LifecycleStage, Metric, Param

from mlflow_plugin.format import keys
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/hostile-stray/{uuid4().hex}?endpoint_url={moto.url}"


def test_deleting_an_experiment_holding_a_copy_of_another_experiments_run(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BucketTrackingStore(uri)
    emptied = store.create_experiment("emptied")
    other = store.create_experiment("other")
    own = store.create_run(emptied, "user", 0, [], "own").info.run_id
    copied = store.create_run(other, "user", 0, [], "copied").info.run_id
    store.log_metric(copied, Metric("loss", 1.0, 0, 0))
    store.flush()
    objects = store.object_store
    # A copy of the run as it was once deleted: restoring ``emptied`` restores its runs
    # deleted by themselves, and must leave this one (and the run it copies) alone.
    copy = {**json.loads(objects.get(keys.run_key(other, copied)).data), "deleted_time": 1}
    copy_key = keys.run_key(emptied, copied)
    objects.put(copy_key, json.dumps({**copy, "lifecycle_stage": "deleted"}).encode())
    copy_bytes = objects.get(copy_key).data
    objects.put(f"{keys.experiment_runs_prefix(emptied)}notes.json", b'{"note": "restored"}')

    store.delete_experiment(emptied)
    assert objects.get(copy_key).data == copy_bytes  # a delete writes no run document

    assert store.get_run(own).info.lifecycle_stage == LifecycleStage.DELETED
    run = store.get_run(copied)
    assert (run.info.experiment_id, run.info.lifecycle_stage) == (other, LifecycleStage.ACTIVE)
    store.log_metric(copied, Metric("loss", 0.5, 1, 1))
    store.log_param(copied, Param("lr", "0.1"))
    store.flush()
    assert [m.value for m in store.get_metric_history(copied, "loss")] == [1.0, 0.5]

    elsewhere = BucketTrackingStore(uri).get_run(copied)
    assert elsewhere.info.lifecycle_stage == LifecycleStage.ACTIVE
    assert elsewhere.data.params == {"lr": "0.1"}

    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.tracking.experiments"):
        store.restore_experiment(emptied)
    assert any(copy_key in m for m in caplog.messages)
    assert objects.get(copy_key).data == copy_bytes
    assert store.get_run(own).info.lifecycle_stage == LifecycleStage.ACTIVE
    assert store.get_run(copied).info.experiment_id == other

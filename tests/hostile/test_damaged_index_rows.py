"""Objects the query index cannot mirror cost their own row, never a whole sync or search.

Two shapes that pass every per-document check yet cannot both be rows of MLflow's tables:
a run's document copied into another experiment's folder (its ``experiment_id`` edited to
match the folder: the same run id twice), and a folder under ``experiments/`` whose name
is no experiment id. Each is left out of the index with a warning; every search answers,
and the original run stays where it was.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mlflow.entities import Metric, ViewType

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import open_object_store
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/root?index_staleness=0"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return (
        f"bucket+s3://{moto.shared_bucket}/damaged-index-rows/{uuid.uuid4().hex}"
        f"?endpoint_url={moto.url}&index_staleness=0"
    )


def _ids(store: BucketTrackingStore, experiment_id: str) -> list[str]:
    return [r.info.run_id for r in store.search_runs([experiment_id], None, ViewType.ALL)]


def test_a_run_copied_into_another_experiment_steals_nothing(uri: str) -> None:
    store = BucketTrackingStore(uri, recover_in_background=False)
    first, second = store.create_experiment("first"), store.create_experiment("second")
    run_id = store.create_run(first, "u", 1, [], "original").info.run_id
    store.log_metric(run_id, Metric("loss", 0.5, 1, 0))
    store.flush()
    assert _ids(store, first) == [run_id]

    raw = open_object_store(uri)  # around the tracking store
    copy = json.loads(raw.get(keys.run_key(first, run_id)).data)
    copy["experiment_id"] = second
    raw.put(keys.run_key(second, run_id), json.dumps(copy).encode())

    assert _ids(store, second) == []  # the copy cannot be a second row of the same run
    assert _ids(store, first) == [run_id]
    assert _ids(store, second) == []
    assert store.get_run(run_id).info.experiment_id == first


def test_a_folder_no_experiment_can_have_is_passed_over(uri: str) -> None:
    store = BucketTrackingStore(uri, recover_in_background=False)
    healthy = store.create_experiment("healthy")
    raw = open_object_store(uri)
    stray = {"experiment_id": "abc", "name": "abc", "artifact_location": "x"}
    raw.put("experiments/abc/experiment.json", json.dumps({**stray, "tags": {}}).encode())
    raw.put(
        "experiments/99999999999999999999/experiment.json",
        json.dumps({**stray, "experiment_id": "99999999999999999999", "tags": {}}).encode(),
    )
    for _ in range(2):  # the second search re-reads the scope: nothing stays broken
        found = store.search_experiments(ViewType.ALL, 100)
        assert sorted(e.experiment_id for e in found) == sorted(["0", healthy])

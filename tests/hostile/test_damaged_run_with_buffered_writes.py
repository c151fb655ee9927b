"""A damaged run document with writes buffered for it never breaks anyone else's reads.

The issue's scenario: a run document is damaged in the bucket (here: ``user_id`` a list,
valid JSON), and the process (a server worker, the UI) still holds one buffered log call
for that run. Every later search of every experiment, and the charts of the healthy runs
beside it, must answer as before; the damaged run is left out and a get of it names its key.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mlflow.entities import Metric, ViewType
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import open_object_store
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/root?index_staleness=0&flush_interval=60"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return (
        f"bucket+s3://{moto.shared_bucket}/damaged-buffered/{uuid.uuid4().hex}"
        f"?endpoint_url={moto.url}&index_staleness=0&flush_interval=60"
    )


def test_buffered_write_to_a_damaged_run_blocks_no_one(uri: str) -> None:
    store = BucketTrackingStore(uri, recover_in_background=False)
    first = store.create_experiment("first")
    other = store.create_experiment("other")
    damaged = store.create_run(first, "u", 1, [], "damaged").info.run_id
    healthy = store.create_run(first, "u", 1, [], "healthy").info.run_id
    elsewhere = store.create_run(other, "u", 1, [], "elsewhere").info.run_id
    for run_id in (damaged, healthy, elsewhere):
        store.log_metric(run_id, Metric("loss", 0.5, 1, 0))
    store.flush()
    store.log_metric(damaged, Metric("loss", 0.25, 2, 1))  # buffered, not yet uploaded

    key = keys.run_key(first, damaged)
    raw = open_object_store(uri)  # around the tracking store: a raw put
    doc = json.loads(raw.get(key).data)
    doc["user_id"] = ["a", "list"]
    raw.put(key, json.dumps(doc).encode())

    for _ in range(2):  # and again: nothing stays broken
        found = store.search_runs([first], None, ViewType.ALL)
        assert [r.info.run_id for r in found] == [healthy]
        assert [r.info.run_id for r in store.search_runs([other], None, ViewType.ALL)] == [
            elsewhere
        ]
        chart = store.get_metric_history_bulk_interval([damaged, healthy], "loss", 10, None, None)
        assert [(p.run_id, p.value) for p in chart] == [(healthy, 0.5)]
        with pytest.raises(MlflowException) as raised:
            store.get_run(damaged)
        assert raised.value.error_code == "INTERNAL_ERROR" and key in raised.value.message
        assert store.get_run(healthy).data.metrics == {"loss": 0.5}

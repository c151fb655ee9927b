"""A damaged batch in a dead writer's spool never enters a run: kept, reported, named.

Each scenario runs on bucket+file and bucket+s3.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlflow import MlflowClient

from mlflow_plugin.format.run_batches import RunBatch, StatusWrite
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.tracking.spool_helpers import dead_writer, die, new_run, reader_uri, root_uri

__all__ = ["root_uri"]  # the fixture, imported for pytest


def _status(doc: dict[str, Any]) -> None:
    doc["status"] = {"status": "GONE_FISHING", "end_time": 5, "clock": [1, "dead", 1]}


def _tag_value(doc: dict[str, Any]) -> None:
    doc["tags"] = {"note": {"not": "text"}}


@pytest.mark.parametrize("damage", [_status, _tag_value])
def test_a_damaged_spooled_batch_is_kept_and_reported_and_the_run_stays_healthy(
    root_uri: str, damage: Any
) -> None:
    store = BucketTrackingStore(root_uri, recover_in_background=False)
    experiment_id, run_id = new_run(store, "replayed")
    spool = dead_writer(root_uri)
    good = RunBatch(run_id, experiment_id, "dead", 1, [MetricPoint("loss", 1.0, 10, 1)])
    bad = RunBatch(
        run_id,
        experiment_id,
        "dead",
        2,
        [MetricPoint("loss", 2.0, 20, 2)],
        {"note": "x"},
        status=StatusWrite("FINISHED", 5, (1, "dead", 1)),
    )
    spool.seal([good])
    spool.seal([bad])
    folder = spool.folder
    die(spool)
    bad_file = folder / "batch-0000000002.json"
    record = json.loads(bad_file.read_text())
    damage(record)
    bad_file.write_text(json.dumps(record))

    report = store.recover_spools()
    assert any(str(bad_file) in problem for problem in report.damaged)
    assert bad_file.exists()  # kept as it is, for a person to look at
    run = MlflowClient(reader_uri(root_uri)).get_run(run_id)  # readable: not damaged
    assert run.info.status == "RUNNING" and "note" not in run.data.tags
    assert [
        m.step for m in MlflowClient(reader_uri(root_uri)).get_metric_history(run_id, "loss")
    ] == [1]

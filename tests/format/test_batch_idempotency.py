"""A batch applied twice is applied once: in the pure function and through a store."""

from __future__ import annotations

import json

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import create_document, read_document, update_document
from mlflow_plugin.format.run_batches import RunBatch, StatusWrite, apply_batch
from mlflow_plugin.format.segments import MetricPoint, encode_segment
from mlflow_plugin.objectstore import ObjectStore
from tests.format.runs import run_document
from tests.format.stores import store

__all__ = ["store"]  # the fixture, imported for pytest

KEY = keys.run_key("1", "r")


def sealed_batch() -> RunBatch:
    made = RunBatch(
        "r",
        "1",
        "w",
        3,
        [MetricPoint("loss", 0.5, 10, 1), MetricPoint("loss", 0.25, 11, 2)],
        status=StatusWrite("FINISHED", 99, (5_000, "w", 2)),
    )
    made.add_tags({"phase": "train"}, (4_000, "w", 1))
    return made


def test_applying_a_batch_twice_is_applying_it_once() -> None:
    made = sealed_batch()
    _, segment = encode_segment(made.segment, made.points)
    once = apply_batch(run_document(), made, segment)
    snapshot = json.loads(json.dumps(once))
    twice = apply_batch(once, made, segment)
    assert twice == snapshot
    assert len(twice["segments"]) == 1
    assert twice["latest_metrics"]["loss"] == {"value": 0.25, "timestamp": 11, "step": 2}
    assert (twice["status"], twice["end_time"], twice["tags"]) == (
        "FINISHED",
        99,
        {"phase": "train"},
    )
    assert twice["writers"] == {"w": 3}


def test_a_replayed_batch_writes_nothing_to_the_store(store: ObjectStore) -> None:
    create_document(store, KEY, run_document())
    made = sealed_batch()
    _, segment = encode_segment(made.segment, made.points)
    first, etag = update_document(store, KEY, lambda doc: apply_batch(doc, made, segment))
    again, same_etag = update_document(store, KEY, lambda doc: apply_batch(doc, made, segment))
    assert same_etag == etag and store.get(KEY).etag == etag
    assert read_document(store, KEY)[0] == first == again
    assert [s["name"] for s in first["segments"]] == ["w-0000000003"]

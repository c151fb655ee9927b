"""The run document's writers map: bounded by a retention, and replays still applied once.

Time is each batch's ``sealed_at`` (ms): the tests set it, nothing sleeps.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlflow_plugin.format.documents import decode_document, encode
from mlflow_plugin.format.run_batches import (
    WRITER_RETENTION_MS,
    BatchTooOld,
    RunBatch,
    apply_batch,
)
from mlflow_plugin.format.segments import MetricPoint, encode_segment

DAY = 86_400_000
NOW = 1_800_000_000_000
RUN_KEY = "experiments/1/runs/r.json"


def run_document() -> dict[str, Any]:
    return {
        "run_id": "r",
        "experiment_id": "1",
        "status": "RUNNING",
        "start_time": 1,
        "lifecycle_stage": "active",
        "params": {},
        "tags": {},
        "latest_metrics": {},
        "segments": [],
        "writers": {},
    }


def batch(writer: str, sequence: int, sealed_at: int | None, step: int = 0) -> RunBatch:
    return RunBatch(
        "r", "1", writer, sequence, [MetricPoint("loss", 1.0, 10, step)], sealed_at=sealed_at
    )


def apply(doc: dict[str, Any], made: RunBatch) -> dict[str, Any]:
    """``made`` applied as the store does: with its segment, to a copy of ``doc``."""
    _, segment = encode_segment(made.segment, made.points)
    return apply_batch(json.loads(json.dumps(doc)), made, segment)


def test_the_default_retention_is_a_week() -> None:
    assert WRITER_RETENTION_MS == 7 * DAY


def test_many_writers_leave_a_bounded_map() -> None:
    doc = run_document()
    for day in range(100):  # a process (or fork) a day, each with its own writer id
        doc = apply(doc, batch(f"w{day}", 1, NOW + day * DAY))
    assert sorted(doc["writers"]) == [f"w{day}" for day in range(92, 100)]
    assert doc["writer_times"] == {f"w{day}": NOW + day * DAY for day in range(92, 100)}
    assert doc["writers_watermark"] == NOW + 91 * DAY
    assert len(doc["segments"]) == 100  # only the map is pruned: every batch's points stay
    decode_document(RUN_KEY, encode(doc))  # and the document is a valid run document


def test_a_replay_younger_than_the_retention_is_applied_once() -> None:
    doc = apply(run_document(), batch("old", 1, NOW - 30 * DAY))
    replayed = batch("dead", 1, NOW - DAY)
    doc = apply(doc, replayed)
    doc = apply(doc, batch("new", 1, NOW))  # forgets "old": a watermark now exists
    assert "old" not in doc["writers"] and doc["writers_watermark"] == NOW - 30 * DAY
    assert apply(doc, replayed) == doc  # still known: the replay changes nothing


def test_a_replay_older_than_the_retention_is_refused_not_applied_twice() -> None:
    replayed = batch("dead", 1, NOW - 20 * DAY)
    doc = apply(run_document(), replayed)
    doc = apply(doc, batch("new", 1, NOW))  # "dead" idle for 20 days: forgotten
    assert "dead" not in doc["writers"]
    with pytest.raises(BatchTooOld, match="batch 1 of writer dead for run r") as refused:
        apply(doc, replayed)
    assert refused.value.watermark == NOW - 20 * DAY
    assert [s["name"] for s in doc["segments"]] == ["dead-0000000001", "new-0000000001"]


def test_an_unknown_writers_batch_sealed_after_the_watermark_is_applied() -> None:
    doc = apply(run_document(), batch("dead", 1, NOW - 20 * DAY))
    doc = apply(doc, batch("new", 1, NOW))
    doc = apply(doc, batch("late", 1, NOW - 20 * DAY + 1))  # sealed after "dead" went idle
    assert doc["writers"]["late"] == 1


def test_a_batch_of_unknown_age_is_refused_only_once_writers_were_forgotten() -> None:
    doc = apply(run_document(), batch("legacy", 1, None))  # an older plugin's spool
    assert doc["writers"] == {"legacy": 1}
    doc = apply(doc, batch("dead", 1, NOW - 20 * DAY))
    doc = apply(doc, batch("new", 1, NOW))
    with pytest.raises(BatchTooOld, match="sealed at an unknown time"):
        apply(doc, batch("other-legacy", 1, None))


def test_entries_without_a_time_are_kept_for_a_retention_from_first_seen() -> None:
    doc = {**run_document(), "writers": {"v3-writer": 4}}  # written before writer_times
    doc = apply(doc, batch("a", 1, NOW))
    assert doc["writer_times"]["v3-writer"] == NOW
    doc = apply(doc, batch("b", 1, NOW + 6 * DAY))
    assert "v3-writer" in doc["writers"]
    doc = apply(doc, batch("c", 1, NOW + 8 * DAY))
    assert "v3-writer" not in doc["writers"] and doc["writers_watermark"] == NOW


def test_an_old_replay_never_moves_now_back() -> None:
    doc = apply(run_document(), batch("a", 1, NOW))
    doc = apply(doc, batch("b", 1, NOW - 6 * DAY))  # replayed late: "a" must stay
    doc = apply(doc, batch("c", 1, NOW - 5 * DAY))
    assert sorted(doc["writers"]) == ["a", "b", "c"]


def test_the_retention_is_a_parameter() -> None:
    doc = apply_batch(run_document(), batch("a", 1, NOW), None, retention_ms=1_000)
    doc = apply_batch(doc, batch("b", 1, NOW + 2_000), None, retention_ms=1_000)
    assert doc["writers"] == {"b": 1}


def test_a_batch_keeps_its_seal_time_through_json() -> None:
    made = batch("a", 1, NOW)
    assert RunBatch.from_json(made.to_json()).sealed_at == NOW
    older_spool = {k: v for k, v in made.to_json().items() if k != "sealed_at"}
    assert RunBatch.from_json(older_spool).sealed_at is None

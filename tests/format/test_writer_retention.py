"""The run document's writers map: bounded by a retention, and replays still applied once.

Time is each batch's ``sealed_at`` (ms) and the applying process's clock (``now_ms``):
the tests set both, nothing sleeps. Unless a test says otherwise, a batch is applied by
the process that sealed it, at the time it sealed it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlflow_plugin.format.documents import decode_document, encode
from mlflow_plugin.format.run_batches import (
    FORGET_AFTER_RETENTIONS,
    WRITER_RETENTION_MS,
    BatchTooOld,
    RunBatch,
    apply_batch,
)
from mlflow_plugin.format.segments import MetricPoint, encode_segment
from tests.format.runs import run_document

DAY = 86_400_000
NOW = 1_800_000_000_000
RUN_KEY = "experiments/1/runs/r.json"


def batch(writer: str, sequence: int, sealed_at: int | None, step: int = 0) -> RunBatch:
    return RunBatch(
        "r", "1", writer, sequence, [MetricPoint("loss", 1.0, 10, step)], sealed_at=sealed_at
    )


def apply(doc: dict[str, Any], made: RunBatch, now: int | None = None) -> dict[str, Any]:
    """``made`` applied as the store does: with its segment, to a copy of ``doc``, by a
    process whose clock reads ``now`` (by default: when ``made`` was sealed)."""
    _, segment = encode_segment(made.segment, made.points)
    applied_at = now if now is not None else (made.sealed_at or NOW)
    return apply_batch(json.loads(json.dumps(doc)), made, segment, now_ms=applied_at)


def test_a_week_of_retention_and_writers_forgotten_after_two() -> None:
    assert WRITER_RETENTION_MS == 7 * DAY and FORGET_AFTER_RETENTIONS == 2


def test_many_writers_leave_a_bounded_map() -> None:
    doc = run_document()
    for day in range(100):  # a process (or fork) a day, each with its own writer id
        doc = apply(doc, batch(f"w{day}", 1, NOW + day * DAY))
    assert sorted(doc["writers"]) == [f"w{day}" for day in range(85, 100)]  # 14 days back
    assert doc["writer_times"] == {f"w{day}": NOW + day * DAY for day in range(85, 100)}
    assert doc["writers_watermark"] == NOW + 84 * DAY
    assert len(doc["segments"]) == 100  # only the map is pruned: every batch's points stay
    decode_document(RUN_KEY, encode(doc))  # and the document is a valid run document


def test_a_replay_younger_than_the_retention_is_applied_once() -> None:
    doc = apply(run_document(), batch("old", 1, NOW - 30 * DAY))
    replayed = batch("dead", 1, NOW - DAY)
    doc = apply(doc, replayed)
    doc = apply(doc, batch("new", 1, NOW))  # forgets "old": a watermark now exists
    assert "old" not in doc["writers"] and doc["writers_watermark"] == NOW - 30 * DAY
    assert apply(doc, replayed, now=NOW) == doc  # still known: the replay changes nothing


def test_a_replay_older_than_the_retention_is_refused_not_applied_twice() -> None:
    replayed = batch("dead", 1, NOW - 20 * DAY)
    doc = apply(run_document(), replayed)
    doc = apply(doc, batch("new", 1, NOW))  # "dead" silent for 20 days: forgotten
    assert "dead" not in doc["writers"]
    with pytest.raises(BatchTooOld, match="batch 1 of writer dead for run r") as refused:
        apply(doc, replayed, now=NOW)
    assert refused.value.watermark == NOW - 20 * DAY
    assert [s["name"] for s in doc["segments"]] == ["dead-0000000001", "new-0000000001"]


def test_an_unknown_writers_batch_is_refused_only_if_old_and_before_the_watermark() -> None:
    doc = apply(run_document(), batch("dead", 1, NOW - 20 * DAY))
    doc = apply(doc, batch("new", 1, NOW))  # watermark: NOW - 20 days
    young = batch("stranger", 1, NOW - 6 * DAY)  # younger than the retention
    assert apply(doc, young, now=NOW)["writers"]["stranger"] == 1
    after = batch("stranger", 1, NOW - 19 * DAY)  # sealed after every forgotten writer
    assert apply(doc, after, now=NOW)["writers"]["stranger"] == 1
    with pytest.raises(BatchTooOld):  # old, and a forgotten writer's for all we know
        apply(doc, batch("stranger", 1, NOW - 21 * DAY), now=NOW)


def test_without_a_forgotten_writer_nothing_is_refused() -> None:
    doc = apply(run_document(), batch("a", 1, NOW))
    assert apply(doc, batch("b", 1, NOW - 30 * DAY), now=NOW)["writers"]["b"] == 1
    assert apply(doc, batch("legacy", 1, None), now=NOW)["writers"]["legacy"] == 1


def test_a_batch_of_unknown_age_is_refused_once_writers_were_forgotten() -> None:
    doc = apply(run_document(), batch("dead", 1, NOW - 20 * DAY))
    doc = apply(doc, batch("new", 1, NOW))
    with pytest.raises(BatchTooOld, match="sealed at an unknown time"):
        apply(doc, batch("other-legacy", 1, None), now=NOW)


def test_entries_of_older_plugins_are_not_forgotten() -> None:
    # An older plugin records no time and does not check the watermark: forgetting its
    # writer could let it apply a retried batch twice.
    doc = {**run_document(), "writers": {"v3-writer": 4}}
    doc = apply(doc, batch("a", 1, NOW))
    doc = apply(doc, batch("b", 1, NOW + 400 * DAY))
    assert doc["writers"]["v3-writer"] == 4 and "v3-writer" not in doc["writer_times"]
    assert "a" not in doc["writers"]  # a writer with a time is forgotten as usual


def test_a_fast_clock_never_gets_a_fresh_batch_refused() -> None:
    # One machine's clock is 30 days fast; the others keep logging and retrying.
    doc = apply(run_document(), batch("rank0", 1, NOW))
    doc = apply(doc, batch("fast", 1, NOW + 30 * DAY), now=NOW + 30 * DAY)
    assert "rank0" not in doc["writers"]  # the fast machine forgot rank0 ...
    retried = batch("rank0", 2, NOW - 5)  # ... whose batch, sealed 5 ms earlier, comes now
    assert apply(doc, retried, now=NOW)["writers"]["rank0"] == 2
    assert apply(doc, batch("rank1", 1, NOW + 1), now=NOW + 1)["writers"]["rank1"] == 1


def test_clocks_days_apart_never_apply_a_batch_twice() -> None:
    # "w" applies a batch at T on a correct clock. A machine 3 days fast logs at true
    # T+11.5 days (its clock: T+14.5) and forgets "w"; w's spool is replayed at true T+11.6.
    replayed = batch("w", 1, NOW)
    doc = apply(run_document(), replayed)
    doc = apply(doc, batch("fast", 1, NOW + 14 * DAY + DAY // 2))
    assert "w" not in doc["writers"]
    with pytest.raises(BatchTooOld):
        apply(doc, replayed, now=NOW + 11 * DAY + DAY * 6 // 10)


def test_a_batch_sealed_by_a_clock_ahead_of_the_appliers_is_refused_past_the_retention() -> None:
    # Sealed by a clock 10 minutes ahead, applied at once by another (a shared spool
    # folder), replayed 15 days later.
    replayed = batch("w", 1, NOW + 600_000)
    doc = apply(run_document(), replayed, now=NOW)
    doc = apply(doc, batch("new", 1, NOW + 15 * DAY))
    with pytest.raises(BatchTooOld):
        apply(doc, replayed, now=NOW + 15 * DAY)


def test_replays_applied_late_are_measured_by_the_appliers_clock() -> None:
    doc = apply(run_document(), batch("a", 1, NOW))
    doc = apply(doc, batch("b", 1, NOW - 13 * DAY), now=NOW)  # replayed late: "a" stays
    doc = apply(doc, batch("c", 1, NOW - 5 * DAY), now=NOW)
    assert sorted(doc["writers"]) == ["a", "b", "c"]
    doc = apply(doc, batch("d", 1, NOW + 2 * DAY))  # "b" last heard from 15 days before
    assert sorted(doc["writers"]) == ["a", "c", "d"]


def test_the_retention_is_a_parameter() -> None:
    doc = apply_batch(run_document(), batch("a", 1, NOW), None, retention_ms=1_000, now_ms=NOW)
    later = NOW + 2_001  # two retentions and a millisecond
    doc = apply_batch(doc, batch("b", 1, later), None, retention_ms=1_000, now_ms=later)
    assert doc["writers"] == {"b": 1}


def test_a_batch_keeps_its_seal_time_through_json() -> None:
    made = batch("a", 1, NOW)
    assert RunBatch.from_json(made.to_json()).sealed_at == NOW
    older_spool = {k: v for k, v in made.to_json().items() if k != "sealed_at"}
    assert RunBatch.from_json(older_spool).sealed_at is None

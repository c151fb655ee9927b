"""Tag clocks in the run document: the newest acknowledged write wins, whatever lands last."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mlflow_plugin.format.run_batches import (
    NO_CLOCK,
    RUN_NAME_TAG,
    ClockSource,
    RunBatch,
    StatusWrite,
    apply_batch,
    delete_tag,
    newest_clock,
    set_status,
    set_tags,
    tag_clock,
)
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.objectstore.errors import CorruptObject


def run_document(tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "run_id": "r",
        "experiment_id": "1",
        "run_name": "first",
        "tags": dict(tags or {}),
        "latest_metrics": {},
        "segments": [],
        "writers": {},
    }


def batch(writer: str, sequence: int, tags: dict[str, str], clock: object) -> RunBatch:
    made = RunBatch("r", "1", writer, sequence)
    made.add_tags(tags, clock)  # type: ignore[arg-type]
    return made


def test_a_late_batch_does_not_overwrite_a_newer_value() -> None:
    doc = run_document()
    newer = batch("b", 1, {"state": "new"}, (2_000, "b", 1))
    older = batch("a", 1, {"state": "old"}, (1_000, "a", 7))
    doc = apply_batch(doc, newer, None)
    doc = apply_batch(doc, older, None)  # uploaded (or replayed) after the newer one
    assert doc["tags"]["state"] == "new"
    assert doc["writers"] == {"a": 1, "b": 1}  # the late batch still counts as applied
    assert tag_clock(doc, "state") == (2_000, "b", 1)


def test_the_same_batches_in_either_order_give_the_same_document() -> None:
    first = batch("a", 1, {"x": "a1", "y": "a1"}, (1_000, "a", 1))
    second = batch("b", 1, {"x": "b1"}, (1_500, "b", 1))
    one = apply_batch(apply_batch(run_document(), first, None), second, None)
    other = apply_batch(apply_batch(run_document(), second, None), first, None)
    assert one["tags"] == other["tags"] == {"x": "b1", "y": "a1"}
    assert one["tag_clocks"] == other["tag_clocks"]


def test_a_deleted_tag_stays_deleted_when_an_older_write_lands_late() -> None:
    doc = apply_batch(run_document(), batch("a", 1, {"k": "1"}, (1_000, "a", 1)), None)
    doc = delete_tag(doc, "k", (3_000, "b", 1))
    doc = apply_batch(doc, batch("a", 2, {"k": "2"}, (2_000, "a", 2)), None)
    assert "k" not in doc["tags"]
    doc = apply_batch(doc, batch("a", 3, {"k": "3"}, (4_000, "a", 3)), None)
    assert doc["tags"]["k"] == "3"  # a write newer than the deletion brings it back


def test_a_synchronous_write_is_newer_than_everything_stored_even_with_a_slow_clock() -> None:
    doc = apply_batch(run_document(), batch("a", 1, {"k": "a"}, (9_000, "a", 1)), None)
    doc = set_tags(doc, {"k": "b"}, (5_000, "b", 1))  # b's wall clock is behind a's
    assert doc["tags"]["k"] == "b"
    assert tag_clock(doc, "k") > (9_000, "a", 1)
    doc = apply_batch(doc, batch("a", 0, {"k": "late"}, (8_000, "x", 1)), None)
    assert doc["tags"]["k"] == "b"


def test_the_run_name_follows_its_tag() -> None:
    doc = set_tags(run_document(), {RUN_NAME_TAG: "renamed"}, (2_000, "b", 1))
    assert doc["run_name"] == "renamed"
    doc = apply_batch(doc, batch("a", 1, {RUN_NAME_TAG: "stale"}, (1_000, "a", 1)), None)
    assert doc["run_name"] == doc["tags"][RUN_NAME_TAG] == "renamed"
    doc = apply_batch(doc, batch("a", 2, {RUN_NAME_TAG: "latest"}, (3_000, "a", 2)), None)
    assert doc["run_name"] == doc["tags"][RUN_NAME_TAG] == "latest"


def test_documents_and_batches_without_clocks_keep_working() -> None:
    """A version-2 run document, and a batch replayed from a version-2 spool."""
    doc = run_document({"k": "v2"})
    doc = apply_batch(doc, batch("old", 1, {"k": "replayed"}, None), None)
    assert doc["tags"]["k"] == "replayed"  # neither has a clock: applied in order, as before
    doc = apply_batch(doc, batch("new", 1, {"k": "clocked"}, (1, "new", 1)), None)
    doc = apply_batch(doc, batch("old", 2, {"k": "older"}, None), None)
    assert doc["tags"]["k"] == "clocked"  # a clockless write is older than any clocked one
    doc["tag_clocks"]["k"] = "garbage"  # an unreadable clock counts as none
    assert tag_clock(doc, "k") == NO_CLOCK


def test_a_batch_keeps_its_clocks_through_json() -> None:
    made = batch("a", 4, {"k": "v", "j": "w"}, (1_000, "a", 3))
    made.add_tags({"k": "later"}, (1_001, "a", 4))
    made.add_tags({"k": "earlier"}, (999, "a", 2))  # merged out of order: the newer stays
    again = RunBatch.from_json(json.loads(json.dumps(made.to_json())))
    assert again == made
    assert again.tags == {"k": "later", "j": "w"}
    old_spool = {k: v for k, v in made.to_json().items() if k != "tag_clocks"}
    assert RunBatch.from_json(old_spool).tag_clocks == {}


def test_a_clock_source_never_goes_back() -> None:
    source = ClockSource("w")
    first = source.tick()
    source.observe((first[0] + 60_000, "other", 1))  # this writer wrote past a faster clock
    second = source.tick()
    assert second > first and second[0] >= first[0] + 60_000 and second[1] == "w"


def test_a_kept_final_status_enters_unless_a_newer_status_was_set() -> None:
    doc = {**run_document(), "status": "RUNNING", "end_time": None}
    finished = RunBatch("r", "1", "a", 1, status=StatusWrite("FINISHED", 50, (1_000, "a", 1)))
    again = RunBatch.from_json(json.loads(json.dumps(finished.to_json())))
    assert again == finished
    ended = apply_batch(json.loads(json.dumps(doc)), again, None)
    assert (ended["status"], ended["end_time"]) == ("FINISHED", 50)  # no clock stored yet

    restarted = set_status(
        json.loads(json.dumps(doc)), StatusWrite("RUNNING", None, (2_000, "b", 1))
    )
    late = apply_batch(restarted, again, None)
    assert (late["status"], late["end_time"]) == ("RUNNING", None)  # the newer status stays


def test_a_clock_source_stamps_after_a_clock_it_observed_even_an_equal_wall_clock() -> None:
    source = ClockSource("a")  # "a" sorts before "z": an equal microsecond would lose
    seen = (source.tick()[0] + 120_000_000, "z", 1)  # a machine two minutes fast
    source.observe(seen)
    assert source.tick() > seen


def test_the_newest_clock_of_a_document_covers_tags_deletions_and_the_status() -> None:
    doc = set_tags(run_document(), {"k": "v"}, (1_000, "a", 1))
    doc = delete_tag(doc, "k", (3_000, "b", 1))
    assert newest_clock(doc) == (3_000, "b", 1)
    doc = set_status(doc, StatusWrite("FINISHED", 5, (4_000, "c", 1)))
    assert newest_clock(doc) == (4_000, "c", 1)
    assert newest_clock(run_document()) == NO_CLOCK


def _spooled(**changes: Any) -> dict[str, Any]:
    good = RunBatch(
        "r",
        "1",
        "w",
        3,
        [MetricPoint("loss", 0.5, 10, 1)],
        {"k": "v"},
        {"k": (1_000, "w", 1)},
        StatusWrite("FINISHED", 50, (1_000, "w", 2)),
    ).to_json()
    return {**json.loads(json.dumps(good)), **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"status": {"status": "DONE", "end_time": 1, "clock": [1, "w", 1]}},
        {"status": {"status": "FINISHED", "end_time": "soon", "clock": [1, "w", 1]}},
        {"status": {"status": "FINISHED", "end_time": 1, "clock": "garbage"}},
        {"tags": {"k": 3}},
        {"tags": {"k": ["a"]}},
        {"tags": {"k": "\udc80"}},  # a lone surrogate: no UTF-8 form
        {"tag_clocks": {"k": [1, 2, 3]}},
        {"points": [["loss", "high", 10, 1]]},
        {"points": [["loss", 0.5, 10.5, 1]]},
        {"points": [["loss", 0.5, 10]]},
        {"points": [[7, 0.5, 10, 1]]},
        {"sequence": "3"},
        {"run_id": "../escape"},
        {"writer_id": None},
    ],
)
def test_a_damaged_spooled_batch_is_corrupt_and_names_its_file(changes: dict[str, Any]) -> None:
    assert RunBatch.from_json(_spooled(), "/spool/w/batch-3.json").run_id == "r"
    named = re.escape("damaged spooled batch '/spool/w/batch-3.json'")
    with pytest.raises(CorruptObject, match=named):
        RunBatch.from_json(_spooled(**changes), "/spool/w/batch-3.json")


def test_a_damaged_spooled_status_is_corrupt() -> None:
    with pytest.raises(CorruptObject, match="status"):
        StatusWrite.from_json({"status": 3, "end_time": None}, "batch-1.json")

"""``CheckedBodies``: indexed texts are checked against their schema once, by (key, text)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlflow_plugin.format import keys
from mlflow_plugin.index import query_index
from mlflow_plugin.index.query_index import CheckedBodies
from mlflow_plugin.tracking.store import BucketTrackingStore


@pytest.fixture
def run_text(tmp_path: Path) -> tuple[str, str, str]:
    """(run id, key, stored text) of one real run document."""
    store = BucketTrackingStore(f"bucket+file://{tmp_path / 'root'}")
    experiment_id = store.create_experiment("checked")
    run_id = store.create_run(experiment_id, "u", 0, [], "r").info.run_id
    store.flush()
    key = keys.run_key(experiment_id, run_id)
    return run_id, key, store.object_store.get(key).data.decode("utf-8")


def _counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    inner = query_index.decode_document

    def counted(key: str, data: bytes, where: str = "") -> object:
        checked.append(key)
        return inner(key, data, where)

    monkeypatch.setattr(query_index, "decode_document", counted)
    return checked


def test_a_text_is_checked_once_and_then_only_decoded(
    run_text: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, key, text = run_text
    checks = _counting_checks(monkeypatch)
    bodies = CheckedBodies()
    first = bodies.readable({run_id: (key, text)}, [run_id], [])
    again = bodies.readable({run_id: (key, text)}, [run_id], [])
    assert first == again and first[0]["run_id"] == run_id
    assert checks == [key]
    assert first[0] is not again[0]  # a fresh document each time: callers may change theirs


def test_a_changed_text_under_a_checked_key_is_checked_again(
    run_text: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    run_id, key, text = run_text
    bodies = CheckedBodies()
    assert len(bodies.readable({run_id: (key, text)}, [run_id], [])) == 1
    damaged: list[str] = []
    wrong_type = text.replace(f'"run_id":"{run_id}"', '"run_id":5')
    assert wrong_type != text
    with caplog.at_level(logging.WARNING):
        for bad in (wrong_type, "not json", "[]"):
            assert bodies.readable({run_id: (key, bad)}, [run_id], damaged) == []
    assert damaged == [key, key, key]
    assert sum("indexed copy is damaged" in r.getMessage() for r in caplog.records) == 3


def test_a_text_checked_under_one_key_is_checked_again_under_another(
    run_text: tuple[str, str, str],
) -> None:
    run_id, key, text = run_text
    bodies = CheckedBodies()
    assert len(bodies.readable({run_id: (key, text)}, [run_id], [])) == 1
    damaged: list[str] = []
    # A run's text filed as an experiment's document is not a valid experiment.
    other = keys.experiment_key("7")
    assert bodies.readable({"7": (other, text)}, ["7"], damaged) == []
    assert damaged == [other]


def test_past_its_limit_the_memory_starts_over(
    run_text: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, key, text = run_text
    checks = _counting_checks(monkeypatch)
    bodies = CheckedBodies(limit=2)
    texts = [text, text.replace('"run_name":"r"', '"run_name":"s"'), text + " "]
    assert len(set(texts)) == 3
    for each in texts + texts:
        assert len(bodies.readable({run_id: (key, each)}, [run_id], [])) == 1
    # The third text filled the memory, so it started over: every text checked again.
    assert len(checks) == 6

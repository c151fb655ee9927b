"""A damaged run document with writes buffered for it never breaks anyone else's reads.

The issue's scenario: a run document is damaged in the bucket (here: ``user_id`` a list,
valid JSON), and the process (a server worker, the UI) still holds one buffered log call
for that run. Every later search of every experiment, and the charts of the healthy runs
beside it, must answer as before; the damaged run is left out and a get of it names its key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, ViewType
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import open_object_store
from mlflow_plugin.tracking import write_buffer
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


def _buffered_for_a_damaged_and_a_healthy_run(
    uri: str, damage: Callable[[dict[str, Any]], None]
) -> tuple[BucketTrackingStore, str, str, str]:
    """(store, experiment, damaged run, healthy run), a point buffered for each run."""
    store = BucketTrackingStore(uri, recover_in_background=False)
    experiment = store.create_experiment("writers")
    damaged = store.create_run(experiment, "u", 1, [], "damaged").info.run_id
    healthy = store.create_run(experiment, "u", 1, [], "healthy").info.run_id
    for run_id in (damaged, healthy):
        store.log_metric(run_id, Metric("loss", 0.5, 1, 0))
    store.flush()
    key = keys.run_key(experiment, damaged)
    raw = open_object_store(uri)
    doc = json.loads(raw.get(key).data)
    damage(doc)
    raw.put(key, json.dumps(doc).encode())
    for run_id in (damaged, healthy):  # buffered: the damaged run's upload comes first
        store.log_metric(run_id, Metric("loss", 0.25, 2, 1))
    return store, experiment, damaged, healthy


def _points_seen_by_another_process(uri: str, run_id: str) -> list[int]:
    reader = BucketTrackingStore(uri, recover_in_background=False)
    return [m.step for m in reader.get_metric_history(run_id, "loss")]


def _null_writer_sequences(doc: dict[str, Any]) -> None:
    doc["writers"] = dict.fromkeys(doc["writers"])


def _text_writer_sequences(doc: dict[str, Any]) -> None:
    doc["writers"] = {writer: str(sequence) for writer, sequence in doc["writers"].items()}


@pytest.mark.parametrize("damage", [_null_writer_sequences, _text_writer_sequences])
def test_mistyped_writer_sequences_are_damage_and_healthy_runs_keep_uploading(
    uri: str, damage: Callable[[dict[str, Any]], None]
) -> None:
    store, experiment, damaged, healthy = _buffered_for_a_damaged_and_a_healthy_run(uri, damage)
    key = keys.run_key(experiment, damaged)
    for step in (2, 3):  # the damaged run's batch stays queued; nothing else is held up
        found = store.search_runs([experiment], None, ViewType.ALL)  # flushes first
        assert [r.info.run_id for r in found] == [healthy]
        assert _points_seen_by_another_process(uri, healthy) == list(range(step))
        with pytest.raises(MlflowException) as raised:
            store.flush()
        assert raised.value.error_code == "INTERNAL_ERROR" and key in raised.value.message
        assert "'writers'" in raised.value.message
        with pytest.raises(MlflowException, match="'writers'"):
            store.get_run(damaged)
        store.log_metric(healthy, Metric("loss", 0.125, 3, step))


def test_closing_with_a_damaged_runs_batch_queued_raises_nothing(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, _, damaged, healthy = _buffered_for_a_damaged_and_a_healthy_run(
        uri, _null_writer_sequences
    )
    caplog.clear()
    store.close()  # logs, never raises
    assert _points_seen_by_another_process(uri, healthy) == [0, 1]
    # Damage does not heal in seconds: closing tries the damaged run's upload once (the
    # flusher thread may try it once more), rather than retrying it with back-off until its
    # deadline, which held every exit up for 10 to 60 s.
    attempts = [r for r in caplog.records if damaged in r.getMessage() and "failed" in r.message]
    assert 1 <= len(attempts) <= 2


def test_an_upload_failing_for_no_storage_reason_holds_up_no_other_run(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever one run's upload raises (here: a bug), the other runs' uploads go on."""
    store, experiment, failing, healthy = _buffered_for_a_damaged_and_a_healthy_run(
        uri, lambda doc: None
    )
    real_apply = write_buffer.apply_batch

    def buggy_for_one_run(doc: dict[str, Any], batch: Any, segment: Any) -> dict[str, Any]:
        if batch.run_id == failing:
            raise TypeError("a bug in one run's upload")
        return real_apply(doc, batch, segment)

    monkeypatch.setattr(write_buffer, "apply_batch", buggy_for_one_run)
    found = store.search_runs([experiment], None, ViewType.ALL)  # flushes first: no raise
    assert {r.info.run_id for r in found} == {failing, healthy}
    assert _points_seen_by_another_process(uri, healthy) == [0, 1]
    store.log_metric(healthy, Metric("loss", 0.125, 3, 2))
    with pytest.raises(MlflowException) as raised:
        store.flush()
    assert raised.value.error_code == "INTERNAL_ERROR" and "a bug" in raised.value.message
    assert _points_seen_by_another_process(uri, healthy) == [0, 1, 2]
    monkeypatch.setattr(write_buffer, "apply_batch", real_apply)
    store.flush()  # the failing run's batch was kept
    assert _points_seen_by_another_process(uri, failing) == [0, 1]


def test_a_run_document_saved_as_utf16_is_damage_named_by_its_key(uri: str) -> None:
    """The same JSON re-saved by an editor as UTF-16: the format is UTF-8, so it is damaged."""
    store, experiment, damaged, healthy = _buffered_for_a_damaged_and_a_healthy_run(
        uri, lambda doc: None
    )
    store.flush()
    store.log_metric(damaged, Metric("loss", 0.125, 3, 2))  # buffered for the damaged run
    key = keys.run_key(experiment, damaged)
    raw = open_object_store(uri)
    raw.put(key, raw.get(key).data.decode("utf-8").encode("utf-16"))
    for reader in (store, BucketTrackingStore(uri, recover_in_background=False)):
        found = reader.search_runs([experiment], None, ViewType.ALL)
        assert [r.info.run_id for r in found] == [healthy]
        with pytest.raises(MlflowException) as raised:
            reader.get_run(damaged)
        assert raised.value.error_code == "INTERNAL_ERROR" and key in raised.value.message

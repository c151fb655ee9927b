"""The change journal: what a writer leaves after each document write, and what gc removes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.format.garbage import JOURNAL, collect_garbage
from mlflow_plugin.objectstore import MemoryObjectStore, open_object_store
from mlflow_plugin.objectstore import parse_store_uri as parse
from tests.servers import S3Endpoint


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    return (
        f"bucket+s3://{endpoint.shared_bucket}/{uuid.uuid4().hex[:8]}?endpoint_url={endpoint.url}"
    )


def test_entry_keys_name_the_document_and_its_etag() -> None:
    run = change_journal.entry_key("experiments/7/runs/abc.json", '"e1"', at_ms=42)
    assert (
        run == f"changes/0000000000042.7.abc.{change_journal.etag_digest(chr(34) + 'e1' + chr(34))}"
    )
    change = change_journal.parse(str(run))
    assert change is not None
    assert (change.at_ms, change.experiment_id, change.run_id, change.every_run) == (
        42,
        "7",
        "abc",
        False,
    )
    assert change.document_key == keys.run_key("7", "abc")
    experiment = change_journal.parse(
        str(change_journal.entry_key("experiments/7/experiment.json", None, at_ms=1))
    )
    assert experiment is not None and experiment.run_id is None and experiment.digest is None
    assert experiment.document_key == keys.experiment_key("7")
    folder = change_journal.parse(str(change_journal.entry_key("experiments/7/", None, at_ms=1)))
    assert folder is not None and folder.every_run and folder.document_key is None
    # Anything else needs no entry; odd names under the prefix are not entries.
    assert change_journal.entry_key("experiments/7/metrics/abc/s.parquet", "x") is None
    assert change_journal.entry_key("models/m.json", "x") is None
    odd_names = ["changes/x.7.abc._", "changes/1.7.abc", "changes/1.../._", "changes/1.7.a b._"]
    for odd in [*odd_names, "changes/\u00b2.0._._"]:  # '²' is a digit to str.isdigit
        assert change_journal.parse(odd) is None


def test_every_document_write_leaves_an_entry(root_uri: str) -> None:
    client = MlflowClient(root_uri)
    experiment_id = client.create_experiment("journaled")
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "a", "1")
    client.log_metric(run_id, "m", 1.0)
    client._tracking_client.store.flush()
    client.delete_run(run_id)
    client.set_experiment_tag(experiment_id, "e", "1")

    objects = open_object_store(parse(root_uri))
    changes = change_journal.changes_since(objects, change_journal.now_ms())
    run_changes = [c for c in changes if c.run_id == run_id]
    experiment_changes = [c for c in changes if c.experiment_id == experiment_id and not c.run_id]
    # create, set_tag and the metric upload (one write or two), delete_run.
    assert len(run_changes) >= 3
    assert len(experiment_changes) >= 2  # create, set_experiment_tag
    # The newest entry names the document's current ETag.
    current = objects.get(keys.run_key(experiment_id, run_id)).etag
    assert run_changes[-1].digest == change_journal.etag_digest(current)
    assert [c.at_ms for c in changes] == sorted(c.at_ms for c in changes)


def test_changes_since_reads_from_a_margin_before_the_cursor() -> None:
    store = MemoryObjectStore()
    margin = change_journal.MARGIN_MS
    for at in (1_000_000, 2_000_000, 2_000_000 + margin):
        key = change_journal.entry_key("experiments/1/runs/r.json", "e", at_ms=at)
        store.put(str(key), b"")
    store.put("changes/not-an-entry", b"")
    since = [c.at_ms for c in change_journal.changes_since(store, 2_000_000 + margin)]
    assert since == [2_000_000, 2_000_000 + margin]


def test_gc_deletes_entries_older_than_the_retention(tmp_path: Path) -> None:
    uri = f"bucket+file:{tmp_path / 'root'}"
    MlflowClient(uri).create_experiment("kept")  # a store: _format.json and entries
    objects = open_object_store(parse(uri))
    now = change_journal.now_ms()
    old = now - change_journal.RETENTION_MS - 2 * 3_600_000
    for at in (old, old + 1):
        objects.put(str(change_journal.entry_key("experiments/1/runs/r.json", "e", at_ms=at)), b"")
    young = [c.key for c in change_journal.changes_since(objects, now)]
    assert young  # the experiment's creation

    report = collect_garbage(objects, parse(uri), older_than_days=30, grace_hours=1)
    assert report.counts[JOURNAL] == 1  # one item: the expired entries
    left = [info.key for info in objects.list(change_journal.JOURNAL_PREFIX)]
    assert left == young


def test_gc_leaves_entries_for_what_it_purges(tmp_path: Path) -> None:
    import subprocess
    import sys

    uri = f"bucket+file:{tmp_path / 'root'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("purged")
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    objects = open_object_store(parse(uri))
    before = {c.key for c in change_journal.changes_since(objects, change_journal.now_ms())}
    result = subprocess.run(
        [sys.executable, "-m", "mlflow_plugin", "gc", uri, "--older-than", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    after = change_journal.changes_since(objects, change_journal.now_ms())
    purged = [c for c in after if c.key not in before and c.run_id == run_id]
    assert purged and purged[-1].digest is None  # a delete: readers read it again

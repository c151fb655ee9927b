"""The root's format document: created once, a newer one refused, an older one migrated once.

``_format.json`` is written put-if-absent by the first store that opens a root. A root of a
newer format is refused by both stores with a message naming both versions and what to do;
a root of an older format is migrated by compare-and-swap, so that two processes opening it
at once record exactly one migration; a ``_format.json`` that is not a format document is a
clear error naming it. None of these refusals writes anything.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from uuid import uuid4

import pytest
from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import version
from mlflow_plugin.format.keys import FORMAT_KEY
from mlflow_plugin.format.version import FORMAT_VERSION, open_root
from mlflow_plugin.objectstore import MemoryObjectStore, ObjectStore, open_object_store
from mlflow_plugin.registry.store import BucketRegistryStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.processes import run_in_processes
from tests.servers import S3Endpoint

V1 = {"format": "mlflow-bucket", "version": 1}


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/format/{uuid4().hex}?endpoint_url={moto.url}"


def format_document(store: ObjectStore) -> dict[str, object]:
    doc: dict[str, object] = json.loads(store.get(FORMAT_KEY).data)
    return doc


def keys_of(store: ObjectStore) -> list[str]:
    return sorted(info.key for info in store.list(""))


def test_a_new_root_gets_the_current_format_with_an_id(uri: str) -> None:
    tracking = BucketTrackingStore(uri, recover_in_background=False)
    registry = BucketRegistryStore(uri)
    doc = format_document(open_object_store(uri))
    assert doc["format"] == "mlflow-bucket" and doc["version"] == FORMAT_VERSION == 3
    assert isinstance(doc["root_id"], str) and len(doc["root_id"]) == 32
    assert str(doc["created_by"]).startswith("mlflow-bucket")
    assert "migrations" not in doc
    assert tracking.format_document == registry.format_document == doc


@pytest.mark.parametrize("store_kind", ["tracking", "registry"])
def test_a_newer_root_is_refused_naming_both_versions(
    uri: str, store_kind: str, tmp_path: Path
) -> None:
    store = open_object_store(uri)
    newer = {"format": "mlflow-bucket", "version": FORMAT_VERSION + 1, "root_id": "x"}
    store.put(FORMAT_KEY, json.dumps(newer).encode())
    before = keys_of(store)
    with pytest.raises(MlflowException) as raised:
        if store_kind == "tracking":
            BucketTrackingStore(uri, recover_in_background=False)
        else:
            BucketRegistryStore(uri)
    message = raised.value.message
    assert raised.value.error_code == "INVALID_STATE"
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert f"up to {FORMAT_VERSION}" in message
    assert "upgrade" in message and "pip install --upgrade mlflow-bucket" in message
    assert keys_of(store) == before  # not even the default experiment
    assert format_document(store) == newer


def test_mlflow_client_reports_a_newer_root(tmp_path: Path) -> None:
    uri = f"bucket+file://{tmp_path}/root"
    store = open_object_store(uri)
    store.put(FORMAT_KEY, json.dumps({"format": "mlflow-bucket", "version": 9}).encode())
    with pytest.raises(MlflowException, match="format version 9"):
        MlflowClient(tracking_uri=uri).search_experiments()
    with pytest.raises(MlflowException, match="format version 9"):
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()


def test_an_older_root_is_migrated_once_and_keeps_its_data(uri: str) -> None:
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("before-migration")
    store = open_object_store(uri)
    store.put(FORMAT_KEY, json.dumps(V1).encode())  # as version 1 of the plugin left it

    first = BucketTrackingStore(uri, recover_in_background=False).format_document
    doc = format_document(store)
    assert doc == first
    assert doc["version"] == FORMAT_VERSION and isinstance(doc["root_id"], str)
    assert "created_by" not in doc  # who created a version-1 root was never recorded
    migrations = doc["migrations"]
    assert isinstance(migrations, list) and len(migrations) == 1
    migration = migrations[0]
    assert migration["from"] == 1 and migration["to"] == FORMAT_VERSION
    assert str(migration["by"]).startswith("mlflow-bucket")

    assert BucketRegistryStore(uri).format_document == doc  # opened again: nothing to do
    assert format_document(store) == doc
    reader = BucketTrackingStore(uri, recover_in_background=False)
    assert reader.get_experiment(experiment_id).name == "before-migration"


def test_a_version_2_root_with_clockless_tags_is_migrated_and_keeps_working(uri: str) -> None:
    """2 -> 3 rewrites only _format.json: a run document without tag clocks stays valid."""
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("v2"), tags={"state": "v2"})
    run_id = run.info.run_id
    store = open_object_store(uri)
    run_key = f"experiments/{run.info.experiment_id}/runs/{run_id}.json"
    run_doc = json.loads(store.get(run_key).data)
    del run_doc["tag_clocks"]  # as a version-2 plugin wrote it
    store.put(run_key, json.dumps(run_doc).encode())
    v2 = {**format_document(store), "version": 2}
    store.put(FORMAT_KEY, json.dumps(v2).encode())

    reopened = BucketTrackingStore(uri, recover_in_background=False)
    doc = format_document(store)
    assert doc["version"] == 3 and doc["root_id"] == v2["root_id"]
    migrations = doc["migrations"]
    assert isinstance(migrations, list)
    assert [(m["from"], m["to"]) for m in migrations] == [(2, 3)]
    assert json.loads(store.get(run_key).data) == run_doc  # no run document rewritten
    assert reopened.get_run(run_id).data.tags["state"] == "v2"
    reopened.set_tag(run_id, RunTag("state", "v3"))  # a clocked write beats a clockless one
    reopened.flush()
    assert BucketTrackingStore(uri).get_run(run_id).data.tags["state"] == "v3"


def test_a_version_2_plugin_refuses_a_version_3_root(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    BucketTrackingStore(uri, recover_in_background=False)  # a version-3 root
    monkeypatch.setattr(version, "FORMAT_VERSION", 2)
    monkeypatch.setattr(version, "MIGRATIONS", version.MIGRATIONS[:1])
    with pytest.raises(version.FormatTooNew, match="format version 3"):
        open_root(open_object_store(uri))


def _open_and_report(uri: str, report: str) -> None:
    Path(report).write_text(json.dumps(open_root(open_object_store(uri))))


@pytest.mark.slow
def test_two_processes_migrating_at_once_record_one_migration(tmp_path: Path) -> None:
    uri = f"bucket+file://{tmp_path}/root"
    for attempt in range(3):  # three rounds: the processes race differently each time
        store = open_object_store(uri)
        store.put(FORMAT_KEY, json.dumps(V1).encode())
        reports = [tmp_path / f"report-{attempt}-{i}.json" for i in range(2)]
        run_in_processes(_open_and_report, [(uri, str(r)) for r in reports], timeout=120)
        seen = [json.loads(r.read_text()) for r in reports]
        final = format_document(store)
        assert seen[0] == seen[1] == final
        assert len(final["migrations"]) == 1  # type: ignore[arg-type]


class _RacingStore(MemoryObjectStore):
    """Holds every reader of _format.json until two have read it: both migrate the same v1."""

    def __init__(self) -> None:
        super().__init__()
        self.readers = threading.Barrier(2, timeout=10)
        self.lost = 0

    def get(self, key: str):  # type: ignore[no-untyped-def]
        stored = super().get(key)
        if key == FORMAT_KEY and json.loads(stored.data)["version"] == 1:
            self.readers.wait()
        return stored

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        try:
            return super().put_if_match(key, data, etag)
        except Exception:
            self.lost += 1
            raise


def test_the_compare_and_swap_decides_whose_migration_is_recorded() -> None:
    store = _RacingStore()
    store.put(FORMAT_KEY, json.dumps(V1).encode())
    results: list[dict[str, object]] = []
    threads = [threading.Thread(target=lambda: results.append(open_root(store))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert store.lost == 1  # both migrated version 1; one swap lost and re-read
    assert len(results) == 2 and results[0] == results[1] == format_document(store)
    assert len(results[0]["migrations"]) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b'{"format": "mlflow-bucket", "version": 1',
        b"[1, 2]",
        b'{"format": "something-else", "version": 1}',
        b'{"version": 1}',
        b'{"format": "mlflow-bucket", "version": "two"}',
        b'{"format": "mlflow-bucket", "version": 0}',
        b'{"format": "mlflow-bucket", "version": true}',
        b'{"format": "mlflow-bucket"}',
        b"[" * 100_000,
    ],
    ids=lambda content: content[:30].decode(errors="replace") or "empty",
)
def test_an_unknown_format_document_is_a_clear_error(content: bytes, tmp_path: Path) -> None:
    uri = f"bucket+file://{tmp_path}/root"
    store = open_object_store(uri)
    store.put(FORMAT_KEY, content)
    for open_store in (
        lambda: BucketTrackingStore(uri, recover_in_background=False),
        lambda: BucketRegistryStore(uri),
    ):
        with pytest.raises(MlflowException) as raised:
            open_store()
        assert raised.value.error_code == "INTERNAL_ERROR"
        assert FORMAT_KEY in raised.value.message and "restore" in raised.value.message
    assert keys_of(store) == [FORMAT_KEY]
    assert store.get(FORMAT_KEY).data == content


def test_a_version_without_a_migration_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryObjectStore()
    store.put(FORMAT_KEY, json.dumps(V1).encode())
    monkeypatch.setattr(version, "MIGRATIONS", [])
    with pytest.raises(version.UnknownFormat, match="no migration from format version 1"):
        open_root(store)
    assert json.loads(store.get(FORMAT_KEY).data) == V1

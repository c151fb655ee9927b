"""Names and strings that used to break listings for everyone, and deleting big experiments.

- Text with no UTF-8 form (a lone surrogate: Python's ``surrogateescape`` spelling of a
  non-UTF-8 script name, which MLflow copies into ``mlflow.source.name``) is refused at
  every write entry point, as ``sqlite:///`` refuses it, and searches keep working.
- Two documents of one name (hand-made, as a partial restore leaves them) are listed
  once, by the store, the index and a real ``mlflow server``; and creating or renaming
  to a name never depends on a clock: paused creators and renamers, creators whose
  clock is minutes ahead, and two stores racing on SeaweedFS (atomic conditional
  writes) end with exactly one document per name.
- Deleting an experiment deletes every run, as ``sqlite:///`` does (a delete cut
  short, and runs created meanwhile: ``test_experiment_delete.py``).

Every scenario runs on bucket+file and on bucket+s3 (SeaweedFS).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Dataset as DatasetEntity
from mlflow.entities import DatasetInput, InputTag, Param, RunTag, ViewType
from mlflow.entities.model_registry import RegisteredModelTag
from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID
from mlflow.exceptions import MlflowException

import mlflow_plugin.registry.store as registry_store_module
import mlflow_plugin.tracking.experiments as experiments_module
from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import (
    ObjectInfo,
    ObjectStore,
    StoredObject,
    open_object_store,
    parse_store_uri,
)
from mlflow_plugin.registry import keys as registry_keys
from mlflow_plugin.registry.store import BucketRegistryStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint, mlflow_server
from tests.sqlite_reference import migrated_sqlite_uri

SURROGATE = "train\udcff.py"  # what os.fsdecode makes of b"train\xff.py"
WAIT_S = 60.0


@pytest.fixture(params=["file", "s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("seaweedfs_s3")
    prefix = f"names/{uuid.uuid4().hex}"
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"


def _raw(uri: str) -> ObjectStore:
    """The bucket itself, bypassing every store (what a restore from a backup writes)."""
    return open_object_store(parse_store_uri(uri))


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- lone surrogates -------------------------------------------------------------------------


def _write_calls(
    client: MlflowClient, experiment_id: str, run_id: str
) -> dict[str, Callable[[], Any]]:
    """Every write entry point, each given one string UTF-8 cannot encode."""
    bad = SURROGATE
    dataset = DatasetEntity(name=bad, digest="d", source_type="local", source="s")
    return {
        "create_run tag (mlflow.source.name)": lambda: client.create_run(
            experiment_id, tags={"mlflow.source.name": bad}
        ),
        "create_run run name": lambda: client.create_run(experiment_id, run_name=bad),
        "update_run name": lambda: client.update_run(run_id, name=bad),
        "set_tag value": lambda: client.set_tag(run_id, "k", bad),
        "log_param value": lambda: client.log_param(run_id, "p", bad),
        "log_batch tag value": lambda: client.log_batch(run_id, tags=[RunTag("k2", bad)]),
        "log_batch param value": lambda: client.log_batch(run_id, params=[Param("p2", bad)]),
        "log_inputs dataset name": lambda: client.log_inputs(
            run_id, [DatasetInput(dataset, [InputTag("k", "v")])]
        ),
        "create_experiment name": lambda: client.create_experiment(bad),
        "create_experiment tag": lambda: client.create_experiment("x1", tags={"k": bad}),
        "create_experiment artifact location": lambda: client.create_experiment(
            "x2", artifact_location=f"/tmp/{bad}"
        ),
        "set_experiment_tag value": lambda: client.set_experiment_tag(experiment_id, "k", bad),
        "rename_experiment": lambda: client.rename_experiment(experiment_id, bad),
        "create_logged_model tag": lambda: client.create_logged_model(
            experiment_id, tags={"k": bad}
        ),
        "create_logged_model param": lambda: client.create_logged_model(
            experiment_id, params={"k": bad}
        ),
        "create_registered_model name": lambda: client.create_registered_model(bad),
        "create_registered_model tag": lambda: client.create_registered_model(
            "m1", tags={"k": bad}
        ),
        "create_registered_model description": lambda: client.create_registered_model(
            "m2", description=bad
        ),
        "set_registered_model_tag value": lambda: client.set_registered_model_tag(
            "model", "k", bad
        ),
        "update_registered_model description": lambda: client.update_registered_model(
            "model", description=bad
        ),
        "rename_registered_model": lambda: client.rename_registered_model("model", bad),
        "create_model_version description": lambda: client.create_model_version(
            "model", "s3://bucket/model", description=bad
        ),
        "set_model_version_tag value": lambda: client.set_model_version_tag("model", "1", "k", bad),
    }


def _outcomes(client: MlflowClient) -> dict[str, str]:
    """Each write entry point's answer to a lone surrogate: an MlflowException's code."""
    experiment_id = client.create_experiment("strings")
    run_id = client.create_run(experiment_id).info.run_id
    client.create_registered_model("model")
    client.create_model_version("model", "s3://bucket/model")
    outcomes = {}
    for label, call in _write_calls(client, experiment_id, run_id).items():
        try:
            call()
            outcomes[label] = "accepted"
        except MlflowException as exc:
            outcomes[label] = exc.error_code
    return outcomes


def test_lone_surrogates_are_refused_at_every_write_entry_point(uri: str, tmp_path: Path) -> None:
    client = MlflowClient(uri, registry_uri=uri)
    ours = _outcomes(client)
    # The registry too: left to MLflow, it follows whatever registry URI is set globally.
    reference_uri = migrated_sqlite_uri(tmp_path / "reference.db")
    reference = _outcomes(MlflowClient(reference_uri, registry_uri=reference_uri))

    # sqlite:/// refuses each (INTERNAL_ERROR where its database's encoder fails, which is
    # a server error; ours says what is wrong with the input instead).
    assert {label for label, code in reference.items() if code == "accepted"} == set()
    assert ours == dict.fromkeys(ours, "INVALID_PARAMETER_VALUE")
    # Nothing was stored, and every listing still answers.
    experiment_id = client.get_experiment_by_name("strings").experiment_id
    assert len(client.search_runs([experiment_id])) == 1
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "strings"]
    assert [m.name for m in client.search_registered_models()] == ["model"]
    assert client.get_experiment_by_name(SURROGATE) is None
    for search in (
        lambda: client.search_runs([experiment_id], f"tags.k = '{SURROGATE}'"),
        lambda: client.search_experiments(filter_string=f"name = '{SURROGATE}'"),
    ):
        with pytest.raises(MlflowException) as unsearchable:
            search()
        assert unsearchable.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as missing:
        client.get_registered_model(SURROGATE)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_non_utf8_script_name_is_refused_at_start_run_and_searches_keep_working(
    uri: str,
) -> None:
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.set_experiment("scripts").experiment_id
        with pytest.raises(MlflowException) as refused:
            mlflow.start_run(tags={"mlflow.source.name": SURROGATE})
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
        assert mlflow.active_run() is None
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 1.0)  # the run is now on the write path's hot path
            with pytest.raises(MlflowException) as hot:
                mlflow.set_tag("mlflow.source.name", SURROGATE)
            assert hot.value.error_code == "INVALID_PARAMETER_VALUE"
            mlflow.set_tag("mlflow.source.name", "train.py")
        runs = MlflowClient(uri).search_runs([experiment_id])
        assert [r.info.run_id for r in runs] == [run.info.run_id]
        assert runs[0].data.tags["mlflow.source.name"] == "train.py"
    finally:
        mlflow.set_tracking_uri(None)
        # set_experiment made "scripts" this process's experiment (and, through the
        # environment, its subprocesses'): a later test's start_run on a root without
        # it would fail.
        mlflow.tracking.fluent._active_experiment_id = None
        MLFLOW_EXPERIMENT_ID.unset()


# -- two documents of one name ---------------------------------------------------------------


def _experiment_names_stored(uri: str) -> list[str]:
    raw = _raw(uri)
    return sorted(
        json.loads(raw.get(info.key).data)["name"]
        for info in raw.list(keys.experiments_prefix())
        if info.key.endswith("/experiment.json")
    )


def _model_names_stored(uri: str) -> list[str]:
    raw = _raw(uri)
    return sorted(
        json.loads(raw.get(info.key).data)["name"]
        for info in raw.list(registry_keys.models_prefix())
        if info.key.endswith("/model.json")
    )


def _copy_experiment_raw(uri: str, source_id: str, copy_id: str) -> None:
    raw = _raw(uri)
    doc = json.loads(raw.get(keys.experiment_key(source_id)).data)
    doc["experiment_id"] = copy_id
    raw.put(keys.experiment_key(copy_id), json.dumps(doc).encode())


def _point_claim_raw(uri: str, name: str, experiment_id: str) -> None:
    raw = _raw(uri)
    claim = {"name": name, "experiment_id": experiment_id}
    raw.put(keys.experiment_name_key(name), json.dumps(claim).encode())


def test_hand_made_duplicate_experiments_are_listed_once(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = MlflowClient(uri)
    original = client.create_experiment("dup")
    client.create_run(original)
    _copy_experiment_raw(uri, original, "90")  # a partial restore from a backup

    store = BucketTrackingStore(uri)  # a process that has never seen this root
    with caplog.at_level(logging.WARNING):
        listed = store.search_experiments(view_type=ViewType.ALL)
    assert sorted((e.name, e.experiment_id) for e in listed) == [
        ("Default", "0"),
        ("dup", original),
    ]
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert keys.experiment_key(original) in warning and keys.experiment_key("90") in warning
    assert store.get_experiment_by_name("dup").experiment_id == original
    by_filter = store.search_experiments(filter_string="name = 'dup'")
    assert [e.experiment_id for e in by_filter] == [original]
    assert store.get_experiment("90").name == "dup"  # still readable by id
    assert len(store.search_runs([original], "", ViewType.ALL)) == 1

    # The claim decides: pointed at the copy, the copy is the one listed and got by name.
    _point_claim_raw(uri, "dup", "90")
    store = BucketTrackingStore(uri)
    assert [e.experiment_id for e in store.search_experiments() if e.name == "dup"] == ["90"]
    assert store.get_experiment_by_name("dup").experiment_id == "90"

    # Renamed apart, both are listed again.
    store.rename_experiment("90", "dup-restored")

    def both_listed() -> bool:
        names = {e.name: e.experiment_id for e in store.search_experiments()}
        return names.get("dup") == original and names.get("dup-restored") == "90"

    _poll(both_listed, "both experiments to be listed after the rename")


def test_hand_made_duplicate_registered_models_are_listed_once(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("model", tags={"which": "original"})
    raw = _raw(uri)
    original_key = next(i.key for i in raw.list(registry_keys.models_prefix()))
    copy = json.loads(raw.get(original_key).data)
    copy_key = uuid.uuid4().hex
    copy.update(model_key=copy_key, tags={"which": "copy"}, creation_timestamp=1)
    raw.put(registry_keys.model_key(copy_key), json.dumps(copy).encode())

    store = BucketRegistryStore(uri)
    with caplog.at_level(logging.WARNING):
        listed = store.search_registered_models()
    assert [(m.name, m.tags["which"]) for m in listed] == [("model", "original")]
    assert registry_keys.model_key(copy_key) in " ".join(r.getMessage() for r in caplog.records)
    assert store.get_registered_model("model").tags["which"] == "original"


def test_the_ui_home_page_answers_with_duplicate_names_through_mlflow_server(
    uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(uri, registry_uri=uri)
    original = client.create_experiment("dup")
    _copy_experiment_raw(uri, original, "90")
    client.create_registered_model("model")
    raw = _raw(uri)
    model_key = next(i.key for i in raw.list(registry_keys.models_prefix()))
    copy = json.loads(raw.get(model_key).data)
    copy["model_key"] = uuid.uuid4().hex
    raw.put(registry_keys.model_key(copy["model_key"]), json.dumps(copy).encode())

    with mlflow_server(uri, workdir=tmp_path) as server:
        answer = requests.post(
            f"{server.url}/ajax-api/2.0/mlflow/experiments/search",
            json={"max_results": 25, "order_by": ["last_update_time DESC"], "view_type": "ALL"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text[:500]
        names = sorted(e["name"] for e in answer.json()["experiments"])
        assert names == ["Default", "dup"]
        answer = requests.get(
            f"{server.url}/ajax-api/2.0/mlflow/registered-models/search", timeout=30
        )
        assert answer.status_code == 200, answer.text[:500]
        assert [m["name"] for m in answer.json()["registered_models"]] == ["model"]


# -- creating and renaming never depend on a clock ---------------------------------------------


class PausingStore(ObjectStore):
    """Another process's view of the bucket, paused at one write until released."""

    def __init__(self, inner: ObjectStore, pause_at: Callable[[str, str], bool]) -> None:
        self._inner = inner
        self._pause_at = pause_at
        self.location = inner.location
        self.paused = threading.Event()
        self.release = threading.Event()

    def _maybe_pause(self, operation: str, key: str) -> None:
        if not self.paused.is_set() and self._pause_at(operation, key):
            self.paused.set()
            assert self.release.wait(WAIT_S), "never released"

    def get(self, key: str) -> StoredObject:
        return self._inner.get(key)

    def head(self, key: str) -> ObjectInfo:
        return self._inner.head(key)

    def put(self, key: str, data: bytes) -> str:
        return self._inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._maybe_pause("put_if_absent", key)
        return self._inner.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._maybe_pause("put_if_match", key)
        return self._inner.put_if_match(key, data, etag)

    def delete(self, key: str) -> None:
        self._inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._inner.list(prefix)


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except MlflowException as exc:
            outcome["error"] = exc.error_code

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _paused(store: Any, pause_at: Callable[[str, str], bool]) -> PausingStore:
    if isinstance(store, BucketTrackingStore):
        pausing = PausingStore(store.context.objects, pause_at)
        store.context.objects = pausing
    else:
        pausing = PausingStore(store._store, pause_at)
        store._store = pausing
    return pausing


def test_a_creator_paused_between_its_writes_does_not_hold_the_name_nor_duplicate_it(
    uri: str,
) -> None:
    slow, other = BucketTrackingStore(uri), BucketTrackingStore(uri)
    pausing = _paused(
        slow, lambda op, key: op == "put_if_absent" and key.endswith("/experiment.json")
    )
    thread, slow_outcome = _in_thread(lambda: slow.create_experiment("contested"))
    assert pausing.paused.wait(WAIT_S)

    # No waiting for a minute-old claim: the name is free until a document carries it.
    created = other.create_experiment("contested")
    pausing.release.set()
    thread.join(WAIT_S)

    assert slow_outcome == {"error": "RESOURCE_ALREADY_EXISTS"}
    assert _experiment_names_stored(uri).count("contested") == 1
    assert other.get_experiment_by_name("contested").experiment_id == created


def test_a_renamer_paused_mid_way_and_a_creator_with_a_clock_ahead_leave_one_experiment(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamer, creator = BucketTrackingStore(uri), BucketTrackingStore(uri)
    source = renamer.create_experiment("before")
    claim_key = keys.experiment_name_key("contested")
    raw = _raw(uri)
    pausing = _paused(
        renamer,
        lambda op, key: (
            op == "put_if_match" and key == keys.experiment_key(source) and raw.exists(claim_key)
        ),
    )
    thread, renamed = _in_thread(lambda: renamer.rename_experiment(source, "contested"))
    assert pausing.paused.wait(WAIT_S)

    # The creator's clock is two minutes ahead: a claim's age must not matter.
    real_now = experiments_module.get_current_time_millis
    monkeypatch.setattr(experiments_module, "get_current_time_millis", lambda: real_now() + 120_000)
    try:
        created = creator.create_experiment("contested")
    except MlflowException as exc:
        created = exc.error_code
    monkeypatch.undo()
    pausing.release.set()
    thread.join(WAIT_S)

    assert _experiment_names_stored(uri).count("contested") == 1
    owner = creator.get_experiment_by_name("contested").experiment_id
    if "error" in renamed:  # the creator won: the rename is refused as the SQL store does
        assert renamed["error"] == "BAD_REQUEST" and owner == created
    else:
        assert created == "RESOURCE_ALREADY_EXISTS" and owner == source


def test_a_registered_model_creator_paused_mid_way_does_not_hold_the_name(uri: str) -> None:
    slow, other = BucketRegistryStore(uri), BucketRegistryStore(uri)
    pausing = _paused(slow, lambda op, key: op == "put_if_absent" and key.endswith("/model.json"))
    thread, slow_outcome = _in_thread(lambda: slow.create_registered_model("contested"))
    assert pausing.paused.wait(WAIT_S)
    other.create_registered_model("contested", tags=[RegisteredModelTag("by", "other")])
    pausing.release.set()
    thread.join(WAIT_S)

    assert slow_outcome == {"error": "RESOURCE_ALREADY_EXISTS"}
    assert _model_names_stored(uri) == ["contested"]
    assert other.get_registered_model("contested").tags == {"by": "other"}


def test_a_registered_model_renamer_paused_mid_way_and_a_creator_with_a_clock_ahead(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamer, creator = BucketRegistryStore(uri), BucketRegistryStore(uri)
    renamer.create_registered_model("before")
    raw = _raw(uri)
    claim_key = registry_keys.model_name_key("contested")
    pausing = _paused(
        renamer,
        lambda op, key: (
            op == "put_if_match" and key.endswith("/model.json") and raw.exists(claim_key)
        ),
    )
    thread, renamed = _in_thread(lambda: renamer.rename_registered_model("before", "contested"))
    assert pausing.paused.wait(WAIT_S)
    real_now = registry_store_module.get_current_time_millis
    monkeypatch.setattr(
        registry_store_module, "get_current_time_millis", lambda: real_now() + 120_000
    )
    try:
        creator.create_registered_model("contested", tags=[RegisteredModelTag("by", "creator")])
        created = "created"
    except MlflowException as exc:
        created = exc.error_code
    monkeypatch.undo()
    pausing.release.set()
    thread.join(WAIT_S)

    assert _model_names_stored(uri).count("contested") == 1
    if "error" in renamed:
        assert renamed["error"] == "RESOURCE_ALREADY_EXISTS" and created == "created"
        assert _model_names_stored(uri) == ["before", "contested"]
    else:
        assert created == "RESOURCE_ALREADY_EXISTS"
        assert _model_names_stored(uri) == ["contested"]


def _skewed_clocks(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """Every call of ``module``'s clock is right or two minutes ahead, as on two machines."""
    real_now, skew = module.get_current_time_millis, random.Random(7)
    monkeypatch.setattr(
        module, "get_current_time_millis", lambda: real_now() + skew.choice((0, 120_000))
    )


def test_two_stores_racing_to_create_and_rename_keep_one_experiment_per_name(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [BucketTrackingStore(uri), BucketTrackingStore(uri)]
    names = [f"race-{n}" for n in range(8)]
    sources = {name: stores[1].create_experiment(f"source-of-{name}") for name in names}

    def attempt(job: tuple[int, str, str]) -> str:
        number, how, name = job
        store = stores[number % 2]
        try:
            if how == "rename":
                store.rename_experiment(sources[name], name)
                return sources[name]
            return store.create_experiment(name)
        except MlflowException as exc:
            assert exc.error_code in ("RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"), exc
            return ""

    _skewed_clocks(monkeypatch, experiments_module)
    jobs = [
        (number, how, name)
        for name in names
        for number, how in enumerate(("create", "rename", "create", "create"))
    ]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, jobs))

    stored = _experiment_names_stored(uri)
    for name in names:
        winners = {o for (_, _, n), o in zip(jobs, outcomes, strict=True) if n == name and o}
        assert stored.count(name) == 1, f"{name}: {stored.count(name)} documents"
        assert winners == {stores[0].get_experiment_by_name(name).experiment_id}


def test_two_stores_racing_to_create_and_rename_one_registered_model_name(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [BucketRegistryStore(uri), BucketRegistryStore(uri)]
    for number in range(4):
        stores[number % 2].create_registered_model(f"source-{number}")
    _skewed_clocks(monkeypatch, registry_store_module)

    def attempt(number: int) -> bool:
        try:
            if number < 4:
                stores[number % 2].rename_registered_model(f"source-{number}", "raced")
            else:
                stores[number % 2].create_registered_model("raced")
            return True
        except MlflowException as exc:
            assert exc.error_code == "RESOURCE_ALREADY_EXISTS", exc
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(attempt, range(8))) == 1
    assert _model_names_stored(uri).count("raced") == 1


# -- deleting an experiment of many runs ------------------------------------------------------


def _lifecycle(store: Any, experiment_id: str) -> tuple[str, list[str], list[str]]:
    """The experiment's stage, and its active and deleted runs, as ``store`` answers."""
    experiment = store.get_experiment(experiment_id)
    runs = store.search_runs([experiment_id], "", ViewType.ALL, max_results=1000)
    return (
        experiment.lifecycle_stage,
        sorted(r.data.tags["n"] for r in runs if r.info.lifecycle_stage == "active"),
        sorted(r.data.tags["n"] for r in runs if r.info.lifecycle_stage == "deleted"),
    )


def _fill(client: MlflowClient, runs: int) -> tuple[str, list[str]]:
    experiment_id = client.create_experiment(f"big-{uuid.uuid4().hex[:6]}")
    run_ids = [
        client.create_run(experiment_id, tags={"n": f"{n:03d}"}).info.run_id for n in range(runs)
    ]
    return experiment_id, run_ids


def test_deleting_and_restoring_an_experiment_moves_every_run_like_sqlite(
    uri: str, tmp_path: Path
) -> None:
    answers = []
    for store_uri in (uri, migrated_sqlite_uri(tmp_path / "reference.db")):
        client = MlflowClient(store_uri)
        experiment_id, run_ids = _fill(client, 40)
        client.log_metric(run_ids[0], "loss", 0.5)  # a run with buffered writes, too
        client.delete_run(run_ids[1])
        client.delete_experiment(experiment_id)
        store = client._tracking_client.store
        deleted = _lifecycle(store, experiment_id)
        client.restore_experiment(experiment_id)
        answers.append((deleted, _lifecycle(store, experiment_id)))
    assert answers[0] == answers[1]
    (stage, active, deleted), (restored_stage, restored_active, _) = answers[0]
    assert (stage, active, len(deleted)) == ("deleted", [], 40)
    assert (restored_stage, len(restored_active)) == ("active", 40)

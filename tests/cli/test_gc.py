"""``gc``: orphans and long-deleted runs, experiments and models go; everything live stays.

The same scenario runs on a folder (object ages set with ``os.utime``, default grace
period) and on moto (ages cannot be set, so ``--grace-hours 0``).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _get_store

from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.format.documents import Document, create_document, update_document
from mlflow_plugin.format.segments import MetricPoint, encode_segment
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.cli.conftest import Cli

DAY_MS = 86_400_000
LIVE_HISTORY = [(s, 1000 + s, float(s)) for s in range(30)]


@dataclass
class Store:
    uri: str
    folder: Path | None  # set for bucket+file: object ages can be changed

    def fresh_client(self) -> MlflowClient:
        """A client on a store instance of its own: no cached segments, no buffer."""
        return MlflowClient(self.uri + ("&" if "?" in self.uri else "?") + "flush_interval=2")

    def age(self, key: str, hours: float) -> None:
        assert self.folder is not None
        stamp = time.time() - hours * 3600
        os.utime(self.folder / key, (stamp, stamp))


@pytest.fixture(params=["file", "moto"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return Store(f"bucket+file://{tmp_path / 'root'}", tmp_path / "root")
    return Store(request.getfixturevalue("moto_uri"), None)


@dataclass
class Scenario:
    objects: ObjectStore
    live_experiment: str
    live_run: str
    old_deleted_run: str
    recent_deleted_run: str
    gone_experiment: str
    gone_run: str
    gone_model: str
    recently_gone_experiment: str
    old_deleted_model: str
    orphan_old: str
    orphan_new: str
    orphan_of_missing_run: str
    pointer_old: str
    pointer_new: str


def _older(field: str, days: float) -> object:
    def mutate(doc: Document) -> Document:
        doc[field] -= int(days * DAY_MS)
        return doc

    return mutate


def _segment(objects: ObjectStore, experiment_id: str, run_id: str, name: str) -> str:
    key = keys.metric_segment_key(experiment_id, run_id, name)
    objects.put(key, encode_segment(name, [MetricPoint("loss", -1.0, 1, 0)])[0])
    return key


def _fill(store: Store) -> Scenario:
    client = MlflowClient(store.uri)
    bucket_store = _get_store(store.uri)
    assert isinstance(bucket_store, BucketTrackingStore)
    objects = bucket_store.object_store

    live_experiment = client.create_experiment("live")
    live_run = client.create_run(live_experiment).info.run_id
    for first in (0, 10, 20):  # three flushes, three segments
        client.log_batch(
            live_run,
            metrics=[Metric("loss", v, t, s) for s, t, v in LIVE_HISTORY[first : first + 10]],
        )
        bucket_store.flush()
    client.log_text(live_run, "keep me", "notes.txt")

    old_deleted_run = client.create_run(live_experiment).info.run_id
    client.log_metric(old_deleted_run, "loss", 1.0)
    client.log_text(old_deleted_run, "remove me", "notes.txt")
    recent_deleted_run = client.create_run(live_experiment).info.run_id
    client.log_metric(recent_deleted_run, "loss", 2.0)
    bucket_store.flush()
    client.delete_run(old_deleted_run)
    client.delete_run(recent_deleted_run)
    update_document(
        objects, keys.run_key(live_experiment, old_deleted_run), _older("deleted_time", 40)
    )  # type: ignore[arg-type]

    old_deleted_model = client.create_logged_model(live_experiment).model_id
    client.delete_logged_model(old_deleted_model)
    update_document(
        objects, keys.logged_model_key(old_deleted_model), _older("last_updated_timestamp", 40)
    )  # type: ignore[arg-type]

    gone_experiment = client.create_experiment("gone")
    gone_run = client.create_run(gone_experiment).info.run_id
    client.log_metric(gone_run, "loss", 3.0)
    client.log_text(gone_run, "remove me too", "notes.txt")
    gone_model = client.create_logged_model(gone_experiment, source_run_id=gone_run).model_id
    bucket_store.flush()
    client.delete_experiment(gone_experiment)
    update_document(objects, keys.experiment_key(gone_experiment), _older("last_update_time", 40))  # type: ignore[arg-type]
    recently_gone_experiment = client.create_experiment("recently gone")
    client.delete_experiment(recently_gone_experiment)

    # What writers leave behind: segments never entered in a manifest, a pointer whose
    # run document was never written.
    orphan_old = _segment(objects, live_experiment, live_run, "deadwriter-0000000001")
    orphan_new = _segment(objects, live_experiment, live_run, "inflight-0000000001")
    orphan_of_missing_run = _segment(objects, live_experiment, uuid.uuid4().hex, "lost-1")
    pointer_old = keys.run_location_key(uuid.uuid4().hex)
    pointer_new = keys.run_location_key(uuid.uuid4().hex)
    for pointer in (pointer_old, pointer_new):
        create_document(objects, pointer, {"experiment_id": live_experiment})
    if store.folder is not None:
        for key in (orphan_old, orphan_of_missing_run, pointer_old):
            store.age(key, hours=30)
    return Scenario(
        objects,
        live_experiment,
        live_run,
        old_deleted_run,
        recent_deleted_run,
        gone_experiment,
        gone_run,
        gone_model,
        recently_gone_experiment,
        old_deleted_model,
        orphan_old,
        orphan_new,
        orphan_of_missing_run,
        pointer_old,
        pointer_new,
    )


def _keys(objects: ObjectStore) -> set[str]:
    """Every key but the change journal's (its entries name deleted runs for 7 days)."""
    return {
        info.key
        for info in objects.list("")
        if not info.key.startswith(change_journal.JOURNAL_PREFIX)
    }


def test_gc_dry_run_then_real(cli: Cli, store: Store) -> None:
    scenario = _fill(store)
    objects = scenario.objects
    grace = [] if store.folder is not None else ["--grace-hours", "0"]
    new_orphans_too = store.folder is None
    before = _keys(objects)

    dry = cli("gc", store.uri, "--dry-run", *grace)
    assert dry.returncode == 0, dry.stderr
    assert _keys(objects) == before, "a dry run must delete nothing"
    assert f"would delete run {scenario.old_deleted_run} (experiment" in dry.stdout
    assert (
        f"would delete experiment {scenario.gone_experiment} 'gone' (1 runs, 1 models)"
        in dry.stdout
    )
    assert f"would delete orphan segment {scenario.orphan_old}:" in dry.stdout
    assert "dry run: would delete" in dry.stdout

    result = cli("gc", store.uri, *grace)
    assert result.returncode == 0, result.stderr
    assert "  deleted runs: 1\n" in result.stdout
    assert "  deleted experiments: 1\n" in result.stdout
    assert "  deleted logged models: 1\n" in result.stdout
    assert f"  orphan metric segments: {3 if new_orphans_too else 2}\n" in result.stdout
    assert f"  orphan run pointers: {2 if new_orphans_too else 1}\n" in result.stdout
    after = _keys(objects)
    deleted = before - after

    # Orphans went; a segment younger than the grace period stays.
    assert {scenario.orphan_old, scenario.orphan_of_missing_run, scenario.pointer_old} <= deleted
    assert (scenario.orphan_new in after) is not new_orphans_too
    assert (scenario.pointer_new in after) is not new_orphans_too
    # The long-deleted run went entirely: document, pointer, segments, artifacts.
    assert not any(scenario.old_deleted_run in key for key in after)
    assert any(scenario.old_deleted_run in key and "/artifacts/" in key for key in deleted)
    # The long-deleted experiment went with its run, model, artifacts and name claim.
    assert not any(key.startswith(f"experiments/{scenario.gone_experiment}/") for key in after)
    assert not any(key.startswith(f"artifacts/{scenario.gone_experiment}/") for key in after)
    assert keys.logged_model_key(scenario.gone_model) not in after
    assert keys.run_location_key(scenario.gone_run) not in after
    assert keys.experiment_name_key("gone") not in after
    assert keys.logged_model_key(scenario.old_deleted_model) not in after
    # Everything else is as it was.
    assert deleted <= {
        key
        for key in before
        if scenario.old_deleted_run in key
        or scenario.gone_run in key
        or scenario.gone_model in key
        or scenario.old_deleted_model in key
        or key.startswith(f"experiments/{scenario.gone_experiment}/")
        or key == keys.experiment_name_key("gone")
        or key
        in {
            scenario.orphan_old,
            scenario.orphan_new,
            scenario.orphan_of_missing_run,
            scenario.pointer_old,
            scenario.pointer_new,
        }
    }

    client = store.fresh_client()
    history = client.get_metric_history(scenario.live_run, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == LIVE_HISTORY
    assert [f.path for f in client.list_artifacts(scenario.live_run)] == ["notes.txt"]
    assert client.get_run(scenario.recent_deleted_run).info.lifecycle_stage == "deleted"
    assert client.get_metric_history(scenario.recent_deleted_run, "loss")[0].value == 2.0
    with pytest.raises(MlflowException, match="not found"):
        client.get_run(scenario.old_deleted_run)
    with pytest.raises(MlflowException, match="No Experiment"):
        client.get_experiment(scenario.gone_experiment)
    assert client.get_experiment(scenario.recently_gone_experiment).lifecycle_stage == "deleted"
    # The purged experiment's name is free again; the recently deleted one's is not.
    assert client.create_experiment("gone")
    with pytest.raises(MlflowException, match="deleted state"):
        client.create_experiment("recently gone")

    again = cli("gc", store.uri, *grace)
    assert again.returncode == 0, again.stderr
    assert "deleted 0 objects, 0 B" in again.stdout


@dataclass
class DamagedRoot:
    objects: ObjectStore
    store: BucketTrackingStore
    damaged_run_key: str
    damaged_run_segments: set[str]
    damaged_model_key: str
    kept_experiment: str
    kept_experiment_damaged_run: str
    old_deleted_run: str
    purgeable_experiment: str


def _truncate(objects: ObjectStore, key: str) -> None:
    objects.put(key, objects.get(key).data[:40])


def _fill_damaged(uri: str) -> DamagedRoot:
    """Damaged run and model documents beside items gc may delete."""
    client = MlflowClient(uri)
    store = _get_store(uri)
    assert isinstance(store, BucketTrackingStore)
    objects = store.object_store
    live = client.create_experiment("live")
    damaged_run = client.create_run(live).info.run_id
    client.log_metric(damaged_run, "loss", 1.0)
    old_deleted_run = client.create_run(live).info.run_id
    client.delete_run(old_deleted_run)
    update_document(objects, keys.run_key(live, old_deleted_run), _older("deleted_time", 40))  # type: ignore[arg-type]
    damaged_model = client.create_logged_model(live).model_id

    kept = client.create_experiment("kept: holds a damaged run")
    kept_run = client.create_run(kept).info.run_id
    client.delete_experiment(kept)
    update_document(objects, keys.experiment_key(kept), _older("last_update_time", 40))  # type: ignore[arg-type]
    purgeable = client.create_experiment("purgeable")
    client.delete_experiment(purgeable)
    update_document(objects, keys.experiment_key(purgeable), _older("last_update_time", 40))  # type: ignore[arg-type]
    store.flush()

    segments = {info.key for info in objects.list(_segments_prefix(live, damaged_run))}
    assert segments
    for key in (
        keys.run_key(live, damaged_run),
        keys.logged_model_key(damaged_model),
        keys.run_key(kept, kept_run),
    ):
        _truncate(objects, key)
    return DamagedRoot(
        objects,
        store,
        keys.run_key(live, damaged_run),
        segments,
        keys.logged_model_key(damaged_model),
        kept,
        keys.run_key(kept, kept_run),
        old_deleted_run,
        purgeable,
    )


def _segments_prefix(experiment_id: str, run_id: str) -> str:
    return keys.metric_segment_key(experiment_id, run_id, "0").rsplit("/", 1)[0] + "/"


def test_gc_keeps_damaged_documents_collects_the_rest_and_names_them(
    cli: Cli, store: Store
) -> None:
    root = _fill_damaged(store.uri)
    damaged = {root.damaged_run_key, root.damaged_model_key, root.kept_experiment_damaged_run}

    result = cli("gc", store.uri, "--grace-hours", "0")

    assert result.returncode == 1, result.stdout + result.stderr
    for key in damaged:
        assert f"kept, cannot be read: {key}" in result.stderr
    assert "3 documents cannot be read" in result.stderr
    after = _keys(root.objects)
    # Collected: the readable deleted run and the readable deleted experiment.
    assert not any(root.old_deleted_run in key for key in after)
    assert keys.experiment_key(root.purgeable_experiment) not in after
    # Kept: every damaged document, the segments a damaged manifest names, and the deleted
    # experiment holding a damaged run.
    assert damaged <= after
    assert root.damaged_run_segments <= after
    assert keys.experiment_key(root.kept_experiment) in after


def test_mlflow_gc_hooks_skip_damaged_documents_of_other_items(store: Store) -> None:
    root = _fill_damaged(store.uri)

    root.store._hard_delete_experiment(root.purgeable_experiment)  # a damaged model elsewhere
    assert not root.objects.exists(keys.experiment_key(root.purgeable_experiment))
    assert root.store._get_deleted_logged_models() == []
    with pytest.raises(MlflowException, match=root.kept_experiment_damaged_run) as kept:
        root.store._hard_delete_experiment(root.kept_experiment)
    assert kept.value.error_code == "INTERNAL_ERROR"
    assert root.objects.exists(keys.experiment_key(root.kept_experiment))
    assert root.objects.exists(root.kept_experiment_damaged_run)

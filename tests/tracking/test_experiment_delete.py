"""Deleting an experiment is one write of its document; its runs are deleted with it.

MLflow's SQL store deletes an experiment and all its runs in one transaction. Here the
experiment document's compare-and-swap is the only write (``format.run_stage``), so:

- no run document is written, and a delete that fails changes nothing;
- a run created while the experiment is being deleted ends deleted with it;
- a restore cut short leaves every run deleted, and repeating it finishes the job;
- a writer that keeps logging to a run of an experiment another process deleted is
  refused at its next call, its points stored, as for a run deleted by itself;
- a search in a process that indexed the runs sees them deleted;
- ``mlflow-bucket gc --older-than`` counts a run of a deleted experiment as deleted
  when the experiment was (or later, if the run was deleted again by itself).

What each call answers for such runs is compared with ``sqlite:///`` in
``scenarios_experiment_delete.py``. Every test runs on bucket+file and on bucket+s3
(SeaweedFS: its conditional writes are atomic, so the races are real).
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, Metric, ViewType
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, update_document
from mlflow_plugin.format.garbage import collect_garbage
from mlflow_plugin.objectstore import ObjectStore, StorageUnavailable
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint
from tests.tracking.test_names_and_strings import WAIT_S, PausingStore

DAY_MS = 24 * 3600 * 1000


@pytest.fixture(params=["file", "s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("seaweedfs_s3")
    prefix = f"experiment-delete/{uuid.uuid4().hex}"
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"


def _fill(uri: str, runs: int) -> tuple[str, list[str]]:
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"big-{uuid.uuid4().hex[:6]}")
    run_ids = [
        client.create_run(experiment_id, tags={"n": f"{n:03d}"}).info.run_id for n in range(runs)
    ]
    return experiment_id, run_ids


def _seen_from_elsewhere(uri: str, experiment_id: str, run_ids: list[str]) -> object:
    """The experiment's stage, each run's, and each view's run count, as a new process sees."""
    store = BucketTrackingStore(uri)
    return (
        store.get_experiment(experiment_id).lifecycle_stage,
        sorted({store.get_run(run_id).info.lifecycle_stage for run_id in run_ids}),
        [
            len(store.search_runs([experiment_id], "", view, max_results=1000))
            for view in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY)
        ],
    )


class FailingWrites(PausingStore):
    """Fails every write matching ``fails`` after the first ``allowed`` (an outage mid-way),
    and records the key of every conditional write."""

    def __init__(self, inner: ObjectStore, fails: str, allowed: int = 0) -> None:
        super().__init__(inner, lambda operation, key: False)
        self.written: list[str] = []
        self._fails = fails
        self._allowed = allowed
        self._lock = threading.Lock()

    def _write(self, key: str) -> None:
        with self._lock:
            self.written.append(key)
            if self._fails in key:
                self._allowed -= 1
                if self._allowed < 0:
                    raise StorageUnavailable(f"injected outage writing {key}")

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._write(key)
        return self._inner.put_if_match(key, data, etag)

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._write(key)
        return self._inner.put_if_absent(key, data)


def test_a_delete_is_one_write_of_the_experiment_document(uri: str) -> None:
    experiment_id, run_ids = _fill(uri, 30)
    store = BucketTrackingStore(uri)
    recording = FailingWrites(store.context.objects, fails="never-matches")
    store.context.objects = recording

    store.delete_experiment(experiment_id)

    assert recording.written == [keys.experiment_key(experiment_id)]
    assert _seen_from_elsewhere(uri, experiment_id, run_ids) == ("deleted", ["deleted"], [0, 30])


def test_a_delete_that_fails_changes_nothing(uri: str) -> None:
    experiment_id, run_ids = _fill(uri, 30)
    store = BucketTrackingStore(uri)
    healthy = store.context.objects
    store.context.objects = FailingWrites(healthy, fails=keys.experiment_key(experiment_id))

    with pytest.raises(MlflowException) as failed:
        store.delete_experiment(experiment_id)
    assert failed.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert _seen_from_elsewhere(uri, experiment_id, run_ids) == ("active", ["active"], [30, 0])

    store.context.objects = healthy
    store.delete_experiment(experiment_id)
    assert _seen_from_elsewhere(uri, experiment_id, run_ids) == ("deleted", ["deleted"], [0, 30])


def test_a_run_created_while_its_experiment_is_deleted_ends_deleted(uri: str) -> None:
    experiment_id, run_ids = _fill(uri, 3)
    creator, deleter = BucketTrackingStore(uri), BucketTrackingStore(uri)
    # The creator has read the experiment as active; its run document is not written yet.
    pausing = PausingStore(
        creator.context.objects,
        lambda operation, key: operation == "put_if_absent" and "/runs/" in key,
    )
    creator.context.objects = pausing
    created: dict[str, str] = {}

    def create() -> None:
        created["run_id"] = creator.create_run(experiment_id, "user", 0, [], "late").info.run_id

    thread = threading.Thread(target=create)
    thread.start()
    assert pausing.paused.wait(WAIT_S)
    deleter.delete_experiment(experiment_id)
    pausing.release.set()
    thread.join(WAIT_S)

    late = created["run_id"]
    assert _seen_from_elsewhere(uri, experiment_id, [*run_ids, late]) == (
        "deleted",
        ["deleted"],
        [0, 4],
    )
    deleter.restore_experiment(experiment_id)
    assert deleter.get_run(late).info.lifecycle_stage == LifecycleStage.ACTIVE


def test_a_restore_cut_short_leaves_every_run_deleted_and_is_finished_by_repeating_it(
    uri: str,
) -> None:
    experiment_id, run_ids = _fill(uri, 30)
    client = MlflowClient(uri)
    for run_id in run_ids[:12]:  # deleted by themselves before the experiment
        client.delete_run(run_id)
    client.delete_experiment(experiment_id)
    store = BucketTrackingStore(uri)
    healthy = store.context.objects
    store.context.objects = FailingWrites(healthy, fails="/runs/", allowed=5)

    with pytest.raises(MlflowException) as cut_short:
        store.restore_experiment(experiment_id)
    assert cut_short.value.error_code == "TEMPORARILY_UNAVAILABLE"
    # Not half-restored: every run stays deleted with the experiment.
    assert _seen_from_elsewhere(uri, experiment_id, run_ids) == ("deleted", ["deleted"], [0, 30])

    store.context.objects = healthy  # the endpoint is back: the same call finishes the job
    store.restore_experiment(experiment_id)
    assert _seen_from_elsewhere(uri, experiment_id, run_ids) == ("active", ["active"], [30, 0])


def test_a_writer_is_refused_once_another_process_deleted_the_experiment(uri: str) -> None:
    experiment_id, (run_id,) = _fill(uri, 1)
    writer = BucketTrackingStore(uri)
    writer.log_metric(run_id, Metric("loss", 1.0, 0, 0))
    writer.flush()

    BucketTrackingStore(uri).delete_experiment(experiment_id)
    writer.log_metric(run_id, Metric("loss", 0.5, 0, 1))  # accepted: learnt at its upload
    writer.flush()
    with pytest.raises(MlflowException) as refused:
        writer.log_metric(run_id, Metric("loss", 0.25, 0, 2))
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "must be in the 'active' state" in refused.value.message
    history = BucketTrackingStore(uri).get_metric_history(run_id, "loss")
    assert [m.value for m in history] == [1.0, 0.5]  # what was acknowledged is stored


def test_a_search_that_indexed_the_runs_sees_them_deleted(uri: str) -> None:
    experiment_id, run_ids = _fill(uri, 5)
    fresh = f"{uri}{'&' if '?' in uri else '?'}index_staleness=0"
    searcher = BucketTrackingStore(fresh)
    assert len(searcher.search_runs([experiment_id], "", ViewType.ACTIVE_ONLY)) == 5

    BucketTrackingStore(uri).delete_experiment(experiment_id)
    assert searcher.search_runs([experiment_id], "", ViewType.ACTIVE_ONLY) == []
    deleted = searcher.search_runs([experiment_id], "", ViewType.DELETED_ONLY)
    assert sorted(run.info.run_id for run in deleted) == sorted(run_ids)
    assert {run.info.lifecycle_stage for run in deleted} == {LifecycleStage.DELETED}


def _aged(field: str, days: float) -> object:
    def mutate(doc: Document) -> Document:
        doc[field] -= int(days * DAY_MS)
        return doc

    return mutate


def test_gc_collects_a_deleted_experiments_runs_by_the_experiments_deletion(uri: str) -> None:
    experiment_id, (long_gone, live) = _fill(uri, 2)
    client = MlflowClient(uri)
    client.delete_run(long_gone)
    store = BucketTrackingStore(uri)
    objects, location = store.object_store, store.context.location
    update_document(objects, keys.run_key(experiment_id, long_gone), _aged("deleted_time", 40))  # type: ignore[arg-type]
    client.delete_experiment(experiment_id)  # today: so are its runs, as in sqlite:///

    report = collect_garbage(objects, location, older_than_days=30)
    assert report.counts["deleted runs"] == 0
    assert report.counts["deleted experiments"] == 0
    assert {client.get_run(r).info.lifecycle_stage for r in (long_gone, live)} == {"deleted"}

    later = collect_garbage(
        objects,
        location,
        older_than_days=30,
        now_ms=client.get_experiment(experiment_id).last_update_time + 31 * DAY_MS,
    )
    assert later.counts["deleted experiments"] == 1
    assert not list(objects.list(f"experiments/{experiment_id}/"))
    for run_id in (long_gone, live):
        with pytest.raises(MlflowException, match="not found"):
            client.get_run(run_id)

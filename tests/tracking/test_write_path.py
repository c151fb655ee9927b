"""The buffered write path: no request per call, own writes visible, a crash loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.tracking._tracking_service.utils import _get_store

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.polling import wait_until
from tests.processes import ForkedPython
from tests.servers import S3Endpoint, interruptible_moto_endpoint


@pytest.fixture
def s3_uri(moto_s3: S3Endpoint, tmp_path: Path) -> str:
    prefix = f"write-path/{uuid.uuid4().hex}"
    return (
        f"bucket+s3://{moto_s3.shared_bucket}/{prefix}?endpoint_url={moto_s3.url}"
        f"&spool_dir={tmp_path / 'spool'}&flush_interval=3600"
    )


def _requests_made(store: BucketTrackingStore, action: object) -> int:
    """How many object-store calls ``action()`` makes (counted at the store's boundary)."""
    calls = 0
    inner = store.object_store
    originals = {}
    for name in ("get", "head", "put", "put_if_absent", "put_if_match", "delete", "list"):
        original = getattr(inner, name)
        originals[name] = original

        def counted(*args: object, _original: object = original, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            return _original(*args, **kwargs)  # type: ignore[operator]

        setattr(inner, name, counted)
    try:
        action()  # type: ignore[operator]
    finally:
        for name, original in originals.items():
            setattr(inner, name, original)
    return calls


def test_log_batch_makes_no_request_and_reads_see_own_writes(s3_uri: str) -> None:
    client = MlflowClient(s3_uri)
    run_id = client.create_run(client.create_experiment("buffered")).info.run_id
    store = _get_store(s3_uri)
    assert isinstance(store, BucketTrackingStore)
    client.log_metric(run_id, "warmup", 1.0)  # the first call checks the run once

    def log_many() -> None:
        for step in range(200):
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (step + 1), 1000 + step, step)])
        client.set_tag(run_id, "phase", "train")

    assert _requests_made(store, log_many) == 0
    # The same process sees its own writes at once (they are uploaded first).
    assert len(client.get_metric_history(run_id, "loss")) == 200
    assert client.get_run(run_id).data.tags["phase"] == "train"


WRITER = textwrap.dedent(
    """
    import sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag
    uri, run_id, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    client = MlflowClient(uri)
    for step in range(500):
        client.log_batch(run_id, metrics=[Metric("loss", float(step), 1000 + step, step)],
                         tags=[RunTag("last", str(step))] if step % 100 == 0 else [])
    open(ready, "w").close()
    time.sleep(600)  # killed here, with everything still buffered (flush_interval=3600)
    """
)


def test_a_killed_writer_loses_nothing_and_the_next_process_replays_it(
    s3_uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(s3_uri)
    run_id = client.create_run(client.create_experiment("crash")).info.run_id
    ready = tmp_path / "ready"
    writer = ForkedPython(WRITER, s3_uri, run_id, str(ready))
    try:
        for _ in range(600):
            if ready.exists() or writer.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert ready.exists(), "the writer did not get through its logging"
    finally:
        writer.kill()
        writer.wait()

    # Nothing reached the bucket: the writer died with its points buffered and spooled.
    assert client.get_metric_history(run_id, "loss") == []

    # `sync` (the next process on this root does the same in the background) replays it.
    result = subprocess.run(
        [sys.executable, "-m", "mlflow_plugin", "sync", s3_uri],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(500))
    assert client.get_run(run_id).data.tags["last"] == "400"

    # Replaying again changes nothing: no duplicates.
    again = subprocess.run(
        [sys.executable, "-m", "mlflow_plugin", "sync", s3_uri], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert len(client.get_metric_history(run_id, "loss")) == 500


def test_sealed_batches_replay_idempotently(s3_uri: str) -> None:
    """A batch applied before the crash (its spool file not yet deleted) is not applied twice."""
    client = MlflowClient(s3_uri)
    run_id = client.create_run(client.create_experiment("idempotent")).info.run_id
    store = _get_store(s3_uri)
    assert isinstance(store, BucketTrackingStore)
    client.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)], tags=[RunTag("t", "v")])
    store.flush()
    run_doc = store.context.read_run(run_id)
    writer, sequence = next(iter(run_doc["writers"].items()))
    from mlflow_plugin.format.run_batches import RunBatch
    from mlflow_plugin.format.segments import MetricPoint

    replayed = RunBatch(
        run_id, run_doc["experiment_id"], writer, sequence, [MetricPoint("m", 1.0, 1, 0)]
    )
    store.context.buffer.upload(replayed)
    assert len(client.get_metric_history(run_id, "m")) == 1
    assert len(store.context.read_run(run_id)["segments"]) == 1


def test_endpoint_down_then_back_loses_nothing(tmp_path: Path) -> None:
    with interruptible_moto_endpoint("outage") as endpoint:
        uri = (
            f"bucket+s3://outage/root?endpoint_url={endpoint.url}"
            f"&spool_dir={tmp_path}&flush_interval=0.5"
        )
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("outage")).info.run_id
        client.log_metric(run_id, "loss", 0.0, step=0)
        endpoint.down()  # unreachable from here on; logging carries on
        try:
            for step in range(1, 300):
                client.log_metric(run_id, "loss", float(step), step=step)
            client.set_tag(run_id, "during", "outage")
            subprocess.run(["sleep", "1.5"], check=True)  # the flusher tries, and fails
        finally:
            endpoint.up()
        client.set_terminated(run_id)  # flushes first
        assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(300))
        assert client.get_run(run_id).data.tags["during"] == "outage"


def test_compaction_never_shows_a_reader_a_missing_segment(tmp_path: Path) -> None:
    uri = f"bucket+file://{tmp_path / 'root'}"
    writer = BucketTrackingStore(uri)
    reader = BucketTrackingStore(uri)  # its own caches: it reads what is in the bucket
    run_id = writer.create_run(writer.create_experiment("compaction"), "u", 0, [], "r").info.run_id
    errors: list[BaseException] = []
    seen: list[int] = []
    done = False

    def read() -> None:
        while not done:
            try:
                seen.append(len(reader.get_metric_history(run_id, "m")))
            except BaseException as exc:
                errors.append(exc)
                return

    import threading

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for step in range(80):  # 80 flushes: compaction runs every 16 segments
            writer.log_batch(run_id, [Metric("m", float(step), step, step)], [], [])
            writer.flush()
    finally:
        done = True
        for thread in readers:
            thread.join()
    assert errors == []
    assert len(writer.context.read_run(run_id)["segments"]) <= 17
    assert len(reader.get_metric_history(run_id, "m")) == 80
    assert seen and max(seen) <= 80


def test_compaction_whose_answer_was_lost_keeps_every_point(tmp_path: Path) -> None:
    """The swap lands, its answer is lost, the retry sees 412: the merged segment stays."""
    from mlflow_plugin.objectstore import PreconditionFailed

    store = BucketTrackingStore(f"bucket+file://{tmp_path / 'root'}")
    run_id = store.create_run(store.create_experiment("lost"), "u", 0, [], "r").info.run_id
    inner = store.object_store
    original = inner.put_if_match
    armed = {"compaction": False}

    def lose_the_answer(key: str, data: bytes, etag: str) -> str:
        result = original(key, data, etag)
        segments = json.loads(data).get("segments") or [{"name": "-"}]
        if armed["compaction"] and "-" not in segments[0]["name"]:  # a merged segment first
            armed["compaction"] = False
            raise PreconditionFailed("answer lost after the write landed")
        return result

    inner.put_if_match = lose_the_answer  # type: ignore[method-assign]
    for step in range(20):
        armed["compaction"] = step == 16  # the flush that triggers the first compaction
        store.log_batch(run_id, [Metric("m", float(step), step, step)], [], [])
        store.flush()
    fresh = BucketTrackingStore(f"bucket+file://{tmp_path / 'root'}")
    assert [m.step for m in fresh.get_metric_history(run_id, "m")] == list(range(20))


def _log_in_forked_child(uri: str, run_id: str) -> None:
    client = MlflowClient(uri)
    for step in range(3):
        client.log_metric(run_id, "child", float(step), step=step)


def test_a_forked_child_keeps_its_own_points_and_the_parents(tmp_path: Path) -> None:
    import multiprocessing

    uri = f"bucket+file://{tmp_path / 'root'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("fork")).info.run_id
    client.log_metric(run_id, "parent", 0.0, step=0)  # buffered in the parent at fork time
    child = multiprocessing.get_context("fork").Process(
        target=_log_in_forked_child, args=(uri, run_id)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    for step in range(1, 5):
        client.log_metric(run_id, "parent", float(step), step=step)
    assert [m.step for m in client.get_metric_history(run_id, "parent")] == list(range(5))
    assert [m.step for m in client.get_metric_history(run_id, "child")] == list(range(3))


def _history_in_forked_child(store: BucketTrackingStore, run_id: str) -> None:
    steps = [m.step for m in store.get_metric_history(run_id, "m")]
    os._exit(0 if steps == list(range(3)) else 1)


def test_a_forked_child_reads_through_a_pool_of_its_own(tmp_path: Path) -> None:
    """The parent's read threads do not exist in a forked child: reading there through
    the parent's pool would wait for ever."""
    import multiprocessing

    store = BucketTrackingStore(f"bucket+file://{tmp_path / 'root'}")
    run_id = store.create_run("0", "u", 0, [], "r").info.run_id
    store.log_batch(run_id, [Metric("m", float(s), s, s) for s in range(3)], [], [])
    store.flush()
    assert len(store.get_metric_history(run_id, "m")) == 3  # the parent's pool has threads
    child = multiprocessing.get_context("fork").Process(
        target=_history_in_forked_child, args=(store, run_id)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0


def test_a_store_no_longer_used_is_freed_after_uploading_what_it_held(tmp_path: Path) -> None:
    """A dropped store (MLflow keeps 100 in its cache, then lets go) uploads what it
    buffered, then its flusher thread stops and the store is freed: nothing a process
    registers (a fork hook, a thread) keeps every store it ever opened alive."""
    import gc
    import weakref

    uri = f"bucket+file://{tmp_path / 'root'}?flush_interval=0.05"
    store = BucketTrackingStore(uri)
    run_id = store.create_run("0", "u", 0, [], "r").info.run_id
    store.log_batch(run_id, [Metric("m", float(s), s, s) for s in range(3)], [], [])
    context, flusher = weakref.ref(store.context), store.context.buffer._thread
    assert flusher is not None
    del store  # the points are only buffered: the flusher uploads them first

    assert wait_until(lambda: gc.collect() >= 0 and context() is None)
    assert wait_until(lambda: not flusher.is_alive())
    # Uploaded by the dropped store itself, not left in its spool for a recovery.
    reader = BucketTrackingStore(uri, recover_in_background=False)
    assert [m.step for m in reader.get_metric_history(run_id, "m")] == [0, 1, 2]
    reader.close()


def test_a_store_used_after_closing_uploads_each_call_before_it_returns(tmp_path: Path) -> None:
    """After ``close`` (exit hooks, a fixture) there is no flusher and no spool: a later
    call is stored before it returns, so dropping the store loses nothing."""
    import gc

    uri = f"bucket+file://{tmp_path / 'root'}?flush_interval=3600"
    store = BucketTrackingStore(uri)
    run_id = store.create_run("0", "u", 0, [], "r").info.run_id
    store.log_batch(run_id, [Metric("m", 0.0, 0, 0)], [], [])
    store.close()
    store.log_batch(run_id, [Metric("m", 1.0, 1, 1)], [], [])
    del store
    gc.collect()
    reader = BucketTrackingStore(uri, recover_in_background=False)
    assert [m.step for m in reader.get_metric_history(run_id, "m")] == [0, 1]
    reader.close()


def test_a_flusher_that_cannot_start_makes_each_call_upload_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    uri = f"bucket+file://{tmp_path / 'root'}?flush_interval=3600"
    store = BucketTrackingStore(uri)
    run_id = store.create_run("0", "u", 0, [], "r").info.run_id

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        store.log_batch(run_id, [Metric("m", 0.0, 0, 0)], [], [])  # accepted, no error
    store.log_batch(run_id, [Metric("m", 1.0, 1, 1)], [], [])
    reader = BucketTrackingStore(uri, recover_in_background=False)
    assert [m.step for m in reader.get_metric_history(run_id, "m")] == [0, 1]
    reader.close()
    store.close()


def test_an_idle_store_starts_its_flusher_again_for_the_next_write(tmp_path: Path) -> None:
    import threading

    uri = f"bucket+file://{tmp_path / 'root'}?flush_interval=0.05"
    store = BucketTrackingStore(uri)
    run_id = store.create_run("0", "u", 0, [], "r").info.run_id
    buffer = store.context.buffer
    store.log_batch(run_id, [Metric("m", 0.0, 0, 0)], [], [])
    assert wait_until(lambda: buffer._thread is None)  # uploaded, idle: the thread stopped
    store.log_batch(run_id, [Metric("m", 1.0, 1, 1)], [], [])
    assert isinstance(buffer._thread, threading.Thread)
    reader = BucketTrackingStore(uri)
    assert wait_until(lambda: len(reader.get_metric_history(run_id, "m")) == 2)
    store.close()
    reader.close()


def test_a_long_outage_keeps_memory_bounded_and_loses_nothing(tmp_path: Path) -> None:
    from mlflow_plugin.tracking.write_buffer import WriteSettings

    with interruptible_moto_endpoint("long") as endpoint:
        uri = (
            f"bucket+s3://long/root?endpoint_url={endpoint.url}"
            f"&spool_dir={tmp_path}&flush_interval=3600"
        )
        store = BucketTrackingStore(uri)
        run_id = store.create_run(store.create_experiment("long"), "u", 0, [], "r").info.run_id
        store.log_batch(run_id, [Metric("loss", 0.0, 0, 0)], [], [])
        store.context.buffer._settings = WriteSettings(
            flush_interval=3600, flush_points=10**9, max_buffered_points=400
        )
        endpoint.down()
        try:
            for step in range(1, 5000):
                store.log_batch(run_id, [Metric("loss", float(step), step, step)], [], [])
                # memory stays bounded: the rest is on disk
                assert store.context.buffer._buffered <= 400
        finally:
            endpoint.up()
        store.flush()
        history = BucketTrackingStore(uri).get_metric_history(run_id, "loss")
        assert [m.step for m in history] == list(range(5000))


def test_inside_mlflow_server_metrics_are_uploaded_before_the_call_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `mlflow server` runs several worker processes, each with its own store: a metric
    # a REST client logged through one worker must be visible to the others at once.
    uri = f"bucket+file:{tmp_path / 'root'}?flush_interval=3600"
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", uri)
    worker = BucketTrackingStore(uri)
    run_id = worker.create_run(worker.create_experiment("rest"), "u", 0, [], "r").info.run_id
    worker.log_batch(run_id, [Metric("loss", 0.5, 1, 0)], [], [])  # the slow path, once
    worker.log_batch(run_id, [Metric("loss", 0.25, 2, 1)], [], [RunTag("t", "v")])
    monkeypatch.delenv("_MLFLOW_SERVER_FILE_STORE")
    other_worker = BucketTrackingStore(uri)
    history = other_worker.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25)]
    assert other_worker.get_run(run_id).data.tags["t"] == "v"

    training_script = BucketTrackingStore(uri)  # outside a server: buffered, as before
    training_script.log_batch(run_id, [Metric("loss", 0.125, 3, 2)], [], [])
    training_script.log_batch(run_id, [Metric("loss", 0.0625, 4, 3)], [], [])
    assert len(BucketTrackingStore(uri).get_metric_history(run_id, "loss")) == 2
    training_script.flush()
    assert len(BucketTrackingStore(uri).get_metric_history(run_id, "loss")) == 4


def test_closing_keeps_trying_an_upload_that_fails_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a spool, what close() cannot upload is lost: it retries before giving up.
    # The failures here are ones botocore's own retries do not cover (a run document
    # too busy to swap, say): the first three uploads fail.
    from mlflow_plugin.objectstore import StorageUnavailable

    uri = f"bucket+file:{tmp_path / 'root'}?flush_interval=3600&spool=false"
    store = BucketTrackingStore(uri)
    run_id = store.create_run(store.create_experiment("c"), "u", 0, [], "r").info.run_id
    store.log_batch(run_id, [Metric("loss", 1.0, 1, 0)], [], [])
    store.log_batch(run_id, [Metric("loss", 0.5, 2, 1)], [], [])
    buffer = store.context.buffer
    upload, failures = buffer._upload, []

    def failing_upload(batch: object) -> None:
        if len(failures) < 3:
            failures.append(batch)
            raise StorageUnavailable("too busy")
        upload(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(buffer, "_upload", failing_upload)
    store.close()
    assert len(failures) == 3
    history = BucketTrackingStore(uri).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1]

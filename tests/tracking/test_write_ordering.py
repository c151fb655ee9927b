"""Late and replayed writes, deletes racing a writer, damaged documents, outages.

Two store instances on one root stand for two processes (each has its own writer id,
buffer and spool); one test uses a real subprocess killed with SIGKILL. Every scenario
runs on bucket+file and on bucket+s3 (SeaweedFS, whose conditional writes are atomic),
and where MLflow's SQL store answers the same scenario, on sqlite:/// too: the
reference.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import open_object_store
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.objectstore.os_failures import TmpfsMount, in_forked_child
from tests.processes import ForkedPython
from tests.servers import S3Endpoint, interruptible_moto_endpoint
from tests.sqlite_reference import migrated_sqlite_uri

REPO = Path(__file__).resolve().parents[2]
# Nothing is uploaded until a test says so: every upload below is one the test orders.
HELD = "flush_interval=3600&spool=true"


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def bucket_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _uri(request, tmp_path, request.param)


@pytest.fixture(params=["bucket_file", "bucket_s3", "sqlite"])
def any_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both schemes and MLflow's SQL store, the reference."""
    return _uri(request, tmp_path, request.param)


def _uri(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    spool = f"spool_dir={tmp_path / 'spool'}"
    if kind == "bucket_file":
        return f"bucket+file://{tmp_path / 'root'}?{HELD}&{spool}"
    if kind == "sqlite":
        return migrated_sqlite_uri(tmp_path / "mlflow.db")
    seaweedfs: S3Endpoint = request.getfixturevalue("seaweedfs_s3")
    prefix = f"ordering/{uuid.uuid4().hex}"
    return (
        f"bucket+s3://{seaweedfs.shared_bucket}/{prefix}?endpoint_url={seaweedfs.url}"
        f"&{HELD}&{spool}"
    )


_sqlite_stores: dict[str, SqlAlchemyStore] = {}


def open_store(uri: str) -> AbstractStore:
    """A store as one process has it (a new instance: its own writer, buffer and spool)."""
    if uri.startswith("sqlite"):
        if uri not in _sqlite_stores:  # one engine per database is enough
            _sqlite_stores[uri] = SqlAlchemyStore(uri, str(Path(uri[10:]).parent / "artifacts"))
        return _sqlite_stores[uri]
    return BucketTrackingStore(uri, recover_in_background=False)


def flush(store: AbstractStore) -> None:
    if isinstance(store, BucketTrackingStore):
        store.flush()


def new_run(store: AbstractStore, **tags: str) -> str:
    experiment_id = store.create_experiment(f"ordering-{uuid.uuid4().hex[:8]}", None, [])
    run_tags = [RunTag(k, v) for k, v in tags.items()]
    return str(store.create_run(experiment_id, "u", 0, run_tags, "run").info.run_id)


def stored_tags(uri: str, run_id: str) -> dict[str, str]:
    """The tags as a fresh process reads them."""
    return dict(open_store(uri).get_run(run_id).data.tags)


def warm(store: AbstractStore, run_id: str) -> None:
    """The first call checks the run; later metric and tag calls are buffered."""
    store.log_batch(run_id, [Metric("warmup", 0.0, 0, 0)], [], [])


# -- 1. a late or replayed batch never overwrites a newer tag ----------------------------


def test_a_late_buffered_tag_never_overwrites_a_newer_one(any_uri: str) -> None:
    a, b = open_store(any_uri), open_store(any_uri)
    run_id = new_run(a)
    warm(a, run_id)
    a.set_tag(run_id, RunTag("state", "old"))  # buffered in process a
    b.set_tag(run_id, RunTag("state", "new"))  # later, in process b
    flush(b)
    assert stored_tags(any_uri, run_id)["state"] == "new"
    flush(a)  # a's upload lands last
    assert stored_tags(any_uri, run_id)["state"] == "new"


def test_a_tag_written_with_params_wins_over_an_older_buffered_one(any_uri: str) -> None:
    a, b = open_store(any_uri), open_store(any_uri)
    run_id = new_run(a)
    warm(a, run_id)
    a.log_batch(run_id, [], [], [RunTag("state", "old")])
    b.log_batch(run_id, [], [Param("lr", "0.1")], [RunTag("state", "new")])  # synchronous
    flush(a)
    assert stored_tags(any_uri, run_id)["state"] == "new"


def test_a_deleted_tag_is_not_brought_back_by_an_older_write(any_uri: str) -> None:
    a, b = open_store(any_uri), open_store(any_uri)
    run_id = new_run(a)
    warm(a, run_id)
    a.set_tag(run_id, RunTag("k", "1"))
    flush(a)
    a.set_tag(run_id, RunTag("k", "2"))  # buffered
    b.delete_tag(run_id, "k")  # type: ignore[attr-defined]  # b saw "1" and deleted the tag
    flush(a)
    assert "k" not in stored_tags(any_uri, run_id)
    b.set_tag(run_id, RunTag("k", "3"))  # a newer write brings it back
    flush(b)
    assert stored_tags(any_uri, run_id)["k"] == "3"


def test_a_late_tag_does_not_overwrite_a_newer_one_set_at_creation_or_rename(
    any_uri: str,
) -> None:
    a, b = open_store(any_uri), open_store(any_uri)
    run_id = new_run(a, team="first")
    warm(a, run_id)
    a.set_tag(run_id, RunTag("team", "stale"))  # buffered
    a.set_tag(run_id, RunTag("note", "stale"))
    b.update_run_info(run_id, None, None, "renamed")
    b.set_tag(run_id, RunTag("note", "fresh"))
    flush(b)
    flush(a)
    run = open_store(any_uri).get_run(run_id)
    assert run.data.tags["team"] == "stale"  # newer than the creation: a's call came later
    assert run.data.tags["note"] == "fresh"
    assert run.info.run_name == run.data.tags["mlflow.runName"] == "renamed"


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag
    uri, run_id, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    client = MlflowClient(uri)
    client.log_batch(run_id, metrics=[Metric("warmup", 0.0, 0, 0)])
    client.log_batch(run_id, metrics=[Metric("loss", 1.0, 1, 1)], tags=[RunTag("state", "old")])
    open(ready, "w").close()
    time.sleep(600)  # killed here: with a bucket, "old" is only buffered and spooled
    """
)


def _start_and_kill(uri: str, run_id: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    writer = ForkedPython(KILLED_WRITER, uri, run_id, str(ready))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the writer did not get through its logging"
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("replay", ["sync", "next_process"])
def test_a_killed_writers_replayed_tag_never_overwrites_a_newer_one(
    any_uri: str, replay: str, tmp_path: Path
) -> None:
    store = open_store(any_uri)
    run_id = new_run(store)
    _start_and_kill(any_uri, run_id, tmp_path)
    store.set_tag(run_id, RunTag("state", "new"))  # acknowledged after "old"
    flush(store)
    assert stored_tags(any_uri, run_id)["state"] == "new"
    if isinstance(store, BucketTrackingStore):
        if replay == "sync":
            result = subprocess.run(
                [sys.executable, "-m", "mlflow_plugin", "sync", any_uri],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=REPO,
                check=False,
            )
            assert result.returncode == 0, result.stderr
        else:
            next_process = open_store(any_uri)
            assert isinstance(next_process, BucketTrackingStore)
            next_process.recover_spools()  # what it does in the background when it opens
    reader = open_store(any_uri)
    # The dead writer's points were replayed (so was its tag, which lost to the newer one).
    assert [m.step for m in reader.get_metric_history(run_id, "loss")] == [1]
    assert stored_tags(any_uri, run_id)["state"] == "new"


# -- 2. deleting a run while it logs keeps every acknowledged point ----------------------


def _steps(uri: str, run_id: str) -> list[int]:
    return [m.step for m in open_store(uri).get_metric_history(run_id, "loss")]


def _log(store: AbstractStore, run_id: str, step: int) -> None:
    store.log_batch(run_id, [Metric("loss", float(step), 1000 + step, step)], [], [])


def _refusal(store: AbstractStore, run_id: str, step: int) -> MlflowException:
    with pytest.raises(MlflowException) as raised:
        _log(store, run_id, step)
    return raised.value


def test_points_logged_while_the_run_is_deleted_are_kept_and_the_next_call_refused(
    bucket_uri: str, tmp_path: Path
) -> None:
    trainer, admin = open_store(bucket_uri), open_store(bucket_uri)
    run_id = new_run(trainer)
    for step in range(10):
        _log(trainer, run_id, step)
    admin.delete_run(run_id)
    for step in range(10, 20):  # acknowledged: this process does not know yet
        _log(trainer, run_id, step)
    flush(trainer)  # stored in the (soft-)deleted run; the trainer learns of the deletion

    refused = _refusal(trainer, run_id, 20)
    # MLflow's own error for a call to a deleted run, word for word (sqlite:/// as reference).
    sql = open_store(migrated_sqlite_uri(tmp_path / "reference.db"))
    sql_run = new_run(sql)
    sql.delete_run(sql_run)
    expected = _refusal(sql, sql_run, 0)
    assert refused.error_code == expected.error_code == "INVALID_PARAMETER_VALUE"
    assert refused.message == expected.message.replace(sql_run, run_id)
    assert _refusal(trainer, run_id, 20).error_code == "INVALID_PARAMETER_VALUE"  # still deleted

    admin.restore_run(run_id)
    for step in range(21, 25):  # a restored run is writable again
        _log(trainer, run_id, step)
    flush(trainer)
    assert _steps(bucket_uri, run_id) == [*range(20), *range(21, 25)]


def test_inside_a_server_a_write_to_a_deleted_run_is_stored_and_the_next_refused(
    bucket_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = open_store(bucket_uri)
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", bucket_uri)  # a server worker: write-through
    worker = open_store(bucket_uri)
    monkeypatch.delenv("_MLFLOW_SERVER_FILE_STORE")
    run_id = new_run(admin)
    _log(worker, run_id, 0)
    admin.delete_run(run_id)
    _log(worker, run_id, 1)  # answered 200: so it must be stored
    assert _refusal(worker, run_id, 2).error_code == "INVALID_PARAMETER_VALUE"
    admin.restore_run(run_id)
    _log(worker, run_id, 3)
    assert _steps(bucket_uri, run_id) == [0, 1, 3]


def test_a_purged_run_refuses_the_next_call(bucket_uri: str) -> None:
    trainer = open_store(bucket_uri)
    run_id = new_run(trainer)
    _log(trainer, run_id, 0)
    _log(trainer, run_id, 1)  # buffered
    experiment_id = trainer.get_run(run_id).info.experiment_id
    _log(trainer, run_id, 2)
    # gc purged it: the document is gone, so these points cannot be stored anywhere.
    open_object_store(bucket_uri).delete(keys.run_key(experiment_id, run_id))
    with pytest.raises(MlflowException, match="not stored"):
        flush(trainer)
    refused = _refusal(trainer, run_id, 3)
    assert refused.error_code == "RESOURCE_DOES_NOT_EXIST"


# -- 4. a damaged run document met by the buffered upload --------------------------------


def _damage(uri: str, store: BucketTrackingStore, run_id: str) -> Callable[[], None]:
    """Make the run's document valid JSON of the wrong shape; return how to repair it."""
    objects = open_object_store(uri)
    key = keys.run_key(store.get_run(run_id).info.experiment_id, run_id)
    original = objects.get(key).data
    damaged: dict[str, Any] = json.loads(original)
    del damaged["lifecycle_stage"]
    damaged["latest_metrics"] = ["garbage"]
    objects.put(key, json.dumps(damaged).encode())

    def repair() -> None:
        objects.put(key, original)

    return repair


def test_a_damaged_run_document_blocks_neither_other_runs_nor_searches(bucket_uri: str) -> None:
    trainer = open_store(bucket_uri)
    assert isinstance(trainer, BucketTrackingStore)
    damaged_run, healthy_run = new_run(trainer), new_run(trainer)
    for run_id in (damaged_run, healthy_run):
        _log(trainer, run_id, 0)
    repair = _damage(bucket_uri, trainer, damaged_run)
    for run_id in (damaged_run, healthy_run):  # buffered, the damaged run's first
        _log(trainer, run_id, 1)

    with pytest.raises(MlflowException) as raised:
        trainer.flush()
    assert raised.value.error_code == "INTERNAL_ERROR"
    assert f"runs/{damaged_run}.json" in raised.value.message  # the damaged key, named
    assert _steps(bucket_uri, healthy_run) == [0, 1]  # the other run's upload went through
    experiment_id = trainer.get_run(healthy_run).info.experiment_id
    found = trainer.search_runs([experiment_id], None, ViewType.ALL)  # the writer's own search
    assert [run.info.run_id for run in found] == [healthy_run]

    repair()  # the damaged run's batch was kept for later
    trainer.flush()
    assert _steps(bucket_uri, damaged_run) == [0, 1]


# -- 3. (item 8) a status or param that cannot be stored is an error naming it -----------


def _remount(folder: str, read_only: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _MS_REMOUNT | (_MS_RDONLY if read_only else 0)
    if libc.mount(None, folder.encode(), None, flags, None) != 0:
        raise OSError(ctypes.get_errno(), f"remount {folder}")


_MS_RDONLY = 1
_MS_REMOUNT = 32


def _status_and_param_during_an_outage(uri: str, switch: Callable[[bool], None]) -> dict[str, Any]:
    """Log, lose the storage, log a param and end the run, get it back: what was seen."""
    store = open_store(uri)
    run_id = new_run(store)
    _log(store, run_id, 0)
    switch(False)
    try:
        _log(store, run_id, 1)  # buffered and spooled: fine during the outage
        with pytest.raises(MlflowException) as param_error:
            store.log_param(run_id, Param("lr", "0.1"))
        # end_run: kept like the metrics, for upload when the storage is back.
        answered = store.update_run_info(run_id, RunStatus.FINISHED, 123, None)
    finally:
        switch(True)
    flush(store)  # what the flusher, closing, or the next process on the root does
    ended = open_store(uri).get_run(run_id).info
    store.log_param(run_id, Param("lr", "0.1"))  # the param is the caller's to log again
    run = open_store(uri).get_run(run_id)
    return {
        "run_id": run_id,
        "param_error": param_error.value.message,
        "answered": answered.status,
        "ended": (ended.status, ended.end_time),
        "params": dict(run.data.params),
        "steps": _steps(uri, run_id),
    }


@pytest.mark.parametrize("scheme", ["bucket_file", "bucket_s3"])
def test_end_run_in_an_outage_is_kept_and_a_param_is_an_error_naming_it(
    scheme: str, tmp_path: Path
) -> None:
    if scheme == "bucket_s3":
        with interruptible_moto_endpoint("outage") as endpoint:
            uri = f"bucket+s3://outage/root?endpoint_url={endpoint.url}&{HELD}"
            seen = _status_and_param_during_an_outage(
                uri, lambda up: endpoint.up() if up else endpoint.down()
            )
    else:
        # The folder's file system turns read-only (EROFS), in a forked child's own mount
        # namespace: nothing stays mounted, and it works without root too.
        root = tmp_path / "root"
        root.mkdir()

        def in_child() -> dict[str, Any]:
            TmpfsMount(str(root), 64 * 1024 * 1024)
            uri = f"bucket+file://{root}?{HELD}"
            return _status_and_param_during_an_outage(
                uri, lambda up: _remount(str(root), read_only=not up)
            )

        seen = in_forked_child(in_child, mounts=True)
    run_id = seen["run_id"]
    assert seen["param_error"].startswith(
        f"log_param: params ['lr'] of run {run_id} were not stored: "
    )
    assert seen["answered"] == "FINISHED"
    assert seen["ended"] == ("FINISHED", 123)  # not RUNNING forever
    assert seen["params"] == {"lr": "0.1"}
    assert seen["steps"] == [0, 1]


ENDING_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mlflow import MlflowClient
    uri, ready, go, done = sys.argv[1:5]
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("ending")).info.run_id
    client.log_metric(run_id, "loss", 1.0, step=0)
    Path(ready).write_text(run_id)
    while not Path(go).exists():
        time.sleep(0.05)
    client.set_terminated(run_id)  # what mlflow.end_run() calls: the storage is down now
    Path(done).write_text("ok")
    time.sleep(600)  # killed here, before closing could upload anything
    """
)


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"the writer did not get to {path.name}"


def _end_run_in_an_outage_then_killed(
    uri: str, switch: Callable[[bool], None], tmp_path: Path
) -> tuple[str, int | None, list[int]]:
    ready, go, done = (tmp_path / name for name in ("ready", "go", "done"))
    # A new interpreter, not a fork of the preloaded server: the folder case runs in a
    # mount namespace of its own, which the server's children do not share.
    writer = subprocess.Popen(
        [sys.executable, "-c", ENDING_WRITER, uri, str(ready), str(go), str(done)]
    )
    try:
        _wait_for(ready, writer)
        switch(False)
        try:
            go.touch()
            _wait_for(done, writer)  # end_run returned during the outage
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
            switch(True)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    result = subprocess.run(
        [sys.executable, "-m", "mlflow_plugin", "sync", uri],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    run_id = ready.read_text()
    info = open_store(uri).get_run(run_id).info
    return info.status, info.end_time, _steps(uri, run_id)


@pytest.mark.parametrize("scheme", ["bucket_file", "bucket_s3"])
def test_end_run_in_an_outage_by_a_killed_writer_is_replayed(scheme: str, tmp_path: Path) -> None:
    spool = f"spool_dir={tmp_path / 'spool'}"
    if scheme == "bucket_s3":
        with interruptible_moto_endpoint("ending") as endpoint:
            uri = f"bucket+s3://ending/root?endpoint_url={endpoint.url}&{HELD}&{spool}"
            status, end_time, steps = _end_run_in_an_outage_then_killed(
                uri, lambda up: endpoint.up() if up else endpoint.down(), tmp_path
            )
    else:
        root = tmp_path / "root"
        root.mkdir()

        def in_child() -> tuple[str, int | None, list[int]]:
            TmpfsMount(str(root), 64 * 1024 * 1024)
            return _end_run_in_an_outage_then_killed(
                f"bucket+file://{root}?{HELD}&{spool}",
                lambda up: _remount(str(root), read_only=not up),
                tmp_path,
            )

        status, end_time, steps = in_forked_child(in_child, mounts=True)
    assert status == "FINISHED" and end_time is not None  # not RUNNING forever
    assert steps == [0]


# -- clocks: a call made after a writer saw a value is ordered after it ------------------

_TWO_MINUTES_US = 120_000_000


def _fast_clock(store: BucketTrackingStore) -> None:
    """This writer's machine runs two minutes fast."""
    store.context.buffer.clocks.observe((time.time_ns() // 1_000 + _TWO_MINUTES_US, "", 0))


def _first_call(store: BucketTrackingStore, run_id: str) -> None:
    pass  # the set_tag below is the writer's first call to the run: it reads the run first


def _read(store: BucketTrackingStore, run_id: str) -> None:
    store.get_run(run_id)


def _own_upload(store: BucketTrackingStore, run_id: str) -> None:
    _log(store, run_id, 1)
    store.flush()  # the swap's answer holds the fast writer's value


def _param_swap(store: BucketTrackingStore, run_id: str) -> None:
    store.log_param(run_id, Param("lr", "0.1"))


@pytest.mark.parametrize("saw", [_first_call, _read, _own_upload, _param_swap])
def test_a_tag_set_after_seeing_a_fast_clocks_value_wins(
    bucket_uri: str, saw: Callable[[BucketTrackingStore, str], None]
) -> None:
    fast, right = open_store(bucket_uri), open_store(bucket_uri)
    assert isinstance(fast, BucketTrackingStore) and isinstance(right, BucketTrackingStore)
    run_id = new_run(fast)
    if saw is not _first_call:
        warm(right, run_id)  # the writer with the right clock already logs to the run
    _fast_clock(fast)
    fast.set_tag(run_id, RunTag("state", "old"))
    flush(fast)
    saw(right, run_id)
    right.set_tag(run_id, RunTag("state", "new"))  # acknowledged after "old" was seen
    flush(right)
    assert stored_tags(bucket_uri, run_id)["state"] == "new"

"""The query index: a cache of the bucket that searches read, kept fresh by ETag.

What the index must never do is answer wrongly for long: another process's change
shows after the staleness bound, this process's own writes show at once, and a
deleted, outdated or damaged index is rebuilt without the user noticing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import change_journal
from mlflow_plugin.index import queries, sync
from mlflow_plugin.index.schema import index_stamp
from mlflow_plugin.objectstore import LocalObjectStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.polling import wait_until
from tests.processes import ForkedPython
from tests.servers import S3Endpoint


def _search_tags(store: BucketTrackingStore, experiment_id: str, key: str) -> list[str | None]:
    runs = store.search_runs([experiment_id], None, ViewType.ALL, order_by=["attributes.run_name"])
    return [run.data.tags.get(key) for run in runs]


def _fill(store: BucketTrackingStore, runs: int) -> tuple[str, list[str]]:
    experiment_id = store.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    run_ids = []
    for i in range(runs):
        run = store.create_run(experiment_id, "user", i, [], f"run-{i:03d}")
        store.log_batch(
            run.info.run_id,
            [Metric("acc", i / runs, i, 0)],
            [Param("lr", str(i % 3))],
            [RunTag("state", "before")],
        )
        run_ids.append(run.info.run_id)
    return experiment_id, run_ids


def _index_file(store: BucketTrackingStore) -> Path:
    url = store._index().url
    assert url.startswith("sqlite:///")
    return Path(url[len("sqlite:///") :])


_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from mlflow import MlflowClient
    client = MlflowClient(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    client.set_tag(sys.argv[2], "state", "after")
    print("done", flush=True)
    """
)


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = uuid.uuid4().hex[:8]
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"


def _with_option(uri: str, option: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{option}"


class _Clock:
    """The index's monotonic clock, moved only by the test: the bound is crossed on cue."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def test_another_process_change_shows_after_the_staleness_bound(
    root_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 4.0
    clock = _Clock()
    # Only the index's clock: a slow machine can no longer outrun the bound mid-test.
    monkeypatch.setattr(sync, "time", clock)
    store = BucketTrackingStore(_with_option(root_uri, f"index_staleness={bound}"))
    experiment_id, run_ids = _fill(store, 3)
    other = subprocess.Popen(
        [sys.executable, "-c", _OTHER_PROCESS, root_uri, run_ids[1]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.readline().strip() == "ready"
    assert _search_tags(store, experiment_id, "state") == ["before"] * 3
    other.stdin.write("go\n")
    other.stdin.flush()
    assert other.stdout.readline().strip() == "done"
    assert other.wait(timeout=60) == 0
    # Within the bound a search answers from the index without listing the bucket.
    clock.now += bound - 0.5
    assert _search_tags(store, experiment_id, "state") == ["before"] * 3
    clock.now += 1.0
    assert _search_tags(store, experiment_id, "state") == ["before", "after", "before"]


def test_own_writes_show_at_once_whatever_the_bound(root_uri: str) -> None:
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=3600"))
    experiment_id, run_ids = _fill(store, 2)
    assert _search_tags(store, experiment_id, "state") == ["before", "before"]
    store.set_tag(run_ids[0], RunTag("state", "after"))
    assert _search_tags(store, experiment_id, "state") == ["after", "before"]
    store.delete_run(run_ids[1])
    active = store.search_runs([experiment_id], None, ViewType.ACTIVE_ONLY)
    assert [run.info.run_id for run in active] == [run_ids[0]]
    store.log_batch(run_ids[0], [Metric("acc", 5.0, 99, 1)], [], [])
    found = store.search_runs([experiment_id], "metrics.acc > 4", ViewType.ALL)
    assert [run.info.run_id for run in found] == [run_ids[0]]
    renamed = f"renamed-{uuid.uuid4().hex[:6]}"
    store.rename_experiment(experiment_id, renamed)
    names = [e.name for e in store.search_experiments(filter_string=f"name = '{renamed}'")]
    assert names == [renamed]


def test_own_writes_show_at_once_in_every_thread(tmp_path: Path) -> None:
    """Threads sharing one store each tag their own run, then search for that tag at once:
    a search must wait for another thread's re-read that took its write along."""
    store = BucketTrackingStore(f"bucket+file:{tmp_path / 'root'}?index_staleness=3600")
    experiment_id = store.create_experiment("threads")
    threads = 4
    run_ids = [
        store.create_run(experiment_id, "u", 0, [], f"r{i}").info.run_id for i in range(threads)
    ]
    store.search_runs([experiment_id], None, ViewType.ALL)  # the index holds them all
    in_step, missed = threading.Barrier(threads), []

    def tag_and_search(i: int) -> None:
        for k in range(20):
            value = f"{i}-{k}"
            in_step.wait()
            store.set_tag(run_ids[i], RunTag("t", value))
            # One experiment, then several (a second, single-scope and many-scope path).
            ids = [experiment_id] if k % 2 else [experiment_id, "999999"]
            if not store.search_runs(ids, f"tags.t = '{value}'", ViewType.ALL):
                missed.append(value)

    workers = [threading.Thread(target=tag_and_search, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not missed


def test_a_sync_fetches_only_changed_documents(root_uri: str) -> None:
    store = BucketTrackingStore(root_uri)
    _experiment_id, run_ids = _fill(store, 12)
    store.flush()  # what _fill logged is buffered; a search would flush it first
    index = store._index()
    first = index.sync_everything()
    assert first.fetched >= 12
    again = index.sync_everything()
    assert (again.fetched, again.removed) == (0, 0)
    assert again.listed == first.listed
    store.set_tag(run_ids[4], RunTag("state", "after"))
    store.delete_experiment(store.create_experiment(f"gone-{uuid.uuid4().hex[:6]}"))
    store.flush()
    third = index.sync_everything()
    assert third.fetched == 2  # the changed run and the new experiment


def test_a_deleted_index_is_rebuilt_transparently(tmp_path: Path) -> None:
    store = BucketTrackingStore(f"bucket+file:{tmp_path / 'root'}?index_staleness=3600")
    experiment_id, _ = _fill(store, 5)
    before = store.search_runs([experiment_id], "params.lr = '1'", ViewType.ALL)
    index_file = _index_file(store)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index_file}{suffix}").unlink(missing_ok=True)
    after = store.search_runs([experiment_id], "params.lr = '1'", ViewType.ALL)
    assert [r.info.run_id for r in after] == [r.info.run_id for r in before]
    assert len(after) == 2 and index_file.exists()


def test_an_index_of_another_version_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    uri = f"bucket+file:{tmp_path / 'root'}"
    store = BucketTrackingStore(uri)
    experiment_id, _run_ids = _fill(store, 4)
    store.search_runs([experiment_id], None, ViewType.ALL)
    index_file = _index_file(store)
    with sqlite3.connect(index_file) as db:
        db.execute("UPDATE bucket_index_meta SET value = '0' WHERE name = 'version'")
        db.execute("UPDATE tags SET value = 'stale' WHERE key = 'state'")  # would be wrong
    fresh = BucketTrackingStore(uri)
    assert _search_tags(fresh, experiment_id, "state") == ["before"] * 4
    with sqlite3.connect(index_file) as db:
        (version,) = db.execute(
            "SELECT value FROM bucket_index_meta WHERE name = 'version'"
        ).fetchone()
    assert version == index_stamp()


def test_a_damaged_run_document_is_left_out_of_searches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    store = BucketTrackingStore(f"bucket+file:{root}")
    experiment_id, run_ids = _fill(store, 3)
    runs_folder = root / "experiments" / experiment_id / "runs"
    (runs_folder / "0123456789abcdef0123456789abcdef.json").write_text('{"run_id": 7')
    (runs_folder / f"{'f' * 32}.json").write_text('{"run_id": "someone-else"}')
    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.index.sync"):
        found = store.search_runs([experiment_id], None, ViewType.ALL)
    assert sorted(r.info.run_id for r in found) == sorted(run_ids)
    assert sum("left out of the search index" in m for m in caplog.messages) == 2


def test_the_index_file_is_user_only(tmp_path: Path) -> None:
    store = BucketTrackingStore(f"bucket+file:{tmp_path / 'root'}")
    store.search_experiments()
    index_file = _index_file(store)
    assert stat.S_IMODE(index_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(index_file.parent.stat().st_mode) == 0o700


def test_an_index_url_in_the_tracking_uri_is_used(tmp_path: Path) -> None:
    custom = tmp_path / "custom" / "index.sqlite"
    store = BucketTrackingStore(f"bucket+file:{tmp_path / 'root'}?index=sqlite:///{custom}")
    experiment_id, _ = _fill(store, 2)
    assert len(store.search_runs([experiment_id], None, ViewType.ALL)) == 2
    assert custom.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("index=not-a-url", "SQLAlchemy database URL"),
        ("index=postgresql://user:secret@db.example/mlflow", "MLFLOW_BUCKET_INDEX_URL"),
        ("index_staleness=-1", "index_staleness"),
        ("index_staleness=soon", "index_staleness"),
    ],
)
def test_bad_index_settings_are_refused_clearly(tmp_path: Path, option: str, message: str) -> None:
    store = BucketTrackingStore(f"bucket+file:{tmp_path / 'root'}?{option}")
    with pytest.raises(MlflowException, match=message) as raised:
        store.search_experiments()
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "secret" not in str(raised.value)


_SEARCHER = textwrap.dedent(
    """
    import sys
    from mlflow.entities import ViewType
    from mlflow_plugin.tracking.store import BucketTrackingStore
    store = BucketTrackingStore(sys.argv[1] + "?index_staleness=0")
    counts = set()
    for _ in range(25):
        counts.add(len(store.search_runs([sys.argv[2]], None, ViewType.ALL, max_results=1000)))
    print(max(counts))
    """
)


def test_processes_sharing_one_index_file_sync_side_by_side(tmp_path: Path) -> None:
    uri = f"bucket+file:{tmp_path / 'root'}"
    store = BucketTrackingStore(uri)
    experiment_id, _ = _fill(store, 5)
    searchers = [ForkedPython(_SEARCHER, uri, experiment_id, quiet=True) for _ in range(3)]
    for i in range(20):
        store.create_run(experiment_id, "user", 100 + i, [], f"late-{i:02d}")
    for searcher in searchers:
        status = searcher.wait(timeout=300)
        out, err = searcher.output()
        assert status == 0, err
        assert 5 <= int(out.strip()) <= 25
    assert len(store.search_runs([experiment_id], None, ViewType.ALL, max_results=1000)) == 25


def _large_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[_Clock, str, BucketTrackingStore, str, list[str]]:
    """A searched experiment of 4 runs that the store's index treats as large."""
    clock = _Clock()
    monkeypatch.setattr(sync, "time", clock)
    uri = f"bucket+file:{tmp_path / 'root'}"
    store = BucketTrackingStore(f"{uri}?index_staleness=0.5")
    experiment_id, run_ids = _fill(store, 4)
    assert _search_tags(store, experiment_id, "state") == ["before"] * 4
    store._index()._sync.inline_limit = 2  # this experiment now counts as large
    return clock, uri, store, experiment_id, run_ids


def test_a_large_scope_follows_the_change_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, uri, store, experiment_id, run_ids = _large_scope(tmp_path, monkeypatch)

    other = BucketTrackingStore(uri)  # another writer: its journal entry tells us
    other.set_tag(run_ids[2], RunTag("state", "after"))
    other.flush()
    clock.now += 0.6
    # The bound has passed: the journal brings the change, with no listing of the runs.
    assert _search_tags(store, experiment_id, "state") == ["before", "before", "after", "before"]


def test_a_search_past_the_bound_queries_beside_its_look_at_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query starts beside the journal's look; its answer is kept only when the
    look wrote nothing, and after a look that wrote, the next search queries after."""
    clock, uri, store, experiment_id, run_ids = _large_scope(tmp_path, monkeypatch)
    query_started = threading.Event()
    inner_search = queries.search_run_ids

    def search_run_ids(*args: Any, **kwargs: Any) -> Any:
        query_started.set()
        return inner_search(*args, **kwargs)

    monkeypatch.setattr(queries, "search_run_ids", search_run_ids)
    objects = store.context.objects
    inner_after = objects.list_after
    journal_waited: list[bool] = []

    def list_after(prefix: str, start_after: str) -> Any:
        if prefix == change_journal.JOURNAL_PREFIX:
            # Sequential code would query only after this returns.
            journal_waited.append(query_started.wait(patience))
        return inner_after(prefix, start_after)

    monkeypatch.setattr(objects, "list_after", list_after)

    def search_past_the_bound() -> list[str | None]:
        query_started.clear()
        clock.now += 0.6
        return _search_tags(store, experiment_id, "state")

    # The first look at the journal (nothing new) and the margin's rescan it starts.
    monkeypatch.setattr(sync, "RESCAN_DELAY_S", 0.0)
    patience = 0.0
    assert _search_tags(store, experiment_id, "state") == ["before"] * 4
    assert wait_until(lambda: not store._index()._sync._window_rescanning)
    # One look with nothing to write, after the rescan's: the next starts its query early.
    assert search_past_the_bound() == ["before"] * 4
    patience = 10.0
    journal_waited.clear()
    assert search_past_the_bound() == ["before"] * 4
    assert journal_waited == [True]
    # Another writer's change: the look finds it, so the early answer is not the one given.
    other = BucketTrackingStore(uri)
    other.set_tag(run_ids[2], RunTag("state", "after"))
    other.flush()
    assert search_past_the_bound() == ["before", "before", "after", "before"]
    assert journal_waited == [True, True]
    # That look wrote: the next search queries after its look only.
    patience = 0.5
    assert search_past_the_bound() == ["before", "before", "after", "before"]
    assert journal_waited == [True, True, False]
    # This one wrote nothing: the next starts its query early again.
    patience = 10.0
    assert search_past_the_bound() == ["before", "before", "after", "before"]
    assert journal_waited == [True, True, False, True]


def test_a_large_scope_is_relisted_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, _, store, experiment_id, run_ids = _large_scope(tmp_path, monkeypatch)
    store._index()._sync.full_listing_ms = 0  # every look past the bound also lists in full

    # A writer that leaves no journal entry (an older version): found by listing only.
    raw = LocalObjectStore(tmp_path / "root")
    key = f"experiments/{experiment_id}/runs/{run_ids[2]}.json"
    doc = json.loads(raw.get(key).data)
    doc["tags"]["state"] = "after"
    doc["tag_clocks"]["state"] = [2**50, "raw", 1]
    raw.put(key, json.dumps(doc).encode())
    clock.now += 0.6
    # The bound has passed: the search answers at once from the index as it is ...
    assert _search_tags(store, experiment_id, "state") == ["before"] * 4
    # ... and the listing it started in the background brings the change shortly after.
    deadline = time.monotonic() + 30
    while _search_tags(store, experiment_id, "state")[2] != "after":
        assert time.monotonic() < deadline, "the background sync never landed"
        time.sleep(0.1)


def _steps_to_read_a_page(runs: int, folder: Path) -> int:
    """SQLite virtual-machine steps (in thousands) that reading the indexed documents
    of a page of 100 runs takes in an index of one experiment with ``runs`` runs: a
    count, not a time, so it is the same on any machine."""
    from sqlalchemy import create_engine, event, insert
    from sqlalchemy.orm import Session

    from mlflow_plugin.index.queries import document_bodies
    from mlflow_plugin.index.schema import IndexBase, IndexedDocument

    engine = create_engine(f"sqlite:///{folder / f'page-{runs}.sqlite'}")
    IndexBase.metadata.create_all(engine)
    ids = [uuid.uuid4().hex for _ in range(runs)]
    with Session(engine) as session, session.begin():
        session.execute(
            insert(IndexedDocument),
            [
                {"key": f"experiments/1/runs/{i}.json", "kind": "run", "experiment_id": "1"}
                | {"entity_id": i, "etag": "e", "body": "{}"}
                for i in ids
            ],
        )
    thousands = 0

    def count() -> int:
        nonlocal thousands
        thousands += 1
        return 0

    event.listen(
        engine, "connect", lambda connection, _: connection.set_progress_handler(count, 1000)
    )
    engine.dispose()  # new connections from here on count their steps
    with Session(engine) as session:
        assert len(document_bodies(session, "run", ids[:100])) == 100
    engine.dispose()
    return thousands


def test_reading_a_page_does_not_grow_with_the_experiment(tmp_path: Path) -> None:
    """A page's documents are looked up by id: at 100,000 runs, reading every run of
    the kind instead took seconds per page (SQLite chose the (kind, experiment) index)."""
    small, large = (_steps_to_read_a_page(runs, tmp_path) for runs in (1_000, 8_000))
    assert large <= small + 2, (small, large)

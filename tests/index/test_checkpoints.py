"""Index checkpoints: a new machine opens a bucket from a snapshot, and its answers are
always those of a checkpoint-free sync and of MLflow's ``sqlite:///`` store.

Each "machine" is a store with an index file of its own. The same calls go to a
``sqlite:///`` store; every search is compared by run name (ids differ between stores).
A machine that starts from a checkpoint reads no run document that did not change
after it: counted on the store's object store.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from sqlalchemy import create_engine, event

from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.index import checkpoints, sync
from mlflow_plugin.index.schema import INDEX_MLFLOW_METADATA, IndexBase
from mlflow_plugin.index.state import journal_cursor
from mlflow_plugin.objectstore import ObjectStore, StoredObject, open_object_store
from mlflow_plugin.objectstore import parse_store_uri as parse
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.polling import wait_until
from tests.sqlite_reference import migrated_sqlite_uri

_SEARCHES: list[tuple[str | None, int, list[str]]] = [
    (None, ViewType.ACTIVE_ONLY, []),
    ("params.lr = '1'", ViewType.ACTIVE_ONLY, []),
    ("metrics.acc > 0.3", ViewType.ALL, ["metrics.acc DESC"]),
    ("tags.state = 'after'", ViewType.ALL, []),
    (None, ViewType.DELETED_ONLY, []),
]


@pytest.fixture
def root_uri(bucket_root: str) -> str:
    return bucket_root


class Machine:
    """A store with an index file of its own, counting the run documents it reads."""

    def __init__(self, root_uri: str, folder: Path, staleness: float = 0.2) -> None:
        index = f"sqlite:///{folder / uuid.uuid4().hex}.sqlite"
        joiner = "&" if "?" in root_uri else "?"
        options = f"index={index}&index_staleness={staleness}"
        self.store = BucketTrackingStore(f"{root_uri}{joiner}{options}")
        self.run_reads = 0
        objects = self.store.context.objects
        inner_get = objects.get

        def counted_get(key: str) -> StoredObject:
            document = keys.document_of_key(key)
            if document is not None and document[0] == "run":
                self.run_reads += 1
            return inner_get(key)

        objects.get = counted_get  # type: ignore[method-assign]

    def answers(self, experiment_ids: list[str]) -> list[list[tuple[Any, ...]]]:
        return [
            _rows(self.store.search_runs(experiment_ids, f, view, 1000, order))
            for f, view, order in _SEARCHES
        ]


def _rows(runs: Any) -> list[tuple[Any, ...]]:
    rows = [
        (
            run.info.run_name,
            run.info.lifecycle_stage,
            run.info.status,
            tuple(sorted(run.data.params.items())),
            tuple(sorted((k, v) for k, v in run.data.tags.items() if not k.startswith("mlflow."))),
            tuple(sorted(run.data.metrics.items())),
        )
        for run in runs
    ]
    return rows


class Twin:
    """The same calls on the bucket and on ``sqlite:///``; run ids kept by name."""

    def __init__(self, root_uri: str, sqlite_path: Path) -> None:
        self.clients = [MlflowClient(root_uri), MlflowClient(migrated_sqlite_uri(sqlite_path))]
        self.experiments: list[list[str]] = [[], []]
        self.runs: list[dict[str, str]] = [{}, {}]

    def each(self, call: Callable[[int, MlflowClient], None]) -> None:
        for side, client in enumerate(self.clients):
            call(side, client)
        # Buffered metrics reach the bucket now: other machines read them from there.
        self.clients[0]._tracking_client.store.flush()

    def experiment(self, name: str) -> None:
        self.each(lambda s, c: self.experiments[s].append(c.create_experiment(name)))

    def run(self, experiment: int, name: str, lr: str, acc: float, state: str) -> None:
        def create(side: int, client: MlflowClient) -> None:
            run = client.create_run(self.experiments[side][experiment], run_name=name)
            run_id = run.info.run_id
            client.log_param(run_id, "lr", lr)
            client.log_metric(run_id, "acc", acc, step=1)
            client.set_tag(run_id, "state", state)
            client.set_terminated(run_id)
            self.runs[side][name] = run_id

        self.each(create)

    def on_run(self, name: str, call: Callable[[MlflowClient, str], None]) -> None:
        self.each(lambda s, c: call(c, self.runs[s][name]))

    def reference(self) -> list[list[tuple[Any, ...]]]:
        client, ids = self.clients[1], self.experiments[1]
        return [
            _rows(client.search_runs(ids, f or "", view, 1000, order))
            for f, view, order in _SEARCHES
        ]


def _sorted(answers: list[list[tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
    # Equal runs in MLflow's order tie on start time; compare as sets where the order is free.
    return [sorted(a) for a in answers]


@pytest.fixture
def twin(root_uri: str, tmp_path: Path) -> Twin:
    twin = Twin(root_uri, tmp_path / "reference.sqlite")
    twin.experiment("first")
    twin.experiment("second")
    for number in range(6):
        twin.run(number % 2, f"run-{number}", str(number % 2), number / 10, "before")
    return twin


def _objects(root_uri: str) -> ObjectStore:
    return open_object_store(parse(root_uri))


def _checkpoint_keys(root_uri: str) -> list[str]:
    return [c.key for c in checkpoints.list_checkpoints(_objects(root_uri))]


def _write_checkpoint(root_uri: str, twin: Twin, folder: Path) -> Machine:
    first = Machine(root_uri, folder)
    assert _sorted(first.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert first.store.context.index().write_checkpoint() is not None
    return first


def test_a_new_machine_starts_from_the_checkpoint(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    assert len(_checkpoint_keys(root_uri)) == 1

    second = Machine(root_uri, tmp_path)
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert second.run_reads == 0  # every run came from the checkpoint


def test_changes_after_the_checkpoint_are_read_and_nothing_else(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    # After the checkpoint: a run added, one changed, one deleted, one restored.
    twin.run(0, "run-late", "1", 0.9, "after")
    twin.on_run("run-2", lambda c, r: c.set_tag(r, "state", "after"))
    twin.on_run("run-4", lambda c, r: c.delete_run(r))
    twin.on_run("run-0", lambda c, r: c.log_metric(r, "acc", 0.75, step=2))

    second = Machine(root_uri, tmp_path)
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert second.run_reads <= 4  # what changed, never every run


def test_a_large_experiment_follows_the_journal_after_the_checkpoint(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    second = Machine(root_uri, tmp_path)
    index_sync = second.store.context.index()._sync
    index_sync.inline_limit = 1  # each experiment counts as large
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert second.run_reads == 0
    # The first look's rescan of the journal's margin (in the background) is done.
    assert wait_until(lambda: not index_sync._window_rescanning)

    twin.on_run("run-3", lambda c, r: c.set_tag(r, "state", "after"))
    twin.run(1, "run-late", "0", 0.8, "after")
    time.sleep(0.3)  # past the staleness bound
    reads = second.run_reads
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert second.run_reads - reads == 2  # the two documents the journal named


def _journal_listings(machine: Machine) -> list[tuple[str, bool]]:
    """``(start_after, on the caller's thread)`` of every change-journal listing that
    ``machine`` makes, in order."""
    objects = machine.store.context.objects
    inner = objects.list_after
    caller = threading.get_ident()
    starts: list[tuple[str, bool]] = []

    def recorded(prefix: str, start_after: str) -> Any:
        if prefix == change_journal.JOURNAL_PREFIX:
            starts.append((start_after, threading.get_ident() == caller))
        return inner(prefix, start_after)

    objects.list_after = recorded  # type: ignore[method-assign]
    return starts


def test_a_new_machine_reads_the_journal_from_the_checkpoints_cursor_not_its_margin(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    """The margin before the cursor may hold thousands of entries (a team's last five
    minutes): a new machine's search lists only what came after the checkpoint, and
    rescans the margin in the background, where an entry of a writer whose clock lags
    (dated before the cursor, written after the checkpoint) is still found."""
    first = _write_checkpoint(root_uri, twin, tmp_path)
    with first.store.context.index()._database.read() as session:
        cursor = journal_cursor(session)
    assert cursor is not None
    # A writer whose clock is a minute behind adds a run after the checkpoint.
    twin.run(0, "run-late", "1", 0.9, "after")
    objects = _objects(root_uri)
    after = [
        c for i in objects.list(change_journal.JOURNAL_PREFIX) if (c := change_journal.parse(i.key))
    ]
    after = [c for c in after if c.at_ms > cursor]
    assert after
    for n, change in enumerate(after):
        objects.delete(change.key)
        lagging = f"{change.at_ms:013d}"
        objects.put(change.key.replace(lagging, f"{cursor - 60_000 + n:013d}", 1), b"")

    second = Machine(root_uri, tmp_path, staleness=60)  # the early listing is within it
    starts = _journal_listings(second)
    second.store.context.index()._sync.inline_limit = 1  # each experiment counts as large
    second.answers(twin.experiments[0])
    tail_start = change_journal.JOURNAL_PREFIX + f"{cursor - sync.TAIL_MS:013d}"
    margin_start = change_journal.JOURNAL_PREFIX + f"{cursor - change_journal.MARGIN_MS:013d}"
    assert starts and starts[0] == (tail_start, False)  # listed as the checkpoint downloads
    assert (margin_start, True) not in starts  # never on the request's path
    # The background rescan of the margin finds the lagging writer's change.
    assert wait_until(
        lambda: _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    )
    assert (margin_start, False) in starts  # listed off the request's path


def test_a_new_machine_lists_the_journals_tail_while_the_checkpoint_downloads(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    """The checkpoint's key names its cursor: the listing of the journal from there
    starts before the download, and the first search's look at the journal uses it."""
    first = _write_checkpoint(root_uri, twin, tmp_path)
    with first.store.context.index()._database.read() as session:
        cursor = journal_cursor(session)
    second = Machine(root_uri, tmp_path, staleness=60)  # the early listing is within it
    objects = second.store.context.objects
    inner_get_file, inner_after = objects.get_file, objects.list_after
    caller, journal_listing = threading.get_ident(), threading.Event()
    download_waited: list[bool] = []
    starts: list[tuple[str, bool]] = []

    def get_file(key: str, path: Any) -> None:
        if key.startswith(checkpoints.CHECKPOINT_PREFIX):
            # Sequential code would list the journal only after this returns.
            download_waited.append(journal_listing.wait(10))
        inner_get_file(key, path)

    def list_after(prefix: str, start_after: str) -> Any:
        if prefix == change_journal.JOURNAL_PREFIX:
            starts.append((start_after, threading.get_ident() == caller))
            journal_listing.set()
        return inner_after(prefix, start_after)

    objects.get_file = get_file  # type: ignore[method-assign]
    objects.list_after = list_after  # type: ignore[method-assign]
    second.store.context.index()._sync.inline_limit = 1  # the runs come from the journal

    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert download_waited == [True]
    tail_start = change_journal.JOURNAL_PREFIX + f"{(cursor or 0) - sync.TAIL_MS:013d}"
    assert starts[0] == (tail_start, False)
    assert (tail_start, True) not in starts  # the search did not list it again
    assert second.run_reads == 0


def test_a_new_machine_places_unknown_ids_beside_the_journals_look(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    """A search naming ids the checkpoint never listed (deleted experiments, typos)
    needs the experiment folders' listing to place them: it runs beside the journal's
    look, not after it, and the ids with no folder are recorded in one transaction,
    not one each."""
    _write_checkpoint(root_uri, twin, tmp_path)
    second = Machine(root_uri, tmp_path)
    index = second.store.context.index()  # the checkpoint is installed here
    index._sync.inline_limit = 1  # the experiments come from the journal
    index._sync._first_look = None  # the search looks at the journal itself
    objects = second.store.context.objects
    inner_dir, inner_after = objects.list_dir, objects.list_after
    caller, folders_listing = threading.get_ident(), threading.Event()
    journal_waited: list[bool] = []

    def list_dir(prefix: str = "") -> Any:
        if prefix == keys.experiments_prefix() and threading.get_ident() != caller:
            folders_listing.set()
        return inner_dir(prefix)

    def list_after(prefix: str, start_after: str) -> Any:
        if prefix == change_journal.JOURNAL_PREFIX and threading.get_ident() == caller:
            # Sequential code would list the folders only after this returns.
            journal_waited.append(folders_listing.wait(10))
        return inner_after(prefix, start_after)

    objects.list_dir = list_dir  # type: ignore[method-assign]
    objects.list_after = list_after  # type: ignore[method-assign]
    commits: list[None] = []
    event.listen(index._database.writer, "commit", lambda connection: commits.append(None))
    ids = twin.experiments[0]
    unknown = [str(max(int(e) for e in ids) + 100 + n) for n in range(40)]

    rows = _rows(second.store.search_runs(ids + unknown, None, ViewType.ALL, 1000))
    assert journal_waited[:1] == [True]
    assert len(commits) < 10  # one per unknown id would be 40 or more
    reference = twin.clients[1].search_runs(twin.experiments[1], "", ViewType.ALL, 1000)
    assert sorted(rows) == sorted(_rows(reference))
    assert _sorted(second.answers(ids + unknown)) == _sorted(twin.reference())


def _steps_to_drop_unvouched_rows(runs: int, folder: Path) -> int:
    """SQLite virtual-machine steps (in thousands) that the checks of a downloaded
    checkpoint take on an index of one experiment with ``runs`` runs: a count, not a
    time, so it is the same on any machine."""
    path = folder / f"index-{runs}.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    IndexBase.metadata.create_all(engine)
    INDEX_MLFLOW_METADATA.create_all(engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("INSERT INTO experiments (experiment_id, name) VALUES (1, 'big')")
        connection.execute(
            "INSERT INTO bucket_documents VALUES (?, 'experiment', '1', '1', 'e', '{}')",
            (keys.experiment_key("1"),),
        )
        ids = [uuid.uuid4().hex for _ in range(runs)]
        connection.executemany(
            "INSERT INTO runs (run_uuid, experiment_id) VALUES (?, 1)", [(i,) for i in ids]
        )
        connection.executemany(
            "INSERT INTO bucket_documents VALUES (?, 'run', ?, '1', 'e', '{}')",
            [(keys.run_key("1", i), i) for i in ids],
        )
        thousands = 0

        def count() -> int:
            nonlocal thousands
            thousands += 1
            return 0

        connection.set_progress_handler(count, 1000)
        for statement in checkpoints._UNVOUCHED:
            connection.execute(statement)
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (runs,)
    return thousands


def test_checking_a_checkpoint_grows_linearly_with_its_runs(tmp_path: Path) -> None:
    """A new machine on a bucket of 100,000 runs in one experiment checks every row of
    the checkpoint: in n log n steps, not n x n (an hour at 100,000 runs when SQLite
    looked each run's document up by its experiment)."""
    small = _steps_to_drop_unvouched_rows(1_000, tmp_path)
    large = _steps_to_drop_unvouched_rows(4_000, tmp_path)
    assert large < 6 * small, (small, large)  # 4x the runs; n x n would be 16x


def test_a_damaged_checkpoint_is_skipped(
    root_uri: str, twin: Twin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    objects = _objects(root_uri)
    good = checkpoints.list_checkpoints(objects)[-1]
    newer = good.cursor_ms + 1
    digest = checkpoints.stamp_digest()
    # Newer than the good one: garbage, and a truncated copy of the good one.
    objects.put(f"index-checkpoints/{newer:013d}.{digest}.garbage0.sqlite.zst", b"not zstd")
    objects.put(
        f"index-checkpoints/{newer + 1:013d}.{digest}.truncate.sqlite.zst",
        objects.get(good.key).data[:200],
    )
    twin.on_run("run-1", lambda c, r: c.set_tag(r, "state", "after"))

    with caplog.at_level(logging.WARNING):
        second = Machine(root_uri, tmp_path)
        answers = second.answers(twin.experiments[0])
    assert _sorted(answers) == _sorted(twin.reference())
    skipped = [r.getMessage() for r in caplog.records if "is skipped" in r.getMessage()]
    assert len(skipped) == 2, skipped  # both newer ones named; then the good one served


def _repacked(
    objects: ObjectStore, key: str, change: Callable[[sqlite3.Connection], None]
) -> bytes:
    """The checkpoint at ``key`` with ``change`` applied to its database."""
    with tempfile.TemporaryDirectory() as folder:
        packed, database, repacked = (Path(folder) / n for n in ("a.zst", "b.sqlite", "c.zst"))
        packed.write_bytes(objects.get(key).data)
        checkpoints._decompress(packed, database)
        with contextlib.closing(sqlite3.connect(database)) as connection:
            change(connection)
            connection.commit()
        checkpoints._compress(database, repacked)
        return repacked.read_bytes()


def _hidden_trigger(connection: sqlite3.Connection) -> None:
    """A trigger whose name hides among SQLite's own objects."""
    connection.execute("CREATE TRIGGER t AFTER INSERT ON runs BEGIN DELETE FROM runs; END")
    connection.execute("PRAGMA writable_schema=ON")
    connection.execute("UPDATE sqlite_master SET name = 'sqlite_hidden' WHERE name = 't'")
    connection.execute("PRAGMA writable_schema=OFF")


def _check_constraint(connection: sqlite3.Connection) -> None:
    """``runs`` re-created with one CHECK more: later runs would be refused."""
    sql = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    connection.execute("PRAGMA writable_schema=ON")
    connection.execute(
        "UPDATE sqlite_master SET sql = ? WHERE name = 'runs'",
        (sql.rstrip(")") + ", CHECK (start_time < 0))",),
    )
    connection.execute("PRAGMA writable_schema=OFF")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda c: c.execute(
                "UPDATE bucket_index_meta SET value = '0.0.x' WHERE name = 'version'"
            ),
            id="another-version",
        ),
        pytest.param(
            lambda c: c.execute(
                "CREATE TRIGGER t AFTER INSERT ON bucket_documents BEGIN DELETE FROM runs; END"
            ),
            id="a-trigger",
        ),
        pytest.param(lambda c: c.execute("CREATE VIEW v AS SELECT 1"), id="a-view"),
        pytest.param(lambda c: c.execute("DELETE FROM bucket_index_state"), id="no-cursor"),
        pytest.param(_hidden_trigger, id="a-trigger-named-like-sqlites-own"),
        pytest.param(_check_constraint, id="a-check-constraint"),
        pytest.param(
            lambda c: c.execute("UPDATE bucket_index_state SET value = value + 3600000"),
            id="a-cursor-in-the-future",
        ),
        pytest.param(
            lambda c: c.execute(
                "UPDATE bucket_index_meta SET value = 'bucket+file:/elsewhere #another-root'"
                " WHERE name = 'root'"
            ),
            id="another-root",
        ),
    ],
)
def test_a_checkpoint_not_shaped_like_this_versions_index_is_skipped(
    root_uri: str,
    twin: Twin,
    tmp_path: Path,
    change: Callable[[sqlite3.Connection], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    objects = _objects(root_uri)
    good = checkpoints.list_checkpoints(objects)[-1]
    objects.put(good.key, _repacked(objects, good.key, change))
    with caplog.at_level(logging.WARNING):
        second = Machine(root_uri, tmp_path)
        answers = second.answers(twin.experiments[0])
    assert _sorted(answers) == _sorted(twin.reference())
    assert any("is skipped" in r.getMessage() for r in caplog.records)
    assert second.run_reads == 6  # built from the bucket


def test_damaged_rows_in_a_checkpoint_are_read_again_from_the_bucket(
    root_uri: str, twin: Twin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    objects = _objects(root_uri)
    good = checkpoints.list_checkpoints(objects)[-1]

    def damage(connection: sqlite3.Connection) -> None:
        keys_ = [
            k
            for (k,) in connection.execute(
                "SELECT key FROM bucket_documents WHERE kind = 'run' ORDER BY key LIMIT 2"
            )
        ]
        connection.execute("UPDATE bucket_documents SET body = 'not json' WHERE key = ?", keys_[:1])
        connection.execute(
            "UPDATE bucket_documents SET body = '{\"run_id\": 5}' WHERE key = ?", keys_[1:]
        )
        connection.execute("UPDATE bucket_documents SET body = '[]' WHERE kind = 'experiment'")

    objects.put(good.key, _repacked(objects, good.key, damage))
    with caplog.at_level(logging.WARNING):
        second = Machine(root_uri, tmp_path)
        answers = second.answers(twin.experiments[0])
        experiments = second.store.search_experiments(ViewType.ALL, 100)
    # The first answer is already right: the damaged copies were read from the bucket.
    assert _sorted(answers) == _sorted(twin.reference())
    assert sorted(e.name for e in experiments) == ["Default", "first", "second"]
    assert second.run_reads == 2
    assert sum("indexed copy is damaged" in r.getMessage() for r in caplog.records) >= 2


def _rows_of_another_experiment(connection: sqlite3.Connection) -> None:
    (run,) = connection.execute("SELECT run_uuid FROM runs ORDER BY run_uuid LIMIT 1").fetchone()
    (other,) = connection.execute(
        "SELECT experiment_id FROM runs WHERE experiment_id != "
        "(SELECT experiment_id FROM runs WHERE run_uuid = ?) LIMIT 1",
        (run,),
    ).fetchone()
    connection.execute("UPDATE runs SET experiment_id = ? WHERE run_uuid = ?", (other, run))
    connection.execute(
        "UPDATE bucket_documents SET experiment_id = ? WHERE entity_id = ?", (str(other), run)
    )


def _bytes_that_are_not_utf8(connection: sqlite3.Connection) -> None:
    connection.execute(
        "UPDATE runs SET name = CAST(X'61FF' AS TEXT) WHERE run_uuid = "
        "(SELECT run_uuid FROM runs ORDER BY run_uuid LIMIT 1)"
    )
    connection.execute(
        "UPDATE bucket_documents SET body = CAST(X'7BFF7D' AS TEXT) WHERE key = "
        "(SELECT key FROM bucket_documents WHERE kind = 'run' ORDER BY key DESC LIMIT 1)"
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_rows_of_another_experiment, id="rows-under-another-experiment"),
        pytest.param(_bytes_that_are_not_utf8, id="text-that-is-not-utf8"),
    ],
)
def test_rows_no_document_vouches_for_are_dropped_and_read_again(
    root_uri: str, twin: Twin, tmp_path: Path, change: Callable[[sqlite3.Connection], None]
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    objects = _objects(root_uri)
    good = checkpoints.list_checkpoints(objects)[-1]
    objects.put(good.key, _repacked(objects, good.key, change))
    second = Machine(root_uri, tmp_path)
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert 1 <= second.run_reads <= 2  # the dropped ones, read from the bucket


def test_a_checkpoint_of_another_index_version_is_not_read(
    root_uri: str, twin: Twin, tmp_path: Path
) -> None:
    _write_checkpoint(root_uri, twin, tmp_path)
    objects = _objects(root_uri)
    good = checkpoints.list_checkpoints(objects)[-1]
    foreign = good.key.replace(good.stamp_digest, "0" * 16)
    objects.put(foreign, objects.get(good.key).data)
    objects.delete(good.key)
    second = Machine(root_uri, tmp_path)
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert second.run_reads == 6  # built from the bucket


def test_a_listing_that_fetched_many_documents_leaves_a_checkpoint(
    root_uri: str, twin: Twin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "AUTO_CHECKPOINT_FETCHES", 3)
    first = Machine(root_uri, tmp_path)
    assert _sorted(first.answers(twin.experiments[0])) == _sorted(twin.reference())
    # Written in the background once every experiment is listed (the answers list both).
    deadline = time.monotonic() + 60
    while not _checkpoint_keys(root_uri):
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.1)
    second = Machine(root_uri, tmp_path)
    assert _sorted(second.answers(twin.experiments[0])) == _sorted(twin.reference())
    assert second.run_reads == 0


def test_older_checkpoints_are_collected(root_uri: str, twin: Twin, tmp_path: Path) -> None:
    objects = _objects(root_uri)
    digest = checkpoints.stamp_digest()
    now = checkpoints.change_journal.now_ms()
    for age_hours in (5, 4, 3):
        at = now - age_hours * 3600 * 1000
        objects.put(f"index-checkpoints/{at:013d}.{digest}.old00000.sqlite.zst", b"")
    foreign_old = now - checkpoints.change_journal.RETENTION_MS - 1
    objects.put(f"index-checkpoints/{foreign_old:013d}.{'0' * 16}.foreign0.sqlite.zst", b"")
    objects.put(f"index-checkpoints/{now:013d}.{'0' * 16}.foreign1.sqlite.zst", b"")
    _write_checkpoint(root_uri, twin, tmp_path)  # collects after writing
    left = _checkpoint_keys(root_uri)
    assert len(left) == 3  # the newest two of this version, the young foreign one
    assert any("foreign1" in k for k in left) and not any("foreign0" in k for k in left)
    assert sum(digest in k for k in left) == 2

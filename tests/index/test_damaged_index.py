"""A damaged, foreign or outdated index file is replaced by itself, never a lasting failure.

The index is only a cache: whatever state its SQLite file is in (overwritten, cut
short, someone else's database, written under another MLflow's table definitions),
the next search — in this process or the next — rebuilds it from the bucket and
answers as before, with one warning, even when several processes meet it at once.
"""

from __future__ import annotations

import logging
import sqlite3
import textwrap
import uuid
from pathlib import Path

import pytest
from mlflow.entities import Param, ViewType
from mlflow.exceptions import MlflowException

from mlflow_plugin.index.schema import index_stamp
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.processes import ForkedPython
from tests.servers import S3Endpoint

_WARNING = "is damaged or not an index"


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = uuid.uuid4().hex[:8]
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"


def _fill(store: BucketTrackingStore, runs: int) -> str:
    experiment_id = store.create_experiment(f"exp-{uuid.uuid4().hex[:8]}")
    for i in range(runs):
        run = store.create_run(experiment_id, "user", i, [], f"run-{i}")
        store.log_batch(run.info.run_id, [], [Param("lr", str(i % 2))], [])
    return experiment_id


def _index_file(store: BucketTrackingStore) -> Path:
    url = store._index().url
    assert url.startswith("sqlite:///")
    return Path(url[len("sqlite:///") :])


def _search(store: BucketTrackingStore, experiment_id: str) -> int:
    return len(store.search_runs([experiment_id], "params.lr = '1'", ViewType.ALL))


def _overwrite(index_file: Path, data: bytes) -> None:
    index_file.write_bytes(data)
    for suffix in ("-wal", "-shm"):
        Path(f"{index_file}{suffix}").unlink(missing_ok=True)


def _warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(_WARNING in message for message in caplog.messages)


def test_an_overwritten_index_file_is_rebuilt_by_the_next_process(
    root_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = _fill(store, 4)
    assert _search(store, experiment_id) == 2
    index_file = _index_file(store)
    store.close()
    _overwrite(index_file, b"this is not a database " * 200)

    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.index.database"):
        fresh = BucketTrackingStore(root_uri)
        assert _search(fresh, experiment_id) == 2
        assert _search(BucketTrackingStore(root_uri), experiment_id) == 2  # and the next one
    assert _warnings(caplog) == 1
    assert Path(f"{index_file}.damaged").read_bytes().startswith(b"this is not a database")


def test_an_index_damaged_under_a_running_process_is_rebuilt_at_its_next_search(
    root_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = _fill(store, 4)
    assert _search(store, experiment_id) == 2
    index_file = _index_file(store)
    size = index_file.stat().st_size
    _overwrite(index_file, b"\0" * 100 + b"x" * max(size - 100, 4096))

    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.index.database"):
        assert _search(store, experiment_id) == 2
        assert len(store.search_experiments()) == 2
    assert _warnings(caplog) == 1


def test_a_foreign_sqlite_file_is_moved_aside(
    root_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = _fill(store, 4)
    index_file = _index_file(store)
    store.close()
    _overwrite(index_file, b"")
    with sqlite3.connect(index_file) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")

    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.index.database"):
        assert _search(BucketTrackingStore(root_uri), experiment_id) == 2
    assert _warnings(caplog) == 1
    with sqlite3.connect(Path(f"{index_file}.damaged")) as db:
        assert db.execute("SELECT text FROM notes").fetchall() == [("mine",)]


def test_an_index_of_another_mlflow_schema_is_rebuilt(root_uri: str) -> None:
    """An MLflow upgrade that changes its tables: the old index file is not queried."""
    store = BucketTrackingStore(root_uri)
    experiment_id = _fill(store, 4)
    assert _search(store, experiment_id) == 2
    index_file = _index_file(store)
    store.close()
    ours, format_version, _ = index_stamp().split(".")
    older = f"{ours}.{format_version}.{'0' * 16}"
    with sqlite3.connect(index_file) as db:
        # What an index written under an MLflow whose runs table lacked a column holds.
        db.execute("UPDATE bucket_index_meta SET value = ? WHERE name = 'version'", (older,))
        db.execute("ALTER TABLE runs DROP COLUMN deleted_time")

    assert _search(BucketTrackingStore(root_uri), experiment_id) == 2
    with sqlite3.connect(index_file) as db:
        (version,) = db.execute(
            "SELECT value FROM bucket_index_meta WHERE name = 'version'"
        ).fetchone()
    assert version == index_stamp()


_OPENER = textwrap.dedent(
    """
    import logging, sys
    from mlflow.entities import ViewType
    from mlflow_plugin.tracking.store import BucketTrackingStore
    warned = []
    class Count(logging.Handler):
        def emit(self, record):
            warned.append(record.getMessage())
    logging.getLogger("mlflow_plugin.index.database").addHandler(Count())
    store = BucketTrackingStore(sys.argv[1])
    found = store.search_runs([sys.argv[2]], "params.lr = '1'", ViewType.ALL)
    print(len(found), sum("is damaged" in m for m in warned))
    """
)


def test_processes_opening_one_damaged_file_at_once_replace_it_once(root_uri: str) -> None:
    store = BucketTrackingStore(root_uri)
    experiment_id = _fill(store, 4)
    index_file = _index_file(store)
    store.close()
    _overwrite(index_file, b"garbage" * 1000)

    openers = [ForkedPython(_OPENER, root_uri, experiment_id, quiet=True) for _ in range(4)]
    answers = []
    for opener in openers:
        status = opener.wait(timeout=300)
        out, err = opener.output()
        assert status == 0, err
        answers.append(tuple(int(word) for word in out.split()))
    assert sorted(answers) == [(2, 0), (2, 0), (2, 0), (2, 1)]


def test_an_index_that_cannot_be_used_is_an_mlflow_error(root_uri: str, tmp_path: Path) -> None:
    """Never a raw SQLAlchemy error out of a store method (a 500 in the server)."""
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for option, code in [
        (f"index=sqlite:///{folder}", "TEMPORARILY_UNAVAILABLE"),
        ("index=nosuchdatabase://localhost/db", "INVALID_PARAMETER_VALUE"),
        ("index=mysql://localhost:1/db", "INVALID_PARAMETER_VALUE"),
    ]:
        store = BucketTrackingStore(f"{root_uri}{'&' if '?' in root_uri else '?'}{option}")
        with pytest.raises(MlflowException) as caught:
            store.search_experiments()
        assert caught.value.error_code == code, caught.value.message


def test_an_index_folder_that_cannot_be_created_is_an_mlflow_error(
    root_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the index folder should be")
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(blocked / "index"))
    store = BucketTrackingStore(root_uri)
    with pytest.raises(MlflowException, match="not-a-folder") as caught:
        store.search_experiments()
    assert caught.value.error_code == "TEMPORARILY_UNAVAILABLE"

"""A search naming many experiments costs one folder listing plus one per existing id.

``runs/search`` may name thousands of experiment ids (the UI's compare view, a script
searching everything). Ids with no experiment folder are not listed at all, the others
are listed in parallel, and when their scopes together are large they are re-listed in
the background, as one large experiment is. Counted, not timed: the listing calls that
reach the object store.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Param, RunTag, ViewType

from mlflow_plugin.objectstore import ObjectStore, open_object_store
from mlflow_plugin.objectstore import parse_store_uri as parse
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = uuid.uuid4().hex[:8]
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"


@pytest.fixture(autouse=True)
def own_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh index folder: the first search of each test starts from nothing."""
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(tmp_path / "index"))


class Listings:
    """Counts ``list``, ``list_after`` and ``list_dir`` calls on an object store instance."""

    def __init__(self, store: ObjectStore) -> None:
        self.lists: list[str] = []
        self.dirs: list[str] = []
        inner_list, inner_dir, inner_after = store.list, store.list_dir, store.list_after

        def counted_list(prefix: str = "") -> Iterator[Any]:
            self.lists.append(prefix)
            return inner_list(prefix)

        def counted_after(prefix: str, start_after: str) -> Iterator[Any]:
            self.lists.append(prefix)
            return inner_after(prefix, start_after)

        def counted_dir(prefix: str = "") -> Any:
            self.dirs.append(prefix)
            return inner_dir(prefix)

        store.list = counted_list  # type: ignore[method-assign]
        store.list_dir = counted_dir  # type: ignore[method-assign]
        store.list_after = counted_after  # type: ignore[method-assign]


def _with_option(uri: str, option: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{option}"


def _fill(uri: str, experiments: int) -> tuple[list[str], dict[str, str]]:
    """Experiments of two runs each (lr 0 and 1); returns their ids and run -> experiment."""
    writer = BucketTrackingStore(uri)
    ids, runs = [], {}
    for i in range(experiments):
        experiment_id = writer.create_experiment(f"many-{i}-{uuid.uuid4().hex[:6]}")
        ids.append(experiment_id)
        for lr in range(2):
            run_id = writer.create_run(experiment_id, "user", lr, [], f"run-{lr}").info.run_id
            writer.log_batch(run_id, [], [Param("lr", str(lr))], [RunTag("state", "before")])
            runs[run_id] = experiment_id
    writer.close()
    return ids, runs


def _absent(ids: list[str], count: int) -> list[str]:
    return [str(max(map(int, ids)) + 100 + i) for i in range(count)]


def _found(
    store: BucketTrackingStore, ids: list[str], filter_string: str | None = None
) -> set[str]:
    runs = store.search_runs(ids, filter_string, ViewType.ALL, max_results=1000)
    return {run.info.run_id for run in runs}


def test_ids_without_an_experiment_are_never_listed(root_uri: str) -> None:
    ids, runs = _fill(root_uri, 6)
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=3600"))
    listings = Listings(store.object_store)

    assert _found(store, ids + _absent(ids, 30)) == set(runs)
    assert len(_found(store, ids + _absent(ids, 30), "params.lr = '1'")) == 6
    run_listings = [p for p in listings.lists if p.endswith("/runs/")]
    # One listing per existing experiment, none for the 30 ids that name nothing.
    assert sorted(run_listings) == sorted(f"experiments/{e}/runs/" for e in ids)
    assert listings.dirs == ["experiments/"]


def test_an_experiment_gone_from_the_bucket_leaves_a_many_id_search(root_uri: str) -> None:
    ids, runs = _fill(root_uri, 4)
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=0"))
    assert _found(store, ids) == set(runs)
    # Removed by another process (gc of a deleted experiment): only a listing can tell.
    other: ObjectStore = open_object_store(parse(root_uri))
    other.delete_prefix(f"experiments/{ids[1]}/")
    assert _found(store, ids) == {run for run, e in runs.items() if e != ids[1]}


def test_many_large_scopes_follow_the_change_journal(root_uri: str) -> None:
    ids, runs = _fill(root_uri, 3)
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=0.5"))
    assert _found(store, ids) == set(runs)
    store._index()._sync.inline_limit = 4  # 3 experiments of 2 runs: large together
    listings = Listings(store.object_store)

    changed = next(iter(runs))
    other = BucketTrackingStore(root_uri)  # another writer: its journal entry tells us
    other.set_tag(changed, RunTag("state", "after"))
    other.close()
    time.sleep(0.6)
    # The bound has passed: one listing of the journal, not of the three scopes.
    assert _found(store, ids, "tags.state = 'after'") == {changed}
    assert [p for p in listings.lists if p.endswith("/runs/")] == []
    # Once, or once more when the experiments' look outlasted the bound on a slow machine.
    assert set(listings.lists) == {"changes/"}


def test_many_large_scopes_are_relisted_in_the_background(root_uri: str) -> None:
    ids, runs = _fill(root_uri, 3)
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=0.5"))
    assert _found(store, ids) == set(runs)
    sync = store._index()._sync
    sync.inline_limit = 4  # 3 experiments of 2 runs: large together
    sync.full_listing_ms = 0  # every look past the bound also lists in full
    listings = Listings(store.object_store)

    # A writer that leaves no journal entry (an older version): found by listing only.
    changed_run = next(iter(runs))
    raw: ObjectStore = open_object_store(parse(root_uri))
    key = f"experiments/{runs[changed_run]}/runs/{changed_run}.json"
    doc = json.loads(raw.get(key).data)
    doc["tags"]["state"] = "after"
    doc["tag_clocks"]["state"] = [2**50, "raw", 1]
    raw.put(key, json.dumps(doc).encode())
    time.sleep(0.6)
    # The bound has passed: the answer comes from the index as it is ...
    assert _found(store, ids, "tags.state = 'after'") == set()
    # ... and the group listing it started brings the change shortly after.
    deadline = time.monotonic() + 60
    while _found(store, ids, "tags.state = 'after'") != {changed_run}:
        assert time.monotonic() < deadline, "the background sync never landed"
        time.sleep(0.1)
    # The listing goes on through the group's other scopes after the changed one's (on a
    # loaded machine the change can be seen before they are listed).
    while len(relisted := [p for p in listings.lists if p.endswith("/runs/")]) < 3:
        assert time.monotonic() < deadline, f"only {relisted} were listed again"
        time.sleep(0.1)


def test_an_index_idle_past_the_journals_trust_lists_again_and_recovers(root_uri: str) -> None:
    from mlflow_plugin.format import change_journal
    from mlflow_plugin.index.state import IndexState

    ids, runs = _fill(root_uri, 2)
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=0"))
    assert _found(store, ids) == set(runs)
    sync = store._index()._sync
    sync.inline_limit = 1  # every scope is kept fresh from the journal
    database = store._index()._database
    with database.write() as session:  # the index was last used days ago
        session.get(IndexState, "journal_cursor_ms").value = 0
    changed = next(iter(runs))
    other = BucketTrackingStore(root_uri)
    other.set_tag(changed, RunTag("state", "after"))
    other.close()
    # The first look finds the cursor untrustworthy and has every scope listed again.
    deadline = time.monotonic() + 60
    while _found(store, ids, "tags.state = 'after'") != {changed}:
        assert time.monotonic() < deadline, "the change never showed"
        time.sleep(0.1)
    with database.read() as session:
        cursor = session.get(IndexState, "journal_cursor_ms").value
    assert change_journal.now_ms() - cursor < change_journal.TRUST_MS  # trusted again


def test_listings_alone_keep_the_journal_cursor_young(root_uri: str) -> None:
    from mlflow_plugin.index.state import IndexState

    ids, runs = _fill(root_uri, 2)
    store = BucketTrackingStore(_with_option(root_uri, "index_staleness=0"))
    assert _found(store, ids) == set(runs)
    database = store._index()._database
    with database.read() as session:
        first = session.get(IndexState, "journal_cursor_ms").value
    time.sleep(0.05)
    assert _found(store, ids) == set(runs)  # small scopes: listed again, no journal read
    with database.read() as session:
        assert session.get(IndexState, "journal_cursor_ms").value > first


@pytest.mark.parametrize("staleness", [0, 0.3])
def test_an_id_that_named_nothing_shows_its_runs_once_created(
    root_uri: str, staleness: float
) -> None:
    """Ids with no folder are recorded as listed and empty, all at once; one that
    later gets an experiment (created elsewhere) is listed again past the bound."""
    ids, runs = _fill(root_uri, 2)
    store = BucketTrackingStore(_with_option(root_uri, f"index_staleness={staleness}"))
    # Ids are sequential: the next experiment created takes the first of these.
    unknown = [str(max(map(int, ids)) + 1 + i) for i in range(20)]
    assert _found(store, ids + unknown) == set(runs)

    other = BucketTrackingStore(root_uri)
    created = other.create_experiment(f"late-{uuid.uuid4().hex[:6]}")
    late_run = other.create_run(created, "user", 0, [], "late").info.run_id
    other.close()
    assert created == unknown[0]
    time.sleep(staleness)
    assert _found(store, ids + unknown) == set(runs) | {late_run}

"""The compare-and-swap loop on real stores: merges racing writers, refuses cleanly, gives up.

Each scenario runs on bucket+file and S3 (SeaweedFS where writers race).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mlflow_plugin.format import documents
from mlflow_plugin.format.documents import (
    ConflictRetriesExhausted,
    create_document,
    encode,
    read_document,
    read_or_none,
    update_document,
)
from mlflow_plugin.objectstore import AlreadyExists, NotFound, ObjectStore
from tests.format.stores import racing_store, store

__all__ = ["racing_store", "store"]  # the fixtures, imported for pytest

KEY = "experiments/1/experiment.json"


def experiment(**tags: str) -> dict[str, Any]:
    return {
        "experiment_id": "1",
        "name": "e",
        "artifact_location": "bucket+file:///a",
        "lifecycle_stage": "active",
        "tags": dict(tags),
    }


def test_racing_writers_all_land(racing_store: ObjectStore) -> None:
    create_document(racing_store, KEY, experiment())
    start = threading.Barrier(6)

    def writer(number: int) -> None:
        start.wait()
        for step in range(5):

            def add(doc: dict[str, Any], tag: str = f"w{number}-{step}") -> dict[str, Any]:
                doc["tags"][tag] = "1"
                return doc

            update_document(racing_store, KEY, add)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tags = read_document(racing_store, KEY)[0]["tags"]
    assert sorted(tags) == sorted(f"w{n}-{s}" for n in range(6) for s in range(5))


def test_a_conflict_reapplies_the_mutation_to_the_newer_document(store: ObjectStore) -> None:
    create_document(store, KEY, experiment(k="v"))
    seen: list[dict[str, str]] = []

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(doc["tags"]))
        if len(seen) == 1:  # another writer swaps the document in between
            store.put(KEY, encode(experiment(theirs="1")))
        doc["tags"]["mine"] = "1"
        return doc

    written, etag = update_document(store, KEY, mutate)
    assert seen == [{"k": "v"}, {"theirs": "1"}]
    assert read_document(store, KEY) == (written, etag)
    assert written["tags"] == {"theirs": "1", "mine": "1"}


def test_a_refusing_mutation_writes_nothing(store: ObjectStore) -> None:
    create_document(store, KEY, experiment(k="v"))
    before = store.get(KEY)

    def refuse(doc: dict[str, Any]) -> dict[str, Any]:
        doc["tags"]["k"] = "changed"  # changed, then refused: none of it may land
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        update_document(store, KEY, refuse)
    after = store.get(KEY)
    assert (after.data, after.etag) == (before.data, before.etag)


def test_a_document_that_keeps_changing_exhausts_the_retries(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents, "_MAX_CAS_ATTEMPTS", 3)
    create_document(store, KEY, experiment())
    attempts: list[int] = []

    def always_overtaken(doc: dict[str, Any]) -> dict[str, Any]:
        attempts.append(len(attempts))
        store.put(KEY, encode(experiment(overtaken=str(len(attempts)))))
        doc["tags"]["mine"] = "1"
        return doc

    with pytest.raises(ConflictRetriesExhausted, match="kept changing"):
        update_document(store, KEY, always_overtaken)
    assert len(attempts) == 3
    assert "mine" not in read_document(store, KEY)[0]["tags"]


def test_an_absent_document_is_not_found_and_creation_is_once(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        update_document(store, KEY, lambda doc: doc)
    assert read_or_none(store, KEY) is None
    etag = create_document(store, KEY, experiment())
    assert read_or_none(store, KEY) == (experiment(), etag)
    with pytest.raises(AlreadyExists):
        create_document(store, KEY, experiment(second="1"))

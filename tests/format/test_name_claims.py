"""Name claims on real stores: one document per name, renames free the old name.

Each scenario runs on bucket+file and S3 (SeaweedFS where creators race).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import read_document
from mlflow_plugin.format.name_claims import (
    NameClaim,
    NameTaken,
    create_named,
    named_document,
    rename_named,
)
from mlflow_plugin.objectstore import ObjectStore
from tests.format.stores import racing_store, store

__all__ = ["racing_store", "store"]  # the fixtures, imported for pytest


def claim(name: str) -> NameClaim:
    return NameClaim(name, keys.experiment_name_key(name), "experiment_id", keys.experiment_key)


def create(objects: ObjectStore, name: str, first: str | None = None) -> str:
    def document(target: str) -> dict[str, Any]:
        return {
            "experiment_id": target,
            "name": name,
            "artifact_location": f"bucket+file:///a/{target}",
            "lifecycle_stage": "active",
            "tags": {},
        }

    return create_named(
        objects, claim(name), first or uuid.uuid4().hex, document, lambda _: uuid.uuid4().hex
    )


def test_a_name_is_created_once_and_found_by_its_claim(store: ObjectStore) -> None:
    target = create(store, "exp")
    found = named_document(store, claim("exp"))
    assert found is not None and found[0] == target and found[1]["name"] == "exp"
    with pytest.raises(NameTaken, match="'exp' is taken"):
        create(store, "exp")
    assert named_document(store, claim("other")) is None


def test_a_taken_target_id_moves_the_claim_on(store: ObjectStore) -> None:
    first = create(store, "one", first="1")
    second = create(store, "two", first="1")  # "1" carries another name: a new id is used
    assert first == "1"
    assert second != "1"
    assert read_document(store, keys.experiment_key(second))[0]["name"] == "two"


def test_a_rename_takes_the_new_name_and_frees_the_old(store: ObjectStore) -> None:
    target = create(store, "before")
    renamed = rename_named(store, claim("after"), target, lambda doc: doc)
    assert renamed["name"] == "after" and "pending_name" not in renamed
    assert named_document(store, claim("after")) == (target, renamed)
    assert named_document(store, claim("before")) is None  # its claim points at "after" now
    again = create(store, "before")
    assert again != target


def test_a_rename_to_a_taken_name_changes_nothing(store: ObjectStore) -> None:
    create(store, "taken")
    target = create(store, "mine")
    with pytest.raises(NameTaken):
        rename_named(store, claim("taken"), target, lambda doc: doc)
    doc = read_document(store, keys.experiment_key(target))[0]
    assert doc["name"] == "mine" and "pending_name" not in doc


def test_racing_creators_of_one_name_make_one_document(racing_store: ObjectStore) -> None:
    start = threading.Barrier(6)
    won: list[str] = []
    lost: list[NameTaken] = []

    def creator() -> None:
        start.wait()
        try:
            won.append(create(racing_store, "contested"))
        except NameTaken as exc:
            lost.append(exc)

    threads = [threading.Thread(target=creator) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(lost) == 5
    named = [
        info.key
        for info in racing_store.list("experiments/")
        if read_document(racing_store, info.key)[0]["name"] == "contested"
    ]
    assert named == [keys.experiment_key(won[0])]

"""Reading and swapping documents: UTF-8 only, one schema check and one parse per swap."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mlflow_plugin.format import documents, schema
from mlflow_plugin.format.documents import (
    decode_document,
    decode_text,
    encode,
    read_document,
    update_document,
)
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.objectstore.memory import MemoryObjectStore

RUN_KEY = "experiments/1/runs/abc.json"


def _run() -> dict[str, Any]:
    return {
        "run_id": "abc",
        "experiment_id": "1",
        "status": "RUNNING",
        "start_time": 1,
        "lifecycle_stage": "active",
        "params": {},
        "tags": {"k": "v"},
        "latest_metrics": {"loss": {"value": float("nan"), "timestamp": 1, "step": 0}},
        "segments": [],
        "writers": {"w": 3},
    }


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_a_document_not_in_utf8_is_damaged_and_named(encoding: str) -> None:
    data = json.dumps(_run()).encode(encoding)
    assert json.loads(data)["run_id"] == "abc"  # what Python's json would have accepted
    with pytest.raises(CorruptObject, match=re.escape(f"corrupt document '{RUN_KEY}'")):
        decode_document(RUN_KEY, data)


@pytest.mark.parametrize(
    "marker",
    ['"$float"', '"\\u0024float"', '"$\\u0066loat"', '"\\u0024\\u0066\\u006coat"'],
    ids=["as-is", "escaped-dollar", "escaped-letter", "escaped-both"],
)
def test_a_float_marker_is_restored_however_its_key_is_escaped(marker: str) -> None:
    text = '{"m":{' + marker + ':"-Infinity"},"n":[{' + marker + ':"NaN"}],"x":1.5}'
    assert json.loads(text)["m"] == {"$float": "-Infinity"}  # the key JSON means
    doc = decode_text(text)
    assert doc["m"] == float("-inf") and doc["n"][0] != doc["n"][0] and doc["x"] == 1.5
    assert decode_text(encode(doc).decode("utf-8"))["m"] == float("-inf")


@pytest.mark.parametrize("writers", [{"w": None}, {"w": "3"}, {"w": 1.5}, {"w": True}, ["w"]])
def test_a_run_document_with_mistyped_writer_sequences_is_damaged(writers: object) -> None:
    doc = {**_run(), "writers": writers}
    with pytest.raises(CorruptObject, match="'writers'"):
        decode_document(RUN_KEY, encode(doc))


class _Counted:
    """How often the schema is checked and JSON parsed while the block runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.checks = self.parses = 0
        check, parse = schema.document_problems, documents.decode

        def counted_check(key: str, doc: Any) -> list[str]:
            self.checks += 1
            return check(key, doc)

        def counted_parse(data: bytes) -> dict[str, Any]:
            self.parses += 1
            return parse(data)

        monkeypatch.setattr(schema, "document_problems", counted_check)
        monkeypatch.setattr(documents, "decode", counted_parse)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counted]:
    yield _Counted(monkeypatch)


def test_a_swap_checks_and_parses_the_stored_document_once(counted: _Counted) -> None:
    store = MemoryObjectStore()
    store.put(RUN_KEY, encode(_run()))
    read_document(store, RUN_KEY)
    assert (counted.checks, counted.parses) == (1, 1)

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        doc["tags"]["k"] = "w"
        return doc

    updated, _ = update_document(store, RUN_KEY, mutate)
    assert (counted.checks, counted.parses) == (2, 2)
    assert updated["tags"] == {"k": "w"}
    assert read_document(store, RUN_KEY)[0]["tags"] == {"k": "w"}


def test_a_retried_mutation_gets_the_newer_document_unmutated() -> None:
    store = MemoryObjectStore()
    store.put(RUN_KEY, encode(_run()))
    seen: list[dict[str, Any]] = []

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(json.loads(json.dumps(doc["tags"])))
        doc["tags"]["mine"] = "1"
        if len(seen) == 1:  # another writer swaps the document in between: a conflict
            store.put(RUN_KEY, encode({**_run(), "tags": {"theirs": "1"}}))
        return doc

    updated, _ = update_document(store, RUN_KEY, mutate)
    assert seen == [{"k": "v"}, {"theirs": "1"}]
    assert updated["tags"] == {"theirs": "1", "mine": "1"}


def test_an_unchanged_document_is_not_written() -> None:
    store = MemoryObjectStore()
    etag = store.put(RUN_KEY, encode(_run()))
    assert update_document(store, RUN_KEY, lambda doc: doc)[1] == etag

"""Compaction on real storage: small segments merged into one, swapped in with one CAS.

A manifest document (the run document's ``segments`` field, at a key of its own so
that no run schema is involved) and its segment objects live in a ``bucket+file``
folder or an S3 bucket; ``compact_segments`` is called as the tracking store calls it.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from mlflow_plugin.format import keys
from mlflow_plugin.format.compaction import compact_segments
from mlflow_plugin.format.documents import (
    Document,
    Mutation,
    create_document,
    read_document,
    update_document,
)
from mlflow_plugin.format.segments import (
    MetricPoint,
    SegmentCache,
    decode_segment,
    encode_segment,
)
from mlflow_plugin.objectstore import ObjectStore
from tests.format.stores import store

__all__ = ["store"]  # the fixture, imported for pytest

EXPERIMENT, RUN = "1", "0123456789abcdef0123456789abcdef"
MANIFEST = "compaction-test/run.json"


def _logged(store: ObjectStore, segments: int) -> list[MetricPoint]:
    """``segments`` small segments of two points each, entered in a fresh manifest."""
    points, entries = [], []
    for number in range(segments):
        batch = [MetricPoint("loss", float(s), s, s) for s in (2 * number, 2 * number + 1)]
        data, info = encode_segment(f"w-{number:010d}", batch)
        store.put(keys.metric_segment_key(EXPERIMENT, RUN, info.name), data)
        points += batch
        entries.append(info.to_json())
    create_document(
        store, MANIFEST, {"experiment_id": EXPERIMENT, "run_id": RUN, "segments": entries}
    )
    return points


def _manifest(store: ObjectStore) -> Document:
    return read_document(store, MANIFEST)[0]


def _swap(store: ObjectStore) -> Callable[[Mutation], Document]:
    def swap(mutate: Mutation) -> Document:
        return update_document(store, MANIFEST, mutate)[0]

    return swap


def _read(store: ObjectStore) -> Callable[[str], list[MetricPoint]]:
    def read(name: str) -> list[MetricPoint]:
        return decode_segment(store.get(keys.metric_segment_key(EXPERIMENT, RUN, name)).data)

    return read


def _stored_segments(store: ObjectStore) -> list[str]:
    prefix = keys.metric_segment_key(EXPERIMENT, RUN, "x").rsplit("/", 1)[0] + "/"
    return sorted(info.key[len(prefix) : -len(".parquet")] for info in store.list(prefix))


def _stored_points(store: ObjectStore) -> list[MetricPoint]:
    read = _read(store)
    return sorted(
        (p for s in _manifest(store)["segments"] for p in read(s["name"])),
        key=lambda p: p.step,
    )


def test_small_segments_become_one_and_the_merged_objects_go(store: ObjectStore) -> None:
    points = _logged(store, 5)
    cache = SegmentCache()

    assert compact_segments(store, _manifest(store), _read(store), _swap(store), cache)

    [merged] = _manifest(store)["segments"]
    assert merged["name"].startswith("c") and merged["rows"] == 10
    assert _stored_segments(store) == [merged["name"]]  # the merged objects are deleted
    assert _stored_points(store) == points
    cached = cache.get(merged["name"])
    assert isinstance(cached, pa.Table) and cached.num_rows == 10


def test_a_compaction_that_lost_the_race_deletes_its_copy_and_counts_nothing_twice(
    store: ObjectStore,
) -> None:
    points = _logged(store, 4)
    stale = _manifest(store)
    # The loser read the segments before the winner deleted them (from its cache, say).
    held = {s["name"]: _read(store)(s["name"]) for s in stale["segments"]}
    assert compact_segments(store, stale, _read(store), _swap(store), SegmentCache())
    after_winner = _manifest(store)

    lost = compact_segments(store, stale, held.__getitem__, _swap(store), SegmentCache())

    assert lost is False
    assert _manifest(store) == after_winner
    # The loser's merged copy is gone: every stored segment is one the manifest names.
    assert _stored_segments(store) == [s["name"] for s in after_winner["segments"]]
    assert _stored_points(store) == points


def test_a_single_small_segment_is_left_as_it_is(store: ObjectStore) -> None:
    _logged(store, 1)
    before = _manifest(store)

    assert not compact_segments(store, before, _read(store), _swap(store), SegmentCache())

    assert _manifest(store) == before
    assert _stored_segments(store) == [before["segments"][0]["name"]]

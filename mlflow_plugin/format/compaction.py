"""Compaction of a run's metric segments: merge the small ones, swap them in with one CAS.

The merged segment is written under a fresh random name first (invisible until a
manifest names it), then one compare-and-swap of the run document replaces the
merged entries by it. Only after the swap landed are the merged objects deleted: a
reader that meets a just-deleted segment re-reads the manifest. When another writer
compacted first, the swap is refused and our merged copy is deleted, so no point is
ever counted twice. Deciding *when* to compact is the caller's business.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document
from mlflow_plugin.format.segments import (
    MetricPoint,
    SegmentCache,
    SegmentInfo,
    encode_segment,
    points_table,
)
from mlflow_plugin.objectstore import NotFound, ObjectStore

__all__ = ["SMALL_SEGMENT_ROWS", "compact_segments"]

# Segments with fewer rows are merged; larger ones are left as they are.
SMALL_SEGMENT_ROWS = 50_000


class _CompactionLost(Exception):
    """The segments this compaction merged are no longer all in the manifest."""


def compact_segments(
    objects: ObjectStore,
    run: Document,
    read_points: Callable[[str], list[MetricPoint]],
    swap: Callable[[Callable[[Document], Document]], Any],
    cache: SegmentCache,
) -> bool:
    """Merge the small segments of ``run`` into one; True when the merged one was swapped in.

    ``read_points(name)`` reads one segment's points (a missing one raises ``NotFound``:
    another writer compacted it first); ``swap(mutate)`` compare-and-swaps the run
    document. The merged objects are deleted only after the swap landed.
    """
    experiment_id, run_id = run["experiment_id"], run["run_id"]
    small = [SegmentInfo.from_json(s) for s in run["segments"] if s["rows"] < SMALL_SEGMENT_ROWS]
    if len(small) < 2:
        return False
    try:
        points = [p for info in small for p in read_points(info.name)]
    except NotFound:
        return False  # another writer compacted these segments first
    # Random, so two processes (or a forked child) never pick the same name.
    name = f"c{uuid.uuid4().hex}"
    data, merged = encode_segment(name, points)
    objects.put(keys.metric_segment_key(experiment_id, run_id, name), data)
    merged_names = {info.name for info in small}

    def mutate(current: Document) -> Document:
        present = {s["name"] for s in current["segments"]}
        if merged.name in present:
            return current  # our swap landed, its answer was lost and retried: done
        if not merged_names <= present:
            raise _CompactionLost()
        kept = [s for s in current["segments"] if s["name"] not in merged_names]
        current["segments"] = [merged.to_json(), *kept]
        return current

    try:
        swap(mutate)
    except _CompactionLost:
        # Another writer compacted first; our merged copy is named by no manifest.
        objects.delete(keys.metric_segment_key(experiment_id, run_id, name))
        return False
    cache.put(name, points_table(points))
    for old in merged_names:
        cache.discard(old)
        objects.delete(keys.metric_segment_key(experiment_id, run_id, old))
    return True

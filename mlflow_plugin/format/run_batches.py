"""A batch of metric points and tags for one run, and how it enters the run document.

A writer gives each batch it seals a sequence number (increasing per writer) and
records the last sequence it applied in the run document under ``writers`` (Delta
Lake's transaction-id idea). ``apply_batch`` is a pure function, so the
compare-and-swap loop can re-apply it after a conflict, and replaying a batch
that was already applied (a crash after the swap, a response lost on the
network) changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlflow_plugin.format.segments import MetricPoint, SegmentInfo

__all__ = ["RunBatch", "apply_batch", "latest_wins", "segment_name"]

Document = dict[str, Any]


def segment_name(writer_id: str, sequence: int) -> str:
    """The unique, deterministic name of the segment holding one batch's points."""
    return f"{writer_id}-{sequence:010d}"


@dataclass
class RunBatch:
    """Points and tags of one run, sealed under (writer_id, sequence) before upload."""

    run_id: str
    experiment_id: str
    writer_id: str
    sequence: int
    points: list[MetricPoint] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def segment(self) -> str:
        return segment_name(self.writer_id, self.sequence)

    def to_json(self) -> Document:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "writer_id": self.writer_id,
            "sequence": self.sequence,
            "points": [[p.key, p.value, p.timestamp, p.step] for p in self.points],
            "tags": self.tags,
        }

    @classmethod
    def from_json(cls, doc: Document) -> RunBatch:
        return cls(
            run_id=doc["run_id"],
            experiment_id=doc["experiment_id"],
            writer_id=doc["writer_id"],
            sequence=int(doc["sequence"]),
            points=[MetricPoint(k, float(v), int(t), int(s)) for k, v, t, s in doc["points"]],
            tags=dict(doc["tags"]),
        )


def _comparable(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def latest_wins(old: Document | None, point: MetricPoint) -> bool:
    """MLflow's rule for a metric's latest value: the greatest (step, timestamp, value)."""
    if old is None:
        return True
    new_key = (point.step, point.timestamp, _comparable(point.value))
    return new_key >= (old["step"], old["timestamp"], _comparable(old["value"]))


def apply_batch(doc: Document, batch: RunBatch, segment: SegmentInfo | None) -> Document:
    """Enter ``batch`` (whose points are in ``segment``) into a run document, once."""
    writers = doc.setdefault("writers", {})
    if writers.get(batch.writer_id, 0) >= batch.sequence:
        return doc  # applied before: replaying it must change nothing
    writers[batch.writer_id] = batch.sequence
    doc["tags"].update(batch.tags)
    latest = doc["latest_metrics"]
    for point in batch.points:
        if latest_wins(latest.get(point.key), point):
            latest[point.key] = {
                "value": point.value,
                "timestamp": point.timestamp,
                "step": point.step,
            }
    if segment is not None:
        doc["segments"].append(segment.to_json())
    return doc

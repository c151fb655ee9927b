"""A batch of metric points and tags for one run, and how it enters the run document.

A writer gives each batch it seals a sequence number (increasing per writer) and
records the last sequence it applied in the run document under ``writers`` (Delta
Lake's transaction-id idea). ``apply_batch`` is a pure function, so the
compare-and-swap loop can re-apply it after a conflict, and replaying a batch
that was already applied (a crash after the swap, a response lost on the
network) changes nothing.

The sequence stops a batch being applied twice, not being applied *late*: a batch
spooled by a writer that died, or buffered for a few seconds, may reach the run
document after another process wrote a newer value of the same tag. So every tag
write carries a logical clock ``(acknowledged_us, writer_id, counter)`` stamped when
the caller's call returned, and the run document keeps the clock of each tag's value
in ``tag_clocks`` (a deleted tag keeps its clock there as a tombstone). A write enters
only if its clock is not older than the stored one: the newest *acknowledged* write
wins, whatever the order of uploads and replays. A tag without a clock (written by
format version 2, or replayed from its spool) is older than any clocked write.

The run's status (with its end time) is last-writer-wins the same way, under
``status_clock``: a final status that could not be stored during an outage travels in
a batch, and enters only if no newer status was set meanwhile.

The clocks are hybrid logical clocks (Lamport's rule on top of the wall clock): a
writer observes the newest clock of every run document it reads or swaps
(``newest_clock``), and its later calls are stamped after it, so a call made after
this writer saw a value is ordered after that value whatever the machines' clocks
say. See ``ClockSource`` for the one order this cannot give.

A batch read back from a spool file is checked like a stored document
(``RunBatch.from_json``): a damaged one is ``CorruptObject`` naming the file, and
never enters a run document.

The ``writers`` map is pruned, as Delta Lake expires old transaction ids: every process
or fork mints a writer id, so a long-lived run would otherwise collect one entry each.
A batch carries ``sealed_at`` (when it was sealed, in ms, by its writer's clock), and the
run document records in ``writer_times`` when each writer was last heard from (its
newest ``sealed_at``). "Now" is always the clock of the process applying a batch. A
writer silent for two retentions (``FORGET_AFTER_RETENTIONS`` x ``WRITER_RETENTION_MS``:
14 days) is forgotten: its entries leave both maps, and ``writers_watermark`` becomes
the newest time of any forgotten writer. A batch of a writer the document does not know
is refused (``BatchTooOld``) only if it may be a forgotten writer's — sealed at or
before the watermark (every batch a forgotten writer applied was) — *and* it is older
than the retention (7 days) by the applying process's clock; or if its seal time is
unknown once a watermark exists. A batch younger than the retention is never refused,
and a batch applied once is refused rather than applied again as long as the clock of
the process that forgot its writer and the replaying process's agree to within a
retention (the second retention is that margin). Beyond that, the cost is at worst one
segment listed twice in the manifest, whose points history reads drop as duplicates.

Entries of older plugins (a sequence without a time) are never forgotten while they
have no time: an older plugin does not check the watermark, so forgetting its writer
could let it apply a batch twice.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mlflow_plugin.format.documents import Document
from mlflow_plugin.format.schema import (
    OPTIONAL_INTEGER,
    RUN_STATUSES,
    TEXT_MAP,
    Check,
    Field,
    array,
    identifier,
    integer,
    list_of,
    logical_clock,
    mapping,
    number,
    one_of,
    optional,
    record,
    text,
)
from mlflow_plugin.format.segments import MetricPoint, SegmentInfo
from mlflow_plugin.objectstore.errors import CorruptObject, ObjectStoreError

__all__ = [
    "NO_CLOCK",
    "RUN_NAME_TAG",
    "FORGET_AFTER_RETENTIONS",
    "WRITER_RETENTION_MS",
    "BatchTooOld",
    "Clock",
    "ClockSource",
    "RunBatch",
    "StatusWrite",
    "apply_batch",
    "clock_from_json",
    "delete_tag",
    "latest_wins",
    "newest_clock",
    "segment_name",
    "set_status",
    "set_tags",
    "status_clock",
    "tag_clock",
]

#: (acknowledged at, in microseconds since the epoch; writer id; counter within the writer).
#: Microseconds: two processes' calls made one after the other rarely share one.
Clock = tuple[int, str, int]
#: The clock of a value written without one: older than every clocked write.
NO_CLOCK: Clock = (0, "", 0)
#: The tag MLflow mirrors in the run's name: the two change together.
RUN_NAME_TAG = "mlflow.runName"
#: How long a run document remembers a writer that applies nothing more. A batch waits
#: seconds in a write buffer, and in a spool until the next process on that machine (or
#: ``sync``) replays it: hours, a long weekend at most. A week is far beyond either.
WRITER_RETENTION_MS = 7 * 24 * 3_600_000
#: A writer is forgotten only after twice the retention: the margin absorbs clocks that
#: disagree (the process that forgets a writer and the one that replays its batch may be
#: on different machines), so a batch applied once is refused, never applied again,
#: while the clocks involved agree to within half the retention.
FORGET_AFTER_RETENTIONS = 2


class BatchTooOld(ObjectStoreError):
    """A batch older than the retention, of a writer the run document does not know.

    It may have been applied already (its writer's entry may be gone), so it is refused
    rather than applied twice.
    """

    def __init__(self, batch: RunBatch, watermark: int) -> None:
        sealed = "at an unknown time" if batch.sealed_at is None else f"at {batch.sealed_at}"
        super().__init__(
            f"batch {batch.sequence} of writer {batch.writer_id} for run {batch.run_id} "
            f"(sealed {sealed}, ms since the epoch) is refused: it is older than the "
            f"writer retention ({WRITER_RETENTION_MS // 86_400_000} days) and the run "
            f"document has forgotten writers (heard from until {watermark}), so whether "
            "it was applied already cannot be told; it is not applied twice"
        )
        self.batch = batch
        self.watermark = watermark


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def clock_from_json(value: object) -> Clock:
    """A clock as stored (``[us, writer, counter]``); anything else counts as no clock."""
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and isinstance(value[0], int)
        and isinstance(value[1], str)
        and isinstance(value[2], int)
        and not isinstance(value[0], bool)
        and not isinstance(value[2], bool)
    ):
        return (value[0], value[1], value[2])
    return NO_CLOCK


class ClockSource:
    """One writer's clocks: strictly increasing, and always after every clock it has seen.

    A hybrid logical clock: ``tick`` is the wall clock in microseconds, moved past the
    newest clock ``observe`` was given (``observed + 1``). So a call stamped after this
    writer read or swapped a document holding a value is ordered after that value,
    even if the machine that wrote it runs minutes fast.

    The limit, precisely: two writers that never read each other's values (neither's
    call comes after it read a document holding the other's value) are ordered by
    their wall clocks alone; a writer whose clock runs fast then wins against a later
    call on a machine with a correct clock. Every synchronous change (params, run
    name, status, ``delete_tag``) and the first logging call to a run in a process read
    the run document first, so this only concerns buffered tag writes racing across
    processes within one flush interval.

    >>> source = ClockSource("writer")
    >>> source.tick() < source.tick()
    True
    >>> source.observe((2**50, "other", 1))
    >>> source.tick() > (2**50, "other", 1)
    True
    """

    def __init__(self, writer_id: str) -> None:
        self._writer_id = writer_id
        self._last_us = 0
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def tick(self) -> Clock:
        with self._lock:
            self._last_us = max(self._last_us, time.time_ns() // 1_000)
            return (self._last_us, self._writer_id, next(self._counter))

    def observe(self, clock: Clock) -> None:
        """Stamp every later call after ``clock`` (a value this writer has seen)."""
        with self._lock:
            self._last_us = max(self._last_us, clock[0] + 1)


def segment_name(writer_id: str, sequence: int) -> str:
    """The unique, deterministic name of the segment holding one batch's points."""
    return f"{writer_id}-{sequence:010d}"


@dataclass(frozen=True)
class StatusWrite:
    """A run status (and end time) set by a call acknowledged at ``clock``."""

    status: str
    end_time: int | None
    clock: Clock

    def to_json(self) -> Document:
        return {"status": self.status, "end_time": self.end_time, "clock": list(self.clock)}

    @classmethod
    def from_json(cls, doc: Document, source: str = "spooled status") -> StatusWrite:
        """The status in ``doc``; ``CorruptObject`` naming ``source`` if it is not one."""
        _check(_STATUS, doc, source)
        return cls(doc["status"], doc.get("end_time"), clock_from_json(doc.get("clock")))


@dataclass
class RunBatch:
    """Points and tags of one run, sealed under (writer_id, sequence) before upload."""

    run_id: str
    experiment_id: str
    writer_id: str
    sequence: int
    points: list[MetricPoint] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    tag_clocks: dict[str, Clock] = field(default_factory=dict)
    status: StatusWrite | None = None
    #: When it was sealed (ms since the epoch); None: unknown (a spool of an older plugin).
    sealed_at: int | None = field(default_factory=_now_ms)

    @property
    def segment(self) -> str:
        return segment_name(self.writer_id, self.sequence)

    def add_tags(self, tags: dict[str, str], clock: Clock | None) -> None:
        """Merge one call's tags, keeping per key the value of the newest call."""
        for key, value in tags.items():
            if clock is None:
                if key not in self.tag_clocks:
                    self.tags[key] = value
            elif clock >= self.tag_clocks.get(key, NO_CLOCK):
                self.tags[key] = value
                self.tag_clocks[key] = clock

    def to_json(self) -> Document:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "writer_id": self.writer_id,
            "sequence": self.sequence,
            "points": [[p.key, p.value, p.timestamp, p.step] for p in self.points],
            "tags": self.tags,
            "tag_clocks": {key: list(clock) for key, clock in self.tag_clocks.items()},
            **({"status": self.status.to_json()} if self.status is not None else {}),
            **({"sealed_at": self.sealed_at} if self.sealed_at is not None else {}),
        }

    @classmethod
    def from_json(cls, doc: Document, source: str = "spooled batch") -> RunBatch:
        """The batch in ``doc`` (read from the file ``source``).

        ``CorruptObject`` naming ``source`` if any field has the wrong type (a status MLflow
        does not know, a tag value that is not text...): replayed, it would damage a run
        document that every reader shares.
        """
        _check(_BATCH, doc, source)
        clocks = {key: clock_from_json(c) for key, c in (doc.get("tag_clocks") or {}).items()}
        status = doc.get("status")
        return cls(
            run_id=doc["run_id"],
            experiment_id=doc["experiment_id"],
            writer_id=doc["writer_id"],
            sequence=doc["sequence"],
            points=[MetricPoint(k, float(v), t, s) for k, v, t, s in doc["points"]],
            tags=dict(doc["tags"]),
            tag_clocks={key: clock for key, clock in clocks.items() if clock != NO_CLOCK},
            status=StatusWrite(
                status["status"], status.get("end_time"), clock_from_json(status.get("clock"))
            )
            if status
            else None,
            sealed_at=doc.get("sealed_at"),
        )


_point = array("a point [key, value, timestamp, step]", text, number, integer, integer)


# What a spooled batch must hold to enter a run document: the run document's own types.
_STATUS = record(
    [
        Field("status", one_of(*RUN_STATUSES)),
        Field("end_time", OPTIONAL_INTEGER, required=False),
        Field("clock", optional(logical_clock), required=False),
    ]
)
_BATCH = record(
    [
        Field("run_id", identifier),
        Field("experiment_id", identifier),
        Field("writer_id", identifier),
        Field("sequence", integer),
        Field("points", list_of(_point)),
        Field("tags", TEXT_MAP),
        Field("tag_clocks", optional(mapping(logical_clock)), required=False),
        Field("status", optional(_STATUS), required=False),
        Field("sealed_at", OPTIONAL_INTEGER, required=False),
    ]
)


def _check(check: Check, doc: Any, source: str) -> None:
    problems = list(itertools.islice(check(doc, ""), 5))
    if problems:
        raise CorruptObject(f"damaged spooled batch {source!r}: {'; '.join(problems)}")


def _comparable(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def latest_wins(old: Document | None, point: MetricPoint) -> bool:
    """MLflow's rule for a metric's latest value: the greatest (step, timestamp, value)."""
    if old is None:
        return True
    new_key = (point.step, point.timestamp, _comparable(point.value))
    return new_key >= (old["step"], old["timestamp"], _comparable(old["value"]))


def tag_clock(doc: Document, key: str) -> Clock:
    """The clock of the tag's stored value (or of its deletion); ``NO_CLOCK`` if none."""
    clocks = doc.get("tag_clocks")
    return clock_from_json(clocks.get(key)) if isinstance(clocks, dict) else NO_CLOCK


def _clocks(doc: Document) -> dict[str, Any]:
    clocks = doc.get("tag_clocks")
    if not isinstance(clocks, dict):
        clocks = doc["tag_clocks"] = {}
    return clocks


def _put_tag(doc: Document, key: str, value: str, clock: Clock) -> None:
    doc["tags"][key] = value
    if clock != NO_CLOCK:
        _clocks(doc)[key] = list(clock)
    if key == RUN_NAME_TAG:
        doc["run_name"] = value


def _after(clock: Clock, stored: Clock) -> Clock:
    """``clock``, moved past ``stored`` if needed (a writer whose wall clock is behind).

    A stored clock with this call's writer and counter is this very write, applied
    before its answer was lost: it stays, so re-applying the mutation changes nothing.
    """
    if stored[1:] == clock[1:]:
        return stored
    return clock if clock > stored else (stored[0] + 1, clock[1], clock[2])


def set_tags(doc: Document, tags: dict[str, str], clock: Clock) -> Document:
    """A synchronous tag write: it is acknowledged after every value already stored.

    Returns ``doc``; the clocks recorded are at least ``clock``.
    """
    for key, value in tags.items():
        _put_tag(doc, key, value, _after(clock, tag_clock(doc, key)))
    return doc


def delete_tag(doc: Document, key: str, clock: Clock) -> Document:
    """Remove a tag, keeping its clock as a tombstone: a late write of it stays out."""
    doc["tags"].pop(key, None)
    _clocks(doc)[key] = list(_after(clock, tag_clock(doc, key)))
    return doc


def status_clock(doc: Document) -> Clock:
    """The clock of the run's stored status; ``NO_CLOCK`` if none (set at creation)."""
    return clock_from_json(doc.get("status_clock"))


def newest_clock(doc: Document) -> Clock:
    """The newest clock in a run document (of a tag, a tag's deletion, or the status).

    A writer observes it (``ClockSource.observe``) whenever it reads or swaps the
    document, so its later calls are stamped after every value it has seen.
    """
    clocks = doc.get("tag_clocks")
    tags = [clock_from_json(c) for c in clocks.values()] if isinstance(clocks, dict) else []
    return max([status_clock(doc), *tags])


def _put_status(doc: Document, write: StatusWrite, clock: Clock) -> None:
    doc["status"] = write.status
    if write.end_time is not None:
        doc["end_time"] = write.end_time
    doc["status_clock"] = list(clock)


def set_status(doc: Document, write: StatusWrite) -> Document:
    """A synchronous status change: acknowledged after any status already stored."""
    _put_status(doc, write, _after(write.clock, status_clock(doc)))
    return doc


def _refuse_if_forgotten(doc: Document, batch: RunBatch, now: int, retention_ms: int) -> None:
    """``BatchTooOld`` if ``batch`` (of a writer the document does not know) may be a
    forgotten writer's and is older than the retention (module docstring)."""
    watermark = doc.get("writers_watermark")
    if watermark is None:
        return  # nothing was ever forgotten: a writer it does not know is new
    if batch.sealed_at is None or (
        batch.sealed_at <= watermark and batch.sealed_at < now - retention_ms
    ):
        raise BatchTooOld(batch, watermark)


def _forget_idle_writers(doc: Document, batch: RunBatch, now: int, retention_ms: int) -> None:
    """Record when ``batch``'s writer was heard from; drop writers silent for too long.

    ``now`` is the applying process's clock: no writer's clock, fast or slow, decides
    for the others. A writer's time is its newest seal time as sealed (so a batch it
    applied is never after its time, whatever the clocks); it is forgotten after
    ``FORGET_AFTER_RETENTIONS`` retentions of silence.
    """
    writers: dict[str, int] = doc["writers"]
    times = doc.get("writer_times")
    if not isinstance(times, dict):
        times = doc["writer_times"] = {}
    heard = now if batch.sealed_at is None else batch.sealed_at
    times[batch.writer_id] = max(times.get(batch.writer_id, 0), heard)
    forget_before = now - FORGET_AFTER_RETENTIONS * retention_ms
    watermark = doc.get("writers_watermark")
    for writer, last in list(times.items()):
        if writer not in writers:
            del times[writer]
        elif last < forget_before and writer != batch.writer_id:
            del writers[writer], times[writer]
            watermark = last if watermark is None else max(watermark, last)
    if watermark is not None:
        doc["writers_watermark"] = watermark


def apply_batch(
    doc: Document,
    batch: RunBatch,
    segment: SegmentInfo | None,
    retention_ms: int = WRITER_RETENTION_MS,
    now_ms: int | None = None,
) -> Document:
    """Enter ``batch`` (whose points are in ``segment``) into a run document, once.

    Each tag, and the status, enters only if its clock is not older than the stored one's.
    Writers silent for over ``retention_ms`` by ``now_ms`` (the applying process's clock,
    read when not given) are forgotten; ``BatchTooOld`` if ``batch``'s writer may be one
    of them and the batch is itself older than the retention (module docstring).
    """
    now = _now_ms() if now_ms is None else now_ms
    writers = doc.setdefault("writers", {})
    if writers.get(batch.writer_id, 0) >= batch.sequence:
        return doc  # applied before: replaying it must change nothing
    if batch.writer_id not in writers:
        _refuse_if_forgotten(doc, batch, now, retention_ms)
    writers[batch.writer_id] = batch.sequence
    _forget_idle_writers(doc, batch, now, retention_ms)
    for key, value in batch.tags.items():
        clock = batch.tag_clocks.get(key, NO_CLOCK)
        if clock >= tag_clock(doc, key):
            _put_tag(doc, key, value, clock)
    if batch.status is not None and batch.status.clock >= status_clock(doc):
        _put_status(doc, batch.status, batch.status.clock)
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

"""The change journal: one empty object per write of a run or experiment document.

A reader that keeps an index of a large experiment must learn what changed without
listing every run document again. Each writer, right after it writes (or deletes) a
run or experiment document, puts an empty object named

    changes/<milliseconds:013d>.<experiment id>.<run id | "_" | "-">.<ETag digest | "_">

``_`` names the experiment document, ``-`` every run of the experiment (a whole
folder went), and a digest of ``_`` an outcome the writer does not know (a delete,
or a write whose answer was lost): the reader reads the document again. Keys sort
by the writer's clock, so a reader lists only the tail it has not seen
(``StartAfter``), from a margin before the newest entry it applied: a writer whose
clock lags the others by less than the margin, or whose entry lands up to that long
after its write, is still seen. Entries are only hints: a reader compares the digest
with the ETag it holds, and a missing entry (a writer that crashed between its write
and its entry, an older writer that writes none) is found by the reader's periodic
full listing. Entries older than ``RETENTION_MS`` are deleted by gc; a reader whose
last look is older than ``TRUST_MS`` lists everything again instead.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import ObjectInfo, ObjectStore, ObjectStoreError

__all__ = [
    "JOURNAL_PREFIX",
    "MARGIN_MS",
    "RETENTION_MS",
    "TRUST_MS",
    "Change",
    "changes_since",
    "entry_key",
    "etag_digest",
    "expired_entries",
    "now_ms",
    "parse",
    "record",
]

_log = logging.getLogger(__name__)

JOURNAL_PREFIX = "changes/"
#: How far before its newest applied entry a reader lists again: clock differences
#: between writers, and the time between a write and its entry.
MARGIN_MS = 5 * 60 * 1000
#: How long entries are kept (gc deletes older ones).
RETENTION_MS = 7 * 24 * 3600 * 1000
#: A reader whose newest applied entry is older than this lists every scope again:
#: entries it has not seen may already be collected.
TRUST_MS = RETENTION_MS // 2
_EXPERIMENT = "_"
_EVERY_RUN = "-"
_UNKNOWN = "_"


def now_ms() -> int:
    """This machine's wall clock, in the journal's unit."""
    return time.time_ns() // 1_000_000


def etag_digest(etag: str) -> str:
    """16 hex digits of the ETag: enough to tell versions apart, safe in any key."""
    return hashlib.sha256(etag.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Change:
    """One journal entry."""

    key: str
    at_ms: int
    experiment_id: str
    #: The run, or None for the experiment document.
    run_id: str | None
    #: Every run of the experiment may have changed (its folder was deleted).
    every_run: bool
    #: The document's new ETag digest; None when unknown (read it again).
    digest: str | None

    @property
    def document_key(self) -> str | None:
        if self.every_run:
            return None
        if self.run_id is None:
            return keys.experiment_key(self.experiment_id)
        return keys.run_key(self.experiment_id, self.run_id)


def _time_key(at_ms: int) -> str:
    return f"{JOURNAL_PREFIX}{max(at_ms, 0):013d}"


def entry_key(written_key: str, etag: str | None, at_ms: int | None = None) -> str | None:
    """The journal key for a write of ``written_key``; None when it needs no entry.

    ``written_key`` is a document key, or a folder prefix ``experiments/<id>/`` that
    was deleted as a whole.
    """
    at = _time_key(now_ms() if at_ms is None else at_ms)
    digest = etag_digest(etag) if etag else _UNKNOWN
    document = keys.document_of_key(written_key)
    if document is not None:
        kind, experiment_id, run_id = document
        if not keys.is_valid_id(experiment_id) or (kind == "run" and not keys.is_valid_id(run_id)):
            return None
        return f"{at}.{experiment_id}.{run_id if kind == 'run' else _EXPERIMENT}.{digest}"
    inside = written_key.startswith(keys.experiments_prefix())
    folder, _, rest = written_key.removeprefix(keys.experiments_prefix()).partition("/")
    if inside and rest == "" and written_key.endswith("/"):
        return f"{at}.{folder}.{_EVERY_RUN}.{_UNKNOWN}" if keys.is_valid_id(folder) else None
    return None


def record(store: ObjectStore, written_key: str, etag: str | None) -> None:
    """Put the journal entry of a write; a failure only delays other readers (logged)."""
    key = entry_key(written_key, etag)
    if key is None:
        return
    try:
        store.put(key, b"")
    except ObjectStoreError as exc:
        # The document itself is stored: readers find it by their next full listing.
        _log.warning("the change journal entry for %s was not written: %s", written_key, exc)


def parse(key: str) -> Change | None:
    """The entry a journal key names; None for any other object under the prefix."""
    name = key[len(JOURNAL_PREFIX) :] if key.startswith(JOURNAL_PREFIX) else ""
    parts = name.split(".")
    if len(parts) != 4 or not parts[0].isascii() or not parts[0].isdigit():
        return None
    if not keys.is_valid_id(parts[1]):
        return None
    at, experiment_id, document, digest = parts
    if document not in (_EXPERIMENT, _EVERY_RUN) and not keys.is_valid_id(document):
        return None
    return Change(
        key=key,
        at_ms=int(at),
        experiment_id=experiment_id,
        run_id=None if document in (_EXPERIMENT, _EVERY_RUN) else document,
        every_run=document == _EVERY_RUN,
        digest=None if digest == _UNKNOWN else digest,
    )


def changes_since(store: ObjectStore, since_ms: int, margin_ms: int = MARGIN_MS) -> list[Change]:
    """Every entry from ``margin_ms`` before ``since_ms`` on, oldest first (one listing)."""
    start = _time_key(since_ms - margin_ms)
    found = (parse(info.key) for info in store.list_after(JOURNAL_PREFIX, start))
    return [change for change in found if change is not None]


def expired_entries(store: ObjectStore, at_ms: int) -> Iterator[ObjectInfo]:
    """Entries older than ``RETENTION_MS`` at ``at_ms`` (and stray objects among them)."""
    limit = at_ms - RETENTION_MS
    for info in store.list(JOURNAL_PREFIX):
        change = parse(info.key)
        if change is None or change.at_ms < limit:
            yield info
        else:
            return  # sorted by time: the rest are younger

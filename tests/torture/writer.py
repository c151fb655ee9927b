"""A training process that the kill-9 torture test kills, on a timer or at a chosen point.

``python -m tests.torture.writer URI RUN_ID FIRST COUNT LEDGER CRASH_POINT NTH`` logs the
deterministic batches FIRST..FIRST+COUNT-1 (``planned_batch``) and appends each batch
number to LEDGER once ``log_batch`` has returned (what MLflow promised the caller). With
a crash point other than ``timer`` it sends itself SIGKILL at the NTH time it reaches
that point, where the write path is most fragile:

- ``segment_put``: a batch's segment is stored, its compare-and-swap not yet made;
- ``cas_landed``: a batch's swap of the run document landed, its spool file remains;
- ``compaction_put``: a merged segment is stored, the manifest does not name it yet;
- ``compaction_swapped``: the manifest names the merged segment, the old ones remain;
- ``sealed``: a sealed batch file is on disk, the open lines it came from too;
- ``recovery``: replaying a dead writer's spool, in the middle.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from mlflow.entities import Metric, RunTag

CRASH_POINTS = (
    "timer",
    "segment_put",
    "cas_landed",
    "compaction_put",
    "compaction_swapped",
    "sealed",
    "recovery",
)
PACE_S = 0.004  # between two log_batch calls: a flush every dozen batches


def planned_batch(number: int) -> tuple[list[Metric], list[RunTag]]:
    """Batch ``number``'s metrics (two points) and tag (every fifth batch)."""
    timestamp = 1_700_000_000_000 + number
    metrics = [
        Metric("a", number / 3, timestamp, number),
        Metric("b", -number / 3, timestamp, number),
    ]
    tags = [RunTag(f"t{number}", str(number))] if number % 5 == 0 else []
    return metrics, tags


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(original: Callable[..., Any], hit: Callable[..., bool]) -> Callable[..., Any]:
    """``original``, then death if ``hit(*args)`` says this call is the chosen one."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if hit(*args, **kwargs):
            _die()
        return result

    return wrapper


def _before(original: Callable[..., Any], hit: Callable[..., bool]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if hit(*args, **kwargs):
            _die()
        return original(*args, **kwargs)

    return wrapper


def _nth(nth: int, matches: Callable[..., bool]) -> Callable[..., bool]:
    seen = 0

    def hit(*args: Any, **kwargs: Any) -> bool:
        nonlocal seen
        if matches(*args, **kwargs):
            seen += 1
            return seen == nth
        return False

    return hit


def _segment_name(key: str) -> str | None:
    parts = key.split("/")
    return parts[-1] if len(parts) > 2 and parts[2] == "metrics" else None


def _is_batch_segment(key: str, data: bytes) -> bool:
    # A batch's segment is named "<writer>-<sequence>"; a merged one has no dash.
    return "-" in (_segment_name(key) or "")


def _is_merged_segment(key: str, data: bytes) -> bool:
    return "-" not in (_segment_name(key) or "-")


def _is_run_document(key: str, data: bytes, etag: str) -> bool:
    return "/runs/" in key


def _is_segment(key: str) -> bool:
    return _segment_name(key) is not None


def _is_batch_file(source: Any, target: Any) -> bool:
    return str(os.path.basename(target)).startswith("batch-")


def arm(store: Any, crash_point: str, nth: int) -> None:
    """Patch ``store`` (a BucketTrackingStore) so the process dies at ``crash_point``."""
    objects = store.object_store
    if crash_point == "segment_put":
        objects.put = _after(objects.put, _nth(nth, _is_batch_segment))
    elif crash_point == "compaction_put":
        objects.put = _after(objects.put, _nth(nth, _is_merged_segment))
    elif crash_point == "cas_landed":
        objects.put_if_match = _after(objects.put_if_match, _nth(nth, _is_run_document))
    elif crash_point == "compaction_swapped":
        # Compaction deletes the merged segments only after its swap landed.
        objects.delete = _before(objects.delete, _nth(nth, _is_segment))
    elif crash_point == "sealed":
        # The spool renames each sealed batch file into place before dropping open lines.
        os.replace = _after(os.replace, _nth(nth, _is_batch_file))
    elif crash_point == "recovery":
        store.context.buffer.upload = _after(
            store.context.buffer.upload, _nth(nth, lambda batch: True)
        )
    elif crash_point != "timer":
        raise SystemExit(f"unknown crash point {crash_point!r}; known: {CRASH_POINTS}")


def main(argv: list[str]) -> int:
    uri, run_id, first, count, ledger, crash_point, nth = argv
    import mlflow_plugin.tracking.context as tracking_context
    import mlflow_plugin.tracking.store as tracking_store

    # Compact after 4 segments instead of 16: many more compactions to be killed in.
    setattr(tracking_context, "COMPACT_AFTER_SEGMENTS", 4)  # noqa: B010
    # The store MLflow's client would use, without the background recovery thread, so
    # that the recovery below (the same code) is the one armed.
    store = tracking_store.BucketTrackingStore(uri, recover_in_background=False)
    arm(store, crash_point, int(nth))
    store.recover_spools()  # what the last victim left
    out = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(out, b"start\n")
    for number in range(int(first), int(first) + int(count)):
        metrics, tags = planned_batch(number)
        store.log_batch(run_id, metrics=metrics, params=[], tags=tags)
        os.write(out, f"{number}\n".encode())
        time.sleep(PACE_S)
    store.flush()
    os.write(out, b"done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

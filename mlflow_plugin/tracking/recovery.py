"""Replaying what dead writers left in the local spool: every batch tried, failures kept.

Per run, batches are replayed in order. A writer's sequence numbers only grow, so a
later batch applied before a failed one would make the failed one look applied for
ever: once one of a run's batches fails, the run's later batches wait in the spool
with it, while other runs go on. What is left (and why), what could not be stored
because its run is gone, batches refused as older than the run document's writer
retention (``BatchTooOld``: removed, since no replay could ever apply them), and every
spool file that cannot be read are reported;
nothing here raises, so the background recovery of a store never dies on one bad
batch.

While a recovery runs, a reader in the same process of a run it holds batches for
waits until that run is settled (``wait_for_recovery``), so the first read after a
crash is not partial. Other processes cannot know: they see the points as recovery
uploads them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_plugin.format.run_batches import BatchTooOld, RunBatch
from mlflow_plugin.tracking.spool import OrphanedSpool, SpooledBatch, orphaned_spools
from mlflow_plugin.tracking.write_buffer import RunNotWritable

__all__ = ["RecoveryReport", "RunLeft", "SpoolRecovery", "wait_for_recovery"]

_logger = logging.getLogger(__name__)

# The recoveries running in this process: every store instance's readers wait for them.
_running: set[SpoolRecovery] = set()
_running_lock = threading.Lock()


def wait_for_recovery(spool_root: Path, run_id: str, timeout: float) -> None:
    """Wait (up to ``timeout`` s each) for this process's recoveries of ``spool_root`` to
    settle ``run_id``; return at once when none holds it."""
    with _running_lock:
        running = [recovery for recovery in _running if recovery.root == spool_root]
    for recovery in running:
        recovery.wait_for(run_id, timeout)


@dataclass
class RunLeft:
    """What stays in the spool for one run, and why (its first failure)."""

    reason: str
    batches: int = 0
    points: int = 0


@dataclass
class RecoveryReport:
    """The outcome of one recovery: counts replayed, and what is left."""

    batches: int = 0  # sealed batches uploaded
    lines: int = 0  # buffered log calls (open lines) uploaded
    left: dict[str, RunLeft] = field(default_factory=dict)
    gone: Counter[str] = field(default_factory=Counter)  # run id -> points not stored
    damaged: list[str] = field(default_factory=list)  # spool files that cannot be read
    # Batches the run document refused (``BatchTooOld``): removed, since no replay can
    # ever apply them, and reported.
    refused: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing left in the spool (batches of a run that is gone are not left)."""
        return not self.left and not self.damaged

    def problems(self) -> list[str]:
        """One line per run left, run gone, damaged file and refused batch."""
        lines = [
            f"run {run_id}: {left.batches} batches ({left.points} metric points) left in the "
            f"spool: {left.reason}"
            for run_id, left in self.left.items()
        ]
        lines += [
            f"run {run_id}: {points} metric points not stored: the run no longer exists"
            for run_id, points in self.gone.items()
        ]
        lines += [f"damaged spool file, left in place: {what}" for what in self.damaged]
        lines += [f"removed from the spool: {why}" for why in self.refused]
        return lines


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class SpoolRecovery:
    """One pass over a spool root's dead writers, uploading through ``upload``.

    >>> recovery = SpoolRecovery(Path("/nonexistent"), upload=lambda batch: None)
    >>> recovery.run().complete
    True
    """

    def __init__(self, spool_root: Path, upload: Callable[[RunBatch], None]) -> None:
        self.root = spool_root
        self._upload = upload
        self._listed = threading.Event()  # the spool has been read: _pending is known
        self.finished = threading.Event()  # the pass is over (whatever its outcome)
        self._pending: dict[str, threading.Event] = {}  # run id -> set once it is settled
        self._thread: int | None = None

    def wait_for(self, run_id: str, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until this recovery has settled ``run_id``."""
        if self._thread == threading.get_ident():
            return  # the recovery itself reading a run (compaction after an upload)
        if not self._listed.wait(timeout):
            self._listed.set()  # as below: one read delayed, not every read
            return
        settled = self._pending.get(run_id)
        if settled is not None and not settled.wait(timeout):
            _logger.warning("read run %s before the spool recovery of it finished", run_id)
            settled.set()  # one slow recovery (an endpoint that is down) delays one read only

    def start(self) -> None:
        """Run in a background thread; from now on, readers of its runs wait for them."""
        with _running_lock:
            _running.add(self)
        threading.Thread(target=self.run, name="mlflow-bucket-recovery", daemon=True).start()

    def run(self) -> RecoveryReport:
        """Replay every dead writer's batches; never raises."""
        with _running_lock:
            _running.add(self)
        self._thread = threading.get_ident()
        report = RecoveryReport()
        orphans: list[OrphanedSpool] = []
        try:
            orphans = list(orphaned_spools(self.root))
            remaining = Counter(e.batch.run_id for o in orphans for e in o.entries)
            self._pending = {run_id: threading.Event() for run_id in remaining}
            self._listed.set()
            failed: dict[str, RunLeft] = {}
            for orphan in orphans:
                report.damaged += orphan.damaged
                left = [
                    entry
                    for entry in orphan.entries
                    if not self._replay(entry, failed, report, remaining)
                ]
                if left or orphan.damaged:
                    orphan.keep(left)
                else:
                    orphan.release(remove=True)
            report.left = failed
        except Exception:  # a bug here must not kill the store's background thread
            _logger.exception("replaying the spool in %s failed", self.root)
            report.damaged.append(f"{self.root}: recovery stopped by an unexpected error")
            for orphan in orphans:
                orphan.release(remove=False)  # kept as it is: replays are idempotent
        finally:
            self._listed.set()
            for settled in self._pending.values():
                settled.set()
            self._thread = None
            with _running_lock:
                _running.discard(self)
            self.finished.set()
        for problem in report.problems():
            _logger.warning("spool recovery: %s", problem)
        for refused in report.refused:  # removed from the spool: their points are lost
            _logger.error("spool recovery: not stored: %s", refused)
        return report

    def _replay(
        self,
        entry: SpooledBatch,
        failed: dict[str, RunLeft],
        report: RecoveryReport,
        remaining: Counter[str],
    ) -> bool:
        """Upload one batch; False if it stays in the spool."""
        batch = entry.batch
        try:
            left = failed.get(batch.run_id)
            if left is None:
                try:
                    self._upload(batch)
                except RunNotWritable:
                    report.gone[batch.run_id] += len(batch.points)
                except BatchTooOld as exc:
                    report.refused.append(str(exc))
                    return True  # no replay can ever apply it: out of the spool
                except Exception as exc:  # one bad batch (a damaged run, say) stops only its run
                    left = failed[batch.run_id] = RunLeft(_reason(exc))
            if left is not None:
                left.batches += 1
                left.points += len(batch.points)
                return False
            report.batches += entry.lines == 0  # a sealed batch; else open lines
            report.lines += entry.lines
            return True
        finally:
            remaining[batch.run_id] -= 1
            if remaining[batch.run_id] == 0:
                self._pending[batch.run_id].set()

"""The local spool: buffered writes are on local disk before they are uploaded.

Layout, one folder per writer (a store instance in a process)::

    <spool dir>/<sha256(root URI)[:16]>/<writer id>/
        root.txt            the store URI (without secrets, which URIs never carry)
        lock                flock held while the writer lives
        open-<gen>.jsonl    one line per log_batch: {"r", "e", "p": [[key, value, ts, step]], "t"}
        batch-<seq>.json    a sealed RunBatch, deleted once its compare-and-swap succeeded;
                            "open_log" names the generation of open lines it holds

``append`` writes its line with one unbuffered ``write`` (a process crash loses
nothing that ``log_batch`` accepted; a power loss can lose the lines since the last
seal, since fsyncing every call would cost more than the call). Sealing writes every
sealed batch file atomically and fsynced, starts the next generation of open lines
and deletes the previous one. A writer killed in between leaves both a run's batch
and the lines it holds; the batch's ``open_log`` says which lines to drop, so nothing
is replayed twice.

A writer folder whose lock is free belongs to a process that died: recovery replays
its sealed batches (in sequence order; already-applied ones are skipped by the run
document's writer sequence), then its remaining open lines as one batch per run and
generation under the writer id ``<dead writer>-open``, numbered by generation, so a
recovery that is itself killed and repeated applies them once too; then the
folder is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlflow_plugin.format.run_batches import RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.objectstore.uri import root_identity

__all__ = ["OpenLine", "Spool", "orphaned_spools", "root_identity", "spool_root"]


def spool_root(base: str | os.PathLike[str], root: str) -> Path:
    return Path(base) / hashlib.sha256(root.encode("utf-8")).hexdigest()[:16]


def default_spool_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "mlflow-bucket", "spool")


@dataclass
class OpenLine:
    """One ``log_batch``'s metrics and tags, not yet sealed into a batch."""

    run_id: str
    experiment_id: str
    points: list[MetricPoint]
    tags: dict[str, str]


def _key_json(key: str) -> str:
    # MLflow's name check lets a trailing newline through ("$" matches before it).
    return json.dumps(key) if "\n" in key else f'"{key}"'


class Spool:
    """The spool folder of one live writer."""

    def __init__(self, folder: Path, store_uri: str) -> None:
        self.folder = folder
        # User-only: the spool holds unpublished metrics and tags.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / "root.txt").write_text(store_uri)
        self._lock_fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._generation = 1
        self._open_fd = self._open_log(self._generation)

    def _open_log(self, generation: int) -> int:
        return os.open(
            self.folder / _open_log_name(generation), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )

    def append(self, line: OpenLine) -> None:
        # Hand-built JSON: this runs on every log_batch. Metric keys and run ids are
        # validated upstream (no quotes, backslashes or control characters), and NaN is
        # written as Python's json module reads it back.
        points = ",".join(
            f"[{_key_json(p.key)},{'NaN' if p.value != p.value else repr(p.value)},"
            f"{p.timestamp},{p.step}]"
            for p in line.points
        )
        tags = json.dumps(line.tags, separators=(",", ":")) if line.tags else "{}"
        record = f'{{"r":"{line.run_id}","e":"{line.experiment_id}","p":[{points}],"t":{tags}}}\n'
        os.write(self._open_fd, record.encode())

    def seal(self, batches: list[RunBatch]) -> None:
        """Persist sealed batches, then forget the open lines they came from.

        Each batch holds every open line of its run in the current generation (appends
        and seals are serialised by the write buffer's lock).
        """
        for batch in batches:
            path = self.folder / f"batch-{batch.sequence:010d}.json"
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as handle:
                record = {**batch.to_json(), _OPEN_LOG: self._generation}
                handle.write(json.dumps(record, separators=(",", ":")))
                handle.flush()
                os.fsync(handle.fileno())  # durable before the open lines are dropped
            os.replace(tmp, path)
        if batches:
            dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)  # the renames themselves
            finally:
                os.close(dir_fd)
        # A fresh generation, then the old one goes: a crash before the unlink leaves
        # lines that the batch files above claim, so recovery drops them.
        old_fd, old_generation = self._open_fd, self._generation
        self._generation += 1
        self._open_fd = self._open_log(self._generation)
        os.close(old_fd)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / _open_log_name(old_generation)).unlink()

    def load(self, sequence: int) -> RunBatch:
        """A sealed batch read back from disk (its points were dropped from memory)."""
        path = self.folder / f"batch-{sequence:010d}.json"
        return RunBatch.from_json(json.loads(path.read_text()))

    def done(self, batch: RunBatch) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"batch-{batch.sequence:010d}.json").unlink()

    def pending_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def close(self, remove: bool) -> None:
        os.close(self._open_fd)
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._lock_fd)


_OPEN_LOG = "open_log"
_OPEN_WRITER_SUFFIX = "-open"


def _open_log_name(generation: int) -> str:
    return f"open-{generation:010d}.jsonl"


def _open_logs(folder: Path) -> list[tuple[int, Path]]:
    """(generation, path) of each open-lines file, oldest first (``open.jsonl``: older spools)."""
    logs = [(0, folder / "open.jsonl")] if (folder / "open.jsonl").exists() else []
    for path in folder.glob("open-*.jsonl"):
        number = path.name[len("open-") : -len(".jsonl")]
        if number.isdigit():
            logs.append((int(number), path))
    return sorted(logs)


def _open_batches(
    folder: Path, writer_id: str, claimed: set[tuple[int, str]]
) -> tuple[list[RunBatch], int]:
    """A dead writer's open lines that no sealed batch holds: one batch per generation and run.

    The batch identity (``<writer>-open``, generation + 1) is the same every time these
    lines are recovered, so recovering them twice applies them once. Also returns how
    many lines the batches hold.
    """
    batches: list[RunBatch] = []
    lines = 0
    for generation, path in _open_logs(folder):
        by_run: dict[str, RunBatch] = {}
        for line in _read_open_lines(path):
            if (generation, line.run_id) in claimed:
                continue  # sealed before the writer died: its batch file holds these points
            batch = by_run.get(line.run_id)
            if batch is None:
                batch = by_run[line.run_id] = RunBatch(
                    run_id=line.run_id,
                    experiment_id=line.experiment_id,
                    writer_id=writer_id + _OPEN_WRITER_SUFFIX,
                    sequence=generation + 1,
                )
            batch.points.extend(line.points)
            batch.tags.update(line.tags)
            lines += 1
        batches.extend(by_run.values())
    return batches, lines


def _read_open_lines(path: Path) -> list[OpenLine]:
    lines: list[OpenLine] = []
    if not path.exists():
        return lines
    for raw in path.read_text().splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line cut short by the crash itself: it was never acknowledged
        lines.append(
            OpenLine(
                run_id=record["r"],
                experiment_id=record["e"],
                points=[MetricPoint(k, float(v), int(t), int(s)) for k, v, t, s in record["p"]],
                tags=dict(record["t"]),
            )
        )
    return lines


@dataclass
class OrphanedSpool:
    """What a dead writer left: its sealed batches (in order), then its open lines as batches."""

    folder: Path
    batches: list[RunBatch]
    open_batches: list[RunBatch]
    open_lines: int
    lock_fd: int

    def release(self, remove: bool) -> None:
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self.lock_fd)


def orphaned_spools(root: Path) -> Iterator[OrphanedSpool]:
    """Writer folders under ``root`` whose writer is gone, each locked while yielded."""
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.stat().st_uid != os.getuid():
            # Another user's folder (a spool dir shared by mistake): replaying it would write
            # whatever it holds into the bucket with this user's credentials.
            continue
        try:
            fd = os.open(folder / "lock", os.O_RDWR)
        except FileNotFoundError:
            continue  # another recoverer removed it just now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Still the folder's lock (not one a finished recoverer deleted under us)?
            if os.fstat(fd).st_ino != os.stat(folder / "lock").st_ino:
                raise FileNotFoundError(folder)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)  # its writer is alive, or another recoverer has it
            continue
        records = [json.loads(path.read_text()) for path in sorted(folder.glob("batch-*.json"))]
        claimed = {
            (int(record[_OPEN_LOG]), str(record["run_id"]))
            for record in records
            if _OPEN_LOG in record
        }
        open_batches, open_lines = _open_batches(folder, folder.name, claimed)
        yield OrphanedSpool(
            folder,
            [RunBatch.from_json(record) for record in records],
            open_batches,
            open_lines,
            fd,
        )

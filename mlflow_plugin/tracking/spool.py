"""The local spool: buffered writes are on local disk before they are uploaded.

Layout, one folder per writer (a store instance in a process)::

    <spool dir>/<sha256(root URI)[:16]>/<writer id>/
        root.txt            the store URI (without secrets, which URIs never carry)
        lock                flock held while the writer lives
        open-<gen>.jsonl    one line per log_batch: {"r", "e", "p": [[key, value, ts, step]],
                            "t": tags, "c": the tags' clock}
        batch-<seq>.json    a sealed RunBatch, deleted once its compare-and-swap succeeded;
                            "open_log" names the generation of open lines it holds

``append`` writes its line before ``log_batch`` returns, looping until the kernel has
taken every byte (a write may be short), so a process that dies (kill -9, SIGTERM,
a crash) loses nothing that ``log_batch`` accepted. A power loss can lose the lines
since the last seal: fsyncing every call would cost more than the call. Sealing
writes every sealed batch file atomically and fsynced, starts the next generation of
open lines and deletes the previous one. A writer killed in between leaves both a
run's batch and the lines it holds; the batch's ``open_log`` says which lines to
drop, so nothing is replayed twice.

A spool that cannot be written (a full disk, a read-only or missing folder) is given
up with one warning: the writer goes on in memory only, and drops its open lines
(all still in memory) so that a later recovery cannot replay lines it uploads itself.

A writer folder whose lock is free belongs to a process that died: recovery replays
its sealed batches (in sequence order; already-applied ones are skipped by the run
document's writer sequence), then its remaining open lines as one batch per run and
generation under the writer id ``<dead writer>-open-<run id>``, numbered by generation,
so a recovery that is itself killed and repeated applies them once too (the run id
keeps segment names unique across runs, as a live writer's sequence does). What recovery
cannot upload stays: ``OrphanedSpool.keep`` rewrites the folder to the batches left
(open lines become ``batch-open-<gen>-<run>.json`` files with the same identity),
and a file that cannot be read is named in ``damaged`` and left as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_plugin.format.run_batches import NO_CLOCK, Clock, RunBatch, clock_from_json
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.objectstore.uri import root_identity

__all__ = [
    "OpenLine",
    "OrphanedSpool",
    "Spool",
    "SpooledBatch",
    "default_spool_dir",
    "orphaned_spools",
    "root_identity",
    "spool_root",
]

_logger = logging.getLogger(__name__)


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
    clock: Clock | None = None  # when the call that set ``tags`` was acknowledged


def _key_json(key: str) -> str:
    # MLflow's name check lets a trailing newline through ("$" matches before it).
    return json.dumps(key) if "\n" in key else f'"{key}"'


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written: a write near a size limit can be short."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # not expected from a regular file; never spin on it
            raise OSError(f"write returned {written}")
        view = view[written:]


def _batch_name(sequence: int) -> str:
    return f"batch-{sequence:010d}.json"


def _fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the renames themselves
    finally:
        os.close(dir_fd)


def _write_durably(path: Path, record: dict[str, Any]) -> None:
    """Write ``path`` atomically and fsynced (the folder still needs its own fsync)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(record, separators=(",", ":")))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Spool:
    """The spool folder of one live writer.

    ``usable`` turns false for good when the disk refuses a write; from then on
    ``append`` and ``seal`` do nothing and the writer keeps its data in memory only.
    """

    def __init__(self, folder: Path, store_uri: str) -> None:
        self.folder = folder
        self._open_fd: int | None = None
        self._lock_fd: int | None = None
        self._generation = 1
        try:
            # User-only: the spool holds unpublished metrics and tags.
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            (folder / "root.txt").write_text(store_uri)
            self._lock_fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._open_fd = self._open_log(self._generation)
        except OSError as exc:
            self._give_up(exc)

    @property
    def usable(self) -> bool:
        """Whether appends still reach the disk (false after a failed write)."""
        return self._open_fd is not None

    def _open_log(self, generation: int) -> int:
        return os.open(
            self.folder / _open_log_name(generation), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )

    def _give_up(self, exc: OSError) -> None:
        _logger.warning(
            "mlflow-bucket: cannot write the local spool in %s (%s); logged metrics and tags "
            "are kept in memory only until uploaded, so if this process dies before then, "
            "what it has not uploaded is lost",
            self.folder,
            exc,
        )
        fd, self._open_fd = self._open_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        # Every open line is still in memory (only sealed batches ever leave it). Left on
        # disk, recovery would replay lines this process uploads itself.
        with contextlib.suppress(OSError):
            (self.folder / _open_log_name(self._generation)).unlink()
        with contextlib.suppress(OSError):
            for tmp in list(self.folder.glob("*.tmp")):
                tmp.unlink()

    def append(self, line: OpenLine) -> None:
        if self._open_fd is None:
            return
        # Hand-built JSON: this runs on every log_batch. Metric keys and run ids are
        # validated upstream (no quotes, backslashes or control characters), and NaN is
        # written as Python's json module reads it back.
        points = ",".join(
            f"[{_key_json(p.key)},{'NaN' if p.value != p.value else repr(p.value)},"
            f"{p.timestamp},{p.step}]"
            for p in line.points
        )
        tags = json.dumps(line.tags, separators=(",", ":")) if line.tags else "{}"
        clock = "" if line.clock is None else ',"c":' + json.dumps(list(line.clock))
        record = (
            f'{{"r":"{line.run_id}","e":"{line.experiment_id}","p":[{points}],"t":{tags}{clock}}}\n'
        )
        try:
            _write_all(self._open_fd, record.encode())
        except OSError as exc:  # ENOSPC, EDQUOT, EFBIG, EIO: logging goes on without the spool
            self._give_up(exc)

    def seal(self, batches: list[RunBatch]) -> None:
        """Persist sealed batches, then forget the open lines they came from.

        Each batch holds every open line of its run in the current generation (appends
        and seals are serialised by the write buffer's lock). A failed write gives the
        spool up; batch files already written stay valid (their points are in memory
        too, under the same identity).
        """
        if self._open_fd is None:
            return
        try:
            self._seal(batches)
        except OSError as exc:
            self._give_up(exc)

    def _seal(self, batches: list[RunBatch]) -> None:
        for batch in batches:
            record = {**batch.to_json(), _OPEN_LOG: self._generation}
            _write_durably(self.folder / _batch_name(batch.sequence), record)
        if batches:
            _fsync_folder(self.folder)
        # A fresh generation, then the old one goes: a crash before the unlink leaves
        # lines that the batch files above claim, so recovery drops them.
        old_fd, old_generation = self._open_fd, self._generation
        new_fd = self._open_log(old_generation + 1)
        self._open_fd, self._generation = new_fd, old_generation + 1
        if old_fd is not None:
            os.close(old_fd)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / _open_log_name(old_generation)).unlink()

    def load(self, sequence: int) -> RunBatch:
        """A sealed batch read back from disk (its points were dropped from memory)."""
        path = self.folder / _batch_name(sequence)
        return RunBatch.from_json(json.loads(path.read_text()), str(path))

    def done(self, batch: RunBatch) -> None:
        with contextlib.suppress(OSError):
            (self.folder / _batch_name(batch.sequence)).unlink()

    def pending_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def close(self, remove: bool) -> None:
        if self._open_fd is not None:
            os.close(self._open_fd)
            self._open_fd = None
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


_OPEN_LOG = "open_log"
_OPEN_LINES = "open_lines"
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


@dataclass
class SpooledBatch:
    """One batch a dead writer left: a sealed batch file, or one run's open lines."""

    batch: RunBatch
    file: Path | None  # the batch file; None for open lines (which stay in their log)
    lines: int = 0  # log calls it holds, for open lines


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _open_line(record: Any) -> OpenLine:
    clock = clock_from_json(record.get("c"))
    return OpenLine(
        run_id=str(record["r"]),
        experiment_id=str(record["e"]),
        points=[MetricPoint(str(k), float(v), int(t), int(s)) for k, v, t, s in record["p"]],
        tags={str(k): str(v) for k, v in dict(record["t"]).items()},
        clock=None if clock == NO_CLOCK else clock,
    )


def _read_open_log(path: Path, damaged: list[str]) -> list[OpenLine]:
    """The lines of one open log; a line that cannot be read is named in ``damaged``."""
    raw = path.read_bytes()
    chunks = raw.split(b"\n")
    # A last line without its newline was being written when the writer died: its call
    # never returned, so it was never acknowledged.
    chunks.pop()
    lines: list[OpenLine] = []
    for number, chunk in enumerate(chunks, start=1):
        try:
            lines.append(_open_line(json.loads(chunk)))
        except Exception as exc:  # whatever a damaged line holds: reported, never raised
            damaged.append(f"{path} line {number}: {_describe(exc)}")
    return lines


def _open_batches(
    folder: Path, writer_id: str, claimed: set[tuple[int, str]], damaged: list[str]
) -> tuple[list[SpooledBatch], set[Path]]:
    """A dead writer's open lines that no sealed batch holds: one batch per generation and run.

    The batch identity (``<writer>-open-<run>``, generation + 1) is the same every time these
    lines are recovered, so recovering them twice applies them once. Also returns the
    open logs that hold a damaged line.
    """
    batches: list[SpooledBatch] = []
    damaged_logs: set[Path] = set()
    for generation, path in _open_logs(folder):
        by_run: dict[str, SpooledBatch] = {}
        before = len(damaged)
        for line in _read_open_log(path, damaged):
            if (generation, line.run_id) in claimed:
                continue  # sealed before the writer died: its batch file holds these points
            entry = by_run.get(line.run_id)
            if entry is None:
                batch = RunBatch(
                    run_id=line.run_id,
                    experiment_id=line.experiment_id,
                    # Per run: segment names (writer, sequence) must not repeat across runs.
                    writer_id=f"{writer_id}{_OPEN_WRITER_SUFFIX}-{line.run_id}",
                    sequence=generation + 1,
                    # The log's last write, the same at every recovery: a replay's age.
                    sealed_at=path.stat().st_mtime_ns // 1_000_000,
                )
                entry = by_run[line.run_id] = SpooledBatch(batch, None)
            entry.batch.points.extend(line.points)
            entry.batch.add_tags(line.tags, line.clock)
            entry.lines += 1
        if len(damaged) > before:
            damaged_logs.add(path)
        batches.extend(by_run.values())
    return batches, damaged_logs


def _sealed_batches(
    folder: Path, damaged: list[str]
) -> tuple[list[SpooledBatch], set[tuple[int, str]]]:
    """The sealed batch files (in name order: sequence, then kept open lines) and their claims."""
    batches: list[SpooledBatch] = []
    claimed: set[tuple[int, str]] = set()
    for path in sorted(folder.glob("batch-*.json")):
        try:
            record = json.loads(path.read_bytes())
            if _OPEN_LOG in record:
                claimed.add((int(record[_OPEN_LOG]), str(record["run_id"])))
            lines = int(record.get(_OPEN_LINES, 0))  # open lines kept by an earlier recovery
            batch = RunBatch.from_json(record, str(path))
            if batch.sealed_at is None:  # an older plugin's file: sealed when it was written
                batch.sealed_at = path.stat().st_mtime_ns // 1_000_000
            batches.append(SpooledBatch(batch, path, lines))
        except Exception as exc:  # whatever a damaged file holds: reported, never raised
            damaged.append(f"{path}: {_describe(exc)}")
    return batches, claimed


@dataclass
class OrphanedSpool:
    """What a dead writer left: its sealed batches (in order), then its open lines as batches.

    Locked while held; ``release`` (everything settled) or ``keep`` (some left) unlocks it.
    """

    folder: Path
    entries: list[SpooledBatch]
    lock_fd: int
    damaged: list[str] = field(default_factory=list)  # "<file>[ line n]: why", kept as is
    damaged_logs: set[Path] = field(default_factory=set)

    @property
    def batches(self) -> list[RunBatch]:
        """The sealed batches."""
        return [entry.batch for entry in self.entries if entry.file is not None]

    @property
    def open_batches(self) -> list[RunBatch]:
        """The open lines that no sealed batch holds, as batches."""
        return [entry.batch for entry in self.entries if entry.file is None]

    @property
    def open_lines(self) -> int:
        return sum(entry.lines for entry in self.entries)

    def release(self, remove: bool) -> None:
        """Unlock the folder (removing it first if ``remove``); a second call does nothing."""
        if self.lock_fd < 0:
            return
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self.lock_fd)
        self.lock_fd = -1

    def keep(self, left: list[SpooledBatch]) -> None:
        """Rewrite the folder to hold only ``left`` (and the damaged files), then unlock it.

        Open lines left become batch files with their recovery identity, so that the
        open logs can go: a sealed batch file that names their lines can then go too.
        Each step is safe to be killed after: what remains replays idempotently.
        """
        try:
            for entry in left:
                if entry.file is None:
                    # Named by its identity (the run id hashed: it came from a file).
                    run = hashlib.sha256(entry.batch.run_id.encode()).hexdigest()[:16]
                    name = f"batch-open-{entry.batch.sequence:010d}-{run}.json"
                    entry.file = self.folder / name
                    record = {**entry.batch.to_json(), _OPEN_LINES: entry.lines}
                    _write_durably(entry.file, record)
            _fsync_folder(self.folder)
            for _, path in _open_logs(self.folder):
                if path not in self.damaged_logs:
                    path.unlink()
            keep = {entry.file for entry in left}
            for entry in self.entries:
                if entry.file is not None and entry.file not in keep:
                    entry.file.unlink(missing_ok=True)
        except OSError as exc:
            # A full disk, say: the folder stays as it was, which replays idempotently.
            _logger.warning("could not tidy the spool folder %s: %s", self.folder, exc)
        finally:
            self.release(remove=False)


def _read_orphan(folder: Path, lock_fd: int) -> OrphanedSpool:
    damaged: list[str] = []
    try:
        sealed, claimed = _sealed_batches(folder, damaged)
        opened, damaged_logs = _open_batches(folder, folder.name, claimed, damaged)
    except OSError as exc:  # an unreadable file: the folder is reported, kept and skipped
        return OrphanedSpool(folder, [], lock_fd, [f"{folder}: {_describe(exc)}"])
    return OrphanedSpool(folder, sealed + opened, lock_fd, damaged, damaged_logs)


def orphaned_spools(root: Path) -> Iterator[OrphanedSpool]:
    """Writer folders under ``root`` whose writer is gone, each locked while yielded."""
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return  # no spool here yet (or none readable): nothing to recover
    for folder in folders:
        try:
            if folder.stat().st_uid != os.getuid():
                # Another user's folder (a spool dir shared by mistake): replaying it would
                # write whatever it holds into the bucket with this user's credentials.
                continue
            fd = os.open(folder / "lock", os.O_RDWR)
        except OSError:
            continue  # another recoverer removed it just now, or it is not a writer folder
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Still the folder's lock (not one a finished recoverer deleted under us)?
            if os.fstat(fd).st_ino != os.stat(folder / "lock").st_ino:
                raise FileNotFoundError(folder)
        except OSError:
            os.close(fd)  # its writer is alive, or another recoverer has it
            continue
        yield _read_orphan(folder, fd)

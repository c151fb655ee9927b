"""The local spool: buffered writes are on local disk before they are uploaded.

Layout, one folder per writer (a store instance in a process)::

    <spool dir>/<sha256(root URI)[:16]>/<writer id>/
        root.txt            the store URI (without secrets, which URIs never carry)
        lock                flock held while the writer lives
        open.jsonl          one line per log_batch: {"r", "e", "p": [[key, value, ts, step]], "t"}
        batch-<seq>.json    a sealed RunBatch, deleted once its compare-and-swap succeeded

``append`` writes its line with one unbuffered ``write`` (a process crash loses
nothing that ``log_batch`` accepted; a power loss can lose the lines since the last
seal, since fsyncing every call would cost more than the call). Sealing writes every
sealed batch file atomically and fsynced, then truncates ``open.jsonl``. A writer
folder whose lock is free belongs to a process that died: ``recover`` replays its
sealed batches first (in sequence order; already-applied ones are skipped by the run
document's writer sequence) and then its open lines, and removes the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from mlflow_plugin.format.run_batches import RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.objectstore import StoreLocation

__all__ = ["OpenLine", "Spool", "orphaned_spools", "root_identity", "spool_root"]


def root_identity(location: StoreLocation) -> str:
    """The root a spool belongs to: scheme, bucket or folder, prefix and endpoint.

    Write-path options (flush interval, spool folder...) are left out, so a process
    configured differently (or ``sync``) still finds what another one left.
    """
    endpoint = location.endpoint_url() if location.is_s3 else None
    kept = tuple((k, v) for k, v in location.options if k == "endpoint_url")
    return replace(location, options=kept).to_uri() + (f" @ {endpoint}" if endpoint else "")


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
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "root.txt").write_text(store_uri)
        self._lock_fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._open_fd = os.open(
            folder / "open.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
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
        """Persist sealed batches, then forget the open lines they came from."""
        for batch in batches:
            path = self.folder / f"batch-{batch.sequence:010d}.json"
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as handle:
                handle.write(json.dumps(batch.to_json(), separators=(",", ":")))
                handle.flush()
                os.fsync(handle.fileno())  # durable before the open lines are dropped
            os.replace(tmp, path)
        if batches:
            dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)  # the renames themselves
            finally:
                os.close(dir_fd)
        os.ftruncate(self._open_fd, 0)

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
    """What a dead writer left: its sealed batches (in order) and its open lines."""

    folder: Path
    batches: list[RunBatch]
    open_lines: list[OpenLine]
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
        batches = [
            RunBatch.from_json(json.loads(path.read_text()))
            for path in sorted(folder.glob("batch-*.json"))
        ]
        yield OrphanedSpool(folder, batches, _read_open_lines(folder / "open.jsonl"), fd)

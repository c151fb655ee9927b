"""What torture tests share: the size knob, the figures each one reports, raw stored points.

``MLFLOW_BUCKET_TORTURE=long`` (``make torture``) selects the long sizes; anything else
the short ones that ``make test`` runs. Each test ends by ``record``-ing its figures:
one line printed, one JSON line appended to ``RESULTS_FILE``; the suite's terminal
summary shows this session's lines as a table (``session_table``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import read_document
from mlflow_plugin.format.segments import decode_segment
from mlflow_plugin.objectstore import ObjectStore
from tests.faults.proxy import FAULT_KINDS, ProxyStats

__all__ = [
    "LONG",
    "RESULTS_FILE",
    "SIZE",
    "Figures",
    "compare_points",
    "where_duplicated",
    "record",
    "session_entries",
    "session_table",
    "size",
    "stored_points",
]

T = TypeVar("T")

SIZE = os.environ.get("MLFLOW_BUCKET_TORTURE", "short").strip().lower() or "short"
if SIZE not in {"short", "long"}:
    raise ValueError(f"MLFLOW_BUCKET_TORTURE must be 'short' or 'long', got {SIZE!r}")
LONG = SIZE == "long"

RESULTS_FILE = Path(
    os.environ.get("MLFLOW_BUCKET_TORTURE_RESULTS")
    or Path(__file__).resolve().parents[2] / ".pytest_cache" / "torture-results.jsonl"
)
_SESSION = uuid.uuid4().hex[:12]  # this pytest run's lines in the results file

Point = tuple[str, int, int, float]  # key, step, timestamp, value


def size(short: T, long: T) -> T:
    """The short value in ``make test``, the long one in ``make torture``."""
    return long if LONG else short


@dataclass
class Figures:
    """One torture test's outcome, as printed and stored."""

    test: str
    points_written: int = 0
    points_read: int = 0
    params: int = 0
    tags: int = 0
    lost: int = 0
    # Last-writer-wins values (tags) read back older than the last acknowledged one.
    stale: int = 0
    duplicated: int = 0
    requests: int = 0
    retries: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    notes: str = ""
    seconds: float = 0.0
    size: str = SIZE

    def add_proxy(self, stats: ProxyStats) -> None:
        self.requests += stats.requests
        self.retries += stats.retries
        for kind, count in stats.faults.items():
            self.faults[kind] = self.faults.get(kind, 0) + count

    def faults_text(self) -> str:
        total = sum(self.faults.values())
        if not total:
            return "0"
        kinds = " ".join(f"{k}={self.faults[k]}" for k in FAULT_KINDS if self.faults.get(k))
        return f"{total} ({kinds})"

    def line(self) -> str:
        return (
            f"[torture {self.size}] {self.test}: points written {self.points_written}, "
            f"read {self.points_read}, params {self.params}, tags {self.tags}, "
            f"requests {self.requests}, faults {self.faults_text()}, retries {self.retries}, "
            f"lost {self.lost}, stale {self.stale}, duplicated {self.duplicated}, "
            f"{self.seconds:.1f} s" + (f"; {self.notes}" if self.notes else "")
        )


def record(figures: Figures, started: float) -> None:
    """Print the figures and append them to the results file."""
    figures.seconds = time.monotonic() - started
    print(figures.line())
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    entry = {"session": _SESSION, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **asdict(figures)}
    with open(RESULTS_FILE, "a") as results:
        results.write(json.dumps(entry) + "\n")


def session_entries() -> list[dict[str, Any]]:
    """The figures this process recorded in this pytest run (each an entry of the file)."""
    if not RESULTS_FILE.exists():
        return []
    entries = []
    for raw in RESULTS_FILE.read_text().splitlines():
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if entry.get("session") == _SESSION:
            entries.append(entry)
    return entries


def session_table(entries: list[dict[str, Any]]) -> list[str]:
    """Figures (``session_entries`` of every test process) as a Markdown table (empty
    when no torture test ran)."""
    if not entries:
        return []
    header = (
        "| test | size | points written / read | params | tags | requests | faults injected "
        "| retries | lost | stale | duplicated | time | notes |"
    )
    lines = [
        f"torture figures (also appended to {RESULTS_FILE}):",
        header,
        "|" + "---|" * 13,
    ]
    for entry in entries:
        figures = Figures(**{k: v for k, v in entry.items() if k not in {"session", "at"}})
        lines.append(
            f"| {figures.test} | {figures.size} | {figures.points_written} / "
            f"{figures.points_read} | {figures.params} | {figures.tags} | {figures.requests} | "
            f"{figures.faults_text()} | {figures.retries} | {figures.lost} | "
            f"{figures.stale} | {figures.duplicated} | {figures.seconds:.1f} s | {figures.notes} |"
        )
    return lines


def stored_points(store: ObjectStore, run_id: str) -> Counter[Point]:
    """Every metric point in the run's manifest, counted: a count above 1 is a duplicate.

    Read from the segments themselves, since metric history hides exact duplicates
    (as MLflow's SQL store's primary key would).
    """
    location, _ = read_document(store, keys.run_location_key(run_id))
    experiment_id = str(location["experiment_id"])
    doc, _ = read_document(store, keys.run_key(experiment_id, run_id))
    counts: Counter[Point] = Counter()
    for segment in doc["segments"]:
        data = store.get(keys.metric_segment_key(experiment_id, run_id, segment["name"])).data
        for point in decode_segment(data):
            counts[(point.key, point.step, point.timestamp, point.value)] += 1
    return counts


def where_duplicated(store: ObjectStore, run_id: str, limit: int = 5) -> str:
    """For a failure message: a few duplicated points and the segments that hold them."""
    location, _ = read_document(store, keys.run_location_key(run_id))
    experiment_id = str(location["experiment_id"])
    doc, _ = read_document(store, keys.run_key(experiment_id, run_id))
    holders: dict[Point, list[str]] = {}
    for segment in doc["segments"]:
        data = store.get(keys.metric_segment_key(experiment_id, run_id, segment["name"])).data
        for point in decode_segment(data):
            key = (point.key, point.step, point.timestamp, point.value)
            holders.setdefault(key, []).append(f"{segment['name']}({segment['rows']})")
    twice = [(point, names) for point, names in holders.items() if len(names) > 1]
    shown = "; ".join(f"{point}: {names}" for point, names in twice[:limit])
    return f"{len(twice)} points stored more than once, e.g. {shown}; writers {doc.get('writers')}"


def compare_points(expected: set[Point], stored: Counter[Point]) -> tuple[int, int, int]:
    """(lost, duplicated, unexpected) for points that must each be stored exactly once."""
    lost = len(expected - set(stored))
    duplicated = sum(count - 1 for count in stored.values() if count > 1)
    unexpected = len(set(stored) - expected)
    return lost, duplicated, unexpected

"""What a torture test's training process tells the test: its ledger, read back; sync; polling.

A training process (``writer.py``, ``trainer.py``) appends one line to its ledger after
each ``log_batch`` call: the batch number once the call returned (what MLflow promised
the caller), ``error <number> <error code>`` when it raised, and a few words of its own
(``start``, ``learned``, ``done``). Lines are written unbuffered, so a process killed at
any instant leaves every line of the calls that returned.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.torture.figures import Point
from tests.torture.writer import planned_batch

__all__ = [
    "REPO",
    "LedgerLine",
    "acknowledged_numbers",
    "has_started",
    "planned_points",
    "planned_tags",
    "read_ledger",
    "sync",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LedgerLine:
    """``kind`` is ``ack`` (``number`` returned), ``error`` (``number`` raised ``detail``),
    or a word of the process's own (``start``, ``learned``, ``done``...) with ``detail``."""

    kind: str
    number: int | None = None
    detail: str = ""


def read_ledger(ledger: Path) -> list[LedgerLine]:
    """The ledger's complete lines, in order (a killed process may leave half a line)."""
    if not ledger.exists():
        return []
    text = ledger.read_text()
    lines: list[LedgerLine] = []
    for raw in text.split("\n")[:-1]:  # the part after the last newline is incomplete
        word, _, rest = raw.partition(" ")
        if word.isdigit():
            lines.append(LedgerLine("ack", int(word)))
        elif word == "error":
            number, _, detail = rest.partition(" ")
            lines.append(LedgerLine("error", int(number), detail))
        elif word:
            lines.append(LedgerLine(word, None, rest))
    return lines


def acknowledged_numbers(ledger: Path) -> set[int]:
    """The batch numbers whose ``log_batch`` returned."""
    lines = read_ledger(ledger)
    return {line.number for line in lines if line.kind == "ack" and line.number is not None}


def has_started(ledger: Path) -> bool:
    return any(line.kind == "start" for line in read_ledger(ledger))


def planned_points(numbers: Iterable[int]) -> set[Point]:
    """Every metric point of the planned batches ``numbers``."""
    return {(m.key, m.step, m.timestamp, m.value) for n in numbers for m in planned_batch(n)[0]}


def planned_tags(numbers: Iterable[int]) -> dict[str, str]:
    """Every tag of the planned batches ``numbers`` (each batch sets tags of its own)."""
    return {t.key: t.value for n in numbers for t in planned_batch(n)[1]}


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 120.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (or the process's early exit)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None and not condition():
            raise AssertionError(f"{what}: the process exited first, with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


def sync(uri: str, env: Mapping[str, str] | None = None) -> str:
    """``python -m mlflow_plugin sync URI`` in a fresh process; it must exit 0. Its report."""
    result = subprocess.run(
        [sys.executable, "-m", "mlflow_plugin", "sync", uri],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=None if env is None else dict(env),
        check=False,
    )
    assert result.returncode == 0, f"sync exited with {result.returncode}: {result.stderr}"
    return result.stdout.strip()

"""Test code that runs in other processes: spawned workers and fresh interpreters.

A second process is how the suite shows that what one process wrote, another reads: no
shared memory, no module state, nothing cached in the writer's client.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

# Spawned, not forked: a child starts from a clean interpreter, as a second writer would.
SPAWN = multiprocessing.get_context("spawn")


def run_in_processes(
    target: Callable[..., object], args: Iterable[tuple[object, ...]], timeout: float
) -> None:
    """Start one spawned process per ``args`` tuple at once; each must exit 0 within ``timeout``.

    ``run_in_processes(_append, [(uri, "a"), (uri, "b")], timeout=120)``
    """
    children = [SPAWN.Process(target=target, args=a) for a in args]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout)
        assert child.exitcode == 0


def run_python(
    args: list[str], *, env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a fresh interpreter, output captured as text; the caller checks it."""
    return subprocess.run(
        [sys.executable, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

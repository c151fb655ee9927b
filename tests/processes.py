"""Test code that runs in other processes: forked workers and fresh interpreters.

A second process is how the suite shows that what one process wrote, another reads: no
shared memory, no module state, nothing cached in the writer's client.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.context
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

# What the children import before they are forked from the server: MLflow and the stores.
_PRELOADED = [
    "boto3",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow_plugin.registry.store",
    "mlflow_plugin.tracking.store",
    "pytest",
]


class _ProcessInTestsEnvironment(multiprocessing.context.ForkServerProcess):
    """A process that runs in the environment the test had when it created it, and
    ends as a script does.

    The fork server was started with the worker's environment of that moment; a test's
    ``monkeypatch.setenv`` (an index folder, credentials) came later.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._environment = dict(os.environ)

    def run(self) -> None:
        os.environ.clear()
        os.environ.update(self._environment)
        try:
            super().run()
        finally:
            # A forked child leaves by ``os._exit``; a script (or a spawned child) runs
            # its exit hooks first, the stores' last upload among them.
            atexit._run_exitfuncs()


class _ForkServerContext(multiprocessing.context.ForkServerContext):
    Process = _ProcessInTestsEnvironment


# Each child is forked from a server process that has imported MLflow and the stores
# and nothing else: no store, no client and no state of the test's process, as a second
# writer would start, without paying two seconds of imports per child (a spawned
# interpreter did: about 180 s of the suite's CPU, for about a hundred children).
SPAWN = _ForkServerContext()
SPAWN.set_forkserver_preload(_PRELOADED)


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

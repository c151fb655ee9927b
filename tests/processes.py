"""Test code that runs in other processes: forked workers and fresh interpreters.

A second process is how the suite shows that what one process wrote, another reads: no
shared memory, no module state, nothing cached in the writer's client.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import multiprocessing
import multiprocessing.context
import multiprocessing.util  # registers its exit hook (joins children) before ours
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

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
        self._environment: dict[str, str] = dict(os.environ)

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


class ChildProcess(Protocol):
    """What a ``subprocess.Popen`` and a ``ForkedPython`` both offer."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def _run_code(
    code: str, argv: list[str], cwd: str | None, outputs: list[str], new_session: bool
) -> None:
    """What ``python -c code *argv`` does, in a child of the fork server; ``outputs``:
    the file of stdout then of stderr, or one file for both (appended to)."""
    if new_session:
        os.setsid()
    if cwd is not None:
        os.chdir(cwd)
    if len(outputs) == 1:
        log = os.open(outputs[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        targets = [log, log]
    else:
        targets = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for path in outputs]
    for fd, target in zip((1, 2), targets, strict=True):
        os.dup2(target, fd)
    for target in set(targets):
        os.close(target)
    sys.argv = ["-c", *argv]
    try:
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    finally:
        # An interpreter waits for its other threads before it runs its exit hooks.
        threading._shutdown()  # type: ignore[attr-defined]


class ForkedPython:
    """``python -c CODE *argv`` forked from the preloaded server, with Popen's calls.

    For a child a test kills or waits for, which imports MLflow and the stores as a new
    interpreter would but without paying for it: about two seconds of CPU per child.
    Its output goes to files; when it has ended, ``output()`` holds it and, unless
    ``quiet``, it is echoed to the test's own output. With ``log``, both streams are
    appended to that file instead. ``new_session``: the child leads a session (and process
    group) of its own, as Popen's ``start_new_session``, by the time the call returns.
    A child still running when this process exits is killed (``_kill_leftovers``):
    multiprocessing would otherwise wait for it forever.
    """

    def __init__(
        self,
        code: str,
        *argv: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        quiet: bool = False,
        log: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self._folder = None if log else Path(tempfile.mkdtemp(prefix="forked-python-"))
        self._paths = () if self._folder is None else (self._folder / "out", self._folder / "err")
        self._quiet = quiet or log is not None
        self._output: tuple[str, str] | None = None
        where = None if cwd is None else str(cwd)
        outputs = [str(path) for path in (self._paths or [log])]
        self._process = SPAWN.Process(
            target=_run_code, args=(code, list(argv), where, outputs, new_session)
        )
        if env is not None:
            self._process._environment = dict(env)
        try:
            self._process.start()
        except BaseException:
            self._remove_folder()
            raise
        assert self._process.pid is not None
        self.pid: int = self._process.pid
        _running.add(self)
        if new_session:
            self._await_own_session()

    def _await_own_session(self) -> None:
        """Until the child leads its group: a stop by ``killpg`` must find it."""
        deadline = time.monotonic() + 30
        while self.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(self.pid) == self.pid:
                    return
            time.sleep(0.005)

    @property
    def returncode(self) -> int | None:
        """The exit status; minus the signal's number for a child a signal ended."""
        return self._process.exitcode

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self.returncode
        if code is None:
            raise subprocess.TimeoutExpired(["python", "-c"], timeout or 0.0)
        _running.discard(self)
        self._collect()
        return code

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def output(self) -> tuple[str, str]:
        """(stdout, stderr): all of it once the child was waited for, else what is written
        (nothing when it writes to a ``log``)."""
        if self._output is not None:
            return self._output
        if not self._paths:
            return "", ""
        stdout, stderr = (p.read_text(errors="replace") if p.exists() else "" for p in self._paths)
        return stdout, stderr

    def _collect(self) -> None:
        if self._output is None:
            self._output = self.output()
            self._remove_folder()
            if not self._quiet:
                sys.stdout.write(self._output[0])
                sys.stderr.write(self._output[1])

    def _remove_folder(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


_running: set[ForkedPython] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Kill the children no test waited for (registered after multiprocessing's own exit
    hook, so it runs before that hook joins them)."""
    for child in list(_running):
        child.kill()
        child.wait()


def run_forked_python(
    code: str,
    *argv: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([python, "-c", code, *argv], capture_output=True, text=True)``,
    forked from the preloaded server (see ``ForkedPython``); the caller checks the status."""
    child = ForkedPython(code, *argv, env=env, cwd=cwd, quiet=True)
    try:
        returncode = child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise
    stdout, stderr = child.output()
    return subprocess.CompletedProcess(["python", "-c", code, *argv], returncode, stdout, stderr)

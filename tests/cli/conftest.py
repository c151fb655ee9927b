"""Fixtures of the command-line tests: store URIs, and the CLI in this process or a new one."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from tests.processes import run_forked_python
from tests.servers import S3Endpoint

REPO = Path(__file__).resolve().parents[2]

Cli = Callable[..., subprocess.CompletedProcess[str]]


TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def cli_env() -> dict[str, str]:
    return {**os.environ, **TELEMETRY_OFF}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("gc", uri, "--dry-run")``: the command's ``main`` in this process, output captured.

    Starting a fresh interpreter costs about 2 s of importing MLflow and proves nothing
    more for a command that only reads and writes the store: a test whose point is another
    process (nothing cached, the spool of a dead writer) uses ``cli_process``.
    """
    from mlflow_plugin.cli import main

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        del timeout  # a fresh process's guard; here a hang fails the test run itself
        stdout, stderr = io.StringIO(), io.StringIO()
        with monkeypatch.context() as scoped:
            scoped.chdir(tmp_path)
            for name, value in TELEMETRY_OFF.items():
                scoped.setenv(name, value)
            with redirect_stdout(stdout), redirect_stderr(stderr):
                code = main(list(args))
        command = ["mlflow-bucket", *args]
        return subprocess.CompletedProcess(command, code, stdout.getvalue(), stderr.getvalue())

    return run


# What ``python -m mlflow_plugin`` runs.
_AS_MODULE = "import runpy; runpy.run_module('mlflow_plugin', run_name='__main__', alter_sys=True)"


@pytest.fixture
def cli_process(tmp_path: Path) -> Cli:
    """``cli_process("sync")``: ``python -m mlflow_plugin ...`` in another process.

    Forked from the server that has imported MLflow (``tests.processes``): nothing of this
    process (no store, cache or spool in memory), as a new interpreter, for a test whose
    point is another process (the spool of a dead writer, a damaged index file).
    """

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = run_forked_python(_AS_MODULE, *args, env=cli_env(), cwd=tmp_path, timeout=timeout)
        result.args = ["mlflow-bucket", *args]
        return result

    return run


@pytest.fixture
def file_uri(tmp_path: Path) -> str:
    return f"bucket+file://{tmp_path / 'store'}"


@pytest.fixture
def moto_uri(moto_s3: S3Endpoint) -> str:
    return f"bucket+s3://{moto_s3.shared_bucket}/cli/{uuid.uuid4().hex}?endpoint_url={moto_s3.url}"

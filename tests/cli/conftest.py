"""Fixtures of the command-line tests: store URIs, and the CLI run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import S3Endpoint

REPO = Path(__file__).resolve().parents[2]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def cli_env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli("gc", uri, "--dry-run")``: ``python -m mlflow_plugin ...`` in a fresh process."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlflow_plugin", *args],
            env=cli_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def file_uri(tmp_path: Path) -> str:
    return f"bucket+file://{tmp_path / 'store'}"


@pytest.fixture
def moto_uri(moto_s3: S3Endpoint) -> str:
    return f"bucket+s3://{moto_s3.shared_bucket}/cli/{uuid.uuid4().hex}?endpoint_url={moto_s3.url}"

"""``mlflow server`` on a tracking URI, as a real subprocess the browser talks to."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.browser.store import DemoStore

START_TIMEOUT = 90.0


@dataclass(frozen=True)
class UiServer:
    """A running ``mlflow server`` and the store it serves."""

    url: str
    store: DemoStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path) -> str:
    return path.read_bytes()[-4000:].decode("utf-8", "replace")


@contextlib.contextmanager
def mlflow_server(tracking_uri: str, workdir: Path) -> Iterator[str]:
    """Run ``mlflow server --backend-store-uri tracking_uri``; yield its base URL.

    ``with mlflow_server("bucket+file:///tmp/store", tmp) as url: requests.get(url + "/health")``
    """
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        # cwd: the server's default ./mlartifacts stays out of the repository. A session of
        # its own: `mlflow server` runs uvicorn as a child, and teardown stops both.
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log_path)
        yield url
    finally:
        _stop(process)


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode}:\n{_tail(log_path)}"
            )
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or still starting its worker
        time.sleep(0.25)
    raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT}s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

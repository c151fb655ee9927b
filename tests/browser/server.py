"""``mlflow server`` on a tracking URI, as a real subprocess the browser talks to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.browser.store import DemoStore
from tests.servers import mlflow_server as _mlflow_server


@dataclass(frozen=True)
class UiServer:
    """A running ``mlflow server`` and the store it serves."""

    url: str
    store: DemoStore


@contextlib.contextmanager
def mlflow_server(tracking_uri: str, workdir: Path) -> Iterator[str]:
    """Run ``mlflow server --backend-store-uri tracking_uri``; yield its base URL.

    ``with mlflow_server("bucket+file:///tmp/store", tmp) as url: requests.get(url + "/health")``
    """
    with _mlflow_server(tracking_uri, workdir=workdir) as server:
        yield server.url

"""botocore's retries as this package configures them, against an endpoint that keeps failing.

botocore's standard mode gives each client a retry budget that a steady error rate
drains, after which no request is retried at all. Our clients retry every request
up to ``max_attempts`` however many failed before, and that choice stays with our
clients: another client in the process (MLflow's own S3 repository) keeps botocore's
budget.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.config
import botocore.exceptions
import pytest

from mlflow_plugin.objectstore import StorageUnavailable
from mlflow_plugin.objectstore.s3 import S3ClientSettings, S3ObjectStore

# Each retried 500 takes 14 of botocore's 500 budget tokens and gives none back:
# from the 36th failing request on, a budgeted client stops retrying.
_REQUESTS = 40


class _FailingEndpoint(ThreadingHTTPServer):
    """Answers every request with 500 and counts the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer500)
        self.hits = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer500(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        server = self.server
        assert isinstance(server, _FailingEndpoint)
        with server.lock:
            server.hits += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def failing_endpoint() -> Iterator[_FailingEndpoint]:
    server = _FailingEndpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_every_request_is_retried_however_many_failed_before(
    failing_endpoint: _FailingEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = S3ClientSettings(
        endpoint_url=failing_endpoint.url, region="us-east-1", max_attempts=2
    )
    store = S3ObjectStore("bucket", "prefix", settings)
    for i in range(_REQUESTS):
        with pytest.raises(StorageUnavailable):
            store.head(f"doc-{i}")
    # max_attempts=2 retries after the first attempt: three requests each, every time.
    assert failing_endpoint.hits == 3 * _REQUESTS


def test_other_clients_of_the_process_keep_botocores_budget(
    failing_endpoint: _FailingEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # One of ours exists in the process; a plain client made afterwards is botocore's own.
    S3ObjectStore(
        "bucket",
        "",
        S3ClientSettings(endpoint_url=failing_endpoint.url, region="eu-west-1", max_attempts=2),
    )
    plain = boto3.session.Session().client(
        "s3",
        endpoint_url=failing_endpoint.url,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 2}),
    )
    for i in range(_REQUESTS):
        with pytest.raises(botocore.exceptions.ClientError):
            plain.head_object(Bucket="bucket", Key=f"doc-{i}")
    retried = failing_endpoint.hits - _REQUESTS
    assert 0 < retried < _REQUESTS  # the budget ran dry part of the way

"""Fixtures of the torture tests: moto in a process of its own, a fresh root per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.proxy import FaultPolicy, FaultProxy
from tests.servers import S3Endpoint, moto_process_endpoint, upload_before_stopping


@pytest.fixture(scope="session")
def torture_moto() -> Iterator[S3Endpoint]:
    """moto competing with nobody for the test process's GIL (the proxy lives there)."""
    with moto_process_endpoint() as endpoint:
        yield endpoint
        upload_before_stopping()


@pytest.fixture(params=["bucket+file", "bucket+s3"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh root on each scheme in turn: a folder, or a prefix on SeaweedFS (atomic CAS)."""
    if request.param == "bucket+file":
        return f"bucket+file://{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("seaweedfs_s3")
    root = f"{endpoint.shared_bucket}/torture/{uuid.uuid4().hex}"
    return f"bucket+s3://{root}?endpoint_url={endpoint.url}"


@dataclass
class FaultyRoot:
    """One store root, reached through the fault proxy (``uri``) and directly (``direct_uri``)."""

    proxy: FaultProxy
    uri: str
    direct_uri: str


@pytest.fixture
def faulty_root(torture_moto: S3Endpoint) -> Iterator[FaultyRoot]:
    """A fresh root behind a proxy that starts without faults; a test sets its policy."""
    root = f"{torture_moto.shared_bucket}/torture/{uuid.uuid4().hex}"
    with FaultProxy(torture_moto.url, FaultPolicy(rate=0.0)) as proxy:
        yield FaultyRoot(
            proxy,
            f"bucket+s3://{root}?endpoint_url={proxy.url}",
            f"bucket+s3://{root}?endpoint_url={torture_moto.url}",
        )

"""The object stores the format tests run on: a bucket+file folder and real S3 endpoints."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mlflow_plugin.objectstore import ObjectStore, open_object_store
from tests.servers import S3Endpoint


def _s3(request: pytest.FixtureRequest, fixture: str) -> ObjectStore:
    endpoint: S3Endpoint = request.getfixturevalue(fixture)
    prefix = f"format/{uuid.uuid4().hex}"
    return open_object_store(
        f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"
    )


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A fresh root on each scheme (moto for S3: no race is involved)."""
    if request.param == "file":
        return open_object_store(f"bucket+file://{tmp_path / 'root'}")
    return _s3(request, "moto_s3")


@pytest.fixture(params=["file", "seaweedfs"])
def racing_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A fresh root whose conditional writes are atomic under races (moto's are not)."""
    if request.param == "file":
        return open_object_store(f"bucket+file://{tmp_path / 'root'}")
    return _s3(request, "seaweedfs_s3")

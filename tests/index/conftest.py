"""Fixtures of the index tests: a store root on each scheme."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.servers import S3Endpoint


def with_option(uri: str, option: str) -> str:
    """``uri`` with one more query option: ``with_option(uri, "index=sqlite:///x")``."""
    return f"{uri}{'&' if '?' in uri else '?'}{option}"


@pytest.fixture(params=["file", "moto"])
def bucket_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store root: a local folder, then a fresh prefix in moto's shared bucket."""
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = uuid.uuid4().hex[:8]
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"

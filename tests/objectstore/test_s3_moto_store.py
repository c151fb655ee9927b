from __future__ import annotations

import uuid
from typing import Any

import pytest

from mlflow_plugin.objectstore import (
    ConditionalWritesUnsupported,
    check_conditional_writes,
    check_conditional_writes_once,
)
from mlflow_plugin.objectstore.s3 import S3ClientSettings, S3ObjectStore
from tests.objectstore.s3_backend import S3Conformance
from tests.servers import S3Endpoint


class TestS3ObjectStoreOnMoto(S3Conformance):
    endpoint_fixture = "moto_s3"


def test_probe_refuses_an_endpoint_that_ignores_conditional_writes(moto_s3: S3Endpoint) -> None:
    # Its own client settings, so the header-stripping hook touches no other test's client.
    settings = S3ClientSettings(endpoint_url=moto_s3.url, region="us-east-1", max_attempts=3)
    store = S3ObjectStore(moto_s3.shared_bucket, uuid.uuid4().hex, settings)

    def strip_conditions(request: Any, **_: Any) -> None:
        # What an old S3-compatible server does: accept the request, ignore the condition.
        for header in ("If-None-Match", "If-Match"):
            if header in request.headers:
                del request.headers[header]

    store.client.meta.events.register("before-send.s3.PutObject", strip_conditions)
    with pytest.raises(ConditionalWritesUnsupported, match="If-None-Match"):
        check_conditional_writes(store)
    assert list(store.list("")) == []


def test_the_probe_runs_once_per_bucket_whatever_the_prefix(moto_s3: S3Endpoint) -> None:
    # Its own client settings: the counting hook sees this test's requests only.
    settings = S3ClientSettings(endpoint_url=moto_s3.url, region="us-east-1", max_attempts=4)
    first, second = moto_s3.create_bucket("probe"), moto_s3.create_bucket("probe")
    puts: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        puts.append(f"{params['Bucket']}/{params['Key']}")

    stores = [S3ObjectStore(first, prefix, settings) for prefix in ("team-a", "team-b")]
    stores[0].client.meta.events.register("before-parameter-build.s3.PutObject", count)
    for store in stores:
        check_conditional_writes_once(store)
    assert len(puts) == 4 and all(put.startswith(f"{first}/team-a/_probe/") for put in puts)

    check_conditional_writes_once(S3ObjectStore(second, "team-a", settings))
    assert len(puts) == 8 and all(put.startswith(f"{second}/") for put in puts[4:])

    # The same bucket name behind another endpoint is another bucket.
    elsewhere = S3ClientSettings(moto_s3.url.replace("127.0.0.1", "localhost"), "us-east-1", 4)
    store = S3ObjectStore(first, "team-a", elsewhere)
    store.client.meta.events.register("before-parameter-build.s3.PutObject", count)
    check_conditional_writes_once(store)
    assert len(puts) == 12

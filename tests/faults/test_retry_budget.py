"""A long stretch of errors must not use up the retries of every request that follows.

botocore's standard retry mode keeps a per-client budget of retries that a steady error
rate spends; once spent, the first transient error of any request is final. The S3
object store's clients retry every request up to ``max_attempts``, however many errors
came before.
"""

from __future__ import annotations

import uuid

import pytest

from mlflow_plugin.objectstore import StorageUnavailable
from mlflow_plugin.objectstore.s3 import S3ClientSettings, S3ObjectStore
from tests.faults.proxy import FaultPolicy, FaultProxy
from tests.servers import S3Endpoint


def test_retries_survive_a_long_stretch_of_errors(moto_s3: S3Endpoint) -> None:
    with FaultProxy(moto_s3.url, FaultPolicy(rate=1.0, weights={"error_503": 1.0})) as proxy:
        # Its own settings, so no other test shares (or has spent) this client's retries.
        settings = S3ClientSettings(endpoint_url=proxy.url, region="us-east-1", max_attempts=2)
        store = S3ObjectStore(moto_s3.shared_bucket, f"budget/{uuid.uuid4().hex}", settings)
        for _ in range(25):  # 50 failed retries: botocore's budget covers 35
            with pytest.raises(StorageUnavailable):
                store.exists("anything")
        assert proxy.stats.retries == 50

        # Now only each request's first attempt fails: one retry saves every request.
        proxy.set_policy(FaultPolicy(rate=1.0, weights={"error_500": 1.0}, first_attempt_only=True))
        for number in range(10):
            store.put(f"doc-{number}", b"x")
        assert [info.key for info in store.list("")] == [f"doc-{n}" for n in range(10)]

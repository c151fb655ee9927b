"""The S3 variant of the conformance class, shared by the moto and SeaweedFS modules."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import boto3
import botocore.exceptions
import dateutil.parser
import pytest

from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.objectstore.s3 import S3ClientSettings, S3ObjectStore
from tests.objectstore.conformance import ObjectStoreConformance, RawAccess
from tests.servers import S3Endpoint


class _BotoRaw:
    """The bucket's objects under the store's prefix, through a plain boto3 client."""

    def __init__(self, endpoint: S3Endpoint, bucket: str, prefix: str) -> None:
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint.url, region_name="us-east-1"
        )
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/"

    def read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return bytes(response["Body"].read())

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)


class S3Conformance(ObjectStoreConformance):
    """Each test gets a fresh prefix in one bucket per endpoint."""

    endpoint_fixture = ""

    @pytest.fixture
    def endpoint(self, request: pytest.FixtureRequest) -> S3Endpoint:
        endpoint: S3Endpoint = request.getfixturevalue(self.endpoint_fixture)
        return endpoint

    @pytest.fixture
    def location(self, endpoint: S3Endpoint) -> tuple[str, str]:
        return endpoint.shared_bucket, f"tests/{uuid.uuid4().hex}"

    @pytest.fixture
    def store(self, endpoint: S3Endpoint, location: tuple[str, str]) -> ObjectStore:
        bucket, prefix = location
        return S3ObjectStore(
            bucket, prefix, S3ClientSettings(endpoint_url=endpoint.url, region="us-east-1")
        )

    @pytest.fixture
    def raw(self, endpoint: S3Endpoint, location: tuple[str, str]) -> RawAccess:
        bucket, prefix = location
        return _BotoRaw(endpoint, bucket, prefix)

    @pytest.fixture
    def store_uri(self, endpoint: S3Endpoint, location: tuple[str, str]) -> str:
        bucket, prefix = location
        return f"bucket+s3://{bucket}/{prefix}?endpoint_url={endpoint.url}"

    def check_large_object_transfer(self, store: ObjectStore, key: str) -> None:
        # A multipart upload's ETag is "<md5 of part md5s>-<number of parts>".
        assert "-" in store.head(key).etag

    def test_listed_and_read_times_are_botocore_s_without_its_slow_parser(
        self, store: ObjectStore, raw: _BotoRaw, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Listings carry one timestamp per key; the store's client reads them (and the
        Last-Modified header of a read) to the same instant as a plain boto3 client, without
        the general date parser that cost three quarters of a 1,000-key listing's CPU."""
        for index in range(3):
            store.put(f"times/{index}.json", b"{}")
        listed = raw.client.list_objects_v2(Bucket=raw.bucket, Prefix=f"{raw.prefix}times/")
        expected = {
            entry["Key"].removeprefix(raw.prefix): entry["LastModified"].timestamp()
            for entry in listed["Contents"]
        }
        read = raw.client.head_object(Bucket=raw.bucket, Key=f"{raw.prefix}times/0.json")
        expected_read = read["LastModified"].timestamp()

        general_parser = dateutil.parser.parse
        client_thread = threading.current_thread()

        def parse_unless_for_the_client(*args: Any, **kwargs: Any) -> Any:
            # moto's in-process server parses dates with it too, on its own threads.
            if threading.current_thread() is client_thread:
                raise AssertionError("the store's client used dateutil's general parser")
            return general_parser(*args, **kwargs)

        monkeypatch.setattr(dateutil.parser, "parse", parse_unless_for_the_client)
        assert {info.key: info.last_modified for info in store.list("times/")} == expected
        assert store.head("times/0.json").last_modified == expected_read

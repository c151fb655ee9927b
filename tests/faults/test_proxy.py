"""The fault proxy itself: it forwards faithfully, and each fault kind does what it says."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.faults.proxy import FAULT_KINDS, FaultPolicy, FaultProxy
from tests.servers import S3Endpoint


def _client(url: str, retries: int = 0) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        config=botocore.config.Config(
            retries={"total_max_attempts": retries + 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


@pytest.fixture
def proxy(moto_s3: S3Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(moto_s3.url) as running:
        yield running


def _exists(moto_s3: S3Endpoint, key: str) -> bool:
    listing = _client(moto_s3.url).list_objects_v2(Bucket=moto_s3.shared_bucket, Prefix=key)
    return bool(listing.get("Contents"))


def test_without_faults_the_proxy_is_transparent(proxy: FaultProxy, moto_s3: S3Endpoint) -> None:
    client = _client(proxy.url)
    bucket, key = moto_s3.shared_bucket, f"proxy/{uuid.uuid4().hex}/ünï code+key"
    body = bytes(range(256)) * 1000
    etag = client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
    got = client.get_object(Bucket=bucket, Key=key)
    assert (got["Body"].read(), got["ETag"]) == (body, etag)
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=key.rsplit("/", 1)[0])
    assert [o["Key"] for o in listed["Contents"]] == [key]
    with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x", IfNoneMatch="*")
    client.delete_object(Bucket=bucket, Key=key)
    stats = proxy.stats
    assert (stats.requests, stats.retries, stats.total_faults) == (6, 0, 0)


@pytest.mark.parametrize(
    ("kind", "error", "applied"),
    [
        ("error_500", "InternalError", False),
        ("error_503", "ServiceUnavailable", False),
        ("slow_down", "SlowDown", False),
        ("reset", "ConnectionClosedError", False),
        ("delay", None, True),
        ("lost_reset", "ConnectionClosedError", True),
        ("lost_500", "InternalError", True),
        ("conflict_409", "ConditionalRequestConflict", False),
    ],
)
def test_each_fault_kind(
    proxy: FaultProxy, moto_s3: S3Endpoint, kind: str, error: str | None, applied: bool
) -> None:
    proxy.set_policy(FaultPolicy(rate=1.0, weights={kind: 1.0}, max_delay=0.3, seed=3))
    client = _client(proxy.url)  # no retries: the client sees the fault itself
    key = f"proxy/{uuid.uuid4().hex}"
    started = time.monotonic()
    try:
        client.put_object(Bucket=moto_s3.shared_bucket, Key=key, Body=b"data", IfNoneMatch="*")
        seen = None
    except botocore.exceptions.ClientError as exc:
        seen = exc.response["Error"]["Code"]
    except botocore.exceptions.BotoCoreError as exc:
        seen = type(exc).__name__
    assert seen == error
    assert _exists(moto_s3, key) is applied
    assert proxy.stats.faults == {kind: 1}
    if kind == "delay":
        assert time.monotonic() - started >= 0.15  # half of max_delay at least


def test_a_conflict_is_injected_only_into_conditional_writes(
    proxy: FaultProxy, moto_s3: S3Endpoint
) -> None:
    proxy.set_policy(FaultPolicy(rate=1.0, weights={"conflict_409": 1.0}))
    client = _client(proxy.url)
    key = f"proxy/{uuid.uuid4().hex}"
    client.put_object(Bucket=moto_s3.shared_bucket, Key=key, Body=b"plain")
    client.get_object(Bucket=moto_s3.shared_bucket, Key=key)
    assert proxy.stats.total_faults == 0


def test_first_attempt_only_lets_the_retry_meet_its_own_write(
    proxy: FaultProxy, moto_s3: S3Endpoint
) -> None:
    proxy.set_policy(FaultPolicy(rate=1.0, weights={"lost_reset": 1.0}, first_attempt_only=True))
    client = _client(proxy.url, retries=3)
    key = f"proxy/{uuid.uuid4().hex}"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_object(Bucket=moto_s3.shared_bucket, Key=key, Body=b"once", IfNoneMatch="*")
    # The write landed on the first attempt; botocore's retry then failed its condition.
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert _exists(moto_s3, key)
    stats = proxy.stats
    assert (stats.requests, stats.retries, dict(stats.faults)) == (2, 1, {"lost_reset": 1})


def test_the_policy_is_seeded_and_keeps_its_rate(moto_s3: S3Endpoint) -> None:
    def faults_drawn(seed: int) -> list[str]:
        weights = dict.fromkeys(("error_500", "error_503", "delay"), 1.0)
        policy = FaultPolicy(rate=0.3, weights=weights, seed=seed, max_delay=0.0)
        with FaultProxy(moto_s3.url, policy) as proxy:
            client = _client(proxy.url)
            drawn = []
            for _ in range(120):
                before = proxy.stats.faults.copy()
                with contextlib.suppress(botocore.exceptions.ClientError):
                    client.head_bucket(Bucket=moto_s3.shared_bucket)
                new = proxy.stats.faults - before
                drawn.append(next(iter(new), "-"))
            return drawn

    first, again, other = faults_drawn(7), faults_drawn(7), faults_drawn(8)
    assert first == again
    assert first != other
    assert 20 <= sum(kind != "-" for kind in first) <= 52  # 30% of 120 = 36


def test_unknown_kinds_and_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultPolicy(weights={"teapot": 1.0})
    with pytest.raises(ValueError, match="rate"):
        FaultPolicy(rate=1.5)
    assert set(FaultPolicy().weights) == set(FAULT_KINDS)

"""The store's S3 timestamp parser answers exactly what botocore's own parser answers."""

from __future__ import annotations

import botocore.utils
import pytest

from mlflow_plugin.objectstore.s3 import parse_s3_timestamp

# What S3 endpoints send (listings: ISO 8601 with a zone; headers: RFC 1123), and the
# forms botocore's parser also reads, which the fast path must leave to it unchanged.
TIMESTAMPS = [
    "2026-12-08T01:47:44.000Z",
    "2026-12-08T01:47:44Z",
    "2026-12-08T01:47:44.123456Z",
    "2026-12-08T01:47:44.1234567Z",
    "2026-12-08T01:47:44+02:00",
    "2026-12-08T01:47:44",  # no zone: botocore answers a naive time
    "2026-12-08",
    "Tue, 08 Dec 2026 01:47:44 GMT",
    "Tue, 08 Dec 2026 01:47:44 +0000",
    "Tue, 08 Dec 2026 01:47:44 -0000",
    "1700000000",  # epoch seconds
    "1700000000.5",
    "20261208",  # digits only: epoch seconds for botocore, a date for fromisoformat
    # Shapes Python's own parsers read otherwise than botocore (or not at all).
    "Tue, 08 Dec 2026 01:47:44 +0230",
    "Tue, 08 Dec 2026 01:47:44 +02",  # +02:00 for botocore, +00:02 for email.utils
    "Mon, 08 Dec 2026 01:47:44 GMT",  # a weekday that is not the date's
    "08 Dec 69 01:47:44 GMT",  # two-digit years: 2069 for botocore
    "2026-12-08T01:30.5Z",  # a fraction of a minute
    "2026-12-08t01:47:44z",
    1_700_000_000,  # event-stream and JSON protocols hand over numbers
    1_700_000_000.5,
]


@pytest.mark.parametrize("value", TIMESTAMPS)
def test_a_timestamp_parses_as_botocore_parses_it(value: str | float) -> None:
    expected = botocore.utils.parse_timestamp(value)
    parsed = parse_s3_timestamp(value)
    assert parsed == expected
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)
    if expected.tzinfo is not None:
        assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "",
        "Tue, 99 Foo 2026",
        "2026-W49-2T01:47:44Z",  # an ISO week date: fromisoformat reads it
        "2026-12-08T01:47:44+05:30:15",
        "Foo, 08 Dec 2026 01:47:44 GMT",
        "2026-12-08T24:00:00Z",
    ],
)
def test_an_unreadable_timestamp_is_botocore_s_error(value: str) -> None:
    with pytest.raises(ValueError) as expected:
        botocore.utils.parse_timestamp(value)
    with pytest.raises(ValueError) as raised:
        parse_s3_timestamp(value)
    assert str(raised.value) == str(expected.value)

"""Metric segments: Parquet with the format's columns and compression, round-tripped exactly."""

from __future__ import annotations

import io
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlflow_plugin.format.segments import (
    MetricPoint,
    SegmentCache,
    SegmentInfo,
    decode_segment,
    encode_segment,
)

POINTS = [
    MetricPoint("Loss/train", 0.5, 1_700_000_000_000, 0),
    MetricPoint("acc", float("nan"), 1_700_000_000_001, -3),
    MetricPoint("Loss/train", float("inf"), 1_700_000_000_002, 2**62),
    MetricPoint("ünïcode", float("-inf"), 0, 1),
    MetricPoint("acc", -0.0, 5, 1),
]


def _same(a: MetricPoint, b: MetricPoint) -> bool:
    both_nan = math.isnan(a.value) and math.isnan(b.value)
    return (a.key, a.timestamp, a.step) == (b.key, b.timestamp, b.step) and (
        both_nan or (a.value == b.value and math.copysign(1, a.value) == math.copysign(1, b.value))
    )


def test_points_round_trip_in_logging_order() -> None:
    data, info = encode_segment("w-0000000001", POINTS)
    decoded = decode_segment(data)
    assert len(decoded) == len(POINTS)
    assert all(_same(a, b) for a, b in zip(POINTS, decoded, strict=True))
    assert info == SegmentInfo("w-0000000001", ("Loss/train", "acc", "ünïcode"), 5, -3, 2**62)
    assert SegmentInfo.from_json(info.to_json()) == info


def test_a_segment_read_for_some_keys_holds_only_them() -> None:
    data, _ = encode_segment("s", POINTS)
    assert [p.step for p in decode_segment(data, keys=["acc"])] == [-3, 1]


def test_the_stored_columns_types_and_compression_are_the_formats() -> None:
    data, _ = encode_segment("s", POINTS)
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.schema_arrow == pa.schema(
        [
            ("key", pa.string()),
            ("step", pa.int64()),
            ("timestamp", pa.int64()),
            ("value", pa.float64()),
        ]
    )
    row_group = parquet.metadata.row_group(0)
    assert {row_group.column(c).compression for c in range(4)} == {"ZSTD"}


def test_an_empty_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        encode_segment("s", [])


def test_the_segment_cache_keeps_the_most_recently_used_within_its_rows() -> None:
    def table(rows: int) -> pa.Table:
        return pa.table({"step": list(range(rows))})

    cache = SegmentCache(max_rows=10)
    cache.put("a", table(4))
    cache.put("b", table(4))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", table(4))  # 12 rows: the least recently used ("b") leaves
    assert [cache.get(name) is not None for name in "abc"] == [True, False, True]
    cache.put("huge", table(11))  # larger than the whole bound: not kept, nothing evicted
    assert cache.get("huge") is None and cache.get("a") is not None
    cache.discard("a")
    assert cache.get("a") is None

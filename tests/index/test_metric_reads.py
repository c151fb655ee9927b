"""Metric history and chart sampling: the same answers as MLflow's SQL store, read from
only the segments that hold the key, and segments never downloaded twice."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.sqlite_reference import migrated_sqlite_uri


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[BucketTrackingStore, SqlAlchemyStore]]:
    bucket = BucketTrackingStore(f"bucket+file:{tmp_path / 'root'}")
    sqlite = SqlAlchemyStore(
        migrated_sqlite_uri(tmp_path / "mlflow.db"), str(tmp_path / "artifacts")
    )
    yield bucket, sqlite
    bucket.close()
    sqlite.engine.dispose()


def _log_same(
    stores: tuple[BucketTrackingStore, SqlAlchemyStore], metrics: list[Metric]
) -> tuple[str, str]:
    run_ids = []
    for store in stores:
        experiment_id = store.create_experiment("history")
        run = store.create_run(experiment_id, "user", 0, [], "run")
        for start in range(0, len(metrics), 1000):
            store.log_batch(run.info.run_id, metrics[start : start + 1000], [], [])
        run_ids.append(run.info.run_id)
    return run_ids[0], run_ids[1]


def _points(metrics: list[Metric]) -> list[tuple[str, object, int, int]]:
    return [
        (m.key, "nan" if math.isnan(m.value) else m.value, m.timestamp, m.step) for m in metrics
    ]


def _awkward_history(n: int, seed: int) -> list[Metric]:
    """Unordered steps, repeated steps and timestamps, exact duplicates, NaN and infinities."""
    rng = random.Random(seed)
    metrics = []
    for i in range(n):
        step = rng.choice([i, i // 3, rng.randint(-5, n)])
        value = rng.choice([rng.random(), 0.0, float("nan"), float("inf"), -float("inf"), 1.5])
        metrics.append(Metric("loss", value, 1_000 + rng.randint(0, n // 2), step))
    metrics += metrics[: n // 10]  # logged twice
    metrics.append(Metric("other", 1.0, 5, 5))
    rng.shuffle(metrics)
    return metrics


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_history_equals_sqlite_including_pages(
    stores: tuple[BucketTrackingStore, SqlAlchemyStore], seed: int
) -> None:
    bucket_run, sqlite_run = _log_same(stores, _awkward_history(3_000, seed))
    bucket, sqlite = stores
    assert _points(bucket.get_metric_history(bucket_run, "loss")) == _points(
        sqlite.get_metric_history(sqlite_run, "loss")
    )
    token_b = token_s = None
    for _ in range(4):
        page_b = bucket.get_metric_history(bucket_run, "loss", 700, token_b)
        page_s = sqlite.get_metric_history(sqlite_run, "loss", 700, token_s)
        assert _points(page_b) == _points(page_s)
        token_b, token_s = page_b.token, page_s.token
        assert (token_b is None) == (token_s is None)


@pytest.mark.parametrize(
    ("max_results", "step_range"),
    [(320, None), (1, None), (7, None), (50, (10, 400)), (5_000, None), (3, (-5, -1))],
)
def test_chart_sampling_equals_sqlite(
    stores: tuple[BucketTrackingStore, SqlAlchemyStore],
    max_results: int,
    step_range: tuple[int, int] | None,
) -> None:
    bucket_run, sqlite_run = _log_same(stores, _awkward_history(2_000, 7))
    bucket, sqlite = stores
    start, end = step_range or (None, None)
    ours = bucket.get_metric_history_bulk_interval([bucket_run], "loss", max_results, start, end)
    theirs = sqlite.get_metric_history_bulk_interval([sqlite_run], "loss", max_results, start, end)
    assert _points(list(ours)) == _points(list(theirs))
    assert {m.run_id for m in ours} <= {bucket_run}
    assert len(ours) == len(theirs) > 0


def test_chart_sampling_of_an_unknown_metric_or_bad_range(
    stores: tuple[BucketTrackingStore, SqlAlchemyStore],
) -> None:
    bucket_run, _ = _log_same(stores, _awkward_history(100, 3))
    bucket, _ = stores
    assert bucket.get_metric_history_bulk_interval([bucket_run], "absent", 320, None, None) == []
    with pytest.raises(Exception, match="start_step and end_step"):
        bucket.get_metric_history_bulk_interval([bucket_run], "loss", 320, 5, None)


def test_segments_come_from_the_disk_cache_once_fetched(tmp_path: Path) -> None:
    uri = f"bucket+file:{tmp_path / 'root'}"
    writer = BucketTrackingStore(uri)
    experiment_id = writer.create_experiment("cache")
    run_id = writer.create_run(experiment_id, "user", 0, [], "run").info.run_id
    writer.log_batch(run_id, [Metric("a", float(i), i, i) for i in range(500)], [], [])
    writer.flush()  # one segment per key
    writer.log_batch(run_id, [Metric("b", float(i), i, i) for i in range(500)], [], [])
    writer.close()

    reader = BucketTrackingStore(uri)  # a fresh process's view: nothing in memory
    assert len(reader.get_metric_history(run_id, "a")) == 500
    segments = list((tmp_path / "root" / "experiments" / experiment_id / "metrics").rglob("*"))
    segment_files = [p for p in segments if p.is_file()]
    assert len(segment_files) == 2
    # Only the segment holding "a" was read, so only it is in the disk cache.
    later = BucketTrackingStore(uri)
    for path in segment_files:
        path.write_bytes(b"")  # any further download would now fail as corrupt
    assert [m.value for m in later.get_metric_history(run_id, "a")] == [
        float(i) for i in range(500)
    ]
    with pytest.raises(Exception, match="corrupt metric segment"):
        later.get_metric_history(run_id, "b")


def test_history_logged_in_order_equals_sqlite(
    stores: tuple[BucketTrackingStore, SqlAlchemyStore],
) -> None:
    # The usual case, which skips the sort: steps and timestamps rising, some repeats.
    metrics = [
        Metric("loss", float("nan") if i % 97 == 0 else 1 / (i + 1), 1_000 + i // 2, i // 3)
        for i in range(3_000)
    ]
    bucket_run, sqlite_run = _log_same(stores, metrics + metrics[:50])
    bucket, sqlite = stores
    assert _points(bucket.get_metric_history(bucket_run, "loss")) == _points(
        sqlite.get_metric_history(sqlite_run, "loss")
    )
    for max_results, start, end in [(320, None, None), (10, 100, 200)]:
        ours = bucket.get_metric_history_bulk_interval(
            [bucket_run], "loss", max_results, start, end
        )
        theirs = sqlite.get_metric_history_bulk_interval(
            [sqlite_run], "loss", max_results, start, end
        )
        assert _points(list(ours)) == _points(list(theirs))


def test_long_histories_are_kept_sorted_on_disk_for_the_next_process(tmp_path: Path) -> None:
    uri = f"bucket+file:{tmp_path / 'root'}"
    writer = BucketTrackingStore(uri)
    experiment_id = writer.create_experiment("long")
    run_id = writer.create_run(experiment_id, "user", 0, [], "run").info.run_id
    for start in range(0, 120_000, 1_000):
        metrics = [Metric("loss", 1 / (i + 1), 1_000 + i, i) for i in range(start, start + 1_000)]
        writer.log_batch(run_id, metrics, [], [])
    writer.close()
    first = BucketTrackingStore(uri).get_metric_history_bulk_interval(
        [run_id], "loss", 320, None, None
    )
    stored = list(Path(os.environ["MLFLOW_BUCKET_INDEX_DIR"]).glob("histories/*/*.values.npy"))
    assert stored, "a 120,000-point history is kept on disk"

    # Segments gone from the bucket and the segment cache: only the sorted copy can answer.
    for path in (tmp_path / "root" / "experiments" / experiment_id / "metrics").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    for path in Path(os.environ["MLFLOW_BUCKET_INDEX_DIR"]).glob("segments/*/*.parquet"):
        path.unlink()
    again = BucketTrackingStore(uri).get_metric_history_bulk_interval(
        [run_id], "loss", 320, None, None
    )
    assert _points(list(again)) == _points(list(first))
    assert len(again) == 320

    # Without its values file the copy is incomplete: ignored, and the segments are read.
    for path in stored:
        path.unlink()
    with pytest.raises(Exception, match="corrupt metric segment"):
        BucketTrackingStore(uri).get_metric_history(run_id, "loss")

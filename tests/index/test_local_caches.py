"""The local segment and history caches stay within their size bound.

A UI charting a live run refreshes its history after every upload: each refresh
sorts the history again from one more segment. The copy it supersedes must go, and
all cached files together must stay under ``cache_max_bytes`` whatever is charted.
"""

from __future__ import annotations

import logging
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mlflow_plugin.cache.segment_files import DEFAULT_CACHE_MAX_BYTES, HistoryFiles
from mlflow_plugin.objectstore import parse_store_uri
from mlflow_plugin.tracking.settings import cache_max_bytes
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.processes import run_forked_python
from tests.servers import S3Endpoint

# Histories this long are stored on disk (24 bytes a point: 2.4 MB each).
LONG = 100_000
MIB = 1024**2


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache folder: the bound covers every root in it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(folder))
    return folder


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"bucket+file:{tmp_path / 'root'}"
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = uuid.uuid4().hex[:8]
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"


def _with_option(uri: str, option: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{option}"


def _log(store: BucketTrackingStore, run_id: str, key: str, start: int, count: int) -> None:
    for first in range(start, start + count, 1_000):  # MLflow's batch limit
        points = range(first, min(first + 1_000, start + count))
        store.log_batch(run_id, [Metric(key, 1 / (i + 1), 1_000 + i, i) for i in points], [], [])
    store.flush()


def _cached_bytes(cache_dir: Path) -> int:
    return sum(
        p.stat().st_size
        for folder in ("segments", "histories")
        for p in (cache_dir / folder).rglob("*")
        if p.is_file()
    )


def _history_copies(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "histories").rglob("*.values.npy"))


def test_a_refreshed_chart_of_a_live_run_keeps_one_history_copy(
    root_uri: str, cache_dir: Path
) -> None:
    writer = BucketTrackingStore(root_uri)
    experiment_id = writer.create_experiment(f"live-{uuid.uuid4().hex[:6]}")
    run_id = writer.create_run(experiment_id, "user", 0, [], "live").info.run_id
    _log(writer, run_id, "loss", 0, LONG)
    reader = BucketTrackingStore(root_uri)  # the UI's server process
    for refresh in range(3):
        history = reader.get_metric_history_bulk_interval([run_id], "loss", 320, None, None)
        assert history[-1].step == LONG + 1_000 * refresh - 1
        assert len(_history_copies(cache_dir)) == 1
        _log(writer, run_id, "loss", LONG + 1_000 * refresh, 1_000)  # the run goes on
    (copy,) = _history_copies(cache_dir)
    assert len(list(copy.parent.iterdir())) == 3  # steps, timestamps, values: nothing else


def test_the_caches_stay_within_their_bound(root_uri: str, cache_dir: Path) -> None:
    bound = 4 * MIB
    store = BucketTrackingStore(_with_option(root_uri, f"cache_max_bytes={bound}"))
    experiment_id = store.create_experiment(f"bound-{uuid.uuid4().hex[:6]}")
    run_id = store.create_run(experiment_id, "user", 0, [], "many").info.run_id
    keys = ["a", "b", "c"]
    for key in keys:
        _log(store, run_id, key, 0, LONG)

    for key in keys:
        reader = BucketTrackingStore(_with_option(root_uri, f"cache_max_bytes={bound}"))
        assert len(reader.get_metric_history(run_id, key)) == LONG
        assert _cached_bytes(cache_dir) <= bound
    # The most recently read history is the one kept; the others are read again on demand.
    assert len(_history_copies(cache_dir)) == 1
    again = BucketTrackingStore(root_uri).get_metric_history(run_id, "a")
    assert [m.step for m in again] == list(range(LONG))


def test_cache_folders_that_cannot_be_written_cost_one_warning_each(
    root_uri: str, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The caches are disposable: histories are read without them, never an OSError."""
    writer = BucketTrackingStore(root_uri)
    experiment_id = writer.create_experiment(f"nocache-{uuid.uuid4().hex[:6]}")
    run_id = writer.create_run(experiment_id, "user", 0, [], "long").info.run_id
    _log(writer, run_id, "loss", 0, LONG)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for folder in ("segments", "histories"):  # a path that cannot hold the folder
        (cache_dir / folder).write_text("not a folder")

    reader = BucketTrackingStore(root_uri)
    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.cache.segment_files"):
        for _ in range(2):
            history = reader.get_metric_history(run_id, "loss")
            assert [m.step for m in history] == list(range(LONG))
            chart = reader.get_metric_history_bulk_interval([run_id], "loss", 320, None, None)
            assert chart[-1].step == LONG - 1
        assert len(BucketTrackingStore(root_uri).get_metric_history(run_id, "loss")) == LONG
    warned = [m for m in caplog.messages if "cannot be used" in m]
    assert sorted(Path(m.split()[3]).parent.name for m in warned) == ["histories", "segments"]


def test_a_superseded_copy_stays_readable_where_it_is_mapped(cache_dir: Path) -> None:
    """Another process replacing a history never breaks a reader that has it mapped."""
    files = HistoryFiles(cache_dir / "histories" / "root")
    steps = np.arange(LONG, dtype=np.int64)
    columns = (steps, steps * 10, steps.astype(np.float64) / 2)
    files.put(["0", "run", "loss", "segment-1"], columns)
    mapped = files.get(["0", "run", "loss", "segment-1"])
    assert mapped is not None

    other_process = textwrap.dedent(
        """
        import sys, numpy as np
        from mlflow_plugin.cache.segment_files import HistoryFiles
        steps = np.arange(5, dtype=np.int64)
        HistoryFiles(sys.argv[1]).put(
            ["0", "run", "loss", "segment-1", "segment-2"], (steps, steps, steps * 1.0)
        )
        """
    )
    other = run_forked_python(other_process, str(cache_dir / "histories" / "root"), timeout=120)
    assert other.returncode == 0, other.stderr
    assert files.get(["0", "run", "loss", "segment-1"]) is None  # superseded: gone from disk
    assert int(mapped[0].sum()) == int(steps.sum())  # yet every page still reads
    assert float(mapped[2][-1]) == (LONG - 1) / 2


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("", DEFAULT_CACHE_MAX_BYTES),
        ("?cache_max_bytes=5000", 5000),
        ("?cache_max_bytes=2G", 2 << 30),
    ],
)
def test_the_bound_comes_from_the_uri_then_the_environment(
    option: str, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_BUCKET_CACHE_MAX_BYTES", raising=False)
    assert cache_max_bytes(parse_store_uri(f"bucket+file:/data{option}")) == expected
    monkeypatch.setenv("MLFLOW_BUCKET_CACHE_MAX_BYTES", "512MiB")
    from_env = 512 * MIB if not option else expected
    assert cache_max_bytes(parse_store_uri(f"bucket+file:/data{option}")) == from_env


@pytest.mark.parametrize(
    "value", ["0", "-1", "lots", "1X", "inf", "-inf", "nan", "1e400", "1e300G"]
)
def test_a_bad_bound_is_refused_clearly(value: str) -> None:
    with pytest.raises(MlflowException, match="cache_max_bytes") as caught:
        cache_max_bytes(parse_store_uri(f"bucket+file:/data?cache_max_bytes={value}"))
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLFLOW_BUCKET_CACHE_MAX_BYTES", "inf"),
        ("MLFLOW_BUCKET_CACHE_MAX_BYTES", "1e400"),
        ("MLFLOW_BUCKET_FLUSH_POINTS", "inf"),
        ("MLFLOW_BUCKET_FLUSH_INTERVAL", "nan"),
    ],
)
def test_a_store_with_an_infinite_setting_is_refused_clearly(
    root_uri: str, variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(MlflowException, match=variable) as caught:
        BucketTrackingStore(root_uri)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"

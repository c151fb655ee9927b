"""docs/ANALYTICS.md's DuckDB query answers exactly what ``get_metric_history`` answers.

The SQL is read from the document's marked blocks, so the page and this test cannot
drift. Real data is logged through MLflow's client on a ``bucket+file`` folder and on
S3 (moto, read by DuckDB's httpfs extension from its PyPI wheel), flushed often enough
for the store to compact, with the compaction's deletes refused (a bucket policy
without ``s3:DeleteObject``: the superseded segments stay beside the merged one) and a
segment a dead writer stored but never entered; then ``gc`` removes both. At each stage
the query equals MLflow's answer for every run and key, as multisets, while a plain
glob over the folder counts more than the manifests name.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.tracking._tracking_service.utils import _get_store

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, read_document
from mlflow_plugin.format.segments import MetricPoint, encode_segment
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.objectstore.errors import AccessDenied
from mlflow_plugin.tracking.context import COMPACT_AFTER_SEGMENTS
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import TEST_CREDENTIALS, S3Endpoint

DOC = Path(__file__).resolve().parents[2] / "docs" / "ANALYTICS.md"
T0 = 1_700_000_000_000

Point = tuple[str, str, int, int, float | str]  # run id, key, step, timestamp, value


def _tested_block(marker: str) -> str:
    """The SQL of the fenced block that follows ``<!-- tested: MARKER ... -->``."""
    found = re.search(
        rf"<!-- tested: {re.escape(marker)}\b[^>]*-->\n```sql\n(.*?)```", DOC.read_text(), re.S
    )
    assert found is not None, f"docs/ANALYTICS.md has no tested block {marker!r}"
    return found.group(1)


@dataclass
class Root:
    uri: str  # what MLflow is given
    duckdb_root: str  # what the macro is given
    duckdb: duckdb.DuckDBPyConnection  # the macro defined, able to read the root


def _connect_s3(endpoint: S3Endpoint, extensions: Path) -> duckdb.DuckDBPyConnection:
    """A connection set up as the document's S3 block says, httpfs from its PyPI wheel."""
    connection = duckdb.connect()
    wheel = resources.files("duckdb_extension_httpfs") / "extensions" / f"v{duckdb.__version__}"
    # INSTALL from the file, into a scratch folder: the block's `LOAD httpfs` then works.
    connection.execute(f"SET extension_directory = '{extensions}'")
    connection.execute(f"INSTALL '{wheel / 'httpfs.duckdb_extension'}'")
    settings = (
        _tested_block("the S3 settings")
        .replace("YOUR_KEY_ID", TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"])
        .replace("YOUR_SECRET", TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        .replace("HOST:PORT", endpoint.url.split("://", 1)[1])
    )
    connection.execute(settings)
    return connection


@pytest.fixture(params=["file", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Root]:
    if request.param == "file":
        folder = tmp_path / "root"
        uri = f"bucket+file://{folder}"
        connection, duckdb_root = duckdb.connect(), str(folder)
    else:
        endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
        bucket, prefix = endpoint.shared_bucket, f"analytics/{uuid.uuid4().hex}"
        uri = f"bucket+s3://{bucket}/{prefix}?endpoint_url={endpoint.url}"
        connection = _connect_s3(endpoint, tmp_path / "duckdb-extensions")
        duckdb_root = f"s3://{bucket}/{prefix}"
    connection.execute(_tested_block("the metric_history macro"))
    yield Root(uri, duckdb_root, connection)
    connection.close()


def _value(value: float) -> float | str:
    return "NaN" if math.isnan(value) else value  # NaN != NaN would defeat the multisets


def _queried(root: Root, experiment_id: str) -> Counter[Point]:
    rows = root.duckdb.execute(
        "SELECT run_id, key, step, timestamp, value FROM metric_history(?, ?)",
        [root.duckdb_root, experiment_id],
    ).fetchall()
    return Counter((r, k, s, t, _value(v)) for r, k, s, t, v in rows)


def _mlflow_answer(client: MlflowClient, run_ids: list[str]) -> Counter[Point]:
    """``get_metric_history`` for every run and every key it logged."""
    answer: Counter[Point] = Counter()
    for run_id in run_ids:
        for key in client.get_run(run_id).data.metrics:
            answer.update(
                (run_id, key, m.step, m.timestamp, _value(m.value))
                for m in client.get_metric_history(run_id, key)
            )
    return answer


def _stored_rows(root: Root, experiment_id: str) -> int:
    """Rows of every Parquet file in the experiment's metric folders: a plain glob."""
    glob = f"{root.duckdb_root}/experiments/{experiment_id}/metrics/*/*.parquet"
    count = root.duckdb.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchone()
    assert count is not None
    return int(count[0])


def _manifest(objects: ObjectStore, experiment_id: str, run_id: str) -> list[Document]:
    segments: list[Document] = read_document(objects, keys.run_key(experiment_id, run_id))[0][
        "segments"
    ]
    return segments


def _manifest_rows(objects: ObjectStore, experiment_id: str, run_ids: list[str]) -> int:
    return sum(s["rows"] for run_id in run_ids for s in _manifest(objects, experiment_id, run_id))


def _log_flush(client: MlflowClient, store: BucketTrackingStore, runs: list[str], n: int) -> None:
    """Flush ``n`` of each run's points: one segment per run, keys with ``/``, steps
    logged again with other values, identical points logged twice, NaN and infinity."""
    for number, run_id in enumerate(runs):
        base = 100.0 * number + n
        client.log_batch(
            run_id,
            metrics=[
                Metric("loss", 1.0 / (base + 1), T0 + n, n),
                Metric("a/b", base, T0 + n, n // 3),  # a step logged three times
                Metric("a/b", base, T0 + n, n // 3),  # identical, in the same batch
                Metric("Loss/train/epoch", 0.5 * number, T0, 0),  # identical in every flush
                Metric("nan/metric", math.nan if n % 2 else math.inf, T0 + n % 4, 7),
            ],
        )
    store.flush()


def _client(uri: str) -> tuple[MlflowClient, BucketTrackingStore]:
    # Flushed only when the test says, so that each flush is one segment per run.
    uri += ("&" if "?" in uri else "?") + "flush_interval=3600"
    store = _get_store(uri)  # the instance MLflow's client uses for this URI
    assert isinstance(store, BucketTrackingStore)
    return MlflowClient(uri), store


def test_the_documented_query_returns_get_metric_history_through_compaction_and_gc(
    root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = _client(root.uri)
    objects = store.object_store
    experiment = client.create_experiment("analytics")
    runs = [client.create_run(experiment).info.run_id for _ in range(3)]
    other_experiment = client.create_experiment("elsewhere")
    other_run = client.create_run(other_experiment).info.run_id
    client.log_metric(other_run, "loss", 9.0, T0, 0)

    # Up to the compaction threshold: many segments per run, none merged yet.
    for n in range(COMPACT_AFTER_SEGMENTS):
        _log_flush(client, store, runs, n)
    assert all(len(_manifest(objects, experiment, r)) == COMPACT_AFTER_SEGMENTS for r in runs)
    # A deleted run still answers get_metric_history, and the query keeps it.
    client.delete_run(runs[2])
    expected = _mlflow_answer(client, runs)
    assert {run_id for run_id, *_ in expected} == set(runs)
    assert _queried(root, experiment) == expected
    assert _stored_rows(root, experiment) == _manifest_rows(objects, experiment, runs)

    # Compaction whose deletes the bucket refuses: merged segment swapped in, the
    # superseded ones left beside it.
    def refused(key: str) -> None:
        raise AccessDenied(f"no s3:DeleteObject for {key}")

    live = runs[:2]
    with monkeypatch.context() as patched:
        patched.setattr(objects, "delete", refused)
        for n in range(COMPACT_AFTER_SEGMENTS, COMPACT_AFTER_SEGMENTS + 3):
            _log_flush(client, store, live, n)
    for run_id in live:
        names = [s["name"] for s in _manifest(objects, experiment, run_id)]
        assert len(names) == 3 and names[0].startswith("c"), names  # merged, then two more
    # A writer that died between storing its segment and entering it in the manifest.
    dead = [MetricPoint("loss", -1.0, T0 + 999, 999), MetricPoint("never", 1.0, T0, 0)]
    objects.put(
        keys.metric_segment_key(experiment, runs[0], "deadwriter-0000000001"),
        encode_segment("deadwriter-0000000001", dead)[0],
    )

    expected = _mlflow_answer(client, runs)
    assert _queried(root, experiment) == expected
    # The join matters: a plain glob counts the merged points twice, and the dead writer's.
    merged_rows = sum(_manifest(objects, experiment, r)[0]["rows"] for r in live)
    named_rows = _manifest_rows(objects, experiment, runs)
    assert _stored_rows(root, experiment) == named_rows + merged_rows + len(dead)

    # gc (grace period 0: the leftovers were written seconds ago) removes both leftovers.
    result = subprocess.run(
        [sys.executable, "-m", "mlflow_plugin", "gc", root.uri, "--grace-hours", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    leftovers = len(live) * (COMPACT_AFTER_SEGMENTS + 1) + 1
    assert f"  orphan metric segments: {leftovers}\n" in result.stdout, result.stdout
    assert _stored_rows(root, experiment) == _manifest_rows(objects, experiment, runs)
    assert _mlflow_answer(client, runs) == expected
    assert _queried(root, experiment) == expected

    # Each experiment answers for its own runs only; "*" reads them all.
    elsewhere = _mlflow_answer(client, [other_run])
    assert _queried(root, other_experiment) == elsewhere
    assert _queried(root, "*") == expected + elsewhere

"""Logging cost of the bucket store against MLflow's own stores, measured side by side.

    .venv/bin/python benchmarks/logging_overhead.py          # about 2-4 minutes on 2 cores

Prints ratios against anchors measured in the same run (never absolute targets):
1. ``mlflow.log_metric`` per call on bucket+file and bucket+s3 (moto server) vs a
   store whose ``log_batch`` does nothing (MLflow's own client overhead, the floor)
   and vs ``sqlite:///``.
2. ``MlflowClient.log_batch`` of 1,000 metrics vs ``sqlite:///``.
3. 1,000,000 points (10 metrics x 100,000 steps) through ``log_batch``: wall time,
   PUT/GET requests against the S3 endpoint, bytes stored per point vs the sqlite file.
4. Time for ``end_run`` to make everything durable.
5. ``log_metric`` latency while the S3 endpoint is unreachable, and nothing lost after.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.tracking._tracking_service.utils import _tracking_store_registry

from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import (
    TEST_CREDENTIALS,
    S3Endpoint,
    interruptible_moto_endpoint,
    moto_process_endpoint,
)

os.environ.update(TEST_CREDENTIALS)
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines


class DoNothingStore(BucketTrackingStore):
    """The floor: a store whose log_batch returns at once."""

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        return None


_tracking_store_registry.register(
    "noop+file",
    lambda store_uri, artifact_uri=None: DoNothingStore(
        store_uri.replace("noop+file", "bucket+file", 1), artifact_uri
    ),
)


def per_call_us(uri: str, calls: int) -> tuple[float, float]:
    """Median-of-3 microseconds per mlflow.log_metric, and seconds for end_run."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"overhead-{uuid.uuid4().hex[:6]}")
    samples = []
    end_run_s = 0.0
    for _ in range(3):
        mlflow.start_run()
        started = time.perf_counter()
        for step in range(calls):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        samples.append((time.perf_counter() - started) / calls * 1e6)
        started = time.perf_counter()
        mlflow.end_run()
        end_run_s = time.perf_counter() - started
    return statistics.median(samples), end_run_s


def batch_ms(uri: str, batches: int) -> float:
    client = MlflowClient(uri)
    run_id = client.create_run(
        client.create_experiment(f"batch-{uuid.uuid4().hex[:6]}")
    ).info.run_id
    started = time.perf_counter()
    for b in range(batches):
        metrics = [Metric(f"m{i % 10}", float(i), 1000 + b, b * 100 + i // 10) for i in range(1000)]
        client.log_batch(run_id, metrics=metrics)
    elapsed = time.perf_counter() - started
    client.set_terminated(run_id)
    return elapsed / batches * 1e3


def count_requests(endpoint: S3Endpoint) -> Counter[str]:
    counts: Counter[str] = Counter()
    client = s3_client(S3ClientSettings(endpoint_url=endpoint.url, region="us-east-1"))

    def count(event_name: str, **_: Any) -> None:
        counts[event_name.rsplit(".", 1)[-1]] += 1

    client.meta.events.register("before-send.s3", count)
    return counts


_noise = random.Random(0)


def curve(step: int, k: int) -> float:
    """A training-like curve: a decay plus noise (noise is what costs bytes in storage)."""
    return 1 / (1 + step / 1000) + k + _noise.gauss(0, 0.01)


def million_points(client: MlflowClient, blocks: int = 100) -> tuple[str, float, float]:
    """Log ``blocks`` x 10,000 points (10 metrics); return (run id, logging s, end_run s)."""
    experiment_id = client.create_experiment(f"million-{uuid.uuid4().hex[:6]}")
    run_id = client.create_run(experiment_id).info.run_id
    started = time.perf_counter()
    for step_block in range(blocks):  # blocks x 1,000 steps x 10 metrics
        for chunk in range(10):
            base = step_block * 1000 + chunk * 100
            metrics = [
                Metric(f"metric_{k}", curve(base + s, k), 1_795_000_000_000 + base + s, base + s)
                for s in range(100)
                for k in range(10)
            ]
            client.log_batch(run_id, metrics=metrics)
    logging_s = time.perf_counter() - started
    started = time.perf_counter()
    client.set_terminated(run_id)
    return run_id, logging_s, time.perf_counter() - started


OUTAGE_CALLS = 6000


def outage_latency() -> tuple[float, float, float, bool]:
    """p50/p99/max microseconds of log_metric while the endpoint is down; all points kept?"""
    with interruptible_moto_endpoint("outage") as endpoint:
        spool = tempfile.mkdtemp()
        uri = f"bucket+s3://outage/run?endpoint_url={endpoint.url}&spool_dir={spool}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("outage")
        run = mlflow.start_run()
        mlflow.log_metric("warmup", 0.0)
        endpoint.down()
        latencies = []
        for step in range(OUTAGE_CALLS):
            started = time.perf_counter()
            mlflow.log_metric("loss", float(step), step=step)
            latencies.append((time.perf_counter() - started) * 1e6)
            if step % 500 == 0:
                time.sleep(1.0)  # a training step's worth of time: the flusher keeps failing
        endpoint.up()
        mlflow.end_run()
        kept = len(MlflowClient(uri).get_metric_history(run.info.run_id, "loss")) == OUTAGE_CALLS
    latencies.sort()
    return (
        statistics.median(latencies),
        latencies[int(len(latencies) * 0.99)],
        latencies[-1],
        kept,
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    root = tempfile.mkdtemp(prefix="logging-overhead-")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, MLflow {mlflow.__version__}"
    )
    with moto_process_endpoint() as endpoint:
        bucket = endpoint.create_bucket("bench")
        s3_uri = f"bucket+s3://{bucket}/bench?endpoint_url={endpoint.url}&spool_dir={root}/spool"
        sqlite_uri = f"sqlite:///{root}/mlflow.db"

        print("\n1. mlflow.log_metric, microseconds per call (median of 3 x N calls)")
        floor, _ = per_call_us(f"noop+file://{root}/noop", 5000)
        sqlite, _ = per_call_us(sqlite_uri, 300)
        local, _ = per_call_us(f"bucket+file://{root}/file", 5000)
        s3, _ = per_call_us(s3_uri, 5000)
        print(f"   {'store':<26}{'us/call':>10}{'x floor':>10}{'faster than sqlite':>22}")
        for name, value in [
            ("do-nothing store (floor)", floor),
            ("sqlite:///", sqlite),
            ("bucket+file", local),
            ("bucket+s3 (moto)", s3),
        ]:
            print(f"   {name:<26}{value:>10.1f}{value / floor:>10.2f}{sqlite / value:>21.1f}x")
        for name, value in [("bucket+file", local), ("bucket+s3", s3)]:
            print(
                f"   target {name}: <= 1.3x floor and >= 20x faster than sqlite: "
                f"{verdict(value <= 1.3 * floor and sqlite / value >= 20)}"
            )

        print("\n2. MlflowClient.log_batch of 1,000 metrics, milliseconds per call")
        sqlite_batch = batch_ms(sqlite_uri, 20)
        rows = [
            ("sqlite:///", sqlite_batch),
            ("bucket+file", batch_ms(f"bucket+file://{root}/file", 200)),
            ("bucket+s3 (moto)", batch_ms(s3_uri, 200)),
        ]
        for name, value in rows:
            print(
                f"   {name:<26}{value:>10.3f} ms{sqlite_batch / value:>10.1f}x faster than sqlite"
            )

        print("\n3. 1,000,000 points (10 metrics x 100,000 steps) through log_batch")
        counts = count_requests(endpoint)
        client = MlflowClient(s3_uri)
        run_id, logging_s, end_s = million_points(client)
        store = BucketTrackingStore(s3_uri)
        experiment_id = store.get_run(run_id).info.experiment_id
        prefix = f"experiments/{experiment_id}/metrics/"
        stored = sum(info.size for info in store.object_store.list(prefix))
        # sqlite needs minutes for 1M points: 100,000 give its bytes per point (linear).
        sqlite_client = MlflowClient(f"sqlite:///{root}/million.db")
        sqlite_client.search_experiments()
        empty_db = os.path.getsize(f"{root}/million.db")
        _, sqlite_s, _ = million_points(sqlite_client, blocks=10)
        sqlite_bytes = (os.path.getsize(f"{root}/million.db") - empty_db) * 10
        puts = counts["PutObject"] + counts["UploadPart"]
        print(f"   bucket+s3: {logging_s:.1f} s of logging, {puts} PUT, {counts['GetObject']} GET")
        print(
            f"   bytes stored per point: {stored / 1e6:.2f} (sqlite: {sqlite_bytes / 1e6:.1f}, "
            f"{sqlite_bytes / stored:.0f}x more; sqlite logs 1M points in ~{sqlite_s * 10:.0f} s)"
        )
        print(
            f"   target <= 200 PUT: {verdict(puts <= 200)}; <= 12 bytes/point: "
            f"{verdict(stored / 1e6 <= 12)}; >= 5x smaller than sqlite: "
            f"{verdict(sqlite_bytes / stored >= 5)}"
        )

        print("\n4. end_run until everything is durable")
        print(f"   after the 1,000,000 points: {end_s * 1000:.0f} ms")

    print("\n5. log_metric while the S3 endpoint is unreachable")
    p50, p99, worst, kept = outage_latency()
    print(
        f"   {OUTAGE_CALLS} calls over ~12 s: p50 {p50:.0f} us, p99 {p99:.0f} us, "
        f"max {worst / 1000:.1f} ms; all points there after it came back: {kept}"
    )
    print(f"   target p99 < 1 ms: {verdict(p99 < 1000)}; nothing lost: {verdict(kept)}")


if __name__ == "__main__":
    main()

"""The endpoint goes away mid-training and comes back: logging never waits for it.

A training loop logs a batch of metrics (and a tag now and then) every few
milliseconds while the S3 endpoint is down for ``OUTAGE_S`` seconds. No ``log_batch``
call may take longer than ``LATENCY_BOUND_S`` (each call only appends to memory and
the spool), and once the endpoint is back every point and tag arrives, once.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.faults.proxy import FaultProxy
from tests.servers import interruptible_moto_endpoint
from tests.torture.figures import Figures, Point, compare_points, record, size, stored_points

pytestmark = pytest.mark.torture

OUTAGE_S = size(3.0, 60.0)
BEFORE_S = size(1.0, 5.0)
AFTER_S = size(1.5, 10.0)
STEP_PAUSE_S = 0.005
# A call appends to memory and to the spool file. Waiting for the endpoint would take
# botocore's retries (seconds) or its connect timeout (10 s); the bound leaves room for a
# loaded 2-core machine, where another thread's fsync or the GIL can hold a call 0.1 s.
LATENCY_BOUND_S = float(os.environ.get("MLFLOW_BUCKET_TORTURE_LATENCY_BOUND", "1.0"))


def _batch(step: int) -> tuple[list[Metric], list[RunTag]]:
    timestamp = 1_700_000_000_000 + step
    metrics = [Metric("loss", 1 / (step + 1), timestamp, step), Metric("lr", 0.1, timestamp, step)]
    return metrics, [RunTag(f"checkpoint{step}", str(step))] if step % 100 == 0 else []


@pytest.mark.timeout(size(300, 900))
def test_an_outage_mid_training_delays_nothing_and_loses_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    with interruptible_moto_endpoint(bucket) as endpoint, FaultProxy(endpoint.url) as proxy:
        # Through a proxy without faults: it counts the requests and botocore's retries.
        uri = f"bucket+s3://{bucket}/root?endpoint_url={proxy.url}&flush_interval=0.5"
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("outage")).info.run_id
        client.log_param(run_id, "phase", "outage")  # the run is checked before training
        worst_during_outage = 0.0
        latencies: list[float] = []
        step = 0
        outage = (BEFORE_S, BEFORE_S + OUTAGE_S)
        training_started = time.monotonic()
        down = False
        try:
            while (elapsed := time.monotonic() - training_started) < outage[1] + AFTER_S:
                if not down and outage[0] <= elapsed < outage[1]:
                    endpoint.down()
                    down = True
                elif down and elapsed >= outage[1]:
                    endpoint.up()
                    down = False
                metrics, tags = _batch(step)
                call_started = time.perf_counter()
                client.log_batch(run_id, metrics=metrics, tags=tags)
                latency = time.perf_counter() - call_started
                latencies.append(latency)
                if down:
                    worst_during_outage = max(worst_during_outage, latency)
                step += 1
                time.sleep(STEP_PAUSE_S)
        finally:
            if down:
                endpoint.up()
        ended = time.perf_counter()
        client.set_terminated(run_id)  # uploads what is still buffered
        drain_s = time.perf_counter() - ended
        stats = proxy.stats

        direct_uri = f"bucket+s3://{bucket}/root?endpoint_url={endpoint.url}"
        store = BucketTrackingStore(direct_uri, recover_in_background=False)
        expected: set[Point] = {
            (m.key, m.step, m.timestamp, m.value) for n in range(step) for m in _batch(n)[0]
        }
        stored = stored_points(store.object_store, run_id)
        lost, duplicated, unexpected = compare_points(expected, stored)
        direct = MlflowClient(direct_uri)
        history = direct.get_metric_history(run_id, "loss")
        checkpoints = {k for k in direct.get_run(run_id).data.tags if k.startswith("checkpoint")}

    latencies.sort()
    worst, p99 = latencies[-1], latencies[int(len(latencies) * 0.99)]
    figures = Figures(
        f"endpoint down {OUTAGE_S:.0f} s",
        points_written=len(expected),
        points_read=sum(stored.values()),
        params=1,
        tags=len(checkpoints),
        lost=lost,
        duplicated=duplicated,
        notes=(
            f"{step} log_batch calls; p99 {p99 * 1000:.1f} ms, worst {worst * 1000:.1f} ms "
            f"({worst_during_outage * 1000:.1f} ms while down; bound "
            f"{LATENCY_BOUND_S * 1000:.0f} ms); final upload {drain_s:.1f} s"
        ),
    )
    figures.add_proxy(stats)
    record(figures, started)
    assert (lost, duplicated, unexpected) == (0, 0, 0)
    assert [m.step for m in history] == list(range(step))
    assert checkpoints == {f"checkpoint{n}" for n in range(0, step, 100)}
    assert worst < LATENCY_BOUND_S
    assert stats.retries > 0  # the flusher did meet the outage

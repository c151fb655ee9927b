"""Reading an experiment of 10,000 runs: the bucket store against MLflow's SQLite store.

    .venv/bin/python benchmarks/read_scale.py          # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/read_scale.py --runs 100000 --skip-history  # over 2 hours

Both backends hold the same data: 10,000 finished runs (20 params, 10 tags and
5 metrics of 3 steps each, plus ``mlflow.runName``) and one run with a metric of
1,000,000 points (none with ``--skip-history``), under the same run ids. SQLite gets
its rows by bulk insert into the tables ``SqlAlchemyStore`` created; the bucket (a moto
server in its own process) gets its run documents and metric segments from the format
layer on 16 threads, built by the same pure functions the store applies (one reference
run goes through ``create_run`` + ``log_batch`` + ``update_run_info`` and must produce
the same document), without change-journal entries (as in a bucket written more than
a week ago), and the long metric through ``log_batch`` in chunks of 1,000.

Prints ratios against ``sqlite:///`` measured in the same run (never absolute-only):
1. ``search_runs`` with a metric filter, a param filter and an order by metric, the
   first page of 100 and page 50: warm (index synced, within its staleness bound,
   median), and cold (a new store on an empty index folder: the first search, full
   sync included; the bucket holds no index checkpoint yet). Then, once the checkpoint
   that cold sync writes in the background is in the bucket, cold on a new machine (an
   empty index folder, a new store): its first search, which starts from the
   checkpoint. Also the search once the staleness bound has passed (nothing new).
   Then the S3 requests per minute of a warm UI: the experiment page's search every
   2 s for 60 s, in this process through the SDK, counted exactly (a botocore hook on
   the store's S3 client) by operation and folder; with the change journal, and as
   every scope under 1,000 runs is still kept (re-listed in full once per bound).
2. ``get_metric_history`` of the 1,000,000-point metric (paged as ``MlflowClient``
   pages it) and ``get_metric_history_bulk_interval`` with ``max_results=320``.
3. The experiment page's ``POST /ajax-api/2.0/mlflow/runs/search`` and the chart's
   ``GET .../metrics/get-history-bulk-interval`` against ``mlflow server --workers 1``
   (an empty index folder: its first search starts from the bucket's checkpoint).
4. Peak memory (VmHWM, the server process and its children) of each server.
Targets are the issue's: 10,000 runs (or fewer), then 100,000 (up to that size).
Ends with a markdown table, also written to /tmp/readme-sections/read_scale.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, RunTag, ViewType
from mlflow.store.tracking import GET_METRIC_HISTORY_MAX_RESULTS
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.search_utils import SearchUtils
from mlflow.utils.uri import append_to_uri_path

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, create_document, read_document
from mlflow_plugin.format.run_batches import RunBatch, apply_batch, segment_name
from mlflow_plugin.format.segments import MetricPoint, decode_segment, encode_segment
from mlflow_plugin.index import checkpoints
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.objectstore.observed import ObservedObjectStore
from mlflow_plugin.objectstore.s3 import S3ObjectStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import TEST_CREDENTIALS, mlflow_server, moto_process_endpoint

os.environ.update(TEST_CREDENTIALS)
logging.getLogger("werkzeug").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.WARNING)

T = TypeVar("T")

RUNS = 10_000
HISTORY_POINTS = 1_000_000
PARAMS, TAGS, METRICS, STEPS = 20, 10, 5, 3
EXPERIMENT = "read-scale"
USER = "bench"
BASE_TIME = 1_790_000_000_000
# ~80% of runs have p3 = v1 and ~80% have m0 > 0.2: ~6,400 matches, so page 50 is full.
FILTER = "metrics.m0 > 0.2 and params.p3 = 'v1'"
ORDER_BY = ["metrics.m1 DESC"]
PAGE = 100
PAGE_50 = 49 * PAGE
HISTORY_KEY = "loss"
INTERVAL_POINTS = 320
LOADERS = 16
# What the 3.17 UI's experiment page posts (runs table, default sort).
UI_SEARCH: dict[str, Any] = {
    "filter": "",
    "run_view_type": "ACTIVE_ONLY",
    "max_results": 100,
    "order_by": ["attributes.start_time DESC"],
}
GIB = 1024**3
SERVER_START_TIMEOUT = 120.0
CHECKPOINT_WAIT_S = 600.0  # the automatic checkpoint of a cold sync, at 100,000 runs too
POLL_EVERY_S = 2.0  # the UI polls; the index's default staleness bound is 2 s too
POLL_FOR_S = 60.0
README_SECTION = Path("/tmp/readme-sections/read_scale.md")


class DataMismatch(Exception):
    """The two backends (or the bulk loader and the store) do not hold the same data."""


# -- the data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One run, as both backends must hold it."""

    run_id: str
    name: str
    start_time: int
    end_time: int
    params: dict[str, str]
    tags: dict[str, str]  # without mlflow.runName, which create_run adds
    points: list[MetricPoint]  # in logging order

    def latest(self) -> dict[str, MetricPoint]:
        """MLflow's latest value per key (points are logged in increasing steps and times)."""
        return {p.key: p for p in self.points}


def make_runs(count: int, seed: int = 0) -> list[RunSpec]:
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        start = BASE_TIME + i * 1000
        params = {f"p{j}": f"value-{j}-{rng.randrange(10)}" for j in range(PARAMS)}
        params["p3"] = "v1" if rng.random() < 0.8 else "v0"
        tags = {f"t{j}": f"tag-{j}-{i % 7}" for j in range(TAGS)}
        points = [
            MetricPoint(f"m{k}", rng.random(), start + 100 * step + k, step)
            for step in range(STEPS)
            for k in range(METRICS)
        ]
        specs.append(
            RunSpec(
                run_id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                name=f"run-{i:05d}",
                start_time=start,
                end_time=start + 60_000,
                params=params,
                tags=tags,
                points=points,
            )
        )
    return specs


def history_values(count: int) -> Iterator[MetricPoint]:
    noise = random.Random(1)
    start = BASE_TIME + 10**9
    for step in range(count):
        value = 1 / (1 + step / 1000) + noise.gauss(0, 0.01)
        yield MetricPoint(HISTORY_KEY, value, start + step, step)


# -- the bucket ----------------------------------------------------------------------------


def run_document(
    spec: RunSpec, experiment_id: str, artifact_location: str, writer_id: str, sequence: int
) -> tuple[Document, bytes]:
    """The run document and segment that create_run, log_batch and update_run_info write."""
    doc: Document = {  # BucketTrackingStore.create_run's document
        "run_id": spec.run_id,
        "experiment_id": experiment_id,
        "run_name": spec.name,
        "user_id": USER,
        "status": RunStatus.to_string(RunStatus.RUNNING),
        "start_time": spec.start_time,
        "end_time": None,
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "deleted_time": None,
        "artifact_uri": append_to_uri_path(artifact_location, spec.run_id, "artifacts"),
        "params": {},
        "tags": {**spec.tags, MLFLOW_RUN_NAME: spec.name},
        "latest_metrics": {},
        "segments": [],
        "inputs": [],
        "model_inputs": [],
        "model_outputs": [],
        "writers": {},
    }
    doc["params"].update(spec.params)  # log_batch: params first, at once
    batch = RunBatch(spec.run_id, experiment_id, writer_id, sequence, list(spec.points), {})
    data, segment = encode_segment(segment_name(writer_id, sequence), batch.points)
    doc = apply_batch(doc, batch, segment)  # then the buffered metrics, one segment
    doc["status"] = RunStatus.to_string(RunStatus.FINISHED)  # update_run_info
    doc["end_time"] = spec.end_time
    # Format 3's logical clocks: when each tag and the status were acknowledged.
    clock = [spec.start_time * 1000, writer_id, 1]
    doc["tag_clocks"] = {key: clock for key in doc["tags"]}
    doc["status_clock"] = [spec.end_time * 1000, writer_id, 2]
    return doc, data


def write_run(
    store: ObjectStore,
    spec: RunSpec,
    experiment_id: str,
    artifact_location: str,
    writer_id: str,
    sequence: int,
) -> None:
    doc, segment = run_document(spec, experiment_id, artifact_location, writer_id, sequence)
    name = doc["segments"][0]["name"]
    store.put(keys.metric_segment_key(experiment_id, spec.run_id, name), segment)
    create_document(store, keys.run_location_key(spec.run_id), {"experiment_id": experiment_id})
    create_document(store, keys.run_key(experiment_id, spec.run_id), doc)


def through_the_store(store: BucketTrackingStore, experiment_id: str, spec: RunSpec) -> str:
    """Log ``spec`` with the store's own calls; return the run id it was given."""
    tags = [RunTag(k, v) for k, v in spec.tags.items()]
    run_id: str = store.create_run(
        experiment_id, USER, spec.start_time, tags, spec.name
    ).info.run_id
    metrics = [Metric(p.key, p.value, p.timestamp, p.step) for p in spec.points]
    store.log_batch(run_id, metrics, [Param(k, v) for k, v in spec.params.items()], [])
    store.update_run_info(run_id, RunStatus.FINISHED, spec.end_time, None)
    return run_id


def _shape(doc: Document) -> Document:
    """The document without what differs between writers: writer ids, segment names,
    when each writer was heard from, and the clocks' values (which fields carry a clock,
    and how many writers have a time, still count)."""
    shape = {**doc, "writers": sorted(doc["writers"].values())}
    shape["writer_times"] = len(doc.get("writer_times", {}))
    shape["tag_clocks"] = sorted(doc.get("tag_clocks", {}))
    shape["status_clock"] = "status_clock" in doc
    shape["segments"] = [{**s, "name": ""} for s in doc["segments"]]
    return shape


def check_reference_run(
    store: BucketTrackingStore, experiment_id: str, artifact_location: str, spec: RunSpec
) -> None:
    """The bulk loader writes exactly what the store's own calls write (ids aside)."""
    written, _ = read_document(store.object_store, keys.run_key(experiment_id, spec.run_id))
    segments = [
        decode_segment(
            store.object_store.get(
                keys.metric_segment_key(experiment_id, spec.run_id, s["name"])
            ).data
        )
        for s in written["segments"]
    ]
    built, data = run_document(spec, experiment_id, artifact_location, "0" * 16, 1)
    if (_shape(written), segments) != (_shape(built), [decode_segment(data)]):
        raise DataMismatch(
            f"the bulk-built run document differs from the store's:\n{written}\n{built}"
        )


@dataclass
class Built:
    experiment_id: str
    run_ids: list[str]
    history_run_id: str
    runs_s: float
    history_s: float


def build_bucket(store: BucketTrackingStore, specs: list[RunSpec], history: int) -> Built:
    experiment_id = store.create_experiment(EXPERIMENT)
    artifact_location = store.get_experiment(experiment_id).artifact_location
    started = time.perf_counter()
    reference = specs[0] = replace(
        specs[0], run_id=through_the_store(store, experiment_id, specs[0])
    )
    check_reference_run(store, experiment_id, artifact_location, reference)
    loader = uuid.uuid4().hex[:16]  # the bulk loader is one more writer
    # As in a bucket written long ago: no change-journal entries for the bulk-loaded runs
    # (gc collects entries after a week). Written now, they would all fall inside the
    # journal's margin and every poll of section 5 would list them again.
    objects = store.object_store
    unjournaled: ObjectStore = (
        objects.inner if isinstance(objects, ObservedObjectStore) else objects
    )
    with ThreadPoolExecutor(LOADERS) as pool:
        jobs = [
            pool.submit(write_run, unjournaled, spec, experiment_id, artifact_location, loader, n)
            for n, spec in enumerate(specs[1:], start=1)
        ]
        for job in jobs:
            job.result()
    runs_s = time.perf_counter() - started

    started = time.perf_counter()
    run = store.create_run(experiment_id, USER, BASE_TIME + 10**9, [], "million-points")
    run_id = run.info.run_id
    chunk: list[Metric] = []
    for p in history_values(history):
        chunk.append(Metric(p.key, p.value, p.timestamp, p.step))
        if len(chunk) == 1000:
            store.log_batch(run_id, chunk, [], [])
            chunk = []
    if chunk:
        store.log_batch(run_id, chunk, [], [])
    store.update_run_info(run_id, RunStatus.FINISHED, BASE_TIME + 2 * 10**9, None)
    store.flush()
    history_s = time.perf_counter() - started
    return Built(experiment_id, [s.run_id for s in specs], run_id, runs_s, history_s)


# -- sqlite --------------------------------------------------------------------------------


def _insert(connection: Any, table: Any, rows: list[dict[str, Any]], chunk: int = 50_000) -> None:
    for start in range(0, len(rows), chunk):
        connection.execute(table.__table__.insert(), rows[start : start + chunk])


def _run_row(
    run_id: str, name: str, start: int, end: int, experiment_id: str, artifact_location: str
) -> dict[str, Any]:
    return {  # SqlAlchemyStore.create_run's row, then update_run_info's status and end time
        "run_uuid": run_id,
        "name": name,
        "source_type": "UNKNOWN",
        "source_name": "",
        "entry_point_name": "",
        "user_id": USER,
        "status": RunStatus.to_string(RunStatus.FINISHED),
        "start_time": start,
        "end_time": end,
        "deleted_time": None,
        "source_version": "",
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "artifact_uri": append_to_uri_path(artifact_location, run_id, "artifacts"),
        "experiment_id": int(experiment_id),
    }


def _metric_row(run_id: str, p: MetricPoint) -> dict[str, Any]:
    return {
        "key": p.key,
        "value": p.value,
        "timestamp": p.timestamp,
        "step": p.step,
        "is_nan": False,
        "run_uuid": run_id,
    }


def build_sqlite(
    store: SqlAlchemyStore, specs: list[RunSpec], history_run: Any, history: int
) -> Built:
    experiment_id = store.create_experiment(EXPERIMENT)
    artifact_location = store.get_experiment(experiment_id).artifact_location
    started = time.perf_counter()
    runs, params, tags, latest, metrics = [], [], [], [], []
    for s in specs:
        runs.append(
            _run_row(s.run_id, s.name, s.start_time, s.end_time, experiment_id, artifact_location)
        )
        params += [{"key": k, "value": v, "run_uuid": s.run_id} for k, v in s.params.items()]
        tags += [
            {"key": k, "value": v, "run_uuid": s.run_id}
            for k, v in {**s.tags, MLFLOW_RUN_NAME: s.name}.items()
        ]
        latest += [_metric_row(s.run_id, p) for p in s.latest().values()]
        metrics += [_metric_row(s.run_id, p) for p in s.points]
    with store.engine.begin() as connection:
        for table, rows in [
            (SqlRun, runs),
            (SqlParam, params),
            (SqlTag, tags),
            (SqlLatestMetric, latest),
            (SqlMetric, metrics),
        ]:
            _insert(connection, table, rows)
    runs_s = time.perf_counter() - started

    started = time.perf_counter()
    info = history_run.info
    run_id = info.run_id
    with store.engine.begin() as connection:
        row = _run_row(
            run_id, info.run_name, info.start_time, info.end_time, experiment_id, artifact_location
        )
        _insert(connection, SqlRun, [row])
        _insert(
            connection,
            SqlTag,
            [{"key": k, "value": v, "run_uuid": run_id} for k, v in history_run.data.tags.items()],
        )
        points = list(history_values(history))
        if points:  # none with --skip-history
            _insert(connection, SqlLatestMetric, [_metric_row(run_id, points[-1])])
            _insert(connection, SqlMetric, [_metric_row(run_id, p) for p in points])
    history_s = time.perf_counter() - started
    return Built(experiment_id, [s.run_id for s in specs], run_id, runs_s, history_s)


def spot_check(bucket_uri: str, sqlite_uri: str, run_ids: list[str]) -> None:
    """Runs read back identically through MlflowClient from both backends (the histories of
    their metrics too, but for the long one: section 2 compares it)."""
    bucket, sqlite = MlflowClient(bucket_uri), MlflowClient(sqlite_uri)
    for run_id in run_ids:
        a, b = bucket.get_run(run_id), sqlite.get_run(run_id)
        fields = ["run_id", "run_name", "user_id", "status", "start_time", "end_time"]
        same = [getattr(a.info, f) for f in fields] == [getattr(b.info, f) for f in fields]
        same = same and a.info.lifecycle_stage == b.info.lifecycle_stage
        same = same and (a.data.params, a.data.tags) == (b.data.params, b.data.tags)
        same = same and a.data.metrics == b.data.metrics
        for key in sorted(set(a.data.metrics) - {HISTORY_KEY}):
            same = same and [m.to_proto() for m in bucket.get_metric_history(run_id, key)] == [
                m.to_proto() for m in sqlite.get_metric_history(run_id, key)
            ]
        if not same:
            raise DataMismatch(f"run {run_id} reads back differently:\n{a}\n{b}")


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float
    calls: int
    result: Any = field(repr=False, default=None)


def timed(
    call: Callable[[], T], repeats: int, budget_s: float = 15.0, warmup: bool = False
) -> Timing:
    """Median seconds of up to ``repeats`` calls (fewer once ``budget_s`` is spent), after
    one untimed call if ``warmup``."""
    samples = []
    result: Any = call() if warmup else None
    spent = time.perf_counter()
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - started)
        if time.perf_counter() - spent > budget_s:
            break
    return Timing(statistics.median(samples), len(samples), result)


def search_page(store: Any, experiment_id: str, offset: int) -> list[str]:
    token = SearchUtils.create_page_token(offset) if offset else None
    runs = store.search_runs(
        [experiment_id], FILTER, ViewType.ACTIVE_ONLY, PAGE, ORDER_BY, page_token=token
    )
    return [r.info.run_id for r in runs]


def full_history(store: Any, run_id: str, key: str) -> list[Metric]:
    """The whole history, paged as ``MlflowClient.get_metric_history`` pages it."""
    page = store.get_metric_history(run_id, key, GET_METRIC_HISTORY_MAX_RESULTS, None)
    points = list(page)
    while page.token is not None:
        page = store.get_metric_history(run_id, key, GET_METRIC_HISTORY_MAX_RESULTS, page.token)
        points += page
    return points


def interval(store: Any, run_id: str) -> list[tuple[int, float]]:
    sampled = store.get_metric_history_bulk_interval(
        run_ids=[run_id],
        metric_key=HISTORY_KEY,
        max_results=INTERVAL_POINTS,
        start_step=None,
        end_step=None,
    )
    return [(m.step, m.value) for m in sampled]


# -- servers -------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


@dataclass
class PeakMemory:
    """VmHWM of a server's processes, in bytes: the server (the ``mlflow server`` command
    and its uvicorn worker) and any other children (MLflow's job runner on SQL backends)."""

    server: int = 0
    others: int = 0
    other_processes: int = 0

    @property
    def total(self) -> int:
        return self.server + self.others

    def describe(self) -> str:
        text = f"{self.total / 2**20:.0f} MiB"
        if self.other_processes:
            text += (
                f" (server {self.server / 2**20:.0f} MiB + {self.other_processes} job-runner "
                f"processes {self.others / 2**20:.0f} MiB)"
            )
        return text


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wait_until_settled(pid: int, timeout: float = 120.0) -> float:
    """Wait until the server's processes stop starting up (MLflow's job runner spawns a
    few after /health answers); return the seconds waited."""
    started = time.monotonic()
    quiet = 0
    before = cpu_seconds(process_tree(pid))
    while quiet < 2 and time.monotonic() - started < timeout:
        time.sleep(1.0)
        after = cpu_seconds(process_tree(pid))
        quiet = quiet + 1 if after - before < 0.1 else 0
        before = after
    return time.monotonic() - started


def peak_memory(pid: int) -> PeakMemory:
    """VmHWM of ``pid`` and its descendants."""
    peak = PeakMemory()
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{member}/status").read_text().splitlines()
            hwm = sum(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
            if member == pid or b"uvicorn" in command:
                peak.server += hwm
            else:
                peak.others += hwm
                peak.other_processes += 1
    return peak


@dataclass
class ServerResult:
    first_search_s: float
    search: Timing
    first_chart_s: float
    chart: Timing
    peak: PeakMemory


def measure_server(uri: str, built: Built, workdir: Path, charts: bool) -> ServerResult:
    workdir.mkdir(parents=True)
    # The server's index folder starts empty (a new machine): the bucket's newest
    # checkpoint, left by section 1, is what its first search starts from.
    index = {"MLFLOW_BUCKET_INDEX_DIR": str(workdir / "index")}
    with (
        mlflow_server(uri, workdir=workdir, env=index, timeout=SERVER_START_TIMEOUT) as server,
        requests.Session() as http,
    ):
        url, process = server.url, server.process
        wait_until_settled(process.pid)

        def search() -> list[str]:
            body = {"experiment_ids": [built.experiment_id], **UI_SEARCH}
            response = http.post(f"{url}/ajax-api/2.0/mlflow/runs/search", json=body, timeout=600)
            response.raise_for_status()
            return [run["info"]["run_id"] for run in response.json()["runs"]]

        def chart() -> list[int]:
            params: dict[str, str | int] = {
                "run_ids": built.history_run_id,
                "metric_key": HISTORY_KEY,
                "max_results": INTERVAL_POINTS,
            }
            response = http.get(
                f"{url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                params=params,
                timeout=600,
            )
            response.raise_for_status()
            return [m["step"] for m in response.json()["metrics"]]

        first_search = timed(search, 1)  # the bucket's includes the index's first sync
        searches = timed(search, 5)
        first_chart = timed(chart, 1) if charts else Timing(0.0, 0, [])
        charted = timed(chart, 5) if charts else Timing(0.0, 0, [])
        searches.result = (searches.result, charted.result)
        return ServerResult(
            first_search.seconds, searches, first_chart.seconds, charted, peak_memory(process.pid)
        )


# -- report --------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    bucket_s: float
    sqlite_s: float | None  # None: no sqlite counterpart
    target: str = ""
    met: bool | None = None
    unit: str = "s"  # or "bytes", "requests"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "NOT met")


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    if unit == "requests":
        return f"{value:.0f}"
    return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.1f} s"


def ratio(row: Row) -> str:
    if row.sqlite_s is None:
        return ""
    value = row.bucket_s / row.sqlite_s
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def print_rows(rows: list[Row]) -> None:
    width = max(len(row.what) for row in rows) + 2
    print(f"   {'':<{width}}{'bucket+s3':>11}{'sqlite':>11}{'bucket/sqlite':>15}   target")
    for row in rows:
        target = f"{row.target}: {verdict(row.met)}" if row.target else ""
        bucket, sqlite = fmt(row.bucket_s, row.unit), fmt(row.sqlite_s, row.unit)
        print(f"   {row.what:<{width}}{bucket:>11}{sqlite:>11}{ratio(row):>15}   {target}")


def markdown(rows: list[Row], machine: str, load: float, runs: int, points: int) -> str:
    history = f"one run with a {points:,}-point metric" if points else "no long metric"
    lines = [
        f"{runs:,} runs (20 params, 10 tags, 5 metrics each) and {history}; "
        f"bucket+s3 on a moto server vs `sqlite:///` holding the same data; {machine}, "
        f"load average up to {load:.1f}. "
        'Medians of several calls; "warm": the query index is synced and within its '
        "staleness bound. `python benchmarks/read_scale.py`",
        "",
        "| call | bucket+s3 | sqlite:/// | bucket / sqlite | target | |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        cells = [row.what, fmt(row.bucket_s, row.unit), fmt(row.sqlite_s, row.unit)]
        cells += [ratio(row), row.target, verdict(row.met)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


@dataclass
class Backends:
    s3_uri: str
    sqlite_uri: str
    sqlite_store: SqlAlchemyStore
    on_bucket: Built
    on_sqlite: Built
    root: Path
    points: int


def build(s3_uri: str, sqlite_uri: str, root: Path, runs: int, points: int) -> Backends:
    print(
        f"\nbuilding {runs:,} runs ({PARAMS} params, {TAGS} tags, {METRICS} metrics x "
        f"{STEPS} steps) + 1 run with {points:,} points, on both backends"
    )
    specs = make_runs(runs)
    writer = BucketTrackingStore(s3_uri)
    on_bucket = build_bucket(writer, specs, points)
    history_run = writer.get_run(on_bucket.history_run_id)
    writer.close()
    sqlite_store = SqlAlchemyStore(sqlite_uri, (root / "sqlite-artifacts").as_uri())
    on_sqlite = build_sqlite(sqlite_store, specs, history_run, points)
    print(
        f"   bucket+s3: runs {on_bucket.runs_s:.1f} s (1 through create_run + log_batch + "
        f"update_run_info, the rest on {LOADERS} threads: segment + pointer + document), "
        f"{points:,} points {on_bucket.history_s:.1f} s (log_batch of 1,000 points each, flush)"
    )
    print(
        f"   sqlite:///: runs {on_sqlite.runs_s:.1f} s (bulk insert), {points:,} points "
        f"{on_sqlite.history_s:.1f} s (bulk insert)"
    )
    checked = [specs[0].run_id, specs[len(specs) // 2].run_id, on_bucket.history_run_id]
    spot_check(s3_uri, sqlite_uri, checked)
    print(
        "   checked: the bulk-built run document equals what the store's own calls wrote; "
        f"{len(checked)} runs read back identically from both backends"
    )
    return Backends(s3_uri, sqlite_uri, sqlite_store, on_bucket, on_sqlite, root, points)


def targets(runs: int) -> tuple[float, float, float] | None:
    """The issue's targets at this size: cold first page with a checkpoint through the SDK,
    the same through ``mlflow server``, warm page as a fraction of sqlite's time."""
    if runs <= 10_000:
        return 3.0, 5.0, 1.0
    if runs <= 100_000:
        return 15.0, 20.0, 0.5
    return None


def await_checkpoint(
    reader: BucketTrackingStore, since: float
) -> tuple[checkpoints.Checkpoint, str]:
    """The checkpoint the reader's cold sync leaves behind (written in the background once
    it fetched 1,000 documents); written by ``write_checkpoint()`` if none comes in time.
    ``since``: when the cold sync ended (``time.monotonic()``)."""
    while time.monotonic() - since < CHECKPOINT_WAIT_S:
        found = checkpoints.list_checkpoints(reader.object_store)
        if found:
            waited = time.monotonic() - since
            return found[-1], f"the automatic one, in the bucket {waited:.1f} s after the cold sync"
        time.sleep(0.5)
    written = reader.context.index().write_checkpoint()
    if written is None:
        raise DataMismatch("the reader's index has no journal cursor: no checkpoint written")
    return written, f"none within {CHECKPOINT_WAIT_S:.0f} s: written by write_checkpoint()"


def measure_search(b: Backends) -> list[Row]:
    print(f"\n1. search_runs({FILTER!r}, order_by={ORDER_BY}, max_results={PAGE})")
    sqlite, on_sqlite, on_bucket = b.sqlite_store, b.on_sqlite, b.on_bucket
    runs = len(on_bucket.run_ids)  # and the long metric's run
    sqlite_page1 = timed(lambda: search_page(sqlite, on_sqlite.experiment_id, 0), 5, warmup=True)
    sqlite_page50 = timed(
        lambda: search_page(sqlite, on_sqlite.experiment_id, PAGE_50), 5, warmup=True
    )
    os.environ["MLFLOW_BUCKET_INDEX_DIR"] = str(b.root / "index-cold")  # empty
    # Warm means within the staleness bound: make it longer than the measurement.
    reader = BucketTrackingStore(f"{b.s3_uri}&index_staleness=600")
    if checkpoints.list_checkpoints(reader.object_store):
        raise DataMismatch("the bucket holds a checkpoint already: the cold row would use it")
    cold = timed(lambda: search_page(reader, on_bucket.experiment_id, 0), 1)
    cold_ended = time.monotonic()
    page1 = timed(lambda: search_page(reader, on_bucket.experiment_id, 0), 5, warmup=True)
    page50 = timed(lambda: search_page(reader, on_bucket.experiment_id, PAGE_50), 5, warmup=True)

    checkpoint, how = await_checkpoint(reader, cold_ended)
    size = reader.object_store.head(checkpoint.key).size
    print(f"   checkpoint: {how} ({size / 2**20:.1f} MiB compressed)")
    # A new machine: an empty index folder, a new store (the default staleness bound).
    os.environ["MLFLOW_BUCKET_INDEX_DIR"] = str(b.root / "index-checkpoint")
    newcomer = BucketTrackingStore(b.s3_uri)
    with S3Requests(newcomer) as opening:
        from_checkpoint = timed(lambda: search_page(newcomer, on_bucket.experiment_id, 0), 1)
    print(f"   new machine's first search with the checkpoint sent: {opening.describe()}")
    polling = poll_requests(newcomer, on_bucket.experiment_id, "with the change journal")
    newcomer.close()
    relisting = BucketTrackingStore(b.s3_uri)  # the same, now warm, index file
    relisting.context.index()._sync.inline_limit = 10 * runs  # private: the old behaviour
    baseline = poll_requests(relisting, on_bucket.experiment_id, "re-listed every bound")
    relisting.close()

    os.environ["MLFLOW_BUCKET_INDEX_DIR"] = str(b.root / "index-cold")
    expired = BucketTrackingStore(f"{b.s3_uri}&index_staleness=0")  # the same index file
    late = timed(lambda: search_page(expired, on_bucket.experiment_id, 0), 3, warmup=True)
    print(
        f"   same run ids on both backends: page 1 {page1.result == sqlite_page1.result}, "
        f"page 50 {page50.result == sqlite_page50.result} ({len(page50.result)} runs); "
        "cold, checkpoint and expired answers too: "
        f"{cold.result == from_checkpoint.result == late.result == page1.result}"
    )
    goals = targets(runs)
    warm_ratio = goals[2] if goals else 1.0
    rows = [
        Row(
            "search_runs page 1, warm",
            page1.seconds,
            sqlite_page1.seconds,
            f"<= {warm_ratio}x sqlite",
            page1.seconds <= warm_ratio * sqlite_page1.seconds,
        ),
        Row(
            "search_runs page 50, warm",
            page50.seconds,
            sqlite_page50.seconds,
            f"<= {warm_ratio}x sqlite",
            page50.seconds <= warm_ratio * sqlite_page50.seconds,
        ),
        Row(
            f"search_runs page 1, cold, no checkpoint (sync of {runs + 1:,} runs included)",
            cold.seconds,
            sqlite_page1.seconds,
            "<= 60 s",
            cold.seconds <= 60,
        ),
        Row(
            "search_runs page 1, cold, with a checkpoint (new machine)",
            from_checkpoint.seconds,
            sqlite_page1.seconds,
            f"<= {goals[0]:g} s" if goals else "",
            from_checkpoint.seconds <= goals[0] if goals else None,
        ),
        Row("search_runs page 1, staleness bound passed", late.seconds, None),
        polling.row(),
        baseline.row(),
    ]
    print_rows(rows)
    for polled in (polling, baseline):
        print(f"   {polled.describe()}")
    return rows


# -- requests of a polling UI --------------------------------------------------------------


class S3Requests:
    """Counts the HTTP requests a bucket store's S3 client sends, by operation.

    A botocore ``before-send`` hook: every attempt, retries included. The client is
    shared by every store of the process with the same endpoint settings, so only one
    store may be busy while counting.
    """

    def __init__(self, store: BucketTrackingStore) -> None:
        objects = store.object_store
        inner = objects.inner if isinstance(objects, ObservedObjectStore) else objects
        if not isinstance(inner, S3ObjectStore):
            raise TypeError(f"not an S3 store: {inner!r}")
        self._events = inner.client.meta.events
        self._prefix = inner.prefix
        self._id = f"read-scale-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def _count(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        url = urlsplit(request.url)
        if operation == "ListObjectsV2":  # which folder
            key = parse_qs(url.query).get("prefix", [""])[0]
        else:  # which kind of object: the key, ids and times left out
            key = unquote(url.path).split("/", 2)[-1]  # path-style: /bucket/key
        key = re.sub(
            r"(?<=changes/)[^/]+|(?<=index-checkpoints/)[^/]+|(?<=/)[0-9a-f]{32}|(?<=/)\d+",
            "*",
            key,
        )
        operation = f"{operation} {key.removeprefix(self._prefix)}"
        with self._lock:
            self.counts[operation] += 1

    def __enter__(self) -> S3Requests:
        self._events.register("before-send.s3", self._count, unique_id=self._id)
        return self

    def __exit__(self, *exc: object) -> None:
        self._events.unregister("before-send.s3", unique_id=self._id)

    def describe(self) -> str:
        total = sum(self.counts.values())
        parts = ", ".join(f"{n} {op}" for op, n in sorted(self.counts.items()))
        return f"{total} requests ({parts or 'none'})"


@dataclass
class Polling:
    what: str
    polls: int
    seconds: float
    requests: S3Requests
    slowest_s: float

    @property
    def per_minute(self) -> float:
        return sum(self.requests.counts.values()) * 60 / self.seconds

    def row(self) -> Row:
        what = f"S3 requests per minute, UI polling every {POLL_EVERY_S:g} s, {self.what}"
        return Row(what, self.per_minute, None, unit="requests")

    def describe(self) -> str:
        return (
            f"{self.what}: {self.polls} polls in {self.seconds:.0f} s (slowest "
            f"{self.slowest_s * 1000:.0f} ms): {self.requests.describe()} = "
            f"{self.per_minute:.0f} per minute"
        )


def poll_requests(store: BucketTrackingStore, experiment_id: str, what: str) -> Polling:
    """The experiment page's runs/search every ``POLL_EVERY_S`` for ``POLL_FOR_S`` (the
    store's staleness bound is the default 2 s), in this process through the SDK."""
    ui_search(store, experiment_id)  # warm: the scope is in this store's index
    slowest = 0.0
    with S3Requests(store) as counted:
        started = time.monotonic()
        polls = 0
        while time.monotonic() - started < POLL_FOR_S:
            began = time.monotonic()
            ui_search(store, experiment_id)
            slowest = max(slowest, time.monotonic() - began)
            polls += 1
            time.sleep(max(0.0, started + polls * POLL_EVERY_S - time.monotonic()))
        seconds = time.monotonic() - started
    return Polling(what, polls, seconds, counted, slowest)


def ui_search(store: Any, experiment_id: str) -> list[str]:
    runs = store.search_runs(
        [experiment_id],
        UI_SEARCH["filter"],
        ViewType.ACTIVE_ONLY,
        UI_SEARCH["max_results"],
        UI_SEARCH["order_by"],
    )
    return [r.info.run_id for r in runs]


def measure_history(b: Backends) -> list[Row]:
    print(f"\n2. metric history of {b.points:,} points")
    run_id, sqlite = b.on_bucket.history_run_id, b.sqlite_store
    fresh = BucketTrackingStore(b.s3_uri)  # nothing cached: segments come from the bucket
    cold = timed(lambda: full_history(fresh, run_id, HISTORY_KEY), 1)
    warm = timed(lambda: full_history(fresh, run_id, HISTORY_KEY), 3, budget_s=30)
    on_sqlite = timed(lambda: full_history(sqlite, run_id, HISTORY_KEY), 3, budget_s=30)
    fresh = BucketTrackingStore(b.s3_uri)
    cold_interval = timed(lambda: interval(fresh, run_id), 1)
    warm_interval = timed(lambda: interval(fresh, run_id), 7)
    sqlite_interval = timed(lambda: interval(sqlite, run_id), 7, warmup=True)
    bucket_points = [(m.step, m.timestamp, m.value) for m in warm.result]
    sqlite_points = [(m.step, m.timestamp, m.value) for m in on_sqlite.result]
    print(
        f"   same {len(bucket_points):,} points on both backends: "
        f"{bucket_points == sqlite_points}; same {len(warm_interval.result)} sampled points: "
        f"{warm_interval.result == sqlite_interval.result}; calls timed: bucket {warm.calls}, "
        f"sqlite {on_sqlite.calls} (paged by {GET_METRIC_HISTORY_MAX_RESULTS:,}, as "
        "MlflowClient pages)"
    )
    label = f"{b.points / 1e6:g}M" if b.points >= 1e6 else f"{b.points:,}"
    rows = [
        Row(
            f"get_metric_history, {label} points, {when}",
            history.seconds,
            on_sqlite.seconds,
            ">= 3x faster than sqlite",
            on_sqlite.seconds / history.seconds >= 3,
        )
        for when, history in [("warm", warm), ("new store", cold)]
    ] + [
        Row(
            f"bulk interval ({INTERVAL_POINTS} points), {when}",
            sampled.seconds,
            sqlite_interval.seconds,
            "<= 0.1 s",
            sampled.seconds <= 0.1,
        )
        for when, sampled in [("warm", warm_interval), ("new store", cold_interval)]
    ]
    print_rows(rows)
    return rows


def measure_servers(b: Backends) -> list[Row]:
    print("\n3. mlflow server --workers 1, the UI's requests (median of calls after the first)")
    charts = b.points > 0
    on_bucket = measure_server(b.s3_uri, b.on_bucket, b.root / "server-bucket", charts)
    on_sqlite = measure_server(b.sqlite_uri, b.on_sqlite, b.root / "server-sqlite", charts)
    bucket_ids, bucket_steps = on_bucket.search.result
    sqlite_ids, sqlite_steps = on_sqlite.search.result
    print(
        f"   same {len(bucket_ids)} runs on both: {bucket_ids == sqlite_ids}; "
        f"same {len(bucket_steps)} chart steps: {bucket_steps == sqlite_steps}"
    )
    goals = targets(len(b.on_bucket.run_ids))
    rows = [
        Row(
            "POST runs/search (experiment page), first call, empty index folder, checkpoint",
            on_bucket.first_search_s,
            on_sqlite.first_search_s,
            f"<= {goals[1]:g} s" if goals else "",
            on_bucket.first_search_s <= goals[1] if goals else None,
        ),
        Row(
            "POST runs/search (experiment page)", on_bucket.search.seconds, on_sqlite.search.seconds
        ),
    ]
    rows += (
        [
            Row(
                f"GET get-history-bulk-interval ({INTERVAL_POINTS} of {b.points:,}), first call",
                on_bucket.first_chart_s,
                on_sqlite.first_chart_s,
            ),
            Row(
                f"GET get-history-bulk-interval ({INTERVAL_POINTS} of {b.points:,})",
                on_bucket.chart.seconds,
                on_sqlite.chart.seconds,
            ),
        ]
        if charts
        else []
    )
    print_rows(rows)
    print("\n4. server peak memory during those calls (VmHWM, server process + children)")
    bucket_peak, sqlite_peak = on_bucket.peak, on_sqlite.peak
    met = bucket_peak.total <= GIB
    print(f"   bucket+s3: {bucket_peak.describe()}; target <= 1 GiB: {verdict(met)}")
    print(f"   sqlite:///: {sqlite_peak.describe()}")
    print(
        f"   bucket / sqlite, server processes only: {bucket_peak.server / sqlite_peak.server:.2f}x"
    )
    rows.append(
        Row("server peak memory", bucket_peak.total, sqlite_peak.total, "<= 1 GiB", met, "bytes")
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--history-points", type=int, default=HISTORY_POINTS)
    parser.add_argument(
        "--skip-history",
        action="store_true",
        help="no long metric: skips section 2 and the chart requests (quicker at 100,000 runs)",
    )
    args = parser.parse_args()
    if args.skip_history:
        args.history_points = 0
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, MLflow {mlflow.__version__}"
    )
    load = os.getloadavg()[0]
    print(f"machine: {machine}; load average {load:.1f} at the start")
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="read-scale-"))
    os.environ["MLFLOW_BUCKET_INDEX_DIR"] = str(root / "index-writer")
    with moto_process_endpoint() as endpoint:
        bucket = endpoint.create_bucket("read-scale")
        s3_uri = f"bucket+s3://{bucket}/bench?endpoint_url={endpoint.url}&spool_dir={root}/spool"
        backends = build(
            s3_uri, f"sqlite:///{root}/mlflow.db", root, args.runs, args.history_points
        )
        rows = measure_search(backends)
        rows += measure_history(backends) if args.history_points else []
        rows += measure_servers(backends)
    load = max(load, os.getloadavg()[0])
    table = markdown(rows, machine, load, args.runs, args.history_points)
    README_SECTION.parent.mkdir(parents=True, exist_ok=True)
    README_SECTION.write_text(table)
    print(
        f"\nload average {os.getloadavg()[0]:.1f} at the end; "
        f"{time.perf_counter() - started:.0f} s in all\n\nmarkdown (also in {README_SECTION}):\n"
    )
    print(table)


if __name__ == "__main__":
    main()

"""Eight REST clients on a four-worker ``mlflow server``; one worker is killed -9 mid-load.

Each client (a thread with its own ``MlflowClient`` on the server's URL) logs metric
points, params and tags to one of two runs, one REST call at a time, and records
what each call was acknowledged for. Halfway through, a worker caught mid-request
(inside an upload, if possible: its spool then likely holds a call not yet applied)
is killed. Tags are overwritten again and again with newer values: each key is used
for a few calls in a row and then left alone, so a value replayed late (the killed
worker's spool, uploaded when a respawned worker or ``sync`` opens the root) would
outlive every newer acknowledged value and be read back. MLflow's own retries are
off: a call the dying worker fails is simply not acknowledged (and may or may not
have been stored).

Afterwards, read straight from the store: every acknowledged point is stored once,
every acknowledged param has its value, and every tag holds the last value a call
was acknowledged for (a value from an unacknowledged call after it is allowed; an
older one is *stale*).
"""

from __future__ import annotations

import functools
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import MlflowServer, mlflow_server
from tests.torture.figures import Figures, Point, record, size, stored_points
from tests.torture.ledger import sync, wait_for

pytestmark = pytest.mark.torture

CLIENTS = 8
WORKERS = 4
CALLS = size(30, 400)  # per client
KILLS = size(1, 3)  # one worker killed -9 at each of these moments, spread over the load
TAG_RUN = 6  # calls in a row that overwrite one tag key before the client moves on
PARAM_EVERY = 9


@dataclass
class ClientRecord:
    """What one client sent and what it was told, per run."""

    attempted: dict[str, set[Point]] = field(default_factory=dict)
    acknowledged: dict[str, set[Point]] = field(default_factory=dict)
    params: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    # (run, key) -> every value sent, in order, with whether its call was acknowledged
    tags: dict[tuple[str, str], list[tuple[str, bool]]] = field(default_factory=dict)
    calls: int = 0
    failures: list[str] = field(default_factory=list)


def _client_loop(url: str, client_number: int, run_id: str, record_: ClientRecord) -> None:
    """CALLS REST calls, each setting a tag: log_batch (with a point, now and then a param)
    or set_tag, in turn."""
    client = MlflowClient(url)
    tag_key = f"c{client_number}.t0"
    failed = False
    for n in range(CALLS):
        # After a failed call, overwrite the same tag at once: a newer acknowledged value.
        if not failed and n % TAG_RUN == 0:
            tag_key = f"c{client_number}.t{n // TAG_RUN}"
        tag = (tag_key, str(n))
        points: list[Point] = []
        param: tuple[str, str] | None = None
        if n % 3 == 0:
            points = [(f"c{client_number}/loss", n, 1_700_000_000_000 + n, n / 7)]
            if n % PARAM_EVERY == 0:
                param = (f"c{client_number}.p{n}", str(n))
        elif n % 3 == 2:
            points = [(f"c{client_number}/acc", n, 1_700_000_000_000 + n, -n / 7)]
        record_.attempted.setdefault(run_id, set()).update(points)
        try:
            if points:
                client.log_batch(
                    run_id,
                    metrics=[Metric(key, value, ts, step) for key, step, ts, value in points],
                    params=[Param(*param)] if param else [],
                    tags=[RunTag(*tag)],
                )
            else:
                client.set_tag(run_id, *tag)
            acknowledged = True
        except Exception as exc:  # a connection the killed worker dropped, most likely
            acknowledged = False
            record_.failures.append(f"call {n}: {type(exc).__name__}: {exc}"[:300])
        failed = not acknowledged
        record_.calls += 1
        if acknowledged:
            record_.acknowledged.setdefault(run_id, set()).update(points)
        if param:
            record_.params[(run_id, param[0])] = (param[1], acknowledged)
        record_.tags.setdefault((run_id, tag[0]), []).append((tag[1], acknowledged))


def _pick_victim(server: MlflowServer, rng: random.Random) -> tuple[int, bool]:
    """A worker caught mid-request (its spool may hold a call not yet uploaded): inside an
    upload if one is found within a few hundred looks, else running, else any worker.
    Whether it was caught busy."""
    for waiting_only in (True, False):
        for _ in range(300 if waiting_only else 100):
            busy = server.busy_worker_pids(waiting_only)
            if busy:
                return rng.choice(busy), True
    return rng.choice(server.worker_pids()), False


def _calls_made_reach(records: list[ClientRecord], mark: int) -> bool:
    return sum(r.calls for r in records) >= mark


@dataclass
class TagVerdict:
    lost: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def _judge_tag(
    name: str, attempts: list[tuple[str, bool]], final: str | None, verdict: TagVerdict
) -> None:
    acked = [i for i, (_, ok) in enumerate(attempts) if ok]
    values = [value for value, _ in attempts]
    if not acked:
        if final is not None and final not in values:
            verdict.unexpected.append(f"{name}={final!r}")
        return
    last = acked[-1]
    if final is None:
        verdict.lost.append(f"{name} (last acknowledged {values[last]!r})")
    elif final in values[last:]:
        return
    elif final in values[:last]:
        verdict.stale.append(f"{name}={final!r}, last acknowledged {values[last]!r}")
    else:
        verdict.unexpected.append(f"{name}={final!r}")


def _orphaned_writers(spool_dir: Path) -> int:
    """Writer folders left in a spool: a live writer removes its own when it closes."""
    return sum(1 for _ in spool_dir.glob("*/*/root.txt"))


@pytest.mark.timeout(size(300, 1800))
def test_a_worker_killed_under_rest_load_loses_and_reverts_nothing_acknowledged(
    root_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    # A failed call is not acknowledged; MLflow's client must not resend it behind our back.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    spool_env = {"MLFLOW_BUCKET_SPOOL_DIR": str(tmp_path / "spool")}
    rng = random.Random(4)
    records = [ClientRecord() for _ in range(CLIENTS)]
    marks = [(k + 1) * CLIENTS * CALLS // (KILLS + 1) for k in range(KILLS)]
    killed: list[int] = []
    caught_busy = 0
    with mlflow_server(root_uri, workdir=tmp_path, env=spool_env, workers=WORKERS) as server:
        setup = MlflowClient(server.url)
        experiment_id = setup.create_experiment("worker-killed")
        run_ids = [setup.create_run(experiment_id).info.run_id for _ in range(2)]
        threads = [
            threading.Thread(
                target=_client_loop,
                args=(server.url, c, run_ids[c % len(run_ids)], records[c]),
                name=f"rest-client-{c}",
            )
            for c in range(CLIENTS)
        ]
        load_started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for mark in marks:
                wait_for(
                    functools.partial(_calls_made_reach, records, mark),
                    f"{mark} calls made by the clients",
                    timeout=size(240, 1200),
                )
                victim, busy = _pick_victim(server, rng)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                caught_busy += busy
        finally:
            for thread in threads:
                thread.join()
        load_s = time.monotonic() - load_started
        workers_after = len(server.worker_pids())
    assert [r.calls for r in records] == [CALLS] * CLIENTS  # no client thread died
    left_behind = _orphaned_writers(tmp_path / "spool")
    # What the killed workers left is uploaded by the next process to open the root.
    report = sync(root_uri, env={**os.environ, **spool_env})

    store = BucketTrackingStore(root_uri, recover_in_background=False)
    direct = MlflowClient(root_uri)
    lost = duplicated = 0
    unexpected: list[Point] = []
    histories_differ: list[str] = []
    params_wrong: list[str] = []
    verdict = TagVerdict()
    for run_id in run_ids:
        stored = stored_points(store.object_store, run_id)
        acknowledged = set().union(*(r.acknowledged.get(run_id, set()) for r in records))
        attempted = set().union(*(r.attempted.get(run_id, set()) for r in records))
        lost += len(acknowledged - set(stored))
        duplicated += sum(count - 1 for count in stored.values() if count > 1)
        unexpected += sorted(set(stored) - attempted)
        run = direct.get_run(run_id)
        for key in {p[0] for p in stored}:
            steps = sorted(m.step for m in direct.get_metric_history(run_id, key))
            if steps != sorted(p[1] for p in stored if p[0] == key):
                histories_differ.append(key)
        for r in records:
            for (rid, key), (value, ok) in r.params.items():
                found = run.data.params.get(key)
                # Unacknowledged: stored or not, but never with another value.
                if rid == run_id and found != value and (ok or found is not None):
                    params_wrong.append(f"{key}={found!r}, sent {value!r}, acknowledged {ok}")
            for (rid, key), attempts in r.tags.items():
                if rid == run_id:
                    _judge_tag(f"{run_id[:8]}/{key}", attempts, run.data.tags.get(key), verdict)

    failures = [f for r in records for f in r.failures]
    points_written = sum(len(points) for r in records for points in r.acknowledged.values())
    tags_acknowledged = sum(
        1 for r in records for attempts in r.tags.values() if any(ok for _, ok in attempts)
    )
    figures = Figures(
        f"{WORKERS}-worker server, {CLIENTS} REST clients, {KILLS} worker(s) killed -9, "
        + root_uri.split(":", 1)[0],
        points_written=points_written,
        points_read=sum(sum(stored_points(store.object_store, r).values()) for r in run_ids),
        params=sum(1 for r in records for _, ok in r.params.values() if ok),
        tags=tags_acknowledged,
        requests=sum(r.calls for r in records),
        lost=lost + len(verdict.lost) + len(params_wrong),
        stale=len(verdict.stale),
        duplicated=duplicated,
        notes=(
            f"load {load_s:.0f} s; workers {killed} killed after {marks} calls, "
            f"{caught_busy} of them caught mid-request; "
            f"{len(failures)} calls not acknowledged; {workers_after} workers at the end; "
            f"{left_behind} writer spool folders left; sync: {report}"
        ),
    )
    record(figures, started)
    assert (figures.lost, figures.stale, figures.duplicated) == (0, 0, 0), (
        f"{figures.line()}\nstale tags: {verdict.stale[:10]}\nlost tags: {verdict.lost[:10]}\n"
        f"params: {params_wrong[:10]}"
    )
    assert unexpected == [] and verdict.unexpected == [], (unexpected[:10], verdict.unexpected)
    assert histories_differ == [], histories_differ
    # Only calls in flight on (or pooled to) a killed worker may fail: at most one per client.
    assert len(failures) <= KILLS * CLIENTS, failures[:20]

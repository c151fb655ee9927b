"""Writers killed with SIGKILL mid-flush, mid-compaction, mid-swap, mid-recovery.

Round after round, a fresh writer process (``tests/torture/writer.py``) continues one
run through a proxy with faults, replays what the previous victim left, and is killed:
on a random timer or at a chosen point of the write path. Whatever it was doing, the
store stays readable, ``python -m mlflow_plugin sync URI`` then recovers every batch
that ``log_batch`` accepted, and no point is stored twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.faults.proxy import FaultPolicy
from tests.torture.conftest import FaultyRoot
from tests.torture.figures import (
    Figures,
    compare_points,
    record,
    size,
    stored_points,
    where_duplicated,
)
from tests.torture.ledger import REPO, acknowledged_numbers, has_started, planned_points, sync
from tests.torture.writer import CRASH_POINTS

pytestmark = pytest.mark.torture

ROUNDS = size(len(CRASH_POINTS), 6 * len(CRASH_POINTS))
BATCHES = size(120, 300)
FAULT_RATE = 0.1
# How far into a writer's life its crash point may be: compactions are fewer than
# flushes, and the previous victim may leave a single batch to recover.
_NTH_AT_MOST = {"compaction_put": 2, "compaction_swapped": 2, "recovery": 1}


def _orphans(uri: str) -> list[Path]:
    """Writer folders left in the spool by writers of ``uri`` (each says its URI in root.txt)."""
    spool = Path(os.environ["MLFLOW_BUCKET_SPOOL_DIR"])
    return [path.parent for path in spool.glob("*/*/root.txt") if path.read_text() == uri]


@pytest.mark.timeout(size(420, 3600))
def test_writers_killed_anywhere_lose_nothing_that_was_accepted(
    faulty_root: FaultyRoot, tmp_path: Path
) -> None:
    started = time.monotonic()
    setup = MlflowClient(faulty_root.direct_uri)
    experiment_id = setup.create_experiment("kill-9")
    run_id = setup.create_run(experiment_id, run_name="victim").info.run_id
    faulty_root.proxy.set_policy(FaultPolicy(rate=FAULT_RATE, seed=99))
    # A flush every few batches: many segments, a compaction every few dozen batches.
    uri = faulty_root.uri + "&flush_interval=0.02&flush_points=6"
    rng = random.Random(1234)
    acknowledged: set[int] = set()
    deaths: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        crash_point = CRASH_POINTS[round_ % len(CRASH_POINTS)]
        ledger = tmp_path / f"ledger-{round_}.txt"
        first = round_ * BATCHES
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.torture.writer",
                uri,
                run_id,
                str(first),
                str(BATCHES),
                str(ledger),
                crash_point,
                str(rng.randint(1, _NTH_AT_MOST.get(crash_point, 4))),
            ],
            cwd=REPO,
        )
        try:
            if crash_point == "timer":
                deadline = time.monotonic() + 60
                while not has_started(ledger) and writer.poll() is None:
                    assert time.monotonic() < deadline, "the writer never started logging"
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.05, 0.8))
                writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=120)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        killed = writer.returncode == -signal.SIGKILL
        assert killed or writer.returncode == 0, f"writer exited with {writer.returncode}"
        deaths[crash_point if killed else "finished"] += 1
        print(f"round {round_}: {crash_point} {'killed' if killed else 'finished'}", flush=True)
        acknowledged |= acknowledged_numbers(ledger)

    # Before any recovery: readable, and what is stored is stored once.
    store = BucketTrackingStore(faulty_root.direct_uri, recover_in_background=False)
    direct = MlflowClient(faulty_root.direct_uri)
    planned = planned_points(range(ROUNDS * BATCHES))
    assert direct.get_run(run_id).info.run_id == run_id
    assert [r.info.run_id for r in direct.search_runs([experiment_id])] == [run_id]
    before = stored_points(store.object_store, run_id)
    assert len(direct.get_metric_history(run_id, "a")) == len({p for p in before if p[0] == "a"})
    duplicates = where_duplicated(store.object_store, run_id)
    assert compare_points(planned, before)[1:] == (0, 0), duplicates

    report = sync(uri)
    stored = stored_points(store.object_store, run_id)
    lost, duplicated, _ = compare_points(planned_points(acknowledged), stored)
    assert (lost, duplicated) == (0, 0), where_duplicated(store.object_store, run_id)
    assert compare_points(planned, stored)[2] == 0  # nothing outside the plan
    history = direct.get_metric_history(run_id, "a")
    assert sorted(m.step for m in history) == sorted({p[1] for p in stored if p[0] == "a"})
    tags = {k: v for k, v in direct.get_run(run_id).data.tags.items() if k.startswith("t")}
    expected_tags = {f"t{n}": str(n) for n in acknowledged if n % 5 == 0}
    assert expected_tags.items() <= tags.items()
    assert set(tags) <= {f"t{n}" for n in range(0, ROUNDS * BATCHES, 5)}

    sync(uri)  # a second replay changes nothing
    assert stored_points(store.object_store, run_id) == stored
    left = _orphans(uri)
    assert left == [], [sorted(p.name for p in folder.iterdir()) for folder in left]

    kills = sum(count for point, count in deaths.items() if point != "finished")
    figures = Figures(
        "kill -9 writers, faults 10%",
        points_written=len(planned_points(acknowledged)),
        points_read=sum(stored.values()),
        tags=len(tags),
        lost=lost,
        duplicated=duplicated,
        notes=(
            f"{ROUNDS} writers, {kills} killed ("
            + ", ".join(f"{p} {deaths[p]}" for p in CRASH_POINTS if deaths[p])
            + f"), {deaths['finished']} finished; {len(acknowledged)} batches acknowledged, "
            f"{len(stored) - len(planned_points(acknowledged))} points beyond them stored; "
            f"sync: {report}"
        ),
    )
    figures.add_proxy(faulty_root.proxy.stats)
    record(figures, started)
    assert kills >= ROUNDS // 2

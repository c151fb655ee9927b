"""``search_runs`` over 1,000 experiment ids: the bucket store against MLflow's SQLite store.

    .venv/bin/python benchmarks/many_experiments.py            # about 11 minutes on 2 cores
    .venv/bin/python benchmarks/many_experiments.py --experiments 200   # quicker

What the UI's "compare experiments" view and a script searching every experiment
send: one ``runs/search`` naming many experiment ids. The data: N experiments with
two runs each (a param and a metric), plus N ids that name no experiment (deleted,
or a typo), written through each store's own calls. Timed, against ``sqlite:///``
in the same run:

1. cold: a new store on an empty index folder (the first search lists everything);
   cold, with a checkpoint: the same on a new machine once the bucket holds an index
   checkpoint (written by ``write_checkpoint()`` after the cold search), median of
   ``TRIALS`` new machines (sqlite's cold: the median of as many new stores);
2. new process: a new store on the index the first one filled (a restarted server
   worker): every scope is listed, nothing changed is fetched;
3. warm: the first store's search again, within the index's staleness bound (median
   of 5; measured before the new machines of 1, whose background work would share
   this process's CPU);
4. stale: after the staleness bound has passed (median of ``TRIALS``). Scopes that
   together hold more than one listing page answer from the index and are re-listed in
   the background, at most every ten group-listing durations (as one large experiment
   is);
5. listings: how many object-store listing calls the cold, the checkpoint's and the
   stale searches made (the change journal's included).

Every timed call starts after a full garbage collection (``timeit`` times with the
collector off): a collection of this process's heap, which holds three stores' data,
takes about 0.2 s and fell at random into single measurements of either backend.

The bucket store runs on a folder, on moto and on SeaweedFS: moto answers a listing by
scanning its whole bucket (0.1 s and more here), SeaweedFS's filer lists a range, as
S3 does; a search past the bound waits for one listing of the change journal.

Prints a markdown table of seconds and ratios to SQLite, and whether a new machine
with a checkpoint meets the target (sqlite's cold time). The recorded runs, with their
dates, commits and machine load, are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlflow.entities import Metric, Param, ViewType
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from mlflow_plugin.objectstore.base import ObjectStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import TEST_CREDENTIALS, moto_process_endpoint, seaweedfs_endpoint

os.environ.update(TEST_CREDENTIALS)

STALENESS = 3.0  # long enough that a warm search answers within it
FILTER = "params.lr = '0.1'"
COLUMNS = ("cold", "cold, with a checkpoint", "new process", "warm", "stale")
LOADERS = 16
TRIALS = 5


def _fill(store: Any, experiments: int, threads: int = LOADERS) -> list[str]:
    """N experiments of two runs each, written through the store's own calls."""

    def one(i: int) -> str:
        experiment_id: str = store.create_experiment(f"exp-{i:05d}")
        for j in range(2):
            run_id = store.create_run(experiment_id, "bench", i, [], f"run-{j}").info.run_id
            store.log_batch(
                run_id, [Metric("acc", j / 2, i, 0)], [Param("lr", "0.1" if j else "1")], []
            )
        return experiment_id

    with ThreadPoolExecutor(threads) as pool:
        ids = list(pool.map(one, range(experiments)))
    if hasattr(store, "flush"):
        store.flush()
    return ids


def _absent_ids(ids: list[str], count: int) -> list[str]:
    top = max(int(e) for e in ids)
    return [str(top + 1_000 + i) for i in range(count)]


class _CountingLists:
    """Counts the listing calls of an object store (patched on its ``list``/``list_dir``
    and ``list_after``, the change journal's)."""

    def __init__(self, store: ObjectStore) -> None:
        self.count = 0
        inner_list, inner_dir, inner_after = store.list, store.list_dir, store.list_after

        def counted_list(prefix: str = "") -> Iterator[Any]:
            self.count += 1
            return inner_list(prefix)

        def counted_dir(prefix: str = "") -> Any:
            self.count += 1
            return inner_dir(prefix)

        def counted_after(prefix: str, start_after: str) -> Iterator[Any]:
            self.count += 1
            return inner_after(prefix, start_after)

        store.list = counted_list  # type: ignore[method-assign]
        store.list_dir = counted_dir  # type: ignore[method-assign]
        store.list_after = counted_after  # type: ignore[method-assign]


def _timed(call: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@contextmanager
def _index_folder() -> Iterator[None]:
    folder = tempfile.mkdtemp(prefix="bench-index-")
    previous = os.environ.get("MLFLOW_BUCKET_INDEX_DIR")
    os.environ["MLFLOW_BUCKET_INDEX_DIR"] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_BUCKET_INDEX_DIR")
        else:
            os.environ["MLFLOW_BUCKET_INDEX_DIR"] = previous


def measure_bucket(uri: str, ids: list[str], expected: int) -> dict[str, float]:
    def searcher(store: BucketTrackingStore) -> Callable[[], None]:
        def search() -> None:
            found = store.search_runs(ids, FILTER, ViewType.ALL, max_results=50_000)
            assert len(found) == expected, (len(found), expected)

        return search

    with _index_folder():
        uri = f"{uri}{'&' if '?' in uri else '?'}index_staleness={STALENESS}"
        store = BucketTrackingStore(uri)
        counter = _CountingLists(store.object_store)
        search = searcher(store)
        cold = _timed(search)
        restarted = BucketTrackingStore(uri)
        new_process = _timed(searcher(restarted))
        restarted.close()
        cold_lists = counter.count
        # Before the new machine below, whose background rescan of the journal's margin
        # would share this process's CPU with these searches.
        warm = statistics.median(_timed(search) for _ in range(5))
        # Written explicitly (the cold sync may also have left one in the background).
        if store.context.index().write_checkpoint() is None:
            raise RuntimeError("the index has no journal cursor: no checkpoint written")
        with_checkpoint, newcomer_lists = [], []
        for _ in range(TRIALS):
            with _index_folder():  # a new machine on a bucket with a checkpoint
                newcomer = BucketTrackingStore(uri)
                newcomer_lists.append(_CountingLists(newcomer.object_store))
                with_checkpoint.append(_timed(searcher(newcomer)))
                newcomer.close()
        stale_times, stale_lists = [], []
        for _ in range(TRIALS):
            time.sleep(STALENESS * 1.1)  # past the bound: the next search re-lists
            before = counter.count
            stale_times.append(_timed(search))
            stale_lists.append(counter.count - before)
        store.close()
    return {
        "cold": cold,
        "cold, with a checkpoint": statistics.median(with_checkpoint),
        "new process": new_process,
        "warm": warm,
        "stale": statistics.median(stale_times),
        "cold listings": cold_lists,
        "checkpoint listings": statistics.median(c.count for c in newcomer_lists),
        "stale listings": statistics.median(stale_lists),
    }


def measure_sqlite(
    open_store: Callable[[], SqlAlchemyStore], ids: list[str], expected: int
) -> dict[str, float]:
    def searcher(store: SqlAlchemyStore) -> Callable[[], None]:
        def search() -> None:
            found = store.search_runs(ids, FILTER, ViewType.ALL, max_results=50_000)
            assert len(found) == expected

        return search

    cold = statistics.median(_timed(searcher(open_store())) for _ in range(TRIALS))
    warm_search = searcher(open_store())
    warm_search()
    warm = statistics.median(_timed(warm_search) for _ in range(5))
    return {
        "cold": cold,
        "cold, with a checkpoint": cold,
        "new process": cold,
        "warm": warm,
        "stale": warm,
        "cold listings": 0,
        "checkpoint listings": 0,
        "stale listings": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=1_000)
    args = parser.parse_args()
    n = args.experiments
    work = Path(tempfile.mkdtemp(prefix="bench-many-experiments-"))
    results: dict[str, dict[str, float]] = {}

    def open_sqlite() -> SqlAlchemyStore:
        return SqlAlchemyStore(f"sqlite:///{work / 'mlflow.db'}", (work / "artifacts").as_uri())

    print(f"writing {n} experiments of 2 runs each to sqlite:/// ...", flush=True)
    sqlite_ids = _fill(open_sqlite(), n, threads=1)  # its connection pool is small
    sqlite_ids += _absent_ids(sqlite_ids, n)
    results["sqlite:///"] = measure_sqlite(open_sqlite, sqlite_ids, n)

    file_uri = f"bucket+file:{work / 'root'}"
    print(f"writing {n} experiments of 2 runs each to {file_uri} ...", flush=True)
    with _index_folder():
        file_ids = _fill(BucketTrackingStore(file_uri), n)
    results["bucket+file"] = measure_bucket(file_uri, file_ids + _absent_ids(file_ids, n), n)

    # moto lists by scanning its whole bucket (about 0.1 s a listing here); SeaweedFS's
    # filer lists a range, as S3 does.
    for server, endpoint_of in (("moto", moto_process_endpoint), ("SeaweedFS", seaweedfs_endpoint)):
        with endpoint_of() as endpoint:
            bucket = endpoint.create_bucket("many")
            s3_uri = f"bucket+s3://{bucket}/{uuid.uuid4().hex[:8]}?endpoint_url={endpoint.url}"
            name = f"bucket+s3 ({server})"
            print(f"writing {n} experiments of 2 runs each to {name} ...", flush=True)
            with _index_folder():
                s3_ids = _fill(BucketTrackingStore(s3_uri), n)
            results[name] = measure_bucket(s3_uri, s3_ids + _absent_ids(s3_ids, n), n)

    base = results["sqlite:///"]
    print()
    print(
        f"`search_runs` naming {2 * n} experiment ids ({n} existing, 2 runs each; "
        f"filter `{FILTER}`), seconds and ratio to sqlite:///"
    )
    print()
    print(
        "| backend | cold | cold, with a checkpoint | new process | warm | stale (past the bound)"
        " | listings cold / with a checkpoint / stale |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        cells = [
            f"{r[k]:.3f} s ({r[k] / base[k]:.1f}x)" if name != "sqlite:///" else f"{r[k]:.3f} s"
            for k in COLUMNS
        ]
        lists = "{:.0f} / {:.0f} / {:.0f}".format(
            r["cold listings"], r["checkpoint listings"], r["stale listings"]
        )
        print(f"| {name} | {' | '.join(cells)} | {lists} |")
    print()
    for name, r in results.items():
        if name != "sqlite:///":
            for column, anchor in (("cold, with a checkpoint", "cold"), ("stale", "stale")):
                met = r[column] <= base[anchor]
                print(
                    f"{name}: {column} {r[column]:.3f} s; target <= sqlite's {anchor} "
                    f"{base[anchor]:.3f} s: {'met' if met else 'NOT met'}"
                )


if __name__ == "__main__":
    main()

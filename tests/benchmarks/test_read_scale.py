"""The read-scale benchmark's bulk loaders write what the stores' own calls would write.

``benchmarks/read_scale.py`` fills both backends without per-run API calls (far too slow
for 10,000 runs); its numbers mean something only if the data it reads back is the data
MLflow and the bucket store would have written. Checked here at a small scale on a
``bucket+file`` root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import read_scale
from mlflow.entities import ViewType
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.search_utils import SearchUtils

from mlflow_plugin.tracking.store import BucketTrackingStore


def test_bulk_loaded_backends_read_back_the_same(tmp_path: Path) -> None:
    bucket_uri = f"bucket+file://{tmp_path}/bucket"
    sqlite_uri = f"sqlite:///{tmp_path}/mlflow.db"
    specs = read_scale.make_runs(40)
    writer = BucketTrackingStore(bucket_uri)
    # Raises if the bulk-built document differs from the one create_run + log_batch wrote.
    on_bucket = read_scale.build_bucket(writer, specs, history=3000)
    sqlite = SqlAlchemyStore(sqlite_uri, (tmp_path / "artifacts").as_uri())
    history_run = writer.get_run(on_bucket.history_run_id)
    on_sqlite = read_scale.build_sqlite(sqlite, specs, history_run, history=3000)

    # Raises if any run (info, params, tags, latest metrics, histories) differs.
    read_scale.spot_check(bucket_uri, sqlite_uri, [*on_bucket.run_ids, on_bucket.history_run_id])
    for offset in (0, 10):
        token = SearchUtils.create_page_token(offset) if offset else None
        pages = [
            [
                run.info.run_id
                for run in store.search_runs(
                    [built.experiment_id],
                    read_scale.FILTER,
                    ViewType.ACTIVE_ONLY,
                    10,
                    read_scale.ORDER_BY,
                    page_token=token,
                )
            ]
            for store, built in ((writer, on_bucket), (sqlite, on_sqlite))
        ]
        assert len(pages[0]) == 10
        assert pages[0] == pages[1]
    history = read_scale.full_history(sqlite, on_sqlite.history_run_id, read_scale.HISTORY_KEY)
    assert [(m.step, m.value) for m in history] == [
        (m.step, m.value)
        for m in read_scale.full_history(writer, on_bucket.history_run_id, read_scale.HISTORY_KEY)
    ]
    assert len(history) == 3000


def test_peak_memory_counts_this_process() -> None:
    peak = read_scale.peak_memory(os.getpid())
    assert peak.server > 10 * 2**20
    assert peak.total >= peak.server

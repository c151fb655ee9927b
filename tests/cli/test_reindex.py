"""``reindex``: the query index rebuilt from the bucket, whatever state it was in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlflow import MlflowClient

from tests.cli.conftest import Cli


def _index_file(uri: str) -> Path:
    from mlflow_plugin.tracking.store import BucketTrackingStore

    url = BucketTrackingStore(uri)._index().url
    return Path(url.removeprefix("sqlite:///"))


def test_reindex_repairs_a_tampered_index_and_reports_counts(
    cli: Cli, file_uri: str, moto_uri: str
) -> None:
    for uri in (file_uri, moto_uri):
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("reindexed")
        for i in range(6):
            run = client.create_run(experiment_id, run_name=f"run-{i}")
            client.log_param(run.info.run_id, "lr", str(i))
        assert len(client.search_runs([experiment_id], "params.lr = '3'")) == 1
        with sqlite3.connect(_index_file(uri)) as db:
            db.execute("UPDATE params SET value = 'tampered'")

        result = cli("reindex", uri)
        assert result.returncode == 0, result.stderr
        # 6 runs, the new experiment and the default one.
        assert "indexed 8 documents" in result.stdout
        assert "fetched 8" in result.stdout
        fresh = MlflowClient(uri)
        assert len(fresh.search_runs([experiment_id], "params.lr = '3'")) == 1

        kept = cli("reindex", uri, "--keep")
        assert kept.returncode == 0, kept.stderr
        assert "fetched 0" in kept.stdout


def test_reindex_exits_1_when_documents_are_damaged(
    cli: Cli, file_uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(file_uri)
    experiment_id = client.create_experiment("damaged")
    client.create_run(experiment_id)
    runs = tmp_path / "store" / "experiments" / experiment_id / "runs"
    (runs / f"{'a' * 32}.json").write_text("{not json")
    result = cli("reindex", file_uri)
    assert result.returncode == 1
    assert "left out as damaged 1" in result.stdout

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


def test_reindex_replaces_a_damaged_index_file_without_a_traceback(
    cli_process: Cli, file_uri: str, moto_uri: str
) -> None:
    for uri in (file_uri, moto_uri):
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("damaged-index")
        client.create_run(experiment_id)
        assert len(client.search_runs([experiment_id])) == 1
        index_file = _index_file(uri)
        index_file.write_bytes(b"not a database" * 100)
        for suffix in ("-wal", "-shm"):
            Path(f"{index_file}{suffix}").unlink(missing_ok=True)

        result = cli_process("reindex", uri)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "indexed 3 documents" in result.stdout
        assert Path(f"{index_file}.damaged").exists()
        assert len(MlflowClient(uri).search_runs([experiment_id])) == 1


def test_reindex_that_cannot_use_the_index_exits_1_with_one_line(
    cli_process: Cli, file_uri: str, moto_uri: str, tmp_path: Path
) -> None:
    not_a_file = tmp_path / "a-folder"
    not_a_file.mkdir()
    for uri in (file_uri, moto_uri):
        MlflowClient(uri).create_experiment("unusable-index")
        result = cli_process(
            "reindex", f"{uri}{'&' if '?' in uri else '?'}index=sqlite:///{not_a_file}"
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            "error: cannot use the search index: unable to open database file"
        ]

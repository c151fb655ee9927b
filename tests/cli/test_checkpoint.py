"""``checkpoint``: a snapshot of the index that a new machine opens the bucket from."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_plugin.format import keys
from mlflow_plugin.index.checkpoints import list_checkpoints
from mlflow_plugin.objectstore import StoredObject
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.cli.conftest import Cli


@pytest.mark.parametrize("scheme", ["file", "moto"])
def test_checkpoint_lets_a_new_machine_read_no_run_document(
    cli: Cli,
    scheme: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri: str = request.getfixturevalue(f"{scheme}_uri")
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("checkpointed")
    for i in range(5):
        run = client.create_run(experiment_id, run_name=f"run-{i}")
        client.log_param(run.info.run_id, "lr", str(i))
    client._tracking_client.store.flush()

    result = cli("checkpoint", uri)
    assert result.returncode == 0, result.stderr
    assert "wrote index-checkpoints/" in result.stdout
    # 5 runs, the new experiment and the default one, all fetched by the CLI's own index.
    assert "7 documents" in result.stdout
    store = BucketTrackingStore(uri)
    assert len(list_checkpoints(store.context.objects)) == 1

    # A new machine: an index folder of its own.
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(tmp_path / "new-machine"))
    fresh = BucketTrackingStore(uri)
    reads: list[str] = []
    get = fresh.context.objects.get

    def counted(key: str) -> StoredObject:
        if (keys.document_of_key(key) or ("",))[0] == "run":
            reads.append(key)
        return get(key)

    fresh.context.objects.get = counted  # type: ignore[method-assign]
    runs = fresh.search_runs([experiment_id], "params.lr = '3'", 1, 100)
    assert [r.info.run_name for r in runs] == ["run-3"]
    assert reads == []


def test_checkpoint_refuses_an_index_that_is_not_sqlite(cli: Cli, file_uri: str) -> None:
    result = cli("checkpoint", f"{file_uri}?index=sqlite://")  # in memory: no file to snapshot
    assert result.returncode == 1
    assert "snapshots of a SQLite index" in result.stderr

"""What the plugin keeps on the local disk is the user's alone: the spool and the query index.

The spool holds metrics and tags not yet uploaded; the index holds copies of run documents.
Both are created user-only. A spool folder that belongs to another user (a spool directory
shared by mistake) is never replayed: its contents would reach the bucket with this user's
credentials.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.tracking.spool import OpenLine, Spool, orphaned_spools
from tests.hostile.corpus import register
from tests.servers import S3Endpoint

for _name in ("spool_is_user_only", "index_is_user_only", "foreign_spool_is_not_replayed"):
    register(f"local_files_{_name}", "local files")


def _others_can_reach(path: Path) -> bool:
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


def test_the_spool_is_user_only(
    moto_s3: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_BUCKET_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("MLFLOW_BUCKET_FLUSH_INTERVAL", "3600")
    uri = f"bucket+s3://{moto_s3.shared_bucket}/local-files?endpoint_url={moto_s3.url}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "loss", 0.5)
    client.log_metric(run_id, "loss", 0.25)  # the second call is buffered and spooled
    writers = [p for p in (tmp_path / "spool").rglob("*") if p.is_dir() and (p / "lock").exists()]
    assert writers, "no spool folder was written"
    for folder in writers:
        assert not _others_can_reach(folder), oct(folder.stat().st_mode)
    client._tracking_client.store.flush()


def test_the_index_is_user_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(tmp_path / "index"))
    client = MlflowClient(tracking_uri=f"bucket+file://{tmp_path}/root")
    client.create_run("0")
    assert len(client.search_runs(["0"])) == 1  # a search builds the index
    files = [p for p in (tmp_path / "index").rglob("*") if p.is_file()]
    assert files, "no index was written"
    for path in [*files, *(p.parent for p in files)]:
        assert not _others_can_reach(path), f"{path}: {oct(path.stat().st_mode)}"


def test_a_spool_folder_of_another_user_is_not_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "spool" / "root"
    writer = Spool(root / "writer", "bucket+file:///elsewhere")
    writer.append(OpenLine("r" * 32, "1", [MetricPoint("loss", 1.0, 1, 0)], {}))
    writer.close(remove=False)  # as a crash leaves it: lines on disk, lock free

    found = list(orphaned_spools(root))
    assert [orphan.folder for orphan in found] == [root / "writer"]
    for orphan in found:
        orphan.release(remove=False)

    monkeypatch.setattr(os, "getuid", lambda: os.stat(root / "writer").st_uid + 1)
    assert list(orphaned_spools(root)) == []
    assert (root / "writer" / "lock").exists()  # left alone, not removed either

"""What the spool tests share: a root on each scheme, a dead writer's spool, the stored points."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mlflow_plugin.format import keys
from mlflow_plugin.objectstore import parse_store_uri
from mlflow_plugin.objectstore.uri import root_identity
from mlflow_plugin.tracking.spool import Spool, spool_root
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


@pytest.fixture(params=["file", "moto"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh root on each scheme, with default settings."""
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'root'}"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/spool/{uuid.uuid4().hex}?endpoint_url={moto.url}"


def with_options(uri: str, **options: str) -> str:
    """``uri`` with more query options (``spool="false"``, ``flush_interval="3600"``...)."""
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def reader_uri(uri: str) -> str:
    """The same root, read by a store with no spool: it never replays anything itself."""
    return with_options(uri, spool="false")


def spool_folder(uri: str) -> Path:
    """This machine's spool folder of the root (the tests' MLFLOW_BUCKET_SPOOL_DIR)."""
    return spool_root(os.environ["MLFLOW_BUCKET_SPOOL_DIR"], root_identity(parse_store_uri(uri)))


def writer_folders(uri: str) -> list[Path]:
    root = spool_folder(uri)
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def dead_writer(uri: str, writer_id: str = "0123456789abcdef") -> Spool:
    """A writer's spool in the root's spool folder; ``die`` it once it has written."""
    return Spool(spool_folder(uri) / writer_id, uri)


def die(spool: Spool) -> None:
    """Release what the kernel releases when a process dies: its descriptors and lock."""
    for fd in (spool._open_fd, spool._lock_fd):
        if fd is not None:
            os.close(fd)


def new_run(
    store: BucketTrackingStore, name: str, experiment_id: str | None = None
) -> tuple[str, str]:
    """(experiment id, run id) of a fresh run (in a fresh experiment unless one is given)."""
    if experiment_id is None:
        experiment_id = store.create_experiment(f"{name}-{uuid.uuid4().hex[:8]}")
    return experiment_id, store.create_run(experiment_id, "u", 0, [], name).info.run_id


def damage_run(store: BucketTrackingStore, experiment_id: str, run_id: str) -> bytes:
    """Overwrite the run's document with bytes that are no JSON; return the original."""
    key = keys.run_key(experiment_id, run_id)
    original = store.object_store.get(key).data
    store.object_store.put(key, b'{"run_id": "cut short')
    return original


def repair_run(
    store: BucketTrackingStore, experiment_id: str, run_id: str, original: bytes
) -> None:
    store.object_store.put(keys.run_key(experiment_id, run_id), original)

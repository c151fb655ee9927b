"""MLflow's ``ArtifactRepository`` for ``bucket+s3://`` and ``bucket+file:`` artifact URIs.

The repository is rooted at its artifact URI (a run's ``.../artifacts`` folder, a
logged model's folder, an experiment's artifact location...): artifact paths are
object keys relative to that root. Every path is checked before anything is
written, so ``..``, absolute paths and control characters get an
``MlflowException`` (INVALID_PARAMETER_VALUE) and leave the store untouched.

Large files go through the object store's ``put_file`` / ``get_file`` (parallel
multipart on S3). Object stores have no empty folders, so an empty folder inside
``log_artifacts`` is not recorded (as with MLflow's own S3 repository).

Thread-safe: the only state is the object store, which is thread-safe; MLflow's
server caches one instance and calls it from many threads.
"""

from __future__ import annotations

import os
import posixpath
from concurrent.futures import Future

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import (
    InvalidKey,
    ObjectStore,
    check_key,
    open_object_store,
    parse_store_uri,
)

__all__ = ["BucketArtifactRepository"]


def artifact_key(*parts: str | None) -> str:
    """Join artifact path parts into an object key, refusing anything that could escape.

    >>> artifact_key("plots/epoch-1", "loss.png")
    'plots/epoch-1/loss.png'
    """
    if any(part is not None and not isinstance(part, str) for part in parts):
        raise MlflowException(
            f"artifact paths must be strings, got {parts!r}", INVALID_PARAMETER_VALUE
        )
    given = [part for part in parts if part]
    if any(posixpath.isabs(part) or "\\" in part for part in given):
        raise MlflowException(
            f"Invalid artifact path {'/'.join(given)!r}: it must be relative, without backslashes",
            INVALID_PARAMETER_VALUE,
        )
    joined = "/".join(part.strip("/") for part in given if part.strip("/") not in ("", "."))
    try:
        return check_key(joined)
    except InvalidKey as exc:
        raise MlflowException(
            f"Invalid artifact path {joined!r}: {exc}", INVALID_PARAMETER_VALUE
        ) from exc


def _folder_prefix(path: str | None) -> str:
    if path is None or path.strip("/") in ("", "."):
        return ""
    return artifact_key(path) + "/"


class BucketArtifactRepository(ArtifactRepository):
    """Artifacts stored as objects under the artifact URI.

    >>> repo = BucketArtifactRepository("bucket+file:///tmp/demo/artifacts")  # doctest: +SKIP
    >>> repo.log_artifact("model.pt", "checkpoints")  # doctest: +SKIP
    """

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        with mlflow_errors():
            self._store: ObjectStore = open_object_store(parse_store_uri(artifact_uri))
        super().__init__(artifact_uri, tracking_uri, registry_uri)

    @property
    def object_store(self) -> ObjectStore:
        return self._store

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        key = artifact_key(artifact_path, os.path.basename(local_file))
        with mlflow_errors():
            self._store.put_file(key, local_file)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        # Check every key before the first upload: a bad name leaves nothing half-written.
        uploads: list[tuple[str, str]] = []
        for folder, _, filenames in os.walk(local_dir):
            relative = os.path.relpath(folder, local_dir).replace(os.sep, "/")
            for name in sorted(filenames):
                key = artifact_key(artifact_path, relative, name)
                uploads.append((key, os.path.join(folder, name)))
        futures: list[Future[str]] = [
            self.thread_pool.submit(self._upload, key, path) for key, path in uploads
        ]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]

    def _upload(self, key: str, path: str) -> str:
        with mlflow_errors():
            return self._store.put_file(key, path)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        prefix = _folder_prefix(path)
        with mlflow_errors():
            listing = self._store.list_dir(prefix)
        infos = [FileInfo(folder.rstrip("/"), True, None) for folder in listing.folders]
        infos += [FileInfo(info.key, False, info.size) for info in listing.objects]
        return sorted(infos, key=lambda info: info.path)

    def _is_directory(self, artifact_path: str) -> bool:
        return bool(self.list_artifacts(artifact_path))

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        key = artifact_key(remote_file_path)
        with mlflow_errors():
            self._store.get_file(key, local_path)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        prefix = _folder_prefix(artifact_path)
        with mlflow_errors():
            if prefix:
                self._store.delete(prefix.rstrip("/"))
            self._store.delete_prefix(prefix)

"""MLflow's ``ArtifactRepository`` for ``bucket+s3://`` and ``bucket+file:`` artifact URIs.

The repository is rooted at its artifact URI (a run's ``.../artifacts`` folder, a
logged model's folder, an experiment's artifact location...): artifact paths are
object keys relative to that root. Every path is checked before anything is
written, so ``..``, absolute paths and control characters get an
``MlflowException`` (INVALID_PARAMETER_VALUE) and leave the store untouched.

A folder repository is refused when its root is reached through a symbolic link that
lies inside a store (a folder holding ``_format.json``): MLflow opens repositories at
``<run artifacts>/<sub-folder>`` to download one file, and a link planted there would
otherwise lead the read out of the store. Links above a store's root (``/data`` ->
``/lustre/data``) are the administrator's and stay allowed.

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
from pathlib import Path

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from mlflow_plugin.format.keys import FORMAT_KEY
from mlflow_plugin.mlflow_errors import mlflow_errors
from mlflow_plugin.objectstore import (
    InvalidKey,
    ObjectStore,
    check_key,
    open_object_store,
)
from mlflow_plugin.store_uri import parse_store_uri

__all__ = [
    "BucketArtifactRepository",
    "artifact_key",
    "check_no_link_inside_a_store",
]


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


def check_no_link_inside_a_store(root: str) -> None:
    """Refuse a folder artifact root reached through a symbolic link inside a store's root.

    Walks up from ``root`` to the first folder that holds ``_format.json`` and is not itself
    a link (the store it lies in); any link on the way is refused. A root in no store (an
    artifact location the user chose) is left alone.
    """
    linked: Path | None = None
    current = Path(root)
    while current != current.parent:
        if current.is_symlink():
            linked = linked or current
        elif (current / FORMAT_KEY).is_file():
            if linked is not None:
                raise MlflowException(
                    f"Invalid artifact location {root!r}: it passes through the symbolic link "
                    f"{linked} inside the store {current}; links inside a store are not followed",
                    INVALID_PARAMETER_VALUE,
                )
            return
        current = current.parent


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
            location = parse_store_uri(artifact_uri)
            if not location.is_s3:
                check_no_link_inside_a_store(location.path)
            self._store: ObjectStore = open_object_store(location)
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

"""Entry point MLflow calls to build the artifact repository for ``bucket+`` URIs.

MLflow loads entry points while its own modules are still importing (and this
package may be what started that import), so nothing from MLflow is imported at
module level here: the repository module is imported inside the builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow_plugin.artifacts.repository import BucketArtifactRepository

__all__ = ["build_artifact_repository"]


def build_artifact_repository(
    artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> BucketArtifactRepository:
    from mlflow_plugin.artifacts.repository import BucketArtifactRepository

    return BucketArtifactRepository(
        artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri
    )

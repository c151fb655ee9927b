"""MLflow artifact repository for the ``bucket+s3`` and ``bucket+file`` schemes."""

from __future__ import annotations

from mlflow_plugin.artifacts.repository import BucketArtifactRepository, artifact_key

__all__ = ["BucketArtifactRepository", "artifact_key"]

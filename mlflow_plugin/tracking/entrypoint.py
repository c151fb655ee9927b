"""Entry point MLflow calls to build the tracking store for ``bucket+s3`` / ``bucket+file``.

MLflow loads this module while ``mlflow.tracking`` is still importing, so it must
import nothing from MLflow's store modules at module level: everything is
imported inside the builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow_plugin.tracking.store import BucketTrackingStore

__all__ = ["build_tracking_store"]


def build_tracking_store(store_uri: str, artifact_uri: str | None = None) -> BucketTrackingStore:
    from mlflow_plugin.tracking.store import BucketTrackingStore

    return BucketTrackingStore(store_uri, artifact_uri)

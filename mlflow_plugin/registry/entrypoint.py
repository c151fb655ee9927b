"""Entry point MLflow calls to build the registry store for ``bucket+s3`` / ``bucket+file``.

MLflow loads this module while ``mlflow.tracking`` is still importing, so it must
import nothing from MLflow at module level: everything is imported inside the builder.
MLflow passes ``tracking_uri`` to builders whose signature names it; the store uses it
to resolve ``models:/<model_id>`` sources to logged models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow_plugin.registry.store import BucketRegistryStore

__all__ = ["build_registry_store"]


def build_registry_store(store_uri: str, tracking_uri: str | None = None) -> BucketRegistryStore:
    from mlflow_plugin.registry.store import BucketRegistryStore

    return BucketRegistryStore(store_uri, tracking_uri)

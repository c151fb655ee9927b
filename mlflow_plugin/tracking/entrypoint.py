"""Entry point MLflow calls to build the tracking store for ``bucket+s3`` / ``bucket+file``.

MLflow loads this module while ``mlflow.tracking`` is still importing, so it must
import nothing from MLflow's store modules at module level: everything is
imported inside the builder.
"""

from __future__ import annotations

from typing import Any


def build_tracking_store(store_uri: str, artifact_uri: str | None = None) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED

    raise MlflowException(
        f"the bucket tracking store for {store_uri!r} is not implemented yet; "
        "bucket+ URIs work as artifact locations for now",
        error_code=NOT_IMPLEMENTED,
    )

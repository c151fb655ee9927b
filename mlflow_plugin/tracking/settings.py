"""Write-path settings: the store URI's query, then environment variables, then defaults.

| URI option       | environment variable           | default (S3 / local folder) |
| ---------------- | ------------------------------ | --------------------------- |
| flush_interval   | MLFLOW_BUCKET_FLUSH_INTERVAL   | 5 s / 2 s                   |
| flush_points     | MLFLOW_BUCKET_FLUSH_POINTS     | 20000                       |
| spool            | MLFLOW_BUCKET_SPOOL            | true / false                |
| spool_dir        | MLFLOW_BUCKET_SPOOL_DIR        | ~/.cache/mlflow-bucket/spool |
"""

from __future__ import annotations

import os

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from mlflow_plugin.objectstore import StoreLocation
from mlflow_plugin.tracking.write_buffer import WriteSettings

__all__ = ["spool_settings", "write_settings"]


def _setting(location: StoreLocation, option: str, env: str, default: float) -> float:
    raw = location.option(option) or os.environ.get(env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise MlflowException(
            f"{option} (or {env}) must be a positive number, got {raw!r}", INVALID_PARAMETER_VALUE
        )
    return value


def write_settings(location: StoreLocation) -> WriteSettings:
    interval = _setting(
        location, "flush_interval", "MLFLOW_BUCKET_FLUSH_INTERVAL", 5.0 if location.is_s3 else 2.0
    )
    points = _setting(location, "flush_points", "MLFLOW_BUCKET_FLUSH_POINTS", 20_000)
    return WriteSettings(flush_interval=interval, flush_points=int(points))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def spool_settings(location: StoreLocation) -> str | None:
    """The spool folder to use, or ``None`` when spooling is off."""
    raw = location.option("spool") or os.environ.get("MLFLOW_BUCKET_SPOOL")
    if raw is None:
        enabled = location.is_s3
    elif raw.lower() in _TRUE | _FALSE:
        enabled = raw.lower() in _TRUE
    else:
        raise MlflowException(
            f"spool (or MLFLOW_BUCKET_SPOOL) must be true or false, got {raw!r}",
            INVALID_PARAMETER_VALUE,
        )
    if not enabled:
        return None
    from mlflow_plugin.tracking.spool import default_spool_dir

    return (
        location.option("spool_dir")
        or os.environ.get("MLFLOW_BUCKET_SPOOL_DIR")
        or (default_spool_dir())
    )

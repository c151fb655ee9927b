"""Write-path settings: the store URI's query, then environment variables, then defaults.

| URI option       | environment variable           | default (S3 / local folder) |
| ---------------- | ------------------------------ | --------------------------- |
| flush_interval   | MLFLOW_BUCKET_FLUSH_INTERVAL   | 5 s / 2 s                   |
| flush_points     | MLFLOW_BUCKET_FLUSH_POINTS     | 20000                       |
| spool            | MLFLOW_BUCKET_SPOOL            | true                        |
| spool_dir        | MLFLOW_BUCKET_SPOOL_DIR        | ~/.cache/mlflow-bucket/spool |

Read-path settings (the query index):

| URI option       | environment variable           | default                         |
| ---------------- | ------------------------------ | ------------------------------- |
| index            | MLFLOW_BUCKET_INDEX_URL        | SQLite file in the folder below |
| (none)           | MLFLOW_BUCKET_INDEX_DIR        | ~/.cache/mlflow-bucket/index    |
| index_staleness  | MLFLOW_BUCKET_INDEX_STALENESS  | 2 s (0: re-list on every search) |
| cache_max_bytes  | MLFLOW_BUCKET_CACHE_MAX_BYTES  | 1 GiB (``512M``, ``2G``... also) |

``cache_max_bytes`` bounds the local caches of metric segments and sorted histories
(of every root, together) in the index folder; the least recently used go first.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from mlflow_plugin.objectstore import StoreLocation
from mlflow_plugin.objectstore.uri import root_identity
from mlflow_plugin.tracking.write_buffer import WriteSettings

__all__ = [
    "IndexSettings",
    "cache_max_bytes",
    "index_settings",
    "spool_settings",
    "write_settings",
]


def _setting(location: StoreLocation, option: str, env: str, default: float) -> float:
    raw = location.option(option) or os.environ.get(env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value > 0):  # inf and nan are no interval or count
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
        # On for folder roots too: without it, kill -9 or SIGTERM (no exit hooks) loses
        # what was acknowledged but not yet uploaded.
        enabled = True
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


@dataclass(frozen=True)
class IndexSettings:
    url: str
    staleness: float


def index_settings(location: StoreLocation) -> IndexSettings:
    """Where the query index lives and how stale a search may be."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from mlflow_plugin.index.database import default_index_url, unusable_index

    raw_staleness = location.option("index_staleness") or os.environ.get(
        "MLFLOW_BUCKET_INDEX_STALENESS"
    )
    try:
        staleness = 2.0 if raw_staleness is None else float(raw_staleness)
    except ValueError:
        staleness = -1.0
    if not staleness >= 0:
        raise MlflowException(
            "index_staleness (or MLFLOW_BUCKET_INDEX_STALENESS) must be a number of seconds "
            f">= 0, got {raw_staleness!r}",
            INVALID_PARAMETER_VALUE,
        )
    in_uri = location.option("index")
    url = in_uri or os.environ.get("MLFLOW_BUCKET_INDEX_URL")
    if url is None:
        try:
            return IndexSettings(default_index_url(root_identity(location)), staleness)
        except OSError as exc:  # the index folder cannot be created
            raise unusable_index(exc) from exc
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise MlflowException(
            f"index must be a SQLAlchemy database URL, got {url!r}", INVALID_PARAMETER_VALUE
        ) from None
    if in_uri and parsed.password is not None:
        # Tracking URIs end up in logs and spool files; a password must not travel in them.
        raise MlflowException(
            "the index URL in a tracking URI must not carry a password: "
            "set MLFLOW_BUCKET_INDEX_URL instead",
            INVALID_PARAMETER_VALUE,
        )
    return IndexSettings(url, staleness)


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def cache_max_bytes(location: StoreLocation) -> int:
    """The size bound of the local segment and history caches, in bytes."""
    from mlflow_plugin.cache.segment_files import DEFAULT_CACHE_MAX_BYTES

    raw = location.option("cache_max_bytes") or os.environ.get("MLFLOW_BUCKET_CACHE_MAX_BYTES")
    if raw is None:
        return DEFAULT_CACHE_MAX_BYTES
    text = raw.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    try:
        value = int(float(text[: len(text) - len(unit)]) * _SIZE_UNITS[unit])
    except (ValueError, OverflowError):  # not a number; inf or nan
        value = -1
    if value <= 0:
        raise MlflowException(
            "cache_max_bytes (or MLFLOW_BUCKET_CACHE_MAX_BYTES) must be a positive size in "
            f"bytes, e.g. 1073741824 or 1G, got {raw!r}",
            INVALID_PARAMETER_VALUE,
        )
    return value

"""Where the query index and the local caches live by default: the user's cache folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["default_index_dir", "root_digest"]


def default_index_dir() -> Path:
    """``$MLFLOW_BUCKET_INDEX_DIR``, else ``$XDG_CACHE_HOME/mlflow-bucket/index``."""
    configured = os.environ.get("MLFLOW_BUCKET_INDEX_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mlflow-bucket" / "index"


def root_digest(root: str) -> str:
    """A short, stable file name for a root (its identity string): one per cache."""
    return hashlib.sha256(root.encode("utf-8")).hexdigest()[:16]

"""Where the index and the segment cache live by default: the user's cache folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_index_dir"]


def default_index_dir() -> Path:
    """``$MLFLOW_BUCKET_INDEX_DIR``, else ``$XDG_CACHE_HOME/mlflow-bucket/index``."""
    configured = os.environ.get("MLFLOW_BUCKET_INDEX_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mlflow-bucket" / "index"

"""Where registry documents live under the root. The only place that spells a registry key.

A registered model is stored under a random, immutable model key, so a rename
changes one document instead of moving every version; the name reaches a key
only through its SHA-256, so no name can escape the root.
"""

from __future__ import annotations

import hashlib

from mlflow_plugin.format.keys import check_id

__all__ = [
    "VERSION_DIGITS",
    "model_key",
    "model_name_key",
    "models_prefix",
    "version_from_key",
    "version_key",
    "versions_prefix",
]

#: Version numbers are zero-padded so that key order is numeric order.
VERSION_DIGITS = 10
_VERSION_SUFFIX = ".json"


_MODELS = "registry/models/"


def model_name_key(name: str) -> str:
    """The name claim of a registered model: put-if-absent, points at the model key."""
    return f"registry/names/{hashlib.sha256(name.encode('utf-8')).hexdigest()}.json"


def models_prefix() -> str:
    return _MODELS


def _model_folder(model_id: str) -> str:
    return f"{_MODELS}{check_id(model_id, 'registered model key')}/"


def model_key(model_id: str) -> str:
    return f"{_model_folder(model_id)}model.json"


def versions_prefix(model_id: str) -> str:
    return f"{_model_folder(model_id)}versions/"


def version_key(model_id: str, version: int) -> str:
    if not 0 < version < 10**VERSION_DIGITS:
        raise ValueError(f"model version {version} is out of range")
    return f"{versions_prefix(model_id)}{version:0{VERSION_DIGITS}d}{_VERSION_SUFFIX}"


def version_from_key(key: str) -> int | None:
    """The version number a version key names, or None for any other key."""
    name = key.rsplit("/", 1)[-1]
    digits = name.removesuffix(_VERSION_SUFFIX)
    if name.endswith(_VERSION_SUFFIX) and len(digits) == VERSION_DIGITS and digits.isdigit():
        return int(digits)
    return None

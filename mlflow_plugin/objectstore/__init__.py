"""The object-store layer: the only code that talks to boto3 or the file system.

A narrow interface (``ObjectStore``: get, head, put, put_if_absent, put_if_match,
delete, list) with memory, local-folder and S3 implementations, store URIs, the
conditional-write probe, the error tree (see ``errors``) and ``Backoff``, the one
backoff rule of the package's retry loops.
"""

from __future__ import annotations

from mlflow_plugin.objectstore.backoff import Backoff
from mlflow_plugin.objectstore.base import (
    DirectoryListing,
    ObjectInfo,
    ObjectStore,
    StoredObject,
    check_folder_prefix,
    check_key,
    check_prefix,
)
from mlflow_plugin.objectstore.errors import (
    AccessDenied,
    AlreadyExists,
    ConditionalWritesUnsupported,
    InvalidKey,
    InvalidStoreUri,
    NotFound,
    ObjectStoreError,
    PreconditionFailed,
    StorageUnavailable,
)
from mlflow_plugin.objectstore.local import LocalObjectStore
from mlflow_plugin.objectstore.memory import MemoryObjectStore
from mlflow_plugin.objectstore.probe import check_conditional_writes, check_conditional_writes_once
from mlflow_plugin.objectstore.uri import (
    ADDRESSING_OPTIONS,
    SCHEMES,
    StoreLocation,
    open_object_store,
    parse_store_uri,
)

__all__ = [
    "ADDRESSING_OPTIONS",
    "SCHEMES",
    "AccessDenied",
    "AlreadyExists",
    "Backoff",
    "ConditionalWritesUnsupported",
    "DirectoryListing",
    "InvalidKey",
    "InvalidStoreUri",
    "LocalObjectStore",
    "MemoryObjectStore",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStoreError",
    "PreconditionFailed",
    "StorageUnavailable",
    "StoreLocation",
    "StoredObject",
    "check_conditional_writes",
    "check_conditional_writes_once",
    "check_folder_prefix",
    "check_key",
    "check_prefix",
    "open_object_store",
    "parse_store_uri",
]

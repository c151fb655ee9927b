"""Storage errors as MLflow sees them: one translation shared by every MLflow adapter.

The object-store and format layers know nothing of MLflow; the tracking store,
registry store and artifact repository turn their errors into ``MlflowException``
with MLflow's error codes here, so the server answers 4xx/503 rather than 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    ABORTED,
    DATA_LOSS,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from mlflow_plugin.format.run_batches import BatchTooOld
from mlflow_plugin.format.version import FormatTooNew
from mlflow_plugin.objectstore import errors as storage
from mlflow_plugin.objectstore.errors import ObjectStoreError

__all__ = ["as_mlflow_exception", "invalid_input_errors", "mlflow_errors"]

# The first class a storage error is an instance of decides its code.
_CODES: list[tuple[type[ObjectStoreError], int]] = [
    (storage.InvalidKey, INVALID_PARAMETER_VALUE),
    (storage.InvalidStoreUri, INVALID_PARAMETER_VALUE),
    (storage.NotFound, RESOURCE_DOES_NOT_EXIST),
    (storage.AlreadyExists, RESOURCE_ALREADY_EXISTS),
    (storage.PreconditionFailed, ABORTED),
    (storage.AccessDenied, PERMISSION_DENIED),
    (storage.StorageUnavailable, TEMPORARILY_UNAVAILABLE),
    (storage.ConditionalWritesUnsupported, INVALID_STATE),
    # The store's own data is damaged: a server-side problem, reported with the key.
    (storage.CorruptObject, INTERNAL_ERROR),
    (FormatTooNew, INVALID_STATE),
    # A batch kept unsent for longer than the writer retention: its points are not stored.
    (BatchTooOld, DATA_LOSS),
]


def as_mlflow_exception(exc: ObjectStoreError) -> MlflowException:
    """The ``MlflowException`` (with MLflow's error code) for a storage error."""
    for error_type, code in _CODES:
        if isinstance(exc, error_type):
            return MlflowException(str(exc), error_code=code)
    return MlflowException(f"storage error: {exc}")


@contextmanager
def invalid_input_errors(what: str) -> Iterator[None]:
    """Re-raise a ``TypeError``/``ValueError``/``AttributeError`` as INVALID_PARAMETER_VALUE.

    For MLflow's validators, which assume the types its REST API guarantees: a list or
    an int where a string belongs makes them raise a raw ``TypeError`` (a 500 in the
    server) instead of refusing the input.
    """
    try:
        yield
    except (TypeError, ValueError, AttributeError) as exc:
        raise MlflowException(f"Invalid {what}: {exc}", INVALID_PARAMETER_VALUE) from None


@contextmanager
def mlflow_errors() -> Iterator[None]:
    """Re-raise storage errors inside the block as ``MlflowException``."""
    try:
        yield
    except ObjectStoreError as exc:
        raise as_mlflow_exception(exc) from exc

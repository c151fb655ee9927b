"""The package's error tree, drawn once.

Every object-store implementation translates its backend's failures (botocore,
OSError, ...) into the ``ObjectStoreError`` classes below at exactly one boundary,
with ``raise ... from exc``, so the layers above never see a backend exception. The
format layer's storage errors derive from the same classes (their modules in
brackets); ``mlflow_errors`` maps the tree to MLflow's error codes in one place::

    ObjectStoreError
     +-- InvalidKey                    a key that could escape the root (also ValueError)
     |    +-- InvalidId                an id that cannot name a document [format.keys]
     +-- InvalidStoreUri               a malformed or unsafe store URI (also ValueError)
     +-- NotFound                      the key (or bucket) does not exist (also KeyError)
     +-- AlreadyExists                 put_if_absent lost: the key exists
     |    +-- NameTaken                another experiment or model holds the name
     |    +-- RenameAborted            a rename lost its claim to another [format.name_claims]
     +-- PreconditionFailed            put_if_match lost: the ETag changed
     |    +-- ConflictRetriesExhausted a document kept changing [format.documents]
     +-- AccessDenied                  credentials missing or refused
     +-- StorageUnavailable            endpoint unreachable or failing after retries
     +-- ConditionalWritesUnsupported  the endpoint ignores If-None-Match / If-Match
     +-- CorruptObject                 the object's bytes are not what the format says
     |    +-- UnknownFormat            the format document is unreadable [format.version]
     +-- FormatTooNew                  the root was written by a newer plugin [format.version]
     +-- BatchTooOld                   a batch kept unsent past the writer retention
     +-- NotAStore                     the location holds no store [format.garbage]

Errors that never leave their layer as storage errors (each layer handles or
translates them itself)::

    Exception
     +-- RunNotWritable                an upload found its run purged [tracking.write_buffer]
     +-- CommandFailed                 a command's work failed: exit 1 [cli.common]
     +-- UsageError                    the arguments make no sense: exit 2 [cli.common]
    ValueError
     +-- UnmirrorableDocument          a document the index cannot mirror [index.rows]
     +-- MissingMetrics                nothing to export [transfer.metric_export]
    ImportError
     +-- MissingDependency             an optional package is absent [transfer]

A conflict (``AlreadyExists``, ``PreconditionFailed``) is always reported, never
swallowed: the compare-and-swap loop above depends on it.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AlreadyExists",
    "ConditionalWritesUnsupported",
    "CorruptObject",
    "InvalidKey",
    "InvalidStoreUri",
    "NotFound",
    "ObjectStoreError",
    "PreconditionFailed",
    "StorageUnavailable",
]


class ObjectStoreError(Exception):
    """Base class of every error raised by an object store."""


class InvalidKey(ObjectStoreError, ValueError):
    """The key is empty, absolute, contains ``..``, NUL or a reserved name."""


class InvalidStoreUri(ObjectStoreError, ValueError):
    """The store URI is malformed, uses an unknown scheme or carries a secret."""


class NotFound(ObjectStoreError, KeyError):
    """No object under this key (or the bucket itself is missing)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


class AlreadyExists(ObjectStoreError):
    """``put_if_absent`` found the key already taken."""


class PreconditionFailed(ObjectStoreError):
    """``put_if_match`` found a different ETag: someone else wrote first."""


class AccessDenied(ObjectStoreError):
    """The endpoint refused the credentials (or none were found)."""


class StorageUnavailable(ObjectStoreError):
    """The endpoint could not be reached, or kept failing after retries."""


class ConditionalWritesUnsupported(ObjectStoreError):
    """The endpoint accepted a conditional write it should have refused."""


class CorruptObject(ObjectStoreError):
    """The object exists but cannot be what its key says: truncated or non-JSON bytes, a
    document of the wrong shape, a segment that is not Parquet. The message names the key."""

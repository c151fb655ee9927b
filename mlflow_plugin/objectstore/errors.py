"""The object-store error tree, drawn once.

Every implementation translates its backend's failures (botocore, OSError, ...)
into these classes at exactly one boundary, with ``raise ... from exc``, so the
layers above never see a backend exception::

    ObjectStoreError
     +-- InvalidKey                    a key that could escape the root (also ValueError)
     +-- InvalidStoreUri               a malformed or unsafe store URI (also ValueError)
     +-- NotFound                      the key (or bucket) does not exist
     +-- AlreadyExists                 put_if_absent lost: the key exists
     +-- PreconditionFailed            put_if_match lost: the ETag changed
     +-- AccessDenied                  credentials missing or refused
     +-- StorageUnavailable            endpoint unreachable or failing after retries
     +-- ConditionalWritesUnsupported  the endpoint ignores If-None-Match / If-Match
     +-- CorruptObject                 the object's bytes are not what the format says
                                       (raised by the format and adapter layers on read)

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

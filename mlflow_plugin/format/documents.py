"""JSON documents and the compare-and-swap loop that is the only way to change one.

A mutable document changes only through ``update_document``: read (document,
ETag), apply a pure mutation ``doc -> doc``, put with If-Match, and on a
conflict re-read and re-apply. Because the mutation is re-applied to the newer
document, concurrent writers merge instead of overwriting each other. A
mutation may raise to refuse the change (e.g. a param re-logged with another
value); nothing is written then.

Documents are UTF-8 JSON objects; other encodings (a UTF-16 file saved by an editor,
which Python's ``json.loads`` would accept from bytes) are damaged documents.

Non-finite floats are valid metric values; JSON has no spelling for them, so they
are written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` inside
``{"$float": ...}`` markers and restored on read.
"""

from __future__ import annotations

import json
import marshal
import math
from collections.abc import Callable
from typing import Any

from mlflow_plugin.format.schema import check_document
from mlflow_plugin.objectstore import Backoff, NotFound, ObjectStore, PreconditionFailed
from mlflow_plugin.objectstore.errors import CorruptObject

__all__ = [
    "ConflictRetriesExhausted",
    "Document",
    "Mutation",
    "create_document",
    "decode",
    "decode_document",
    "decode_text",
    "encode",
    "read_document",
    "read_or_none",
    "update_document",
]

#: A decoded JSON document, of any kind. The one alias: ``format.document_types`` names
#: each kind's fields for type checkers; this is what the storage functions pass around.
Document = dict[str, Any]
Mutation = Callable[[Document], Document]

_MAX_CAS_ATTEMPTS = 200
_RACE_BACKOFF = Backoff(first=0.002, ceiling=0.2, jitter=True)


class ConflictRetriesExhausted(PreconditionFailed):
    """The document kept changing under us; give up rather than spin forever."""


def _encode_floats(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {
            "$float": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, dict):
        return {key: _encode_floats(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_floats(item) for item in value]
    return value


def _decode_float(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$float" in obj:
        return float(obj["$float"].replace("Infinity", "inf"))
    return obj


def encode(doc: Document) -> bytes:
    try:
        text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a non-finite float somewhere: only then walk the tree to mark it
        text = json.dumps(_encode_floats(doc), separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def decode(data: bytes) -> Document:
    """The document in ``data``; ``ValueError`` for anything that is not one.

    The bytes must be UTF-8 (``UnicodeDecodeError`` is a ``ValueError``): given bytes,
    ``json.loads`` would also guess UTF-16 and UTF-32, which the format does not allow.
    """
    return decode_text(data.decode("utf-8"))


def decode_text(text: str) -> Document:
    """The document in ``text`` (already decoded from UTF-8); ``ValueError`` if not one."""
    # The hook costs a call per JSON object, half of a decode: only a text that can hold
    # a marker pays for it. A "$float" key needs a "$", written as is or as ``\u0024``
    # (any of its letters may be escaped too: ``"$\u0066loat"``).
    hook = _decode_float if "$" in text or "\\u0024" in text else None
    try:
        doc = json.loads(text, object_hook=hook)
    except (TypeError, AttributeError, RecursionError) as exc:
        # A malformed float marker, or nesting deeper than the parser's recursion limit.
        raise ValueError(f"not a document: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("a document must be a JSON object")
    return doc


def decode_document(key: str, data: bytes, where: str = "") -> Document:
    """The document stored under ``key``, decoded and checked against its kind's schema.

    ``CorruptObject`` naming the key (and ``where``, the store's location) if it is damaged:
    a reader names it here rather than meeting a KeyError or a wrongly typed value later.
    """
    try:
        doc = decode(data)
    except ValueError as exc:  # not UTF-8, truncated or non-JSON, a JSON array, absurd nesting...
        place = f" in {where}" if where else ""
        raise CorruptObject(f"corrupt document {key!r}{place}: not a JSON object ({exc})") from None
    return check_document(key, doc, where)


def _decode_stored(store: ObjectStore, key: str, data: bytes) -> Document:
    return decode_document(key, data, str(store.location))


def read_document(store: ObjectStore, key: str) -> tuple[Document, str]:
    """Return (document, ETag); ``NotFound`` if absent, ``CorruptObject`` if not a document."""
    stored = store.get(key)
    return _decode_stored(store, key, stored.data), stored.etag


def read_or_none(store: ObjectStore, key: str) -> tuple[Document, str] | None:
    """(document, ETag), or None if nothing is stored under ``key``.

    ``CorruptObject`` still raises: a damaged document is not an absent one.
    """
    try:
        return read_document(store, key)
    except NotFound:
        return None


def create_document(store: ObjectStore, key: str, doc: Document) -> str:
    """Create a document; ``AlreadyExists`` if the key is taken."""
    return store.put_if_absent(key, encode(doc))


def _fresh_copy(doc: Document) -> Document:
    """A deep copy of a decoded document (dicts, lists, text, numbers, null only).

    ``marshal`` copies such a tree several times faster than parsing the JSON again or
    ``copy.deepcopy``; it is used in memory only, never for stored bytes.
    """
    copied: Document = marshal.loads(marshal.dumps(doc))
    return copied


def update_document(store: ObjectStore, key: str, mutate: Mutation) -> tuple[Document, str]:
    """Apply ``mutate`` by compare-and-swap; return the document as written and its ETag.

    ``mutate`` receives a fresh copy of the stored document each attempt, already checked
    against its kind's schema, and must not have side effects outside the document. If it
    returns the document unchanged, nothing is written.
    """
    for attempt in range(_MAX_CAS_ATTEMPTS):
        stored = store.get(key)
        current = _decode_stored(store, key, stored.data)
        # A copy: ``current`` must stay as stored to tell whether anything changed.
        updated = mutate(_fresh_copy(current))
        if updated == current:
            return current, stored.etag
        data = encode(updated)
        if data == stored.data:  # equal but for NaN (never equal to itself): unchanged too
            return current, stored.etag
        try:
            etag = store.put_if_match(key, data, stored.etag)
            return updated, etag
        except PreconditionFailed:
            # Back off a little, with jitter, so writers racing on one document spread out.
            _RACE_BACKOFF.sleep(attempt)
        except NotFound:
            raise
    raise ConflictRetriesExhausted(
        f"{key!r} kept changing; gave up after {_MAX_CAS_ATTEMPTS} tries"
    )

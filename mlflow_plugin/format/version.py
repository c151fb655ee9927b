"""The root's format document (``_format.json``): which layout a root uses, and migrations.

Every process that opens a root calls ``open_root`` first. A new root gets the current
format document by put-if-absent. An existing one is read and:

- its version is this plugin's: opened as it is;
- it is newer: refused (``FormatTooNew``), because this plugin would write documents a
  newer one does not expect; the message names both versions and says to upgrade;
- it is older: the registered ``MIGRATIONS`` are applied in order and the result is
  written back by compare-and-swap on ``_format.json``, so when several processes open
  an old root at once exactly one migration is recorded and every process sees it;
- it is not a format document at all (not JSON, another ``format``, a version that is
  not a positive integer): ``UnknownFormat``, naming the key.

Versions::

    1  the layout of DESIGN.md; _format.json is {"format": "mlflow-bucket", "version": 1}
    2  _format.json also carries "root_id" (random, minted once: a cache of the root,
       such as the query index or the spool, can tell it from another root later created
       at the same URI) and either "created_by" (the plugin version that created the
       root) or "migrations" (who migrated it, from which version to which, and when).
       Nothing else changed: migrating 1 -> 2 rewrites only _format.json.
    3  run documents carry "tag_clocks" ({tag key: [acknowledged_us, writer_id, counter]},
       a deleted tag's clock kept as a tombstone), and spooled batches carry the clocks
       of their tags: a tag write enters only if it is not older than the stored value
       (``run_batches``). A plugin of version 2 would overwrite tags without moving their
       clocks, so it must not write to such a root: it refuses it as too new. A tag
       without a clock counts as older than any clocked write, so migrating 2 -> 3
       rewrites only _format.json; run documents gain clocks as their tags are written.
       The status likewise: "status_clock" is the clock of the stored status, and a
       final status kept in a batch during an outage enters only if it is newer.
       Later, without a new version: run documents may carry "writer_times" and
       "writers_watermark", the writers map's retention (``run_batches``). They are
       optional fields a version-3 plugin keeps unread, so no migration is needed (an
       older plugin's writers, which record no time, are never forgotten).

A migration step is ``(from_version, to_version, function)``; the function gets the
object store and the format document and returns the new format document. It may
rewrite other objects first, and must then be idempotent: two processes may run it at
once, and the compare-and-swap only decides whose format document is recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from mlflow_plugin.format.documents import Document, encode
from mlflow_plugin.format.keys import FORMAT_KEY
from mlflow_plugin.format.schema import document_problems
from mlflow_plugin.objectstore import AlreadyExists, ObjectStore, PreconditionFailed
from mlflow_plugin.objectstore.errors import CorruptObject, ObjectStoreError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MIGRATIONS",
    "FormatTooNew",
    "Migration",
    "UnknownFormat",
    "migrate",
    "new_format_document",
    "open_root",
    "plugin_version",
]

FORMAT_NAME = "mlflow-bucket"
#: The format this plugin writes; roots of older versions are migrated up to it.
FORMAT_VERSION = 3
_MAX_ATTEMPTS = 50


class FormatTooNew(ObjectStoreError):
    """The root was written by a newer mlflow-bucket than this one."""


class UnknownFormat(CorruptObject):
    """``_format.json`` exists but is not an mlflow-bucket format document."""


@dataclass(frozen=True)
class Migration:
    """One step of the format's history: ``apply(store, doc) -> doc`` at ``to_version``."""

    from_version: int
    to_version: int
    apply: Callable[[ObjectStore, Document], Document]


def plugin_version() -> str:
    try:
        return f"mlflow-bucket {package_version('mlflow-bucket')}"
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "mlflow-bucket (not installed)"


def _add_root_id(store: ObjectStore, doc: Document) -> Document:
    """1 -> 2: mint the root's id (who created a version-1 root was never recorded)."""
    return {**doc, "root_id": uuid.uuid4().hex}


def _tag_clocks(store: ObjectStore, doc: Document) -> Document:
    """2 -> 3: nothing to rewrite (a tag without a clock is older than any clocked one)."""
    return dict(doc)


MIGRATIONS: list[Migration] = [Migration(1, 2, _add_root_id), Migration(2, 3, _tag_clocks)]


def new_format_document() -> Document:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "root_id": uuid.uuid4().hex,
        "created_by": plugin_version(),
    }


def _parse(store: ObjectStore, data: bytes) -> Document:
    where = f"{FORMAT_KEY!r} in {store.location}"
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise UnknownFormat(f"{where} is not JSON ({exc}); {_REPAIR}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise UnknownFormat(f"{where} is not an {FORMAT_NAME} format document; {_REPAIR}")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**63:
        raise UnknownFormat(f"{where} has no valid format version: {version!r}; {_REPAIR}")
    if version <= FORMAT_VERSION:  # a newer format's document is a newer plugin's to check
        problems = document_problems(FORMAT_KEY, doc)
        if problems:
            raise UnknownFormat(f"{where} is damaged: {'; '.join(problems)}; {_REPAIR}")
    return doc


_REPAIR = (
    "the root is damaged or is not an mlflow-bucket root: restore the object from a backup, "
    "or point the URI at another folder or prefix"
)


def _too_new(store: ObjectStore, version: int) -> FormatTooNew:
    return FormatTooNew(
        f"the store at {store.location} uses mlflow-bucket format version {version}, but "
        f"this {plugin_version()} reads and writes format versions up to {FORMAT_VERSION}. "
        "It was written by a newer mlflow-bucket: upgrade this one "
        "(pip install --upgrade mlflow-bucket) to open it. Nothing was changed."
    )


def migrate(store: ObjectStore, doc: Document) -> Document:
    """``doc`` brought to ``FORMAT_VERSION`` by the registered steps, with a history entry."""
    start = doc["version"]
    while doc["version"] < FORMAT_VERSION:
        step = next((m for m in MIGRATIONS if m.from_version == doc["version"]), None)
        if step is None:
            raise UnknownFormat(
                f"no migration from format version {doc['version']} for {store.location}"
            )
        doc = {**step.apply(store, doc), "version": step.to_version}
    history = list(doc.get("migrations", []))
    history.append(
        {"from": start, "to": doc["version"], "by": plugin_version(), "at": int(time.time() * 1000)}
    )
    return {**doc, "migrations": history}


def open_root(store: ObjectStore) -> Document:
    """Create, check or migrate the root's format document; return it as it now stands.

    Raises ``FormatTooNew`` for a root of a newer format and ``UnknownFormat`` for a
    ``_format.json`` that is not a format document; writes nothing in either case.
    """
    created = new_format_document()
    try:
        store.put_if_absent(FORMAT_KEY, encode(created))
        return created
    except AlreadyExists:
        pass
    for _ in range(_MAX_ATTEMPTS):
        stored = store.get(FORMAT_KEY)
        doc = _parse(store, stored.data)
        if doc["version"] > FORMAT_VERSION:
            raise _too_new(store, doc["version"])
        if doc["version"] == FORMAT_VERSION:
            return doc
        migrated = migrate(store, doc)
        try:
            store.put_if_match(FORMAT_KEY, encode(migrated), stored.etag)
            return migrated
        except PreconditionFailed:
            continue  # another process migrated it (or changed it) first: read its result
    raise PreconditionFailed(f"{FORMAT_KEY!r} in {store.location} kept changing while opened")

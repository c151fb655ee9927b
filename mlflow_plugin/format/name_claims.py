"""Name claims: at most one document per name, with no locks and no clocks.

Experiments and registered models are stored under ids; their names must be unique.
A name is claimed by a small document (``experiment-names/<sha256>.json``,
``registry/names/<sha256>.json``) holding the *target*, the id whose document carries
the name. Who owns a name is decided by conditional writes only, never by comparing
times, so a creator whose PUT takes minutes or whose clock is wrong cannot end with a
second document of the same name:

- **Create.** Claim the name for a target by put-if-absent, or read the claim that is
  there. Then create the target's document by put-if-absent. If it exists already:
  carrying the name, the name is taken; carrying another name (another creator took
  that id), the claim is moved on to a new target by compare-and-swap and the creation
  is tried there. A claim whose target has no document (its creator is mid-way, or
  died) is *adopted*: whoever creates that document first owns the name, and the other
  creator finds it carrying the name and reports it taken. Two creators therefore never
  both succeed, however slow either is.
- **Rename** to a name. The document first records ``pending_name``; then the claim is
  written to point at it (created, or moved from a target that carries another name);
  then the document's name is set by compare-and-swap *only while* ``pending_name`` is
  still there. A creator that finds the claim pointing at a document whose rename is
  pending removes ``pending_name`` by compare-and-swap before moving the claim, so on
  that one document either the rename lands first (the name is taken) or its removal
  does (the rename fails): never both.
- **Release.** A claim is never deleted (a delete cannot be conditional). After a
  rename it keeps pointing at a document that now carries another name, and after a
  delete at a target with no document: the two states the next creator of the name
  moves on from, or adopts.

``claimed_at`` is still written, for older versions of this code that read it; this
protocol never reads it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlflow_plugin.format.documents import (
    ConflictRetriesExhausted,
    Document,
    create_document,
    encode,
    read_or_none,
    update_document,
)
from mlflow_plugin.objectstore import AlreadyExists, NotFound, ObjectStore, PreconditionFailed

__all__ = [
    "PENDING_NAME",
    "NameClaim",
    "NameTaken",
    "RenameAborted",
    "create_named",
    "named_document",
    "rename_named",
]

#: The field of a named document that announces a rename in progress.
PENDING_NAME = "pending_name"
_MAX_ATTEMPTS = 100


class NameTaken(AlreadyExists):
    """The name belongs to another document (``key``, ``document``)."""

    def __init__(self, name: str, key: str, document: Document) -> None:
        super().__init__(f"the name {name!r} is taken by {key!r}")
        self.name = name
        self.key = key
        self.document = document


class RenameAborted(AlreadyExists):
    """A creator of the name took it while this rename was between its writes."""


@dataclass(frozen=True)
class NameClaim:
    """How the documents of one kind claim their names.

    ``claim_key`` is where the claim of ``name`` lives, ``target_field`` the claim's
    field holding the target, and ``document_key(target)`` the key of a target's document.
    """

    name: str
    claim_key: str
    target_field: str
    document_key: Callable[[str], str]

    def claim_document(self, target: str) -> Document:
        return {
            "name": self.name,
            self.target_field: target,
            "claimed_at": int(time.time() * 1000),  # informational only (older readers)
        }


def _claim_or_read(store: ObjectStore, claim: NameClaim, target: str) -> tuple[str, str, bool]:
    """Claim the name for ``target``, or read the claim there: (target, ETag, created?)."""
    for _ in range(_MAX_ATTEMPTS):
        try:
            etag = create_document(store, claim.claim_key, claim.claim_document(target))
            return target, etag, True
        except AlreadyExists:
            pass
        found = read_or_none(store, claim.claim_key)
        if found is not None:
            return str(found[0][claim.target_field]), found[1], False
    raise ConflictRetriesExhausted(f"{claim.claim_key!r} kept appearing and disappearing")


def _holds_name(store: ObjectStore, claim: NameClaim, key: str, document: Document) -> bool:
    """Whether ``document`` (under ``key``) carries the name, after aborting a pending rename.

    A rename to the name that is still pending is aborted by compare-and-swap, so the
    renamer's own compare-and-swap, which needs ``pending_name``, can no longer land.
    """
    if document.get("name") == claim.name:
        return True
    if document.get(PENDING_NAME) != claim.name:
        return False

    def abort(current: Document) -> Document:
        if current.get("name") != claim.name and current.get(PENDING_NAME) == claim.name:
            del current[PENDING_NAME]
        return current

    try:
        return bool(update_document(store, key, abort)[0].get("name") == claim.name)
    except NotFound:
        return False


def create_named(
    store: ObjectStore,
    claim: NameClaim,
    first_target: str,
    make_document: Callable[[str], Document],
    next_target: Callable[[str], str] | None,
) -> str:
    """Create the document named ``claim.name``; return its target.

    ``make_document(target)`` builds the document for a target; ``next_target(target)``
    picks another when ``target`` is taken by a document of another name (``None``:
    only ``first_target`` will do). ``NameTaken`` if the name belongs to a document.
    """
    target, etag, _ = _claim_or_read(store, claim, first_target)
    for _ in range(_MAX_ATTEMPTS):
        key = claim.document_key(target)
        try:
            create_document(store, key, make_document(target))
            return target
        except AlreadyExists:
            pass
        found = read_or_none(store, key)
        if found is None:
            continue  # removed in between: try to create it again
        if _holds_name(store, claim, key, found[0]):
            raise NameTaken(claim.name, key, found[0])
        if next_target is None:
            raise NameTaken(claim.name, key, found[0])
        # The target carries another name: move the claim on, unless someone else did.
        moved = next_target(target)
        try:
            etag = store.put_if_match(claim.claim_key, encode(claim.claim_document(moved)), etag)
            target = moved
        except (PreconditionFailed, NotFound):
            target, etag, _ = _claim_or_read(store, claim, moved)
    raise ConflictRetriesExhausted(f"could not create a document named {claim.name!r}")


def rename_named(
    store: ObjectStore,
    claim: NameClaim,
    target: str,
    rename: Callable[[Document], Document],
) -> Document:
    """Give the document of ``target`` the name ``claim.name``; return it as written.

    ``rename(doc)`` makes the caller's other changes (and may raise to refuse); it runs
    inside the final compare-and-swap, on the document still carrying its old name.
    ``NameTaken`` if another document has the name (or is being created with it);
    ``RenameAborted`` if a creator took it meanwhile.
    """
    key = claim.document_key(target)

    def announce(current: Document) -> Document:
        current[PENDING_NAME] = claim.name
        return current

    update_document(store, key, announce)
    try:
        _point_claim_at(store, claim, target)
    except BaseException:
        _withdraw(store, key, claim.name)
        raise

    def finish(current: Document) -> Document:
        if current.get(PENDING_NAME) != claim.name:
            raise RenameAborted(f"the name {claim.name!r} was taken while renaming {key!r}")
        updated = rename(current)  # sees the old name, and may refuse
        del updated[PENDING_NAME]
        updated["name"] = claim.name
        return updated

    try:
        return update_document(store, key, finish)[0]
    except BaseException:
        _withdraw(store, key, claim.name)
        raise


def _point_claim_at(store: ObjectStore, claim: NameClaim, target: str) -> None:
    """Write the claim to point at ``target`` (after ``pending_name`` is recorded there)."""
    current, etag, created = _claim_or_read(store, claim, target)
    for _ in range(_MAX_ATTEMPTS):
        if created:
            return
        if current != target:
            key = claim.document_key(current)
            found = read_or_none(store, key)
            # A target with no document is being created (or its creator died): its
            # creation owns the name; a rename cannot safely take it over.
            if found is None or _holds_name(store, claim, key, found[0]):
                raise NameTaken(claim.name, key, found[0] if found else {})
        # Written even when it points at ``target`` already: a creator that read the
        # claim before ``pending_name`` was recorded must then fail to move it.
        try:
            store.put_if_match(claim.claim_key, encode(claim.claim_document(target)), etag)
            return
        except (PreconditionFailed, NotFound):
            current, etag, created = _claim_or_read(store, claim, target)
    raise ConflictRetriesExhausted(f"could not claim the name {claim.name!r}")


def _withdraw(store: ObjectStore, key: str, name: str) -> None:
    def withdraw(current: Document) -> Document:
        if current.get(PENDING_NAME) == name:
            del current[PENDING_NAME]
        return current

    with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to withdraw
        update_document(store, key, withdraw)


def named_document(store: ObjectStore, claim: NameClaim) -> tuple[str, Document] | None:
    """(target, document) of the document the claim names, if it carries the name."""
    found = read_or_none(store, claim.claim_key)
    if found is None:
        return None
    target = str(found[0][claim.target_field])
    document = read_or_none(store, claim.document_key(target))
    if document is None or document[0].get("name") != claim.name:
        return None
    return target, document[0]

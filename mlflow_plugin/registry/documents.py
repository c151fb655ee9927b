"""The registry's documents in the bucket: a model by its name, its versions, all of them.

``ModelDocuments`` is what the registered-model methods (``registry.store``) and the
model-version methods (``registry.versions``) share: finding a model document through
its name claim (``format.name_claims``), changing it by compare-and-swap on the
condition that it still carries that name, and listing models with their versions
(one listing, parallel reads; a damaged document is left out with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.utils.validation import _validate_model_name

from mlflow_plugin.format.documents import Document, update_document
from mlflow_plugin.format.name_claims import NameClaim, named_document
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.format.schema import MODEL_VERSION, REGISTERED_MODEL
from mlflow_plugin.objectstore import NotFound, ObjectStore
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.registry import keys
from mlflow_plugin.text_input import is_storable_text

__all__ = [
    "ModelDocuments",
    "ModelWithVersions",
    "Mutation",
    "entry_removed",
    "entry_set",
    "name_claim",
    "not_found_model",
]

_logger = logging.getLogger(__name__)

_READ_WORKERS = 16

T = TypeVar("T")
Mutation = Callable[[Document], Document]

#: A model document and its version documents (tombstones included).
ModelWithVersions = tuple[Document, list[Document]]


def name_claim(name: str) -> NameClaim:
    """The claim of a registered model's name: it points at the model key."""
    return NameClaim(name, keys.model_name_key(name), "model_key", keys.model_key)


def not_found_model(name: str) -> MlflowException:
    return MlflowException(f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST)


def entry_set(field: str, key: str, value: object) -> Mutation:
    """A mutation setting ``doc[field][key]``: a tag, an alias."""

    def mutate(doc: Document) -> Document:
        doc[field][key] = value
        return doc

    return mutate


def entry_removed(field: str, key: str) -> Mutation:
    """A mutation removing ``doc[field][key]`` if it is there."""

    def mutate(doc: Document) -> Document:
        doc[field].pop(key, None)
        return doc

    return mutate


class ModelDocuments:
    """Reads and compare-and-swaps of model and version documents, by model name."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._warned_duplicates: set[tuple[str, ...]] = set()

    def read_all(self, read: Callable[[str], T], keys_to_read: list[str]) -> list[T]:
        """``read`` of each key, in order, in parallel when there are several."""
        if len(keys_to_read) < 2:
            return [read(key) for key in keys_to_read]
        with ThreadPoolExecutor(min(_READ_WORKERS, len(keys_to_read))) as pool:
            return list(pool.map(read, keys_to_read))

    def _read_listed(self, key: str) -> Document | None:
        return read_listed(self.store, key)

    def version_keys(self, model_key: str) -> list[str]:
        """The keys of a model's version documents, in version order."""
        return [
            info.key
            for info in self.store.list(keys.versions_prefix(model_key))
            if keys.version_from_key(info.key) is not None
        ]

    # -- one model ----------------------------------------------------------------------

    def model(self, name: str) -> Document:
        """The model document for ``name``; RESOURCE_DOES_NOT_EXIST if there is none."""
        _validate_model_name(name)
        if not is_storable_text(name):
            raise not_found_model(name)  # no model can have a name UTF-8 cannot spell
        found = named_document(self.store, name_claim(name))
        if found is None:
            raise not_found_model(name)
        return found[1]

    def update_model(self, name: str, mutate: Mutation) -> Document:
        """Compare-and-swap the model document of ``name``; the name must still be its own."""
        model = self.model(name)

        def checked(doc: Document) -> Document:
            if doc["name"] != name:
                raise not_found_model(name)
            return mutate(doc)

        try:
            return update_document(self.store, keys.model_key(model["model_key"]), checked)[0]
        except NotFound:
            raise not_found_model(name) from None

    def touch_model(self, name: str, now: int) -> None:
        def mutate(doc: Document) -> Document:
            doc["last_updated_timestamp"] = max(doc["last_updated_timestamp"], now)
            return doc

        self.update_model(name, mutate)

    def versions(self, model_key: str) -> list[Document]:
        """Every version document of a model, tombstones included, in version order."""
        listed = self.read_all(self._read_listed, self.version_keys(model_key))
        return [doc for doc in listed if doc is not None]

    def touch_versions(self, model_key: str, now: int) -> list[Document]:
        """Set every version's last-updated time (a rename); return the versions."""

        def mutate(doc: Document) -> Document:
            doc["last_updated_timestamp"] = now
            return doc

        def touch(key: str) -> Document | None:
            try:
                return update_document(self.store, key, mutate)[0]
            except NotFound:
                return None
            except CorruptObject as exc:  # a damaged version must not stop the model's change
                _logger.warning("left as it is: %s", exc)
                return None

        touched = self.read_all(touch, self.version_keys(model_key))
        return [doc for doc in touched if doc is not None]

    # -- every model --------------------------------------------------------------------

    def all_models(self) -> list[ModelWithVersions]:
        """Every registered model with its version documents (one listing, parallel reads)."""
        prefix = keys.models_prefix()
        model_doc_keys: list[str] = []
        version_keys: dict[str, list[str]] = {}
        for info in self.store.list(prefix):
            model_key = info.key[len(prefix) :].split("/", 1)[0]
            if REGISTERED_MODEL.is_key(info.key):
                model_doc_keys.append(info.key)
            elif MODEL_VERSION.is_key(info.key):
                version_keys.setdefault(model_key, []).append(info.key)
        # Versions of a model whose document is gone (a delete in progress) are not read.
        wanted = model_doc_keys + [
            key
            for doc_key in model_doc_keys
            for key in version_keys.get(doc_key[len(prefix) :].split("/")[0], [])
        ]
        docs = dict(zip(wanted, self.read_all(self._read_listed, wanted), strict=True))
        result: list[ModelWithVersions] = []
        for doc_key in model_doc_keys:
            model = docs[doc_key]
            if model is None:
                continue
            versions = [
                doc
                for key in version_keys.get(model["model_key"], [])
                if (doc := docs[key]) is not None
            ]
            result.append((model, versions))
        return result

    def one_per_name(self, models: list[ModelWithVersions]) -> list[ModelWithVersions]:
        """Models with unique names: of two documents of one name (a partial restore from a
        backup), the one its claim points at (else the oldest) is listed, with a warning."""
        by_name: dict[str, list[ModelWithVersions]] = {}
        for entry in models:
            by_name.setdefault(entry[0]["name"], []).append(entry)
        listed: list[ModelWithVersions] = []
        for name, entries in by_name.items():
            if len(entries) > 1:
                found = named_document(self.store, name_claim(name))
                claimed = found[0] if found else None
                entries.sort(
                    key=lambda e: (
                        e[0]["model_key"] != claimed,
                        e[0]["creation_timestamp"],
                        e[0]["model_key"],
                    )
                )
                duplicates = tuple(keys.model_key(e[0]["model_key"]) for e in entries)
                if duplicates not in self._warned_duplicates:  # once per process, not per search
                    self._warned_duplicates.add(duplicates)
                    _logger.warning(
                        "registered models %s are all named %r: only the first is listed",
                        list(duplicates),
                        name,
                    )
            listed.append(entries[0])
        return listed

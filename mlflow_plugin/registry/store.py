"""MLflow's model-registry store on the bucket: the class MLflow instantiates, and models.

Layout under the root (keys are spelled in ``registry.keys``)::

    registry/names/<sha256(name)>.json                 name claim -> model key (put-if-absent)
    registry/models/<model_key>/model.json             registered model (CAS): name, description,
                                                       timestamps, tags, aliases
    registry/models/<model_key>/versions/<%010d>.json  model versions (CAS), created put-if-absent

- A name is claimed before its model document is written, and who owns it is decided
  by conditional writes alone, never by comparing clocks (``format.name_claims``).
  A claim whose model document is missing or carries another name is not a model:
  get-by-name answers RESOURCE_DOES_NOT_EXIST at once.
- Rename: ``format.name_claims.rename_named`` (the document announces the new name,
  the claim points at it, the name is set by compare-and-swap). Versions live under
  the immutable model key, so they do not move.
- Delete: the versions go first, then the model document; the claim stays, and the
  next creator of the name creates its document under the same, now empty, key.
- Version numbers: list the versions, ``put_if_absent`` the next number, and on
  ``AlreadyExists`` try the number after: several processes registering the same model
  get 1..N with no gap and no duplicate. A deleted version stays as a redacted
  tombstone, so its number is never reused (as in MLflow's SQL store).
- Webhooks are not stored (listing answers empty, creating says so); prompts, which
  MLflow keeps as tagged registered models, work through ``AbstractStore``'s defaults.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow.entities.model_registry import RegisteredModel, RegisteredModelTag
from mlflow.exceptions import MlflowException
from mlflow.prompt.registry_utils import handle_resource_already_exist_error
from mlflow.protos.databricks_pb2 import (
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.validation import (
    _validate_model_name,
    _validate_model_renaming,
    _validate_registered_model_tag,
    _validate_tag_name,
)

from mlflow_plugin.format.documents import (
    Document,
    read_document,
    update_document,
)
from mlflow_plugin.format.name_claims import (
    NameClaim,
    NameTaken,
    RenameAborted,
    create_named,
    named_document,
    rename_named,
)
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.format.schema import MODEL_VERSION, REGISTERED_MODEL
from mlflow_plugin.format.version import open_root
from mlflow_plugin.mlflow_errors import invalid_input_errors, mlflow_errors
from mlflow_plugin.objectstore import (
    NotFound,
    ObjectStore,
    check_conditional_writes_once,
    open_object_store,
)
from mlflow_plugin.registry import keys
from mlflow_plugin.registry.entities import registered_model_from_doc
from mlflow_plugin.registry.not_stored import RegistryKindsNotStoredMixin
from mlflow_plugin.registry.search import check_model_search_args, search_models
from mlflow_plugin.registry.versions import ModelVersionsMixin
from mlflow_plugin.store_uri import parse_store_uri
from mlflow_plugin.text_input import check_entries, check_text, is_storable_text

__all__ = ["BucketRegistryStore"]

_logger = logging.getLogger(__name__)

_READ_WORKERS = 16


def _name_claim(name: str) -> NameClaim:
    return NameClaim(name, keys.model_name_key(name), "model_key", keys.model_key)


def _new_model_key(_taken: str = "") -> str:
    return uuid.uuid4().hex


def not_found_model(name: str) -> MlflowException:
    return MlflowException(f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST)


class BucketRegistryStore(RegistryKindsNotStoredMixin, ModelVersionsMixin, AbstractStore):
    """Model-registry ``AbstractStore`` for ``bucket+s3://`` and ``bucket+file:`` URIs.

    >>> from mlflow import MlflowClient  # doctest: +SKIP
    >>> client = MlflowClient("bucket+file:///tmp/mlruns-bucket")  # doctest: +SKIP
    >>> client.create_registered_model("digits-cnn").name  # doctest: +SKIP
    'digits-cnn'
    """

    def __init__(self, store_uri: str, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        with mlflow_errors():
            location = parse_store_uri(store_uri)
            self._store: ObjectStore = open_object_store(location)
            if location.is_s3:
                check_conditional_writes_once(self._store)
            # Creates the format document, migrates an older root, refuses a newer one.
            self.format_document = open_root(self._store)
        self.store_uri = store_uri
        self.tracking_uri = tracking_uri or store_uri
        self._warned_duplicates: set[tuple[str, ...]] = set()

    @property
    def object_store(self) -> ObjectStore:
        return self._store

    # Storage errors (a bad id included: InvalidId is an InvalidKey) -> MlflowException.
    _errors = staticmethod(mlflow_errors)

    def _read_all(self, read: Any, keys_to_read: list[str]) -> list[Any]:
        if len(keys_to_read) < 2:
            return [read(key) for key in keys_to_read]
        with ThreadPoolExecutor(min(_READ_WORKERS, len(keys_to_read))) as pool:
            return list(pool.map(read, keys_to_read))

    # -- names and model documents ----------------------------------------------------

    def _read_or_none(self, key: str) -> Document | None:
        try:
            return read_document(self._store, key)[0]
        except NotFound:
            return None

    def _read_listed(self, key: str) -> Document | None:
        """A document for a listing: None if gone, or damaged (left out, with a warning)."""
        return read_listed(self._store, key)

    def _model_doc(self, name: str) -> Document:
        """The model document for ``name``; RESOURCE_DOES_NOT_EXIST if there is none."""
        _validate_model_name(name)
        if not is_storable_text(name):
            raise not_found_model(name)  # no model can have a name UTF-8 cannot spell
        found = named_document(self._store, _name_claim(name))
        if found is None:
            raise not_found_model(name)
        return found[1]

    def _update_model(self, name: str, mutate: Any) -> Document:
        """Compare-and-swap the model document of ``name``; the name must still be its own."""
        model = self._model_doc(name)

        def checked(doc: Document) -> Document:
            if doc["name"] != name:
                raise not_found_model(name)
            result: Document = mutate(doc)
            return result

        try:
            return update_document(self._store, keys.model_key(model["model_key"]), checked)[0]
        except NotFound:
            raise not_found_model(name) from None

    def _touch_model(self, name: str, now: int) -> None:
        def mutate(doc: Document) -> Document:
            doc["last_updated_timestamp"] = max(doc["last_updated_timestamp"], now)
            return doc

        self._update_model(name, mutate)

    def _all_models(self) -> list[tuple[Document, list[Document]]]:
        """Every registered model with its version documents (one listing, parallel reads)."""
        model_doc_keys: list[str] = []
        version_keys: dict[str, list[str]] = {}
        for info in self._store.list(keys.models_prefix()):
            model_key = info.key[len(keys.models_prefix()) :].split("/", 1)[0]
            if REGISTERED_MODEL.is_key(info.key):
                model_doc_keys.append(info.key)
            elif MODEL_VERSION.is_key(info.key):
                version_keys.setdefault(model_key, []).append(info.key)
        # Versions of a model whose document is gone (a delete in progress) are not read.
        wanted = model_doc_keys + [
            key
            for doc_key in model_doc_keys
            for key in version_keys.get(doc_key[len(keys.models_prefix()) :].split("/")[0], [])
        ]
        docs = dict(zip(wanted, self._read_all(self._read_listed, wanted), strict=True))
        result: list[tuple[Document, list[Document]]] = []
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

    def _one_per_name(
        self, models: list[tuple[Document, list[Document]]]
    ) -> list[tuple[Document, list[Document]]]:
        """Models with unique names: of two documents of one name (a partial restore from a
        backup), the one its claim points at (else the oldest) is listed, with a warning."""
        by_name: dict[str, list[tuple[Document, list[Document]]]] = {}
        for entry in models:
            by_name.setdefault(entry[0]["name"], []).append(entry)
        listed: list[tuple[Document, list[Document]]] = []
        for name, entries in by_name.items():
            if len(entries) > 1:
                found = named_document(self._store, _name_claim(name))
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

    # -- registered models ------------------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        tags: list[RegisteredModelTag] | None = None,
        description: str | None = None,
        deployment_job_id: str | None = None,
    ) -> RegisteredModel:
        with invalid_input_errors("registered model"):
            _validate_model_name(name)
            for tag in tags or []:
                _validate_registered_model_tag(tag.key, tag.value)
        check_text("registered model name", name)
        check_text("registered model description", description)
        check_entries("registered model tag", tags)
        now = get_current_time_millis()
        model_key = _new_model_key()
        doc: Document = {
            "model_key": model_key,
            "name": name,
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "description": description,
            "tags": {tag.key: tag.value for tag in tags or []},
            "aliases": {},
            "deployment_job_id": deployment_job_id or None,
        }

        def make_document(target: str) -> Document:
            return {**doc, "model_key": target}

        with self._errors():
            try:
                model_key = create_named(
                    self._store, _name_claim(name), model_key, make_document, _new_model_key
                )
            except NameTaken as exc:
                handle_resource_already_exist_error(
                    name,
                    exc.document["tags"].get("mlflow.prompt.is_prompt") is not None,
                    any(t.key == "mlflow.prompt.is_prompt" for t in tags or []),
                )
                raise  # not reached: that call always raises
            return registered_model_from_doc(make_document(model_key), [])

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self._errors():
            model = self._model_doc(name)
            return registered_model_from_doc(model, self._version_docs(model["model_key"]))

    def update_registered_model(
        self, name: str, description: str | None, deployment_job_id: str | None = None
    ) -> RegisteredModel:
        check_text("registered model description", description)
        now = get_current_time_millis()

        def mutate(doc: Document) -> Document:
            doc["description"] = description
            if deployment_job_id is not None:
                doc["deployment_job_id"] = deployment_job_id or None
            doc["last_updated_timestamp"] = now
            return doc

        with self._errors():
            model = self._update_model(name, mutate)
            return registered_model_from_doc(model, self._version_docs(model["model_key"]))

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        _validate_model_renaming(new_name)
        check_text("registered model name", new_name)
        with self._errors():
            model = self._model_doc(name)
            model_key = model["model_key"]
            now = get_current_time_millis()
            if new_name == name:  # as in SQL: nothing moves, the timestamps do
                self._touch_model(name, now)
                touched = self._model_doc(name)
                return registered_model_from_doc(touched, self._touch_versions(model_key, now))

            def rename(doc: Document) -> Document:
                if doc["name"] != name:  # renamed by someone else meanwhile
                    raise not_found_model(name)
                doc["last_updated_timestamp"] = now
                return doc

            try:
                # The old name's claim stays, pointing at a model that no longer carries
                # it: the next creator of that name moves it on (see format.name_claims).
                renamed = rename_named(self._store, _name_claim(new_name), model_key, rename)
            except (NameTaken, RenameAborted):
                raise MlflowException(
                    f"Registered Model (name={new_name}) already exists.", RESOURCE_ALREADY_EXISTS
                ) from None
            versions = self._touch_versions(model_key, now)
            return registered_model_from_doc(renamed, versions)

    def delete_registered_model(self, name: str) -> None:
        with self._errors():
            model = self._model_doc(name)
            model_key = model["model_key"]
            # Versions first: the claim keeps pointing at this model key, and whoever
            # creates the name next creates its document there (format.name_claims), so
            # nothing of this model may be left under it.
            self._store.delete_prefix(keys.versions_prefix(model_key))
            self._store.delete(keys.model_key(model_key))

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        max_results = (
            SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT if max_results is None else max_results
        )
        check_model_search_args(max_results)
        with self._errors():
            listed = self._one_per_name(self._all_models())
            models = [registered_model_from_doc(m, v) for m, v in listed]
        return search_models(models, filter_string, max_results, order_by, page_token)

    def set_registered_model_tag(self, name: str, tag: RegisteredModelTag) -> None:
        _validate_model_name(name)
        _validate_registered_model_tag(tag.key, tag.value)
        check_entries("registered model tag", [tag])

        def mutate(doc: Document) -> Document:
            doc["tags"][tag.key] = tag.value
            return doc

        with self._errors():
            self._update_model(name, mutate)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        _validate_model_name(name)
        _validate_tag_name(key)

        def mutate(doc: Document) -> Document:
            doc["tags"].pop(key, None)
            return doc

        with self._errors():
            self._update_model(name, mutate)

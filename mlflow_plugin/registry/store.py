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

import uuid

from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
)
from mlflow.exceptions import MlflowException
from mlflow.prompt.registry_utils import handle_resource_already_exist_error
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import (
    SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
)
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.validation import (
    _validate_model_name,
    _validate_model_renaming,
    _validate_registered_model_tag,
    _validate_tag_name,
)

from mlflow_plugin.format import name_claims
from mlflow_plugin.format.documents import Document
from mlflow_plugin.format.version import open_root
from mlflow_plugin.mlflow_errors import invalid_input_errors, mlflow_errors
from mlflow_plugin.objectstore import (
    ObjectStore,
    check_conditional_writes_once,
    open_object_store,
)
from mlflow_plugin.registry import keys
from mlflow_plugin.registry.documents import (
    ModelDocuments,
    entry_removed,
    entry_set,
    name_claim,
    not_found_model,
)
from mlflow_plugin.registry.entities import registered_model_from_doc
from mlflow_plugin.registry.not_stored import RegistryKindsNotStoredMixin
from mlflow_plugin.registry.search import (
    SearchQuery,
    check_model_search_args,
    check_version_search_args,
    search_models,
)
from mlflow_plugin.registry.versions import ModelVersions
from mlflow_plugin.store_uri import parse_store_uri
from mlflow_plugin.text_input import check_entries, check_text

__all__ = ["BucketRegistryStore"]


def _new_model_key(_taken: str = "") -> str:
    return uuid.uuid4().hex


class BucketRegistryStore(RegistryKindsNotStoredMixin, AbstractStore):
    """Model-registry ``AbstractStore`` for ``bucket+s3://`` and ``bucket+file:`` URIs.

    Registered-model methods work here, model-version methods in ``ModelVersions``;
    both over one ``ModelDocuments``.

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
        self._docs = ModelDocuments(self._store)
        self._versions = ModelVersions(self._docs, self.tracking_uri)

    @property
    def object_store(self) -> ObjectStore:
        return self._store

    # Storage errors (a bad id included: InvalidId is an InvalidKey) -> MlflowException.
    _errors = staticmethod(mlflow_errors)

    def _model_doc(self, name: str) -> Document:
        """The model document for ``name``; RESOURCE_DOES_NOT_EXIST if there is none."""
        return self._docs.model(name)

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
                model_key = name_claims.create_named(
                    self._store, name_claim(name), model_key, make_document, _new_model_key
                )
            except name_claims.NameTaken as exc:
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
            return registered_model_from_doc(model, self._docs.versions(model["model_key"]))

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
            model = self._docs.update_model(name, mutate)
            return registered_model_from_doc(model, self._docs.versions(model["model_key"]))

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        _validate_model_renaming(new_name)
        check_text("registered model name", new_name)
        with self._errors():
            model = self._model_doc(name)
            model_key = model["model_key"]
            now = get_current_time_millis()
            if new_name == name:  # as in SQL: nothing moves, the timestamps do
                self._docs.touch_model(name, now)
                touched = self._model_doc(name)
                return registered_model_from_doc(touched, self._docs.touch_versions(model_key, now))

            def rename(doc: Document) -> Document:
                if doc["name"] != name:  # renamed by someone else meanwhile
                    raise not_found_model(name)
                doc["last_updated_timestamp"] = now
                return doc

            try:
                # The old name's claim stays, pointing at a model that no longer carries
                # it: the next creator of that name moves it on (see format.name_claims).
                renamed = name_claims.rename_named(
                    self._store, name_claim(new_name), model_key, rename
                )
            except (name_claims.NameTaken, name_claims.RenameAborted):
                raise MlflowException(
                    f"Registered Model (name={new_name}) already exists.", RESOURCE_ALREADY_EXISTS
                ) from None
            versions = self._docs.touch_versions(model_key, now)
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
            listed = self._docs.one_per_name(self._docs.all_models())
            models = [registered_model_from_doc(m, v) for m, v in listed]
        return search_models(models, SearchQuery(filter_string, max_results, order_by, page_token))

    def set_registered_model_tag(self, name: str, tag: RegisteredModelTag) -> None:
        _validate_model_name(name)
        _validate_registered_model_tag(tag.key, tag.value)
        check_entries("registered model tag", [tag])

        with self._errors():
            self._docs.update_model(name, entry_set("tags", tag.key, tag.value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        _validate_model_name(name)
        _validate_tag_name(key)

        with self._errors():
            self._docs.update_model(name, entry_removed("tags", key))

    # -- model versions (``registry.versions``) ---------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: list[ModelVersionTag] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> ModelVersion:
        return self._versions.create(name, source, run_id, tags, run_link, description, model_id)

    def _await_model_version_creation(self, mv: ModelVersion, await_creation_for: int) -> None:
        """A version is READY when created: nothing to wait for."""

    def get_model_version(self, name: str, version: object) -> ModelVersion:
        return self._versions.get_model_version(name, version)

    def get_model_version_download_uri(self, name: str, version: object) -> str:
        return self._versions.get_model_version_download_uri(name, version)

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        return self._versions.get_latest_versions(name, stages)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        if max_results is None:
            max_results = SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT
        check_version_search_args(max_results)
        return self._versions.search(SearchQuery(filter_string, max_results, order_by, page_token))

    def update_model_version(
        self, name: str, version: object, description: str | None = None
    ) -> ModelVersion:
        return self._versions.update_model_version(name, version, description)

    def transition_model_version_stage(
        self, name: str, version: object, stage: str, archive_existing_versions: bool
    ) -> ModelVersion:
        return self._versions.transition_model_version_stage(
            name, version, stage, archive_existing_versions
        )

    def delete_model_version(self, name: str, version: object) -> None:
        self._versions.delete_model_version(name, version)

    def set_model_version_tag(self, name: str, version: object, tag: ModelVersionTag) -> None:
        self._versions.set_model_version_tag(name, version, tag)

    def delete_model_version_tag(self, name: str, version: object, key: str) -> None:
        self._versions.delete_model_version_tag(name, version, key)

    def set_registered_model_alias(self, name: str, alias: str, version: object) -> None:
        self._versions.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._versions.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self._versions.get_model_version_by_alias(name, alias)

"""Model versions on the bucket: allocation, stages, tags, aliases, search.

``ModelVersions`` does the work of the registry store's model-version methods, over
the ``ModelDocuments`` it shares with the registered-model methods.

A version number is allocated by ``put_if_absent`` on the next version's key; a writer
that loses the race moves on to the number after, so concurrent registrations from
several processes get consecutive numbers. Every later change is a compare-and-swap
of the version document (or, for aliases, of the model document), and each mutation
re-checks that the version is still live, so a change racing a delete cannot revive it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
from mlflow.entities.model_registry.model_version_stages import (
    ALL_STAGES,
    DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS,
    STAGE_ARCHIVED,
    STAGE_DELETED_INTERNAL,
    STAGE_NONE,
    get_canonical_stage,
)
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.validation import (
    _REGISTERED_MODEL_ALIAS_LATEST,
    _validate_model_alias_name,
    _validate_model_alias_name_reserved,
    _validate_model_name,
    _validate_model_version,
    _validate_model_version_tag,
    _validate_tag_name,
)

from mlflow_plugin.format.documents import (
    Document,
    create_document,
    read_or_none,
    update_document,
)
from mlflow_plugin.mlflow_errors import invalid_input_errors, mlflow_errors
from mlflow_plugin.objectstore import AlreadyExists, NotFound
from mlflow_plugin.registry import keys
from mlflow_plugin.registry.documents import ModelDocuments, entry_removed, entry_set
from mlflow_plugin.registry.entities import (
    latest_versions,
    model_version_from_doc,
    redact_version,
)
from mlflow_plugin.registry.search import SearchQuery, search_versions
from mlflow_plugin.text_input import check_entries, check_text, check_texts

__all__ = [
    "ModelVersions",
    "not_found_version",
]

_MAX_ALLOCATION_ATTEMPTS = 10_000


def not_found_version(name: str, version: object) -> MlflowException:
    return MlflowException(
        f"Model Version (name={name}, version={version}) not found", RESOURCE_DOES_NOT_EXIST
    )


class ModelVersions:
    """The registry store's model-version methods (``BucketRegistryStore`` delegates here).

    ``tracking_uri`` is where a ``models:/<model_id>`` source's logged model is looked up.
    """

    def __init__(self, docs: ModelDocuments, tracking_uri: str) -> None:
        self._docs = docs
        self._tracking_uri = tracking_uri

    # -- reading ------------------------------------------------------------------------

    def _live_version(self, name: str, version: object) -> tuple[Document, Document, int]:
        """(model document, version document, version number) of a live version."""
        _validate_model_name(name)
        with invalid_input_errors(f"model version {version!r}"):
            number = _validate_model_version(version)
        try:
            model = self._docs.model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise not_found_version(name, number) from None
        if not 0 < number < 10**keys.VERSION_DIGITS:
            raise not_found_version(name, number)
        found = read_or_none(self._docs.store, keys.version_key(model["model_key"], number))
        if found is None or found[0]["current_stage"] == STAGE_DELETED_INTERNAL:
            raise not_found_version(name, number)
        return model, found[0], number

    def _update_version(
        self, name: str, version: object, mutate: Callable[[Document], Document]
    ) -> tuple[Document, Document]:
        """Compare-and-swap a live version's document; return (model, new version document)."""
        model, _, number = self._live_version(name, version)

        def checked(doc: Document) -> Document:
            if doc["current_stage"] == STAGE_DELETED_INTERNAL:
                raise not_found_version(name, number)
            return mutate(doc)

        key = keys.version_key(model["model_key"], number)
        try:
            return model, update_document(self._docs.store, key, checked)[0]
        except NotFound:
            raise not_found_version(name, number) from None

    def get_model_version(self, name: str, version: object) -> ModelVersion:
        with mlflow_errors():
            model, doc, _ = self._live_version(name, version)
            return model_version_from_doc(model, doc)

    def get_model_version_download_uri(self, name: str, version: object) -> str:
        with mlflow_errors():
            _, doc, _ = self._live_version(name, version)
            return str(doc.get("storage_location") or doc["source"])

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        with mlflow_errors():
            model = self._docs.model(name)
            wanted = {get_canonical_stage(stage) for stage in (stages or ALL_STAGES)}
            docs = latest_versions(self._docs.versions(model["model_key"]), wanted)
            return [model_version_from_doc(model, doc) for doc in docs]

    def search(self, query: SearchQuery) -> PagedList[ModelVersion]:
        """``search_model_versions``, once ``max_results`` is checked."""
        with mlflow_errors():
            everything = self._docs.all_models()
        versions = [
            model_version_from_doc(model, doc)
            for model, docs in everything
            for doc in docs
            if doc["current_stage"] != STAGE_DELETED_INTERNAL
        ]
        prompt_names = {
            model["name"]
            for model, docs in everything
            if any(doc["tags"].get(IS_PROMPT_TAG_KEY) == "true" for doc in docs)
        }
        return search_versions(versions, prompt_names, query)

    # -- creating -------------------------------------------------------------------------

    def _resolve_source(
        self, source: str, run_id: str | None, model_id: str | None
    ) -> tuple[str, str | None]:
        """(storage location, run id) for a source, as MLflow's SQL store resolves them."""
        from mlflow.store.artifact.utils.models import _parse_model_uri
        from mlflow.tracking.client import MlflowClient

        storage_location = source
        if urllib.parse.urlparse(source).scheme == "models":
            parsed = _parse_model_uri(source)
            try:
                if parsed.model_id is not None:
                    logged = MlflowClient(tracking_uri=self._tracking_uri).get_logged_model(
                        parsed.model_id
                    )
                    storage_location = logged.artifact_location
                    run_id = run_id or logged.source_run_id
                else:
                    storage_location = self.get_model_version_download_uri(
                        str(parsed.name), parsed.version
                    )
            except Exception as exc:
                raise MlflowException(
                    f"Unable to fetch model from model URI source artifact location '{source}'."
                    f"Error: {exc}"
                ) from exc
        if not run_id and model_id:
            run_id = (
                MlflowClient(tracking_uri=self._tracking_uri)
                .get_logged_model(model_id)
                .source_run_id
            )
        return storage_location, run_id

    def _allocate_version(self, model_key: str, doc: Document) -> Document:
        """Write ``doc`` under the next free version number; return it with that number."""
        taken = self._docs.version_keys(model_key)
        number = max((keys.version_from_key(key) or 0 for key in taken), default=0) + 1
        for _ in range(_MAX_ALLOCATION_ATTEMPTS):
            candidate = {**doc, "version": number}
            try:
                create_document(self._docs.store, keys.version_key(model_key, number), candidate)
                return candidate
            except AlreadyExists:
                number += 1  # another writer took this number: the next one is ours to try
        raise MlflowException(f"could not allocate a model version after {number} tries")

    def create(
        self,
        name: str,
        source: str,
        run_id: str | None,
        tags: list[ModelVersionTag] | None,
        run_link: str | None,
        description: str | None,
        model_id: str | None,
    ) -> ModelVersion:
        """``create_model_version`` (the local model path is the client's business)."""
        with invalid_input_errors("model version"):
            _validate_model_name(name)
            for tag in tags or []:
                _validate_model_version_tag(tag.key, tag.value)
            check_texts("model version field", (source, run_link, description))
            check_entries("model version tag", tags)
            storage_location, run_id = self._resolve_source(source, run_id, model_id)
        with mlflow_errors():
            model = self._docs.model(name)
            now = get_current_time_millis()
            doc: Document = {
                "version": 0,
                "creation_timestamp": now,
                "last_updated_timestamp": now,
                "description": description,
                "user_id": None,
                "current_stage": STAGE_NONE,
                "source": source,
                "storage_location": storage_location,
                "run_id": run_id,
                "run_link": run_link,
                "status": ModelVersionStatus.to_string(ModelVersionStatus.READY),
                "status_message": None,
                "tags": {tag.key: tag.value for tag in tags or []},
                "model_id": model_id,
            }
            created = self._allocate_version(model["model_key"], doc)
            self._docs.touch_model(name, now)
            return model_version_from_doc(model, created)

    # -- changing ---------------------------------------------------------------------------

    def update_model_version(
        self, name: str, version: object, description: str | None = None
    ) -> ModelVersion:
        check_text("model version description", description)
        now = get_current_time_millis()

        def mutate(doc: Document) -> Document:
            doc["description"] = description
            doc["last_updated_timestamp"] = now
            return doc

        with mlflow_errors():
            model, doc = self._update_version(name, version, mutate)
            return model_version_from_doc(model, doc)

    def transition_model_version_stage(
        self, name: str, version: object, stage: str, archive_existing_versions: bool
    ) -> ModelVersion:
        canonical = get_canonical_stage(stage)
        if archive_existing_versions and canonical not in DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS:
            raise MlflowException(
                "Model version transition cannot archive existing model versions because "
                f"'{stage}' is not an Active stage. Valid stages are "
                f"{DEFAULT_STAGES_FOR_GET_LATEST_VERSIONS}"
            )
        now = get_current_time_millis()

        def move(doc: Document) -> Document:
            doc["current_stage"] = canonical
            doc["last_updated_timestamp"] = now
            return doc

        def archive(doc: Document) -> Document:
            if doc["current_stage"] == canonical:
                doc["current_stage"] = STAGE_ARCHIVED
                doc["last_updated_timestamp"] = now
            return doc

        with mlflow_errors():
            model, moved = self._update_version(name, version, move)
            if archive_existing_versions:
                for other in self._docs.versions(model["model_key"]):
                    if other["version"] != moved["version"] and other["current_stage"] == canonical:
                        key = keys.version_key(model["model_key"], int(other["version"]))
                        update_document(self._docs.store, key, archive)
            self._docs.touch_model(name, now)
            return model_version_from_doc(model, moved)

    def delete_model_version(self, name: str, version: object) -> None:
        now = get_current_time_millis()
        with mlflow_errors():
            _, _, number = self._live_version(name, version)
            self._update_version(name, number, lambda doc: redact_version(doc, now))

            def mutate(doc: Document) -> Document:
                doc["aliases"] = {a: v for a, v in doc["aliases"].items() if v != number}
                doc["last_updated_timestamp"] = max(doc["last_updated_timestamp"], now)
                return doc

            self._docs.update_model(name, mutate)

    def set_model_version_tag(self, name: str, version: object, tag: ModelVersionTag) -> None:
        _validate_model_name(name)
        _validate_model_version(version)
        _validate_model_version_tag(tag.key, tag.value)
        check_entries("model version tag", [tag])

        with mlflow_errors():
            self._update_version(name, version, entry_set("tags", tag.key, tag.value))

    def delete_model_version_tag(self, name: str, version: object, key: str) -> None:
        _validate_model_name(name)
        _validate_model_version(version)
        _validate_tag_name(key)

        with mlflow_errors():
            self._update_version(name, version, entry_removed("tags", key))

    # -- aliases ------------------------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: object) -> None:
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
        with mlflow_errors():
            _, _, number = self._live_version(name, version)

            self._docs.update_model(name, entry_set("aliases", alias, number))

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        _validate_model_name(name)
        _validate_model_alias_name(alias)

        with mlflow_errors():
            self._docs.update_model(name, entry_removed("aliases", alias))

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        if alias.lower() == _REGISTERED_MODEL_ALIAS_LATEST:
            versions = self.get_latest_versions(name)
            if not versions:
                raise MlflowException(
                    f"Latest version not found for model {name}.", RESOURCE_DOES_NOT_EXIST
                )
            return max(versions, key=lambda mv: int(mv.version))
        with mlflow_errors():
            model = self._docs.model(name)
            number = model["aliases"].get(alias)
            if number is None:
                raise MlflowException(
                    f"Registered model alias {alias} not found.", INVALID_PARAMETER_VALUE
                )
            _, doc, _ = self._live_version(name, number)
            return model_version_from_doc(model, doc)

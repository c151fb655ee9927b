"""Experiments on the bucket: name claims, documents, search, lifecycle, tags.

A name is claimed by ``put_if_absent`` on ``experiment-names/<sha256(name)>`` before
the experiment document is written; a claim whose document never appeared (its
creator died in between) is taken over after a minute. A deleted experiment keeps
its name, as in MLflow's SQL store. Ids are sequential integers as in MLflow's SQL
store, taken by put-if-absent of the experiment document; the default experiment
is "0".
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from mlflow.entities import (
    Experiment,
    ExperimentTag,
    LifecycleStage,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_experiment_artifact_location_length,
    _validate_experiment_name,
    _validate_experiment_tag,
)

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import (
    Document,
    create_document,
    encode,
    read_document,
    update_document,
)
from mlflow_plugin.objectstore import (
    AlreadyExists,
    NotFound,
    ObjectStore,
    PreconditionFailed,
)
from mlflow_plugin.page_tokens import offset_from_page_token
from mlflow_plugin.tracking.entities import (
    experiment_from_doc,
)
from mlflow_plugin.tracking.validation import validate_max_results

if TYPE_CHECKING:
    from mlflow_plugin.index.query_index import QueryIndex

__all__ = ["DEFAULT_EXPERIMENT_ID", "ExperimentsMixin", "check_experiment_id"]

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
_STALE_CLAIM_MS = 60_000


def _name_taken(name: str) -> MlflowException:
    return MlflowException(f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS)


def _not_found_experiment(experiment_id: str) -> MlflowException:
    return MlflowException(f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST)


def check_experiment_id(experiment_id: Any) -> str:
    try:
        return str(int(experiment_id))
    except (TypeError, ValueError):
        raise MlflowException(
            f"Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer.",
            INVALID_PARAMETER_VALUE,
        ) from None


class ExperimentsMixin:
    """Experiment methods of the tracking store."""

    # Provided by BucketTrackingStore.
    _store: ObjectStore
    _readers: ThreadPoolExecutor
    _errors: Callable[[], AbstractContextManager[None]]
    artifact_root_uri: str
    _run_docs: Callable[[list[str], int], list[Document]]
    _index: Callable[[], QueryIndex]
    _set_run_stage: Callable[..., None]

    def _ensure_default_experiment(self) -> None:
        if self._store.exists(keys.experiment_key(DEFAULT_EXPERIMENT_ID)):
            return
        try:
            self._create_experiment_with_id(
                DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID, None, []
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _default_artifact_location(self, experiment_id: str) -> str:
        return str(append_to_uri_path(self.artifact_root_uri, experiment_id))

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: list[ExperimentTag] | None = None,
    ) -> str:
        _validate_experiment_name(name)
        if artifact_location:
            _validate_experiment_artifact_location_length(artifact_location)
        for tag in tags or []:
            _validate_experiment_tag(tag.key, tag.value)
        with self._errors():
            return self._create_experiment_with_id(name, None, artifact_location, tags or [])

    def _next_experiment_id(self) -> str:
        folders = self._store.list_dir(keys.experiments_prefix()).folders
        ids = [int(f.split("/")[1]) for f in folders if f.split("/")[1].isdigit()]
        return str(max(ids, default=0) + 1)

    def _claim_name(self, name: str, experiment_id: str) -> str:
        """Claim ``name`` for ``experiment_id``; return the claim's ETag."""
        claim = {
            "name": name,
            "experiment_id": experiment_id,
            "claimed_at": get_current_time_millis(),
        }
        key = keys.experiment_name_key(name)
        try:
            return create_document(self._store, key, claim)
        except AlreadyExists:
            pass
        existing, etag = read_document(self._store, key)
        owner = self._read_experiment_doc(existing["experiment_id"])
        if owner is not None and owner["name"] == name:
            if owner["lifecycle_stage"] == LifecycleStage.DELETED:
                raise MlflowException(
                    f"Experiment {name!r} already exists in deleted state. Restore it, or "
                    "permanently delete it before reusing the name.",
                    RESOURCE_ALREADY_EXISTS,
                )
            raise _name_taken(name)
        if get_current_time_millis() - existing.get("claimed_at", 0) < _STALE_CLAIM_MS:
            raise _name_taken(name)  # another process is creating this experiment right now
        try:  # the claim is stale (its creator died before writing the experiment): take it
            return self._store.put_if_match(key, encode(claim), etag)
        except (PreconditionFailed, NotFound):
            raise _name_taken(name) from None

    def _create_experiment_with_id(
        self,
        name: str,
        experiment_id: str | None,
        artifact_location: str | None,
        tags: list[ExperimentTag],
    ) -> str:
        """Claim the name, then take the next free id (or the given one) by put-if-absent.

        Ids are sequential like the SQL store's: the next is one more than the largest
        folder under ``experiments/``. A writer that loses the race for an id moves its
        name claim to the next one and tries again.
        """
        candidate = experiment_id or self._next_experiment_id()
        claim_key = keys.experiment_name_key(name)
        claim_etag = self._claim_name(name, candidate)
        while True:
            now = get_current_time_millis()
            doc = {
                "experiment_id": candidate,
                "name": name,
                "artifact_location": artifact_location
                or self._default_artifact_location(candidate),
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "creation_time": now,
                "last_update_time": now,
                "tags": {tag.key: tag.value for tag in tags},
            }
            try:
                create_document(self._store, keys.experiment_key(candidate), doc)
                return candidate
            except AlreadyExists:
                if experiment_id is not None:
                    raise _name_taken(name) from None
            candidate = str(max(int(candidate) + 1, int(self._next_experiment_id())))
            claim = {"name": name, "experiment_id": candidate, "claimed_at": now}
            claim_etag = self._store.put_if_match(claim_key, encode(claim), claim_etag)

    def _read_experiment_doc(self, experiment_id: str) -> Document | None:
        try:
            return read_document(self._store, keys.experiment_key(experiment_id))[0]
        except (NotFound, keys.InvalidId):  # "-1" is an integer, and names no experiment
            return None

    def _experiment_doc(self, experiment_id: Any, view_type: int = ViewType.ALL) -> Document:
        experiment_id = check_experiment_id(experiment_id)
        doc = self._read_experiment_doc(experiment_id)
        if doc is None or not LifecycleStage.matches_view_type(view_type, doc["lifecycle_stage"]):
            raise _not_found_experiment(experiment_id)
        return doc

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self._errors():
            return experiment_from_doc(self._experiment_doc(experiment_id))

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        with self._errors():
            try:
                claim, _ = read_document(self._store, keys.experiment_name_key(experiment_name))
            except NotFound:
                return None
            doc = self._read_experiment_doc(claim["experiment_id"])
            if doc is None or doc["name"] != experiment_name:
                return None
            return experiment_from_doc(doc)

    def _experiment_ids(self) -> list[str]:
        return [
            folder.split("/")[1]
            for folder in self._store.list_dir(keys.experiments_prefix()).folders
        ]

    def _all_experiment_docs(self) -> list[Document]:
        docs = self._readers.map(self._read_experiment_doc, self._experiment_ids())
        return [doc for doc in docs if doc is not None]

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        validate_max_results(max_results)
        offset_from_page_token(page_token)  # a forged token is INVALID_PARAMETER_VALUE
        with self._errors():
            docs, next_token = self._index().search_experiments(
                view_type, max_results, filter_string, order_by, page_token
            )
        return PagedList([experiment_from_doc(doc) for doc in docs], next_token)

    def _update_experiment(
        self, experiment_id: str, mutate: Callable[[Document], Document]
    ) -> Document:
        return update_document(self._store, keys.experiment_key(experiment_id), mutate)[0]

    def _set_experiment_stage(self, experiment_id: str, stage: str, required: int) -> None:
        doc = self._experiment_doc(experiment_id, required)

        def mutate(current: Document) -> Document:
            if not LifecycleStage.matches_view_type(required, current["lifecycle_stage"]):
                raise _not_found_experiment(current["experiment_id"])
            current["lifecycle_stage"] = stage
            current["last_update_time"] = get_current_time_millis()
            return current

        self._update_experiment(doc["experiment_id"], mutate)
        # MLflow's SQL store moves the experiment's runs along with it.
        run_stage = (
            LifecycleStage.DELETED if stage == LifecycleStage.DELETED else LifecycleStage.ACTIVE
        )
        for run in self._run_docs([doc["experiment_id"]], ViewType.ALL):
            self._set_run_stage(run["run_id"], run_stage, check=False)

    def delete_experiment(self, experiment_id: str) -> None:
        with self._errors():
            self._set_experiment_stage(experiment_id, LifecycleStage.DELETED, ViewType.ACTIVE_ONLY)

    def restore_experiment(self, experiment_id: str) -> None:
        with self._errors():
            self._set_experiment_stage(experiment_id, LifecycleStage.ACTIVE, ViewType.DELETED_ONLY)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        _validate_experiment_name(new_name)
        with self._errors():
            doc = self._experiment_doc(experiment_id)
            if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
            old_name = doc["name"]
            if old_name == new_name:
                return
            try:
                self._claim_name(new_name, doc["experiment_id"])
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                # MLflow's SQL store reports this (a unique-constraint failure) as BAD_REQUEST.
                raise MlflowException(
                    f"Experiment(name={new_name}) already exists.", BAD_REQUEST
                ) from exc

            def mutate(current: Document) -> Document:
                current["name"] = new_name
                current["last_update_time"] = get_current_time_millis()
                return current

            self._update_experiment(doc["experiment_id"], mutate)
            self._store.delete(keys.experiment_name_key(old_name))

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        _validate_experiment_tag(tag.key, tag.value)
        with self._errors():
            doc = self._experiment_doc(experiment_id)
            self._check_experiment_active(doc)

            def mutate(current: Document) -> Document:
                current["tags"][tag.key] = tag.value
                return current

            self._update_experiment(doc["experiment_id"], mutate)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        with self._errors():
            doc = self._experiment_doc(experiment_id)
            self._check_experiment_active(doc)

            def mutate(current: Document) -> Document:
                if key not in current["tags"]:
                    raise MlflowException(
                        f"No tag with name: {key} in experiment with id {experiment_id}",
                        RESOURCE_DOES_NOT_EXIST,
                    )
                del current["tags"][key]
                return current

            self._update_experiment(doc["experiment_id"], mutate)

    @staticmethod
    def _check_experiment_active(doc: Document) -> None:
        if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The experiment {doc['experiment_id']} must be in the 'active' state. "
                f"Current state is {doc['lifecycle_stage']}.",
                INVALID_PARAMETER_VALUE,
            )

"""Experiments on the bucket: name claims, documents, search, lifecycle, tags.

A name is claimed on ``experiment-names/<sha256(name)>`` before the experiment
document is written, and who owns it is decided by conditional writes alone
(``format.name_claims``): no clock is compared, so neither a slow creator nor a
wrong clock can make two experiments of one name. A deleted experiment keeps its
name, as in MLflow's SQL store. Ids are sequential integers as in MLflow's SQL store,
taken by put-if-absent of the experiment document; the default experiment is "0".

Two documents of one name can still appear (a partial restore from a backup, or a
root written by an older version): searches list the one the name's claim points at
and leave the other out with a warning (see ``index.names``); a get by name answers
the claimed one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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
from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local
from mlflow.utils.validation import (
    _validate_experiment_artifact_location_length,
    _validate_experiment_name,
    _validate_experiment_tag,
)

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, read_document, update_document
from mlflow_plugin.format.name_claims import (
    NameClaim,
    NameTaken,
    RenameAborted,
    create_named,
    named_document,
    rename_named,
)
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.format.run_stage import (
    mark_experiment_deleted,
    mark_experiment_restored,
    mark_run_restored,
)
from mlflow_plugin.format.schema import RUN
from mlflow_plugin.mlflow_errors import invalid_input_errors, mlflow_errors
from mlflow_plugin.objectstore import NotFound
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.page_tokens import offset_from_page_token
from mlflow_plugin.text_input import check_entries, check_text, check_texts, is_storable_text
from mlflow_plugin.tracking.context import StoreContext, check_active
from mlflow_plugin.tracking.entities import (
    experiment_from_doc,
)
from mlflow_plugin.tracking.validation import validate_max_results

__all__ = [
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "Experiments",
    "check_experiment_active",
    "check_experiment_id",
    "resolved_artifact_location",
]

_logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


def _name_claim(name: str) -> NameClaim:
    return NameClaim(name, keys.experiment_name_key(name), "experiment_id", keys.experiment_key)


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


def resolved_artifact_location(location: object) -> str | None:
    """The artifact location a new experiment stores, resolved as MLflow's SQL store does.

    A relative local path or ``file:`` URI is made absolute against the current
    directory (MLflow's ``resolve_uri_if_local``): stored as given, it would name a
    different folder for every process that reads it. Absolute paths and other schemes
    (``s3://``, ``bucket+file:``, ``mlflow-artifacts:``) are kept as given; an empty
    location (``None`` for the default) is ``None``.

    >>> resolved_artifact_location("s3://bucket/path")
    's3://bucket/path'
    >>> resolved_artifact_location("file:///abs/path")
    'file:///abs/path'
    """
    if not location:
        return None
    if not isinstance(location, str):
        raise MlflowException(
            f"Invalid artifact location {location!r}: it must be a string",
            INVALID_PARAMETER_VALUE,
        )
    # urllib refuses some strings with a raw ValueError ("//[x" is an invalid IPv6 host).
    with invalid_input_errors("artifact location"):
        return str(resolve_uri_if_local(location))


def check_experiment_active(doc: Document) -> None:
    check_active(doc, "experiment")


class Experiments:
    """Experiment methods of the tracking store, over the shared ``StoreContext``."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def ensure_default_experiment(self) -> None:
        if self._context.objects.exists(keys.experiment_key(DEFAULT_EXPERIMENT_ID)):
            return
        try:
            self._create_experiment_with_id(
                DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID, None, []
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _default_artifact_location(self, experiment_id: str) -> str:
        return str(append_to_uri_path(self._context.artifact_root_uri, experiment_id))

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: list[ExperimentTag] | None = None,
    ) -> str:
        _validate_experiment_name(name)
        check_text("artifact location", artifact_location)
        artifact_location = resolved_artifact_location(artifact_location)
        if artifact_location:
            _validate_experiment_artifact_location_length(artifact_location)
        for tag in tags or []:
            _validate_experiment_tag(tag.key, tag.value)
        check_text("experiment name", name)
        check_entries("experiment tag", tags)
        with mlflow_errors():
            return self._create_experiment_with_id(name, None, artifact_location, tags or [])

    def _next_experiment_id(self) -> str:
        folders = self._context.objects.list_dir(keys.experiments_prefix()).folders
        ids = [int(f.split("/")[1]) for f in folders if f.split("/")[1].isdigit()]
        return str(max(ids, default=0) + 1)

    def _create_experiment_with_id(
        self,
        name: str,
        experiment_id: str | None,
        artifact_location: str | None,
        tags: list[ExperimentTag],
    ) -> str:
        """Claim the name, then take the next free id (or the given one) by put-if-absent.

        Ids are sequential like the SQL store's: the next is one more than the largest
        folder under ``experiments/``. Who gets the name is decided by conditional writes
        alone (``format.name_claims``), never by comparing clocks.
        """

        def make_document(candidate: str) -> Document:
            now = get_current_time_millis()
            return {
                "experiment_id": candidate,
                "name": name,
                "artifact_location": artifact_location
                or self._default_artifact_location(candidate),
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "creation_time": now,
                "last_update_time": now,
                "tags": {tag.key: tag.value for tag in tags},
            }

        def next_id(taken: str) -> str:
            return str(max(int(taken) + 1, int(self._next_experiment_id())))

        try:
            return create_named(
                self._context.objects,
                _name_claim(name),
                experiment_id or self._next_experiment_id(),
                make_document,
                None if experiment_id is not None else next_id,
            )
        except NameTaken as exc:
            if exc.document.get("lifecycle_stage") == LifecycleStage.DELETED:
                raise MlflowException(
                    f"Experiment {name!r} already exists in deleted state. Restore it, or "
                    "permanently delete it before reusing the name.",
                    RESOURCE_ALREADY_EXISTS,
                ) from None
            raise _name_taken(name) from None

    def _read_experiment_doc(self, experiment_id: str) -> Document | None:
        try:
            return read_document(self._context.objects, keys.experiment_key(experiment_id))[0]
        except (NotFound, keys.InvalidId):  # "-1" is an integer, and names no experiment
            return None

    def experiment_doc(self, experiment_id: Any, view_type: int = ViewType.ALL) -> Document:
        experiment_id = check_experiment_id(experiment_id)
        doc = self._read_experiment_doc(experiment_id)
        if doc is None or not LifecycleStage.matches_view_type(view_type, doc["lifecycle_stage"]):
            raise _not_found_experiment(experiment_id)
        return doc

    def get_experiment(self, experiment_id: str) -> Experiment:
        with mlflow_errors():
            return experiment_from_doc(self.experiment_doc(experiment_id))

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        if not isinstance(experiment_name, str) or not is_storable_text(experiment_name):
            return None  # no experiment can have a name UTF-8 cannot spell
        with mlflow_errors():
            found = named_document(self._context.objects, _name_claim(experiment_name))
            return None if found is None else experiment_from_doc(found[1])

    def experiment_ids(self) -> list[str]:
        return [
            folder.split("/")[1]
            for folder in self._context.objects.list_dir(keys.experiments_prefix()).folders
        ]

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
        check_text("filter", filter_string)  # the index's SQL driver cannot bind it
        check_texts("order_by", order_by or [])
        with mlflow_errors():
            docs, next_token = self._context.index().search_experiments(
                view_type, max_results, filter_string, order_by, page_token
            )
        return PagedList([experiment_from_doc(doc) for doc in docs], next_token)

    def _update_experiment(
        self, experiment_id: str, mutate: Callable[[Document], Document]
    ) -> Document:
        return update_document(self._context.objects, keys.experiment_key(experiment_id), mutate)[0]

    def _change_stage(
        self, experiment_id: str, required: int, change: Callable[[Document, int], Document]
    ) -> None:
        def mutate(current: Document) -> Document:
            if not LifecycleStage.matches_view_type(required, current["lifecycle_stage"]):
                raise _not_found_experiment(current["experiment_id"])
            return change(current, get_current_time_millis())

        self._update_experiment(experiment_id, mutate)

    def delete_experiment(self, experiment_id: str) -> None:
        """Delete the experiment and, as MLflow's SQL store does, all its runs: one
        compare-and-swap of the experiment document, which every run's stage follows
        (``format.run_stage``), so readers see every run deleted at once, and a run
        created meanwhile is deleted too. No run document is written."""
        with mlflow_errors():
            doc = self.experiment_doc(experiment_id, ViewType.ACTIVE_ONLY)
            experiment_id = doc["experiment_id"]
            self._change_stage(experiment_id, ViewType.ACTIVE_ONLY, mark_experiment_deleted)
            for run_id, home in list(self._context.writable_runs.items()):
                if home == experiment_id:  # this process's next logging call checks again
                    self._context.forget_writable(run_id)

    def restore_experiment(self, experiment_id: str) -> None:
        """Restore the experiment and, as MLflow's SQL store does, every run in it, also
        those deleted one by one before the experiment was.

        The runs deleted by themselves are restored first (in parallel), the experiment
        last: until its compare-and-swap lands every run stays deleted with it, so
        readers see all of them come back at once. A restore cut short leaves the
        experiment deleted, and repeating the same call finishes the job.
        """
        with mlflow_errors():
            doc = self.experiment_doc(experiment_id, ViewType.DELETED_ONLY)
            experiment_id = doc["experiment_id"]
            self._restore_runs(experiment_id)
            self._change_stage(experiment_id, ViewType.DELETED_ONLY, mark_experiment_restored)

    def _restore_runs(self, experiment_id: str) -> None:
        """Make active every run of the experiment whose own stage is deleted.

        Where a run lives is its immutable ``run-locations`` pointer, never the listing:
        a stray copy of another experiment's run in this folder (a backup restored into
        the wrong place) is left as it is, and so is the run it copies.
        """
        objects = self._context.objects
        run_keys = [
            info.key
            for info in objects.list(keys.experiment_runs_prefix(experiment_id))
            if RUN.is_key(info.key)  # a stray object there is no run
        ]

        def restore(key: str) -> None:
            run = read_listed(objects, key)  # None: gone meanwhile, or damaged
            if run is None or run["lifecycle_stage"] != LifecycleStage.DELETED:
                return
            run_id = run["run_id"]
            try:
                home = self._context.run_experiment(run_id)
                if home != experiment_id:
                    _logger.warning(
                        "%s is a copy of a run of experiment %s: left as it is", key, home
                    )
                    return
                # None: the run follows its experiment, restored next.
                self._context.update_run(run_id, lambda doc: mark_run_restored(doc, None))
            except CorruptObject as exc:  # a damaged run is left out of every listing anyway
                _logger.warning("run %s left as it is: %s", run_id, exc)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # gone meanwhile: nothing to do
                    raise

        list(self._context.readers.map(restore, run_keys))

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        _validate_experiment_name(new_name)
        check_text("experiment name", new_name)
        with mlflow_errors():
            doc = self.experiment_doc(experiment_id)
            if doc["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
            if doc["name"] == new_name:
                return

            def rename(current: Document) -> Document:
                if current["lifecycle_stage"] != LifecycleStage.ACTIVE:
                    raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
                current["last_update_time"] = get_current_time_millis()
                return current

            try:
                # The old name's claim stays, pointing at a document that no longer carries
                # it: the next creator of that name moves it on (see format.name_claims).
                rename_named(
                    self._context.objects, _name_claim(new_name), doc["experiment_id"], rename
                )
            except (NameTaken, RenameAborted):
                # MLflow's SQL store reports this (a unique-constraint failure) as BAD_REQUEST.
                raise MlflowException(
                    f"Experiment(name={new_name}) already exists.", BAD_REQUEST
                ) from None

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        _validate_experiment_tag(tag.key, tag.value)
        check_entries("experiment tag", [tag])
        with mlflow_errors():
            doc = self.experiment_doc(experiment_id)
            check_experiment_active(doc)

            def mutate(current: Document) -> Document:
                current["tags"][tag.key] = tag.value
                return current

            self._update_experiment(doc["experiment_id"], mutate)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        with mlflow_errors():
            doc = self.experiment_doc(experiment_id)
            check_experiment_active(doc)

            def mutate(current: Document) -> Document:
                if key not in current["tags"]:
                    raise MlflowException(
                        f"No tag with name: {key} in experiment with id {experiment_id}",
                        RESOURCE_DOES_NOT_EXIST,
                    )
                del current["tags"][key]
                return current

            self._update_experiment(doc["experiment_id"], mutate)

"""Runs' lifecycle as MLflow sees it: their own stage, or their experiment's deletion.

A deleted experiment's runs are deleted with it without any run document being
written (``format.run_stage``), so every read of a run's stage reads its experiment's
document too, in parallel with the run's: ``get_run``, the checks before a change
(MLflow refuses changes to a deleted run with INVALID_PARAMETER_VALUE, the same
error for a run deleted by itself or with its experiment), ``delete_run``,
``restore_run`` and the deleted runs ``mlflow gc`` collects.

The check before a change reads the experiment before the run's compare-and-swap,
so a change racing with the experiment's deletion may land just after it, like a
batch of points meeting a run deleted meanwhile: stored, on a deleted run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future

from mlflow.utils.time import get_current_time_millis

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import Document, read_or_none
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.format.run_stage import (
    effective_deleted_time,
    mark_run_deleted,
    mark_run_restored,
    with_effective_stage,
)
from mlflow_plugin.format.schema import RUN
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.tracking.context import StoreContext, check_run_active, check_run_id

__all__ = ["RunLifecycle", "read_experiment"]


def read_experiment(context: StoreContext, experiment_id: str) -> Document | None:
    """The experiment document as stored now; None when it is gone or damaged (its runs'
    own stages then stand: a damaged experiment is left out of every listing)."""
    try:
        found = read_or_none(context.objects, keys.experiment_key(experiment_id))
    except (keys.InvalidId, CorruptObject):  # InvalidId: a name no experiment can have
        return None
    return None if found is None else found[0]


class RunLifecycle:
    """Reads and changes of runs' lifecycle stage, over the shared ``StoreContext``."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def _experiment_of(self, run_id: str) -> Future[Document | None]:
        """The run's experiment document, read in the background."""
        experiment_id = self._context.run_experiment(check_run_id(run_id))
        try:
            return self._context.readers.submit(read_experiment, self._context, experiment_id)
        except RuntimeError:
            # The interpreter is exiting (a run ended by an exit hook): its thread pools take
            # no new work, so read it here.
            read: Future[Document | None] = Future()
            try:
                read.set_result(read_experiment(self._context, experiment_id))
            except Exception as exc:
                read.set_exception(exc)
            return read

    def run_doc(self, run_id: str) -> Document:
        """The run document (after this process's buffered writes), with its effective stage."""
        experiment = self._experiment_of(run_id)
        return with_effective_stage(self._context.run_doc(run_id), experiment.result())

    def active_check(self, run_id: str) -> Callable[[Document], None]:
        """A check of the run document for a compare-and-swap: MLflow's error when the run
        (or its experiment) is deleted. The experiment is read while the run is."""
        experiment = self._experiment_of(run_id)

        def check(doc: Document) -> None:
            check_run_active(with_effective_stage(doc, experiment.result()))

        return check

    def update_active_run(self, run_id: str, mutate: Callable[[Document], Document]) -> Document:
        """Compare-and-swap the run document (after this process's buffered writes to it)
        with ``mutate``; MLflow's error instead when the run or its experiment is deleted."""
        check = self.active_check(run_id)

        def checked(doc: Document) -> Document:
            check(doc)
            return mutate(doc)

        return self._context.update_run(run_id, checked)

    def delete_run(self, run_id: str) -> None:
        """Soft-delete the run (MLflow's SQL store stamps its deletion time anew each time)."""
        self._context.forget_writable(check_run_id(run_id))
        self._context.run_doc(run_id)  # read first, as MLflow's stores do
        self._context.update_run(run_id, lambda doc: mark_run_deleted(doc, _now()))

    def restore_run(self, run_id: str) -> None:
        """Make the run active, even while its experiment stays deleted (as MLflow's SQL
        store does): the run then records that deletion as one it survives."""
        self._context.forget_writable(check_run_id(run_id))
        experiment = self._experiment_of(run_id)
        self._context.run_doc(run_id)
        self._context.update_run(run_id, lambda doc: mark_run_restored(doc, experiment.result()))

    def deleted_run_ids(self, experiment_ids: list[str], deleted_before: int) -> list[str]:
        """Ids of the runs of these experiments deleted at ``deleted_before`` or earlier."""
        self._context.buffer.flush(raise_errors=False)  # this process's writes first
        readers, objects = self._context.readers, self._context.objects
        experiments = dict(
            zip(
                experiment_ids,
                readers.map(functools.partial(read_experiment, self._context), experiment_ids),
                strict=True,
            )
        )
        run_keys = [
            info.key
            for experiment_id in experiment_ids
            for info in objects.list(keys.experiment_runs_prefix(experiment_id))
            if RUN.is_key(info.key)  # a stray object there is no run
        ]
        found = []
        for run in readers.map(functools.partial(read_listed, objects), run_keys):
            if run is None:
                continue  # gone meanwhile, or damaged
            deleted_time = effective_deleted_time(run, experiments.get(run["experiment_id"]))
            if deleted_time is not None and deleted_time <= deleted_before:
                found.append(run["run_id"])
        return found


def _now() -> int:
    return int(get_current_time_millis())

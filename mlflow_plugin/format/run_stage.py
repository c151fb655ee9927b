"""A run's effective lifecycle stage: its own, unless its experiment's deletion covers it.

Deleting an experiment is one compare-and-swap of the experiment document; no run
document is touched, so every reader sees all of its runs deleted at once, and a run
created meanwhile (its creator read the experiment as still active) is deleted too.
A run is *deleted* when

- its own ``lifecycle_stage`` is ``deleted`` (``delete_run``), or
- its experiment is deleted and the run was not restored by itself during that
  deletion (MLflow's ``restore_run`` of a run of a deleted experiment makes it active,
  as in MLflow's SQL store): its ``restored_during`` is not the deletion's mark.

The mark of a deletion is the experiment's ``last_update_time`` while it is deleted
(nothing changes a deleted experiment but its restore). Every stage change of an
experiment moves that time forward by at least one millisecond, so each deletion of
an experiment has a mark of its own. A deleted run's effective ``deleted_time`` is the
later of its own and its experiment's deletion, as MLflow's SQL store stamps every run
of an experiment it deletes.

Run documents written by older versions, whose experiment deletion moved every run
one by one, read the same: those runs are deleted by their own stage.

>>> experiment = {"lifecycle_stage": "deleted", "last_update_time": 7}
>>> effective_stage({"lifecycle_stage": "active"}, experiment)
'deleted'
>>> effective_stage({"lifecycle_stage": "active", "restored_during": 7}, experiment)
'active'
"""

from __future__ import annotations

from mlflow_plugin.format.documents import Document
from mlflow_plugin.format.schema import ACTIVE, DELETED

__all__ = [
    "RESTORED_DURING",
    "deletion_mark",
    "effective_deleted_time",
    "effective_stage",
    "mark_experiment_deleted",
    "mark_experiment_restored",
    "mark_run_deleted",
    "mark_run_restored",
    "with_effective_stage",
]

#: The run field naming the experiment deletion during which the run was restored.
RESTORED_DURING = "restored_during"


def deletion_mark(experiment: Document | None) -> int | None:
    """The mark of the experiment's current deletion; None while it is active (or unknown)."""
    if experiment is None or experiment.get("lifecycle_stage") != DELETED:
        return None
    return int(experiment.get("last_update_time") or 0)


def effective_deleted_time(run: Document, experiment: Document | None) -> int | None:
    """When the run was (effectively) deleted; None while it is active."""
    times = []
    if run["lifecycle_stage"] == DELETED:
        times.append(int(run.get("deleted_time") or 0))
    mark = deletion_mark(experiment)
    if mark is not None and run.get(RESTORED_DURING) != mark:
        times.append(mark)
    return max(times) if times else None


def effective_stage(run: Document, experiment: Document | None) -> str:
    return ACTIVE if effective_deleted_time(run, experiment) is None else DELETED


def with_effective_stage(run: Document, experiment: Document | None) -> Document:
    """A copy of the run document whose stage and deletion time are the effective ones."""
    deleted_time = effective_deleted_time(run, experiment)
    return {
        **run,
        "lifecycle_stage": ACTIVE if deleted_time is None else DELETED,
        "deleted_time": deleted_time,
    }


def _next_update_time(experiment: Document, now: int) -> int:
    # Strictly later than the previous change: a new deletion never reuses an old mark.
    return max(now, int(experiment.get("last_update_time") or 0) + 1)


def mark_experiment_deleted(experiment: Document, now: int) -> Document:
    """Delete the experiment, and with it every run it holds (the only write needed)."""
    experiment["lifecycle_stage"] = DELETED
    experiment["last_update_time"] = _next_update_time(experiment, now)
    return experiment


def mark_experiment_restored(experiment: Document, now: int) -> Document:
    experiment["lifecycle_stage"] = ACTIVE
    experiment["last_update_time"] = _next_update_time(experiment, now)
    return experiment


def mark_run_deleted(run: Document, now: int) -> Document:
    run["lifecycle_stage"] = DELETED
    run["deleted_time"] = now
    run.pop(RESTORED_DURING, None)
    return run


def mark_run_restored(run: Document, experiment: Document | None) -> Document:
    """Make the run's own stage active; ``experiment`` as read: while it is deleted, the
    run stays active despite this deletion (None: the run follows its experiment again)."""
    run["lifecycle_stage"] = ACTIVE
    run["deleted_time"] = None
    mark = deletion_mark(experiment)
    if mark is None:
        run.pop(RESTORED_DURING, None)
    else:
        run[RESTORED_DURING] = mark
    return run

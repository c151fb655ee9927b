"""Differential scenarios: a deleted experiment's runs, as every call meets them.

Deleting an experiment writes only its own document; its runs are deleted with it
(``format.run_stage``). These scenarios check that every reader and writer of a run's
stage answers as MLflow's SQL store does, which moves every run in one transaction:
``get_run``, ``search_runs`` in each view, logging, tag and run updates, ``delete_run``
and ``restore_run`` on runs of a deleted experiment, restoring the experiment (runs
deleted one by one before included), deleting it again, and the deleted runs ``mlflow
gc`` is offered.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Metric, ViewType

from tests.tracking.harness import attempt, scenario

T0 = 1_000_000  # explicit timestamps below the wall-clock floor stay in the compared result

_VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}


def _fill(client: MlflowClient, name: str, runs: int) -> tuple[str, list[str]]:
    """An experiment of ``runs`` runs, named and tagged after it, each with its own start."""
    experiment_id = client.create_experiment(name)
    run_ids = [
        client.create_run(
            experiment_id, start_time=T0 + n, run_name=f"{name}{n}", tags={"n": f"{name}{n}"}
        ).info.run_id
        for n in range(runs)
    ]
    return experiment_id, run_ids


def _stages(client: MlflowClient, run_ids: list[str]) -> list[str]:
    return [client.get_run(run_id).info.lifecycle_stage for run_id in run_ids]


def _views(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> object:
    """Each view's runs (names and stages, in MLflow's order)."""
    return {
        name: [
            (run.info.run_name, run.info.lifecycle_stage)
            for run in client.search_runs(
                experiment_ids, filter_string, run_view_type=view, order_by=["tags.n DESC"]
            )
        ]
        for name, view in _VIEWS.items()
    }


def _deleted_runs(client: MlflowClient, run_ids: list[str]) -> list[int]:
    """Which of ``run_ids`` ``mlflow gc`` is offered as deleted (positions, sorted)."""
    store = client._tracking_client.store
    return sorted(run_ids.index(r) for r in store._get_deleted_runs() if r in run_ids)


@scenario
def experiment_delete_runs_follow_the_experiment(client: MlflowClient) -> object:
    experiment_id, run_ids = _fill(client, "doomed", 4)
    other_id, other_runs = _fill(client, "bystander", 1)
    client.log_metric(run_ids[0], "loss", 0.5, timestamp=T0, step=1)
    client.log_param(run_ids[0], "lr", "0.1")
    client.delete_run(run_ids[1])  # deleted by itself first
    client.delete_experiment(experiment_id)
    return {
        "stages": _stages(client, run_ids),
        "run": client.get_run(run_ids[0]),
        "views": _views(client, [experiment_id]),
        "views_with_bystander": _views(client, [experiment_id, other_id]),
        "filtered": _views(client, [experiment_id], "metrics.loss < 1"),
        "bystander": _stages(client, other_runs),
        "gc_offered": _deleted_runs(client, run_ids),
    }


@scenario
def experiment_delete_refuses_changes_to_its_runs(client: MlflowClient) -> object:
    experiment_id, run_ids = _fill(client, "frozen", 2)
    run_id = run_ids[0]
    client.log_metric(run_id, "loss", 0.5, timestamp=T0, step=1)  # known writable here
    client.set_tag(run_id, "kept", "yes")
    client.delete_experiment(experiment_id)
    return {
        "metric": attempt(client.log_metric, run_id, "loss", 0.4, timestamp=T0, step=2),
        "param": attempt(client.log_param, run_id, "p", "v"),
        "tag": attempt(client.set_tag, run_id, "t", "v"),
        "run_name": attempt(client.set_tag, run_id, "mlflow.runName", "renamed"),
        "batch": attempt(client.log_batch, run_id, metrics=[Metric("m", 1.0, T0, 0)]),
        "delete_tag": attempt(client.delete_tag, run_id, "kept"),
        "update": attempt(client.update_run, run_id, status="FINISHED"),
        "terminate": attempt(client.set_terminated, run_id),
        "other_run_metric": attempt(client.log_metric, run_ids[1], "m", 1.0, timestamp=T0),
        "create_run": attempt(client.create_run, experiment_id, start_time=T0),
        "after": client.get_run(run_id),
        "history": client.get_metric_history(run_id, "loss"),
    }


@scenario
def experiment_restore_brings_back_every_run(client: MlflowClient) -> object:
    experiment_id, run_ids = _fill(client, "phoenix", 4)
    client.delete_run(run_ids[0])  # deleted by itself before the experiment
    client.delete_experiment(experiment_id)
    client.delete_run(run_ids[1])  # deleted by itself while the experiment is deleted
    client.restore_experiment(experiment_id)
    restored = {"stages": _stages(client, run_ids), "views": _views(client, [experiment_id])}
    client.log_metric(run_ids[0], "loss", 0.5, timestamp=T0, step=1)
    client.delete_experiment(experiment_id)
    deleted_again = {"stages": _stages(client, run_ids), "views": _views(client, [experiment_id])}
    client.restore_experiment(experiment_id)
    return {
        "restored": restored,
        "deleted_again": deleted_again,
        "restored_again": _stages(client, run_ids),
        "run": client.get_run(run_ids[0]),
        "gc_offered": _deleted_runs(client, run_ids),
    }


@scenario
def experiment_delete_then_restore_one_run(client: MlflowClient) -> object:
    experiment_id, run_ids = _fill(client, "partial", 3)
    client.delete_experiment(experiment_id)
    client.restore_run(run_ids[0])  # MLflow's SQL store: active, in a deleted experiment
    restored_one = {
        "stages": _stages(client, run_ids),
        "views": _views(client, [experiment_id]),
        "log": attempt(client.log_param, run_ids[0], "p", "v"),
        "experiment": client.get_experiment(experiment_id).lifecycle_stage,
        "gc_offered": _deleted_runs(client, run_ids),
    }
    client.delete_run(run_ids[0])
    deleted_one = _stages(client, run_ids)
    client.restore_run(run_ids[1])
    client.restore_experiment(experiment_id)
    client.delete_experiment(experiment_id)  # a new deletion covers the restored run too
    return {
        "restored_one": restored_one,
        "deleted_one": deleted_one,
        "deleted_again": _stages(client, run_ids),
        "views": _views(client, [experiment_id]),
        "run": client.get_run(run_ids[0]),
    }

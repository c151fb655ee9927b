"""Differential scenarios: runs (create, update, delete, params, metrics, tags, batches)."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from tests.tracking.harness import attempt, scenario

T0 = 1_000_000  # explicit timestamps below the wall-clock floor stay in the compared result


def _run(client: MlflowClient, name: str = "r", **kwargs: object) -> str:
    exp_id = client.create_experiment(f"exp-{name}")
    run = client.create_run(exp_id, start_time=T0, run_name=name, **kwargs)  # type: ignore[arg-type]
    return str(run.info.run_id)


@scenario
def run_create_and_get(client: MlflowClient) -> object:
    exp_id = client.create_experiment("runs")
    created = client.create_run(
        exp_id, start_time=T0, tags={"owner": "ana", "mlflow.note.content": "hello"}, run_name="r1"
    )
    return {"created": created, "get": client.get_run(created.info.run_id)}


@scenario
def run_create_default_experiment(client: MlflowClient) -> object:
    created = client.create_run("0", start_time=T0, run_name="in-default")
    return {"get": client.get_run(created.info.run_id)}


@scenario
def run_create_without_name(client: MlflowClient) -> object:
    exp_id = client.create_experiment("unnamed")
    run = client.get_run(client.create_run(exp_id, start_time=T0).info.run_id)
    name = run.info.run_name
    return {
        "has_generated_name": bool(name),
        "tag_matches": run.data.tags.get("mlflow.runName") == name,
        "start_time": run.info.start_time,
    }


@scenario
def run_create_name_from_tag(client: MlflowClient) -> object:
    exp_id = client.create_experiment("named-by-tag")
    run = client.create_run(exp_id, start_time=T0, tags={"mlflow.runName": "from-tag"})
    return client.get_run(run.info.run_id)


@scenario
def run_create_name_and_tag_conflict(client: MlflowClient) -> object:
    exp_id = client.create_experiment("conflict")
    return attempt(
        client.create_run,
        exp_id,
        start_time=T0,
        run_name="arg",
        tags={"mlflow.runName": "tag"},
    )


@scenario
def run_create_in_unknown_or_deleted_experiment(client: MlflowClient) -> object:
    exp_id = client.create_experiment("doomed")
    client.delete_experiment(exp_id)
    return {
        "unknown": attempt(client.create_run, "987654", start_time=T0, run_name="x"),
        "deleted": attempt(client.create_run, exp_id, start_time=T0, run_name="x"),
    }


@scenario
def run_create_default_start_time(client: MlflowClient) -> object:
    exp_id = client.create_experiment("clock")
    return client.get_run(client.create_run(exp_id, run_name="now").info.run_id)


@scenario
def run_name_collisions(client: MlflowClient) -> object:
    exp_id = client.create_experiment("collide")
    first = client.create_run(exp_id, start_time=T0, run_name="same")
    second = client.create_run(exp_id, start_time=T0 + 1, run_name="same")
    return {
        "run_ids": [first.info.run_id, second.info.run_id],
        "found": client.search_runs([exp_id], order_by=["start_time ASC"]),
    }


@scenario
def run_get_unknown(client: MlflowClient) -> object:
    return {
        "uuid": attempt(client.get_run, "0" * 32),
        "garbage": attempt(client.get_run, "not-a-run"),
    }


@scenario
def run_update_status_and_name(client: MlflowClient) -> object:
    run_id = _run(client)
    client.update_run(run_id, status="FINISHED", name="renamed")
    after_update = client.get_run(run_id)
    client.update_run(run_id, name="renamed-again")
    return {"after_update": after_update, "after_rename": client.get_run(run_id)}


@scenario
def run_update_invalid_status(client: MlflowClient) -> object:
    run_id = _run(client)
    return {
        "bad_status": attempt(client.update_run, run_id, status="DONE"),
        "unknown_run": attempt(client.update_run, "0" * 32, status="FINISHED"),
        "after": client.get_run(run_id),
    }


@scenario
def run_set_terminated(client: MlflowClient) -> object:
    exp_id = client.create_experiment("terminate")
    results = {}
    for i, status in enumerate(["FINISHED", "FAILED", "KILLED"]):
        run = client.create_run(exp_id, start_time=T0, run_name=status.lower())
        client.set_terminated(run.info.run_id, status=status, end_time=T0 + 100 + i)
        results[status] = client.get_run(run.info.run_id)
    return results


@scenario
def run_set_terminated_default(client: MlflowClient) -> object:
    run_id = _run(client)
    client.set_terminated(run_id)
    return client.get_run(run_id)


@scenario
def run_status_transitions(client: MlflowClient) -> object:
    run_id = _run(client)
    seen = []
    for status in ["SCHEDULED", "RUNNING", "FINISHED", "RUNNING", "FAILED"]:
        seen.append([status, attempt(client.update_run, run_id, status=status)])
        seen.append(client.get_run(run_id).info.status)
    return seen


@scenario
def run_set_runname_tag_renames(client: MlflowClient) -> object:
    run_id = _run(client, "original")
    client.set_tag(run_id, "mlflow.runName", "via-tag")
    return client.get_run(run_id)


@scenario
def run_delete_and_restore(client: MlflowClient) -> object:
    run_id = _run(client)
    client.delete_run(run_id)
    deleted = client.get_run(run_id)
    client.restore_run(run_id)
    return {
        "deleted": deleted,
        "restored": client.get_run(run_id),
        "delete_unknown": attempt(client.delete_run, "0" * 32),
        "restore_unknown": attempt(client.restore_run, "0" * 32),
    }


@scenario
def run_delete_twice(client: MlflowClient) -> object:
    run_id = _run(client)
    return {
        "restore_active": attempt(client.restore_run, run_id),
        "first": attempt(client.delete_run, run_id),
        "second": attempt(client.delete_run, run_id),
        "after": client.get_run(run_id),
    }


@scenario
def run_logging_to_deleted_run(client: MlflowClient) -> object:
    run_id = _run(client)
    client.log_param(run_id, "before", "1")
    client.delete_run(run_id)
    return {
        "param": attempt(client.log_param, run_id, "p", "v"),
        "metric": attempt(client.log_metric, run_id, "m", 1.0, timestamp=T0, step=0),
        "tag": attempt(client.set_tag, run_id, "t", "v"),
        "delete_tag": attempt(client.delete_tag, run_id, "mlflow.runName"),
        "batch": attempt(client.log_batch, run_id, params=[Param("q", "1")]),
        "update": attempt(client.update_run, run_id, status="FINISHED"),
        "after": client.get_run(run_id),
    }


@scenario
def run_in_deleted_experiment(client: MlflowClient) -> object:
    exp_id = client.create_experiment("deleted-parent")
    run_id = client.create_run(exp_id, start_time=T0, run_name="child").info.run_id
    client.delete_experiment(exp_id)
    return {
        "get": client.get_run(run_id),
        "log": attempt(client.log_param, run_id, "p", "v"),
        "search_active": client.search_runs([exp_id]),
    }


@scenario
def run_logging_to_unknown_run(client: MlflowClient) -> object:
    missing = "f" * 32
    return {
        "param": attempt(client.log_param, missing, "p", "v"),
        "metric": attempt(client.log_metric, missing, "m", 1.0, timestamp=T0),
        "tag": attempt(client.set_tag, missing, "t", "v"),
        "batch": attempt(client.log_batch, missing, metrics=[Metric("m", 1.0, T0, 0)]),
        "history": attempt(client.get_metric_history, missing, "m"),
    }


# --- params ----------------------------------------------------------------------------


@scenario
def param_log_same_value_twice(client: MlflowClient) -> object:
    run_id = _run(client)
    first = attempt(client.log_param, run_id, "lr", "0.1")
    second = attempt(client.log_param, run_id, "lr", "0.1")
    return {"first": first, "second": second, "after": client.get_run(run_id)}


@scenario
def param_log_different_value(client: MlflowClient) -> object:
    run_id = _run(client)
    client.log_param(run_id, "lr", "0.1")
    return {
        "change": attempt(client.log_param, run_id, "lr", "0.2"),
        "after": client.get_run(run_id),
    }


@scenario
def param_value_types_and_lengths(client: MlflowClient) -> object:
    run_id = _run(client)
    return {
        "int": attempt(client.log_param, run_id, "int", 3),
        "float": attempt(client.log_param, run_id, "float", 0.5),
        "none": attempt(client.log_param, run_id, "none", None),
        "empty": attempt(client.log_param, run_id, "empty", ""),
        "max_len": attempt(client.log_param, run_id, "max", "v" * 6000),
        "too_long": attempt(client.log_param, run_id, "too_long", "v" * 6001),
        "long_key": attempt(client.log_param, run_id, "k" * 251, "v"),
        "max_key": attempt(client.log_param, run_id, "k" * 250, "v"),
        "after": client.get_run(run_id),
    }


_BAD_NAMES = ["../x", "a//b", "/abs", "a/../b", "", "bad#char", "tab\tname", "semi;colon"]
_ODD_NAMES = ["Loss/train", "with space", "dot.ted", "dash-ed", "colon:ed", "ünï"]


@scenario
def param_names_valid_and_invalid(client: MlflowClient) -> object:
    run_id = _run(client)
    outcomes = {name: attempt(client.log_param, run_id, name, "v") for name in _BAD_NAMES}
    outcomes.update({name: attempt(client.log_param, run_id, name, "v") for name in _ODD_NAMES})
    return {"outcomes": outcomes, "after": client.get_run(run_id)}


@scenario
def metric_names_valid_and_invalid(client: MlflowClient) -> object:
    run_id = _run(client)
    names = _BAD_NAMES + _ODD_NAMES
    outcomes = {n: attempt(client.log_metric, run_id, n, 1.0, timestamp=T0) for n in names}
    return {"outcomes": outcomes, "after": client.get_run(run_id)}


@scenario
def tag_names_valid_and_invalid(client: MlflowClient) -> object:
    run_id = _run(client)
    outcomes = {n: attempt(client.set_tag, run_id, n, "v") for n in _BAD_NAMES + _ODD_NAMES}
    return {"outcomes": outcomes, "after": client.get_run(run_id)}


# --- tags ------------------------------------------------------------------------------


@scenario
def tag_set_overwrite_and_delete(client: MlflowClient) -> object:
    run_id = _run(client)
    client.set_tag(run_id, "a", "1")
    client.set_tag(run_id, "a", "2")
    client.set_tag(run_id, "b", "x")
    client.delete_tag(run_id, "b")
    return {
        "after": client.get_run(run_id),
        "delete_missing": attempt(client.delete_tag, run_id, "b"),
        "delete_never_set": attempt(client.delete_tag, run_id, "zzz"),
    }


@scenario
def tag_value_lengths(client: MlflowClient) -> object:
    run_id = _run(client)
    return {
        "long_5000": attempt(client.set_tag, run_id, "t5000", "v" * 5000),
        "long_8000": attempt(client.set_tag, run_id, "t8000", "v" * 8000),
        "too_long": attempt(client.set_tag, run_id, "t8001", "v" * 8001),
        "huge": attempt(client.set_tag, run_id, "huge", "v" * 100_000),
        "lengths": {k: len(v) for k, v in client.get_run(run_id).data.tags.items()},
    }


@scenario
def tag_system_tags_via_set_tag(client: MlflowClient) -> object:
    exp_id = client.create_experiment("system")
    parent = client.create_run(exp_id, start_time=T0, run_name="parent").info.run_id
    child = client.create_run(
        exp_id, start_time=T0 + 1, run_name="child", tags={"mlflow.parentRunId": parent}
    ).info.run_id
    client.set_tag(child, "mlflow.user", "someone")
    client.set_tag(child, "mlflow.source.name", "train.py")
    return {"run_ids": [parent, child], "child": client.get_run(child)}


# --- metrics ---------------------------------------------------------------------------


@scenario
def metric_history_ordering(client: MlflowClient) -> object:
    run_id = _run(client)
    points = [(3, 5.0, T0 + 3), (1, 2.0, T0 + 9), (2, 1.0, T0 + 1), (-1, 7.0, T0 + 2)]
    for step, value, ts in points:
        client.log_metric(run_id, "loss", value, timestamp=ts, step=step)
    return {
        "history": client.get_metric_history(run_id, "loss"),
        "latest": client.get_run(run_id).data.metrics,
        "unknown_key": client.get_metric_history(run_id, "nope"),
    }


@scenario
def metric_same_step_several_values(client: MlflowClient) -> object:
    run_id = _run(client)
    client.log_metric(run_id, "acc", 0.5, timestamp=T0 + 5, step=1)
    client.log_metric(run_id, "acc", 0.7, timestamp=T0 + 5, step=1)
    client.log_metric(run_id, "acc", 0.6, timestamp=T0 + 4, step=1)
    client.log_metric(run_id, "acc", 0.5, timestamp=T0 + 5, step=1)
    return {
        "history": client.get_metric_history(run_id, "acc"),
        "latest": client.get_run(run_id).data.metrics,
    }


@scenario
def metric_latest_max_step_then_timestamp_then_value(client: MlflowClient) -> object:
    run_id = _run(client)
    batches = {
        "step_wins": [(10, T0, 1.0), (2, T0 + 50, 2.0)],
        "timestamp_breaks_tie": [(5, T0 + 1, 9.0), (5, T0 + 2, 3.0)],
        "value_breaks_tie": [(5, T0, 3.0), (5, T0, 4.0), (5, T0, 2.0)],
        "negative_steps": [(-5, T0, 1.0), (-2, T0, 2.0)],
    }
    for key, points in batches.items():
        for step, ts, value in points:
            client.log_metric(run_id, key, value, timestamp=ts, step=step)
    return client.get_run(run_id).data.metrics


@scenario
def metric_special_values(client: MlflowClient) -> object:
    run_id = _run(client)
    for i, (key, value) in enumerate(
        [("nan", float("nan")), ("pinf", float("inf")), ("ninf", float("-inf")), ("zero", -0.0)]
    ):
        client.log_metric(run_id, key, value, timestamp=T0 + i, step=i)
    client.log_metric(run_id, "big", 1e308, timestamp=T0, step=0)
    client.log_metric(run_id, "int", 7, timestamp=T0, step=0)
    return {
        "metrics": client.get_run(run_id).data.metrics,
        "history": {k: client.get_metric_history(run_id, k) for k in ("nan", "pinf", "ninf")},
    }


@scenario
def metric_invalid_values(client: MlflowClient) -> object:
    run_id = _run(client)
    return {
        "string_value": attempt(client.log_metric, run_id, "m", "high", timestamp=T0),
        "none_value": attempt(client.log_metric, run_id, "m", None, timestamp=T0),
        "bad_step": attempt(client.log_metric, run_id, "m", 1.0, timestamp=T0, step="x"),
        "bad_timestamp": attempt(client.log_metric, run_id, "m", 1.0, timestamp="x"),
        "after": client.get_run(run_id),
    }


@scenario
def metric_default_step_and_timestamp(client: MlflowClient) -> object:
    run_id = _run(client)
    client.log_metric(run_id, "m", 1.5)
    return client.get_metric_history(run_id, "m")


@scenario
def metric_history_of_many_points(client: MlflowClient) -> object:
    run_id = _run(client)
    metrics = [Metric("curve", float(i % 7), T0 + i, i) for i in range(250)]
    for start in range(0, 250, 100):
        client.log_batch(run_id, metrics=metrics[start : start + 100])
    history = client.get_metric_history(run_id, "curve")
    return {
        "count": len(history),
        "first": history[:3],
        "last": history[-3:],
        "latest": client.get_run(run_id).data.metrics,
    }


# --- log_batch -------------------------------------------------------------------------


@scenario
def batch_metrics_params_tags(client: MlflowClient) -> object:
    run_id = _run(client)
    client.log_batch(
        run_id,
        metrics=[Metric("a", 1.0, T0, 0), Metric("a", 2.0, T0 + 1, 1), Metric("b", -3.5, T0, 0)],
        params=[Param("p1", "x"), Param("p2", "")],
        tags=[RunTag("t1", "y"), RunTag("t1", "z")],
    )
    return {"run": client.get_run(run_id), "history_a": client.get_metric_history(run_id, "a")}


@scenario
def batch_empty(client: MlflowClient) -> object:
    run_id = _run(client)
    return {"result": attempt(client.log_batch, run_id), "after": client.get_run(run_id)}


@scenario
def batch_limits(client: MlflowClient) -> object:
    run_id = _run(client)
    metrics = [Metric(f"m{i}", float(i), T0, 0) for i in range(1001)]
    params = [Param(f"p{i}", "v") for i in range(101)]
    tags = [RunTag(f"t{i}", "v") for i in range(101)]
    return {
        "metrics_1000": attempt(client.log_batch, run_id, metrics=metrics[:1000]),
        "metrics_1001": attempt(client.log_batch, run_id, metrics=metrics),
        "params_100": attempt(client.log_batch, run_id, params=params[:100]),
        "params_101": attempt(client.log_batch, run_id, params=params),
        "tags_101": attempt(client.log_batch, run_id, tags=tags),
        "mixed_over_1000": attempt(
            client.log_batch, run_id, metrics=metrics[:950], params=params[:60]
        ),
        "counts": _counts(client, run_id),
    }


def _counts(client: MlflowClient, run_id: str) -> dict[str, int]:
    data = client.get_run(run_id).data
    return {"metrics": len(data.metrics), "params": len(data.params), "tags": len(data.tags)}


@scenario
def batch_param_conflicts(client: MlflowClient) -> object:
    run_id = _run(client)
    client.log_param(run_id, "fixed", "1")
    return {
        "same_value": attempt(client.log_batch, run_id, params=[Param("fixed", "1")]),
        "changed": attempt(
            client.log_batch, run_id, params=[Param("fixed", "2"), Param("new", "n")]
        ),
        "dup_in_batch_same": attempt(
            client.log_batch, run_id, params=[Param("d", "1"), Param("d", "1")]
        ),
        "dup_in_batch_diff": attempt(
            client.log_batch, run_id, params=[Param("e", "1"), Param("e", "2")]
        ),
        "after": client.get_run(run_id),
    }


@scenario
def batch_invalid_entries(client: MlflowClient) -> object:
    run_id = _run(client)
    return {
        "bad_metric_name": attempt(
            client.log_batch,
            run_id,
            metrics=[Metric("ok", 1.0, T0, 0), Metric("../bad", 1.0, T0, 0)],
        ),
        "bad_param_value": attempt(client.log_batch, run_id, params=[Param("p", "v" * 6001)]),
        "bad_tag_key": attempt(client.log_batch, run_id, tags=[RunTag("a//b", "v")]),
        "after": client.get_run(run_id),
    }


# --- the store's own validation (MlflowClient splits batches and truncates values) -------


@scenario
def store_batch_limits(client: MlflowClient) -> object:
    store = client._tracking_client.store
    run_id = _run(client)
    metrics = [Metric(f"m{i}", float(i), T0, 0) for i in range(1001)]
    params = [Param(f"p{i}", "v") for i in range(101)]
    tags = [RunTag(f"t{i}", "v") for i in range(101)]
    return {
        "metrics_1001": attempt(store.log_batch, run_id, metrics, [], []),
        "params_101": attempt(store.log_batch, run_id, [], params, []),
        "tags_101": attempt(store.log_batch, run_id, [], [], tags),
        "total_1001": attempt(store.log_batch, run_id, metrics[:950], params[:51], []),
        "metrics_1000": attempt(store.log_batch, run_id, metrics[:1000], [], []),
        "params_100": attempt(store.log_batch, run_id, [], params[:100], []),
        "counts": _counts(client, run_id),
    }


@scenario
def store_value_lengths(client: MlflowClient) -> object:
    store = client._tracking_client.store
    run_id = _run(client)
    return {
        "param_6000": attempt(store.log_param, run_id, Param("p6000", "v" * 6000)),
        "param_6001": attempt(store.log_param, run_id, Param("p6001", "v" * 6001)),
        "tag_8000": attempt(store.set_tag, run_id, RunTag("t8000", "v" * 8000)),
        "tag_8001": attempt(store.set_tag, run_id, RunTag("t8001", "v" * 8001)),
        "batch_param_6001": attempt(store.log_batch, run_id, [], [Param("b", "v" * 6001)], []),
        "key_251": attempt(store.log_param, run_id, Param("k" * 251, "v")),
        "lengths": {k: len(v) for k, v in client.get_run(run_id).data.params.items()},
    }


@scenario
def store_metric_validation(client: MlflowClient) -> object:
    store = client._tracking_client.store
    run_id = _run(client)
    return {
        "bad_name": attempt(store.log_metric, run_id, Metric("../m", 1.0, T0, 0)),
        "nan": attempt(store.log_metric, run_id, Metric("nan", float("nan"), T0, 0)),
        "string_value": attempt(store.log_batch, run_id, [Metric("s", "x", T0, 0)], [], []),
        "float_step": attempt(store.log_batch, run_id, [Metric("f", 1.0, T0, 1.5)], [], []),
        "after": client.get_run(run_id),
    }

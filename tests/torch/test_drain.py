"""The drain's short cuts keep what is stored and every error: the helpers' points go
to the run's tracking store directly (not through ``MlflowClient.log_batch``), and the
bucket store checks a batch of plain metrics in one pass."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_batch_log_data

from mlflow_plugin.format.run_batches import BatchTooOld, RunBatch
from mlflow_plugin.format.segments import MetricPoint
from mlflow_plugin.torch.scalars import RunTarget, ScalarBuffer
from tests.sqlite_reference import migrated_sqlite_uri
from tests.torch.conftest import history


def test_drained_points_carry_the_active_model_id(any_client: MlflowClient) -> None:
    experiment_id = any_client.create_experiment("model-metrics")
    run_id = any_client.create_run(experiment_id).info.run_id
    model_id = any_client.create_logged_model(experiment_id).model_id
    buffer = ScalarBuffer(lambda uri: any_client)
    target = RunTarget(run_id, mlflow.get_tracking_uri())
    mlflow.set_active_model(model_id=model_id)  # what MlflowClient.log_batch would attach
    try:
        for step in range(3):
            buffer.append(target, "loss", torch.tensor(float(step)), step, 1)
        assert buffer.drain() == []
    finally:
        mlflow.clear_active_model()
    model = any_client.get_logged_model(model_id)
    assert sorted((m.step, m.value) for m in model.metrics or []) == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert history(any_client, run_id, "loss") == [(0, 0.0), (1, 1.0), (2, 2.0)]


def _mlflows_error(metric: Metric) -> str:
    with pytest.raises(MlflowException) as caught:
        _validate_batch_log_data([metric], [], [])
    return caught.value.message


def test_a_name_checked_once_never_lets_a_bad_one_through(any_client: MlflowClient) -> None:
    run_id = any_client.create_run(any_client.create_experiment("names")).info.run_id
    good = "x" * 250  # MLflow's longest name
    any_client.log_batch(run_id, metrics=[Metric(good, 1.0, 1, 0)])
    for bad in ("x" * 251, "a//b", "../up", "bad!name"):
        metric = Metric(bad, 1.0, 1, 0)
        with pytest.raises(MlflowException) as caught:
            any_client.log_batch(run_id, metrics=[Metric(good, 2.0, 1, 1), metric])
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        assert _mlflows_error(metric).replace("metrics[0]", "metrics[1]") in caught.value.message
    with pytest.raises(MlflowException, match="64-bit integer"):
        any_client.log_batch(run_id, metrics=[Metric(good, 1.0, 1, 2**63)])
    assert history(any_client, run_id, good) == [(0, 1.0)]  # refused batches stored nothing


def test_plain_values_are_stored_as_mlflows_sql_store_gives_them_back(
    any_client: MlflowClient,
) -> None:
    run_id = any_client.create_run(any_client.create_experiment("values")).info.run_id
    values = [1.5, -0.0, math.inf, -math.inf, math.nan]
    any_client.log_batch(run_id, metrics=[Metric("v", v, 1, n) for n, v in enumerate(values)])
    stored = [value for _, value in history(any_client, run_id, "v")]
    assert stored[:4] == [1.5, 0.0, sys.float_info.max, -sys.float_info.max]
    assert math.copysign(1.0, stored[1]) == 1.0 and math.isnan(stored[4])


def test_a_bucket_store_takes_the_drained_points_as_they_are(
    any_client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No Metric per point: the drain hands a bucket store its points (``log_points``).
    run_id = any_client.create_run(any_client.create_experiment("points")).info.run_id
    any_client.log_metric(run_id, "first", 0.0)  # a run's first call checks that it is active
    store = any_client._tracking_client.store

    def no_metrics(*args: object, **kwargs: object) -> None:
        raise AssertionError("the drain built Metrics for a bucket store")

    monkeypatch.setattr(store, "log_batch", no_metrics)
    monkeypatch.setattr(store._runs, "log_batch", no_metrics)  # log_points' other path
    buffer = ScalarBuffer(lambda uri: any_client)
    target = RunTarget(run_id, mlflow.get_tracking_uri())
    for step, value in enumerate([1.5, -0.0, math.inf, math.nan]):
        buffer.append(target, "loss", torch.tensor(value, dtype=torch.float64), step, 1)
    assert buffer.drain() == []
    stored = [value for _, value in history(any_client, run_id, "loss")]
    assert stored[:3] == [1.5, 0.0, sys.float_info.max] and math.isnan(stored[3])
    assert math.copysign(1.0, stored[1]) == 1.0


def test_another_store_gets_the_drained_points_through_its_log_batch(tmp_path: Path) -> None:
    client = MlflowClient(migrated_sqlite_uri(tmp_path / "reference.db"))
    run_id = client.create_run(client.create_experiment("reference")).info.run_id
    buffer = ScalarBuffer(lambda uri: client)
    target = RunTarget(run_id, client.tracking_uri)
    for step in range(3):
        buffer.append(target, "loss", float(step), step, 1)
    buffer.append(target, "bad!name", 1.0, 0, 1)  # mapped to a name MLflow accepts
    assert buffer.drain() == []
    assert history(client, run_id, "loss") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert history(client, run_id, "bad_name") == [(0, 1.0)]


def _refusal(call: Callable[..., object], *args: object) -> tuple[str, str]:
    with pytest.raises(MlflowException) as caught:
        call(*args)
    return caught.value.error_code, caught.value.message


def test_points_are_refused_as_log_batch_refuses_the_same_metrics(
    any_client: MlflowClient,
) -> None:
    # log_points is log_batch without Metrics: same checks, same errors, nothing stored.
    experiment_id = any_client.create_experiment("refusals")
    run_id = any_client.create_run(experiment_id).info.run_id
    deleted = any_client.create_run(experiment_id).info.run_id
    any_client.log_metric(run_id, "ok", 1.0)
    any_client.log_metric(deleted, "ok", 1.0)
    any_client.delete_run(deleted)
    store = any_client._tracking_client.store
    good = MetricPoint("ok", 2.0, 1, 1)
    cases: list[tuple[str, list[MetricPoint]]] = [
        (run_id, [good, MetricPoint("bad!name", 1.0, 1, 0)]),
        (run_id, [good, MetricPoint("ok", 1.0, 1, 2**63)]),
        (run_id, [good, MetricPoint("ok", 1.0, -1, 0)]),
        (run_id, [MetricPoint("ok", float(n), 1, n) for n in range(1001)]),
        (deleted, [good]),
        ("0" * 32, [good]),
    ]
    for target_run, points in cases:
        metrics = [Metric(*p) for p in points]
        expected = _refusal(store.log_batch, target_run, metrics, [], [])
        assert _refusal(store.log_points, target_run, points) == expected, points[-1]
    # What an untyped caller may pass is refused with MLflow's input error, never raw.
    odd_batches: list[object] = [[MetricPoint(["k"], 1.0, 1, 0)], iter([good]), None]
    for odd in [*odd_batches, [("ok", 1.0, 1, 0)]]:
        assert _refusal(store.log_points, run_id, odd)[0] == "INVALID_PARAMETER_VALUE", odd
    assert history(any_client, run_id, "ok") == [(0, 1.0)]
    # An int value is not a plain point: the call takes log_batch's path.
    store.log_points(run_id, [good, MetricPoint("other", 3, 1, 0)])
    assert history(any_client, run_id, "ok") == [(0, 1.0), (1, 2.0)]
    assert history(any_client, run_id, "other") == [(0, 3.0)]


def _refuse_an_earlier_batch(client: MlflowClient, run_id: str) -> None:
    """What a flush leaves when the run refused a batch as too old: a refusal for the
    run's next call to report (DATA_LOSS)."""
    buffer = client._tracking_client.store._runs._buffer
    refused = BatchTooOld(RunBatch(run_id, "0", "an-old-writer", 7, [], sealed_at=1), 0)
    buffer.refusals.setdefault(run_id, []).append(refused)


def test_a_plain_call_after_a_refused_batch_gets_log_batchs_data_loss(
    any_client: MlflowClient,
) -> None:
    run_id = any_client.create_run(any_client.create_experiment("loss")).info.run_id
    any_client.log_metric(run_id, "ok", 1.0)
    store = any_client._tracking_client.store
    _refuse_an_earlier_batch(any_client, run_id)
    expected = _refusal(store.log_batch, run_id, [Metric("ok", 2.0, 1, 1)], [], [])
    _refuse_an_earlier_batch(any_client, run_id)
    assert _refusal(store.log_points, run_id, [MetricPoint("ok", 2.0, 1, 1)]) == expected
    assert expected[0] == "DATA_LOSS"
    assert history(any_client, run_id, "ok") == [(0, 1.0)]  # neither call stored its point


def test_the_drain_reports_a_refused_batch_it_meets_and_stores_its_own_points(
    any_client: MlflowClient,
) -> None:
    # The refusal is another batch's loss: reported once, and the chunk goes in whole.
    run_id = any_client.create_run(any_client.create_experiment("loss")).info.run_id
    any_client.log_metric(run_id, "a", 0.0)
    _refuse_an_earlier_batch(any_client, run_id)
    buffer = ScalarBuffer(lambda uri: any_client)
    target = RunTarget(run_id, mlflow.get_tracking_uri())
    buffer.append(target, "a", 1.0, 1, 1)
    buffer.append(target, "b", 2.0, 1, 1)
    [error] = buffer.drain()
    assert error.error_code == "DATA_LOSS" and "an-old-writer" in error.message
    assert history(any_client, run_id, "a") == [(0, 0.0), (1, 1.0)]
    assert history(any_client, run_id, "b") == [(1, 2.0)]

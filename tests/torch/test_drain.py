"""The drain's short cuts keep what is stored and every error: the helpers' points go
to the run's tracking store directly (not through ``MlflowClient.log_batch``), and the
bucket store checks a batch of plain metrics in one pass."""

from __future__ import annotations

import math
import sys

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_batch_log_data

from mlflow_plugin.torch.scalars import RunTarget, ScalarBuffer
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

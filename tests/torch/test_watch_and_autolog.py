"""watch (W&B's gradient/parameter histograms) and autolog around a plain training loop."""

from __future__ import annotations

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from mlflow_plugin.torch import autolog, flush, read_histograms, unwatch, watch
from tests.torch.conftest import artifact_paths, history, image_steps


def tiny() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def train(
    model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, run: object = None
) -> None:
    inputs, targets = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if run is not None:
            run.log({"train/loss": loss})  # type: ignore[attr-defined]


def test_watch_logs_histograms_and_norms_every_log_freq_steps(client: MlflowClient) -> None:
    model, optimizer = tiny()
    with mlflow.start_run() as run:
        handle = watch(model, log="all", log_freq=5)
        train(model, optimizer, 12)
        handle.remove()
        train(model, optimizer, 10)  # no longer watched: nothing more is logged
        flush()
    run_id = run.info.run_id
    assert [s for s, _ in history(client, run_id, "gradients/0.weight/norm")] == [0, 5, 10]
    assert [s for s, _ in history(client, run_id, "parameters/2.bias/p50")] == [0, 5, 10]
    assert image_steps(client, run_id, "histograms/gradients/0.weight") == [0, 5, 10]
    records = read_histograms(run_id, "parameters/0.weight")
    assert [r.num for r in records] == [32, 32, 32]
    norm = history(client, run_id, "parameters/0.weight/norm")[-1][1]
    assert norm > 0


def test_a_model_is_watched_once_at_a_time(client: MlflowClient) -> None:
    model, _ = tiny()
    with mlflow.start_run():
        first = watch(model, log_freq=10)
        with pytest.raises(ValueError, match="already watched"):
            watch(model)
        unwatch(model)
        second = watch(model, log="parameters")
        assert second is not first
        second.remove()
        with pytest.raises(ValueError, match="log must be"):
            watch(model, log="weights")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::UserWarning:torch.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*")
@pytest.mark.filterwarnings("ignore::FutureWarning:torch.*")
def test_autolog_tracks_a_plain_loop_and_logs_the_model(client: MlflowClient) -> None:
    model, optimizer = tiny()
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    config = {"optimizer": {"lr": 0.1}, "steps": 10, "token": "hunter2"}
    inputs, targets = torch.randn(16, 4), torch.randn(16, 1)
    with autolog(model, optimizer, config, run_name="loop", timing_every=5) as run:
        for _ in range(10):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
            schedule.step()
            run.log({"train/loss": loss})
        run.log({"eval/score": 0.5}, step=99)
    run_id = run.run_id
    info = client.get_run(run_id)
    assert (info.info.status, info.info.run_name) == ("FINISHED", "loop")
    params = info.data.params
    assert params["optimizer.lr"] == "0.1" and params["token"] == "***"
    assert params["optimizer"] == "SGD" and params["optimizer/lr"] == "0.1"
    assert [s for s, _ in history(client, run_id, "train/loss")] == list(range(1, 11))
    assert [s for s, _ in history(client, run_id, "train/grad_norm")] == list(range(1, 11))
    assert history(client, run_id, "optimizer/lr") == [(1, 0.1), (5, 0.05), (9, 0.025)]
    assert [s for s, _ in history(client, run_id, "perf/steps_per_sec")] == [10]
    assert history(client, run_id, "eval/score") == [(99, 0.5)]
    # The gradient norm is the real one of each step's gradients.
    assert all(v > 0 for _, v in history(client, run_id, "train/grad_norm"))
    assert "model_graph/graph.svg" in artifact_paths(client, run_id, "model_graph")
    assert "config.yaml" in artifact_paths(client, run_id)
    assert run.example_input[0].shape == (2, 4)
    (logged,) = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    loaded = mlflow.pytorch.load_model(logged.model_uri)
    sample = inputs[:2]
    assert np.allclose(loaded(sample).detach().numpy(), model(sample).detach().numpy(), atol=1e-6)


def test_autolog_without_optimizer_steps_on_each_log(client: MlflowClient) -> None:
    model, _ = tiny()
    with autolog(model, log_model=False, log_graph=False) as run:
        for value in (3.0, 2.0, 1.0):
            run.log({"loss": value})
    assert history(client, run.run_id, "loss") == [(0, 3.0), (1, 2.0), (2, 1.0)]


def test_autolog_watch_uses_the_optimizer_step(client: MlflowClient) -> None:
    model, optimizer = tiny()
    with autolog(model, optimizer, log_model=False, watch="gradients", log_freq=4) as run:
        train(model, optimizer, 9, run)
    assert [s for s, _ in history(client, run.run_id, "gradients/0.weight/norm")] == [1, 4, 8]


def test_a_failure_marks_the_run_failed_and_an_interrupt_killed(client: MlflowClient) -> None:
    model, optimizer = tiny()
    with pytest.raises(RuntimeError, match="boom"), autolog(model, optimizer) as failed:
        train(model, optimizer, 2, failed)
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), autolog(model, optimizer, log_model=False) as killed:
        raise KeyboardInterrupt
    assert client.get_run(failed.run_id).info.status == "FAILED"
    assert client.get_run(killed.run_id).info.status == "KILLED"
    assert len(history(client, failed.run_id, "train/loss")) == 2  # logged points survive
    assert (
        mlflow.search_logged_models(
            filter_string=f"source_run_id = '{failed.run_id}'", output_format="list"
        )
        == []
    )


def test_autolog_joins_an_active_run_and_leaves_it_open(client: MlflowClient) -> None:
    model, optimizer = tiny()
    with mlflow.start_run() as outer:
        with autolog(model, optimizer, log_model=False) as run:
            train(model, optimizer, 3, run)
        assert run.run_id == outer.info.run_id
        assert client.get_run(outer.info.run_id).info.status == "RUNNING"
    assert len(history(client, outer.info.run_id, "train/loss")) == 3

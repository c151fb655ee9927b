"""watch (W&B's gradient/parameter histograms) and autolog around a plain training loop."""

from __future__ import annotations

import math
from typing import Any

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
    assert [s for s, _ in history(client, run_id, "parameters/2.bias/norm")] == [0, 5, 10]
    # One chart per watched tensor: the norm; the bands live in the raw bins.
    keys = client.get_run(run_id).data.metrics
    assert sorted(k for k in keys if k.startswith("parameters/0.weight")) == [
        "parameters/0.weight/norm"
    ]
    assert image_steps(client, run_id, "histograms/gradients/0.weight") == []
    assert "histograms/gradients/0.weight/overview.png" in artifact_paths(
        client, run_id, "histograms/gradients/0.weight"
    )
    records = read_histograms(run_id, "parameters/0.weight")
    assert [r.num for r in records] == [32, 32, 32]
    norm = history(client, run_id, "parameters/0.weight/norm")[-1][1]
    assert norm == pytest.approx(math.sqrt(records[-1].sum_squares)) and norm > 0


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
    with autolog(model, optimizer, config, run_name="loop", log_every_n_steps=5) as run:
        norms = []
        for _ in range(10):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            norms.append(float(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()))
            optimizer.step()
            schedule.step()
            run.log({"train/loss": loss})
        run.log({"eval/score": 0.5}, step=99)
    run_id = run.run_id
    info = client.get_run(run_id)
    assert (info.info.status, info.info.run_name) == ("FINISHED", "loop")
    params = info.data.params
    assert params["optimizer.lr"] == "0.1" and params["token"] == "***"
    assert params["optimizer"] == "SGD" and "optimizer/lr" not in params  # once, as optimizer.lr
    assert [s for s, _ in history(client, run_id, "train/loss")] == list(range(1, 11))
    # Sampled: the first step, then every log_every_n_steps.
    assert [s for s, _ in history(client, run_id, "train/grad_norm")] == [1, 5, 10]
    assert history(client, run_id, "optimizer/lr") == [(1, 0.1), (5, 0.05), (9, 0.025)]
    assert [s for s, _ in history(client, run_id, "perf/steps_per_sec")] == [5, 10]
    assert history(client, run_id, "eval/score") == [(99, 0.5)]
    # The gradient norm is the real one of the sampled steps' gradients.
    sampled = [v for _, v in history(client, run_id, "train/grad_norm")]
    assert sampled == pytest.approx([norms[0], norms[4], norms[9]], rel=1e-5)
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


def test_watch_counts_optimizer_steps_across_gradient_accumulation(
    client: MlflowClient,
) -> None:
    model, optimizer = tiny()
    inputs, targets = torch.randn(4, 16, 4), torch.randn(4, 16, 1)
    norms: dict[int, float] = {}
    with mlflow.start_run() as run:
        watch(model, log="gradients", log_freq=5)
        for step in range(12):
            optimizer.zero_grad()
            for micro in range(4):  # four forward and backward passes per optimizer step
                nn.functional.mse_loss(model(inputs[micro]), targets[micro]).backward()
            norms[step] = model[0].weight.grad.norm().item()
            optimizer.step()
        unwatch(model)
        flush()
    logged = history(client, run.info.run_id, "gradients/0.weight/norm")
    assert [s for s, _ in logged] == [0, 5, 10]
    # The accumulated gradient the optimizer used, not one micro-batch's.
    for step, value in logged[1:]:
        assert value == pytest.approx(norms[step], rel=1e-5)


def test_watch_counts_a_step_with_two_forward_passes_once(client: MlflowClient) -> None:
    model, optimizer = tiny()
    first, second, targets = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 1)
    with mlflow.start_run() as run:
        watch(model, log="parameters", log_freq=3)
        for _ in range(7):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(first) + model(second), targets)
            loss.backward()
            optimizer.step()
        unwatch(model)
        flush()
    assert [r.step for r in read_histograms(run.info.run_id, "parameters/2.bias")] == [0, 3, 6]


def test_watch_without_an_optimizer_counts_backward_passes(client: MlflowClient) -> None:
    model, _ = tiny()
    inputs, targets = torch.randn(16, 4), torch.randn(16, 1)
    with mlflow.start_run() as run:
        watch(model, log="gradients", log_freq=3)
        for _ in range(7):
            model.zero_grad()
            nn.functional.mse_loss(model(inputs), targets).backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= 0.1 * param.grad
                model(inputs)  # a forward pass to monitor the loss is not a step
        unwatch(model)
        flush()
    steps = [r.step for r in read_histograms(run.info.run_id, "gradients/2.weight")]
    assert steps == [0, 3, 6]


def test_watch_ignores_optimizers_of_other_models(client: MlflowClient) -> None:
    model, optimizer = tiny()
    other = nn.Linear(2, 2)
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    with mlflow.start_run() as run:
        watch(model, log="parameters", log_freq=2)
        train(model, optimizer, 1)
        for _ in range(5):  # steps of another model's optimizer are not this model's steps
            other_optimizer.step()
        train(model, optimizer, 3)
        unwatch(model)
        flush()
    assert [r.step for r in read_histograms(run.info.run_id, "parameters/0.bias")] == [0, 2]


def test_the_training_thread_never_reads_a_tensor_back_between_flushes(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-step path (scalars, grad norm, histograms, watch) only queues device work."""
    import threading

    from mlflow_plugin.torch import log_histogram

    trainer = threading.current_thread()
    model, optimizer = tiny()
    with autolog(model, optimizer, log_model=False, watch="all", log_freq=3) as run:
        train(model, optimizer, 1, run)  # the first forward pass records the graph
        for name in ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__"):
            original = getattr(torch.Tensor, name)

            def guarded(self: torch.Tensor, *args: Any, _f: Any = original, _n: str = name) -> Any:
                if threading.current_thread() is trainer:
                    raise AssertionError(f"Tensor.{_n} on the training thread")
                return _f(self, *args)

            monkeypatch.setattr(torch.Tensor, name, guarded)
        for step in range(7):
            train(model, optimizer, 1, run)
            log_histogram("weights/first", model[0].weight, step)
        monkeypatch.undo()
    run_id = run.run_id
    assert [s for s, _ in history(client, run_id, "gradients/0.weight/norm")] == [1, 3, 6]
    assert len(history(client, run_id, "train/loss")) == 8
    assert [s for s, _ in history(client, run_id, "weights/first/mean")] == list(range(7))


class _WithDeviceMarker(nn.Module):
    """A common idiom: an empty parameter that only tells which device the model is on."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)
        self.device_marker = nn.Parameter(torch.empty(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_watch_all_trains_a_model_with_an_empty_parameter(any_client: MlflowClient) -> None:
    model = _WithDeviceMarker()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with mlflow.start_run() as run:
        handle = watch(model, log="all", log_freq=1)
        for _ in range(2):
            optimizer.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            optimizer.step()
        handle.remove()
        flush()
    run_id = run.info.run_id
    assert [s for s, _ in history(any_client, run_id, "parameters/fc.weight/norm")] == [0, 1]
    # The empty tensor has no histogram to show: no metric, no raw bins.
    metrics = any_client.get_run(run_id).data.metrics
    assert not [k for k in metrics if "device_marker" in k]
    assert read_histograms(run_id, "parameters/device_marker") == []


def test_watch_trains_a_model_with_sparse_gradients(any_client: MlflowClient) -> None:
    model = nn.Embedding(10, 3, sparse=True)
    optimizer = torch.optim.SparseAdam(model.parameters(), lr=0.1)
    with mlflow.start_run() as run:
        handle = watch(model, log="gradients", log_freq=1)
        optimizer.zero_grad()
        model(torch.tensor([1, 2, 2])).sum().backward()
        grad = model.weight.grad
        assert grad is not None
        expected = float(grad.to_dense().norm())
        optimizer.step()
        handle.remove()
        flush()
    [(_, norm)] = history(any_client, run.info.run_id, "gradients/weight/norm")
    assert abs(norm - expected) < 1e-5
    # The histogram holds the two touched rows' values (index 2 summed twice), not the zeros.
    [record] = read_histograms(run.info.run_id, "gradients/weight")
    assert record.num == 6 and sum(record.counts) == 6


def test_autolog_keeps_timing_every_as_a_deprecated_name() -> None:
    model = nn.Linear(2, 1)
    with pytest.warns(DeprecationWarning, match="log_every_n_steps"):
        run = autolog(model, timing_every=3, log_model=False)
    assert run.log_every_n_steps == 3
    with pytest.raises(ValueError, match="at least 1"):
        autolog(model, log_every_n_steps=0)

"""autolog, add_graph and add_hparams as a tutorial's loop meets them: short runs, a config
naming the optimizer's settings too, several graphs, tensor hyper-parameters."""

from __future__ import annotations

import mlflow
import torch
from mlflow import MlflowClient
from torch import nn

from mlflow_plugin.torch import SummaryWriter, autolog, log_config
from tests.torch.conftest import artifact_paths, history


def loop(steps: int, config: object) -> str:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inputs, targets = torch.randn(16, 4), torch.randn(16, 1)
    with autolog(model, optimizer, config, log_model=False, log_graph=False) as run:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss})
    return run.run_id


def test_a_run_under_100_steps_has_its_steps_per_second(any_client: MlflowClient) -> None:
    run_id = loop(30, None)  # fewer than log_every_n_steps (50) steps
    ((step, rate),) = history(any_client, run_id, "perf/steps_per_sec")
    assert step == 30 and rate > 0


def test_optimizer_settings_are_logged_once_under_the_configs_names(
    any_client: MlflowClient,
) -> None:
    config = {"optimizer": {"lr": 0.1, "momentum": 0.9}, "epochs": 1}
    params = any_client.get_run(loop(3, config)).data.params
    assert params["optimizer"] == "SGD"
    assert (params["optimizer.lr"], params["optimizer.momentum"]) == ("0.1", "0.9")
    assert not [k for k in params if k.startswith("optimizer/")]
    # A config whose "optimizer" is a name, or whose lr is written otherwise, keeps its own.
    params = any_client.get_run(loop(3, {"optimizer": "sgd"})).data.params
    assert params["optimizer"] == "sgd" and params["optimizer.lr"] == "0.1"
    params = any_client.get_run(loop(3, {"optimizer": {"lr": "1e-1"}})).data.params
    assert params["optimizer"] == "SGD" and params["optimizer.lr"] == "1e-1"


def test_tensor_hyper_parameters_are_stored_at_their_precision(any_client: MlflowClient) -> None:
    hparams = {"lr": torch.tensor(0.3), "half": torch.tensor(0.1, dtype=torch.float16)}
    with SummaryWriter() as writer:
        log_config({"dropout": torch.tensor(0.3), "wd": torch.tensor(1e-4, dtype=torch.float64)})
        writer.add_hparams(hparams, {"hparam/acc": torch.tensor(0.7)}, run_name="trial")
    params = any_client.get_run(writer.run_id).data.params
    assert (params["dropout"], params["wd"]) == ("0.3", "0.0001")
    experiment = any_client.get_run(writer.run_id).info.experiment_id
    (trial,) = any_client.search_runs([experiment], "attributes.run_name = 'trial'")
    assert trial.data.params == {"lr": "0.3", "half": "0.1"}
    assert trial.data.metrics == {"hparam/acc": 0.7}


def test_each_add_graph_is_kept_and_the_latest_is_at_the_usual_place(
    any_client: MlflowClient,
) -> None:
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with SummaryWriter() as writer:
        writer.add_graph(mlp, torch.zeros(1, 4))
        writer.add_graph(cnn, torch.zeros(1, 1, 5, 5))
    files = artifact_paths(any_client, writer.run_id, "model_graph")
    for folder in ("model_graph", "model_graph/0-Sequential", "model_graph/1-Sequential"):
        assert {f"{folder}/{n}" for n in ("graph.svg", "graph.txt", "summary.txt")} <= set(files)
    load = mlflow.artifacts.load_text
    first = load(f"runs:/{writer.run_id}/model_graph/0-Sequential/graph.txt")
    latest = load(f"runs:/{writer.run_id}/model_graph/graph.txt")
    assert "Linear" in first and "Conv2d" not in first
    assert "Conv2d" in latest and latest == load(
        f"runs:/{writer.run_id}/model_graph/1-Sequential/graph.txt"
    )

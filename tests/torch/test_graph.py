"""Model graphs for an MLP, a CNN, a residual network and a model with control flow."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from mlflow_plugin.torch import log_model_graph
from mlflow_plugin.torch.graph import record_graph
from tests.torch.conftest import artifact_paths


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        skip = x
        x = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(x + skip)
        return self.head(x.mean(dim=(2, 3)))


class Gated(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Linear(4, 2)
        self.large = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.large(x)
        return self.small(x)


MODELS = {
    "mlp": (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.zeros(2, 4)),
    "cnn": (
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)),
        torch.zeros(2, 1, 8, 8),
    ),
    "residual": (Residual(), torch.zeros(2, 3, 8, 8)),
    "control-flow": (Gated(), torch.ones(2, 4)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_graph_svg_text_and_summary_are_logged(client: MlflowClient, name: str) -> None:
    model, example = MODELS[name]
    with mlflow.start_run() as run:
        log_model_graph(model, example)
    run_id = run.info.run_id
    assert artifact_paths(client, run_id, "model_graph") == [
        "model_graph/graph.svg", "model_graph/graph.txt", "model_graph/summary.txt",
    ]  # fmt: skip
    load = mlflow.artifacts.load_text
    svg = ET.fromstring(load(f"runs:/{run_id}/model_graph/graph.svg"))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    summary = load(f"runs:/{run_id}/model_graph/summary.txt")
    total = sum(p.numel() for p in model.parameters())
    assert f"total params: {total:,}" in summary
    for module_name, module in model.named_modules():
        if next(module.children(), None) is None and module_name and name != "control-flow":
            assert module_name in summary
    text = load(f"runs:/{run_id}/model_graph/graph.txt")
    assert text.splitlines()[2:] and "output" in text.splitlines()[-1]


def test_skip_connections_are_edges() -> None:
    graph = record_graph(Residual(), torch.zeros(1, 3, 8, 8))
    by_name = {n.name: n for n in graph.nodes}
    (add,) = [n for n in graph.nodes if n.op == "add"]
    stem_relu = graph.nodes[by_name["stem"].index + 1]
    assert set(add.inputs) == {by_name["conv2"].index, stem_relu.index}
    assert by_name["conv1"].shape == "[1, 8, 8, 8]" and by_name["head"].shape == "[1, 10]"
    assert by_name["conv1"].params == 8 * 8 * 9 + 8


def test_control_flow_graph_is_the_path_taken_and_says_so() -> None:
    model, _ = MODELS["control-flow"]
    positive = record_graph(model, torch.ones(1, 4))
    negative = record_graph(model, -torch.ones(1, 4))
    assert [n.name for n in positive.nodes if n.kind == "module"] == [
        "large.0",
        "large.1",
        "large.2",
    ]
    assert [n.name for n in negative.nodes if n.kind == "module"] == ["small"]
    assert "torch.fx could not trace" in positive.note and "path the example" in positive.note
    assert "torch.fx could not" not in record_graph(*MODELS["mlp"]).note


def test_recording_leaves_the_model_as_it_was() -> None:
    model, _ = MODELS["residual"]
    model.train()
    before = model.bn1.running_mean.clone()
    record_graph(model, torch.randn(4, 3, 8, 8))
    assert model.training and torch.equal(model.bn1.running_mean, before)
    assert not model._forward_hooks and not model.conv1._forward_pre_hooks

"""Images in TensorBoard's layouts, figures, and configs as params plus an artifact."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import matplotlib
import mlflow
import numpy as np
import pytest
import torch
import yaml
from matplotlib.figure import Figure
from mlflow import MlflowClient
from PIL import Image

from mlflow_plugin.torch import SummaryWriter, log_config
from mlflow_plugin.torch.config import flatten_config, is_secret_key
from mlflow_plugin.torch.images import to_hwc_uint8
from tests.torch.conftest import artifact_paths, image_steps

matplotlib.use("Agg")


@pytest.mark.parametrize(
    ("shape", "dataformats", "expected"),
    [
        ((3, 4, 5), "CHW", (4, 5, 3)),
        ((4, 5, 3), "HWC", (4, 5, 3)),
        ((4, 5), "HW", (4, 5, 3)),
        ((1, 4, 5), "CHW", (4, 5, 3)),
        ((10, 1, 4, 5), "NCHW", (8, 40, 3)),  # 8 tiles per row, two rows
        ((2, 4, 5, 4), "NHWC", (4, 10, 4)),
    ],
)
def test_layouts_become_hwc(
    shape: tuple[int, ...], dataformats: str, expected: tuple[int, ...]
) -> None:
    assert to_hwc_uint8(torch.rand(shape), dataformats).shape == expected


def test_float_is_scaled_uint8_is_kept_and_grids_keep_order() -> None:
    assert to_hwc_uint8(torch.tensor([[0.0, 0.5, 1.0]]), "HW")[0, :, 0].tolist() == [0, 128, 255]
    assert to_hwc_uint8(np.array([[7, 200]], dtype=np.uint8), "HW")[0, :, 0].tolist() == [7, 200]
    batch = torch.arange(3, dtype=torch.uint8).reshape(3, 1, 1, 1)
    assert to_hwc_uint8(batch, "NCHW")[0, :, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="dataformats"):
        to_hwc_uint8(torch.rand(3, 4), "CHW")


def test_images_and_figures_are_step_images(client: MlflowClient) -> None:
    with SummaryWriter() as writer:
        for step in (0, 5, 10):
            writer.add_image("sample", torch.full((3, 6, 7), step / 10), step)
        writer.add_images("batch", torch.rand(4, 6, 6, 3), 1, dataformats="NHWC")
        figure = Figure()
        figure.add_subplot().plot([0, 1], [1, 0])
        writer.add_figure("figure", figure, 3)
        run_id = writer.run_id
    assert image_steps(client, run_id, "sample") == [0, 5, 10]
    assert image_steps(client, run_id, "batch") == [1]
    assert image_steps(client, run_id, "figure") == [3]
    (path,) = [
        p
        for p in artifact_paths(client, run_id, "images")
        if p.startswith("images/sample+step+5+") and p.endswith(".png")
    ]
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{path}")
    with Image.open(local) as image:
        assert image.size == (7, 6) and image.getpixel((0, 0)) == (128, 128, 128)


@dataclasses.dataclass
class Optim:
    name: str = "adam"
    lr: float = 3e-4


@dataclasses.dataclass
class Config:
    optimizer: Optim = dataclasses.field(default_factory=Optim)
    layers: tuple[int, ...] = (64, 10)
    wandb_api_key: str = "hunter2"


class FrozenMapping(Mapping[str, Any]):
    """Stands in for OmegaConf's DictConfig: a Mapping, not a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(
    "config",
    [
        {"optimizer": {"name": "adam", "lr": 3e-4}, "layers": [64, 10], "wandb_api_key": "hunter2"},
        Config(),
        argparse.Namespace(
            optimizer={"name": "adam", "lr": 3e-4}, layers=[64, 10], wandb_api_key="hunter2"
        ),
        FrozenMapping(
            {
                "optimizer": FrozenMapping({"name": "adam", "lr": 3e-4}),
                "layers": (64, 10),
                "wandb_api_key": "hunter2",
            }
        ),
    ],
    ids=["dict", "dataclass", "namespace", "mapping"],
)
def test_configs_become_flat_params_and_an_artifact(client: MlflowClient, config: Any) -> None:
    with mlflow.start_run() as run:
        log_config(config)
    params = client.get_run(run.info.run_id).data.params
    assert params == {
        "optimizer.name": "adam",
        "optimizer.lr": "0.0003",
        "layers": "[64, 10]",
        "wandb_api_key": "***",
    }
    stored = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml"))
    assert stored == {
        "optimizer": {"name": "adam", "lr": 0.0003},
        "layers": [64, 10],
        "wandb_api_key": "***",
    }


def test_long_values_are_cut_in_params_but_whole_in_the_artifact(client: MlflowClient) -> None:
    long = "x" * 10_000
    with mlflow.start_run() as run:
        log_config({"prompt": long, "db": {"password": "hunter2"}}, "config.json")
    params = client.get_run(run.info.run_id).data.params
    assert len(params["prompt"]) == 6000 and params["prompt"].endswith("full value in config.json]")
    assert params["db.password"] == "***"
    stored = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config.json")
    assert stored == {"prompt": long, "db": {"password": "***"}}
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.json")
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True), ("db.PASSWORD", True), ("hfToken", True), ("API_KEY", True),
        ("aws.secret_access_key", True), ("client_secret", True), ("credentials", True),
        ("max_tokens", False), ("tokenizer", False), ("keyframe", False), ("lr", False),
    ],
)  # fmt: skip
def test_secret_keys_are_whole_words(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_flatten_keeps_empty_dicts_and_none() -> None:
    assert flatten_config({"a": {}, "b": None, "c": {"d": True}}) == {
        "a": "{}",
        "b": "None",
        "c.d": "True",
    }


def stored_sizes(client: MlflowClient, run_id: str, key: str) -> tuple[Image.Image, Image.Image]:
    """The full picture and the card thumbnail MLflow's UI shows for ``key`` (one step)."""
    (png,) = [p for p in artifact_paths(client, run_id, "images") if p.startswith(f"images/{key}+")
              and p.endswith(".png")]  # fmt: skip
    pictures = []
    for path in (png, png[: -len(".png")] + "+compressed.webp"):
        with Image.open(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{path}")) as image:
            pictures.append(image.convert("RGB"))
    return pictures[0], pictures[1]


def test_card_thumbnails_keep_the_aspect_ratio_and_stay_readable(
    any_client: MlflowClient,
) -> None:
    tall = Figure(figsize=(12, 48), dpi=100)  # 1200 x 4800 pixels
    for i in range(4):
        tall.add_subplot(4, 1, i + 1).set_title(f"panel {i}")
    checks = np.indices((28, 28)).sum(axis=0) % 2 * 255  # a 28 x 28 checkerboard
    with SummaryWriter() as writer:
        writer.add_figure("tall", tall, 0)
        writer.add_image("digit", checks.astype(np.uint8), 0, dataformats="HW")
        writer.add_image("photo", torch.rand(3, 480, 640), 0)
    run_id = writer.run_id
    full, card = stored_sizes(any_client, run_id, "tall")
    assert (full.size, card.size) == ((1200, 4800), (256, 1024))  # not a 64 x 256 sliver
    full, card = stored_sizes(any_client, run_id, "digit")
    assert (full.size, card.size) == ((28, 28), (252, 252))  # 9 x 9 pixels each, sharp
    assert set(np.asarray(card).reshape(-1).tolist()) == {0, 255}  # no blur
    full, card = stored_sizes(any_client, run_id, "photo")
    assert (full.size, card.size) == ((640, 480), (640, 480))
    assert any_client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"

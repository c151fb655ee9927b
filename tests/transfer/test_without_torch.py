"""``import-tensorboard`` in an environment without PyTorch, and the modules it loads.

A subprocess whose ``sys.modules["torch"]`` is None (so every ``import torch`` raises
ImportError, as on a machine without the ``torch`` extra) runs the real command on an
event folder written by TensorBoard's writer; the parent reads the run back through
MlflowClient on both schemes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from tests.servers import S3Endpoint

WALL = 1_700_000_000.0

# What a machine without PyTorch does on `import torch`: raise ImportError.
_WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; "
    "runpy.run_module('mlflow_plugin', run_name='__main__', alter_sys=True)"
)


def _env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@pytest.fixture(params=["file", "s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh root on each scheme: bucket+file, then bucket+s3 (moto)."""
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'store'}"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/no-torch/{uuid.uuid4().hex}?endpoint_url={moto.url}"


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    """One event folder: a scalar series, two histogram steps and an image."""
    # PyTorch's TensorBoard writer, in this process (the one with torch).
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "runs"
    rng = np.random.default_rng(11)
    writer = SummaryWriter(str(root / "run"))
    for step in range(5):
        writer.add_scalar("Loss/train", 2.0 / (step + 1), step, walltime=WALL + step)
    for step in (0, 3):
        values = rng.normal(step, 1.0, 2000)
        np.save(tmp_path / f"hist{step}.npy", values)
        writer.add_histogram("weights/fc1", values, step, walltime=WALL + step)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    writer.add_image("inputs", image, 2, walltime=WALL + 2, dataformats="HWC")
    writer.close()
    return root


def _files(client: MlflowClient, run_id: str, folder: str) -> list[str]:
    found: list[str] = []
    for entry in client.list_artifacts(run_id, folder):
        found.extend(_files(client, run_id, entry.path) if entry.is_dir else [entry.path])
    return found


def test_import_tensorboard_runs_without_pytorch(logdir: Path, uri: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, "import-tensorboard", str(logdir), uri,
         "--experiment", "no-torch"],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "runs: 1 imported, 0 already imported (skipped), 0 unfinished imports redone",
        "scalars:    5 points",
        "histograms: 2 steps",
    ]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("no-torch")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"

    loss = client.get_metric_history(run_id, "Loss/train")
    assert [(m.step, m.timestamp) for m in loss] == [(s, int((WALL + s) * 1000)) for s in range(5)]
    assert [m.value for m in loss] == pytest.approx([2.0 / (s + 1) for s in range(5)])

    # Summary metrics from the event's sums: exact mean and std, per step.
    for step in (0, 3):
        values = np.load(tmp_path / f"hist{step}.npy").astype(np.float64)
        summary = {
            name: {
                m.step: m.value for m in client.get_metric_history(run_id, f"weights/fc1/{name}")
            }
            for name in ("mean", "std")
        }
        assert summary["mean"][step] == pytest.approx(float(values.mean()), rel=1e-5)
        assert summary["std"][step] == pytest.approx(float(values.std()), rel=1e-4)

    # Pictures: a step image per histogram step, the overview, the raw bins, the image.
    images = _files(client, run_id, "images")
    steps = sorted(
        int(Path(p).name.split("+")[2])
        for p in images
        if Path(p).name.startswith("histograms~weights~fc1+step+") and p.endswith(".png")
    )
    assert steps == [0, 3]
    histogram_files = _files(client, run_id, "histograms/weights/fc1")
    assert "histograms/weights/fc1/overview.png" in histogram_files
    assert any(p.endswith(".jsonl") for p in histogram_files)
    overview = client.download_artifacts(
        run_id, "histograms/weights/fc1/overview.png", str(tmp_path)
    )
    with Image.open(overview) as picture:
        assert picture.width > 100 and picture.height > 100
    [logged] = [
        p for p in images if Path(p).name.startswith("inputs+step+2+") and p.endswith(".png")
    ]
    with Image.open(client.download_artifacts(run_id, logged, str(tmp_path))) as got:
        assert np.array_equal(np.asarray(got.convert("RGB")), np.load(tmp_path / "image.npy"))


def test_transfer_and_summaries_never_import_torch() -> None:
    """Every module of ``transfer`` and ``summaries`` (and the CLI) loads without torch."""
    import mlflow_plugin.summaries
    import mlflow_plugin.transfer

    modules = sorted(
        f"mlflow_plugin.{package.__name__.rsplit('.', 1)[1]}.{path.stem}"
        for package in (mlflow_plugin.summaries, mlflow_plugin.transfer)
        for path in Path(package.__path__[0]).glob("*.py")
        if path.stem != "__init__"
    )
    assert "mlflow_plugin.transfer.tensorboard_import" in modules
    assert "mlflow_plugin.summaries.histograms" in modules
    check = (
        "import importlib, sys\n"
        f"for name in {[*modules, 'mlflow_plugin.cli']!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], env=_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

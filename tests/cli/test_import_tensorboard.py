"""``import-tensorboard``: event files written by PyTorch's own SummaryWriter, imported and
read back through MlflowClient; importing again duplicates nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from PIL import Image

from mlflow_plugin.cli import main
from mlflow_plugin.torch import read_histograms
from mlflow_plugin.transfer.tensorboard_import import SOURCE_TAG
from tests.cli.conftest import Cli, cli_env

WALL = 1_700_000_000.0
HPARAMS = {"lr": 0.01, "batch_size": 32, "optimizer": "adam"}


def _ms(wall: float) -> int:
    return int(wall * 1000)


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    """run1: scalars, histograms, an image, text and add_hparams (its own sub-folder); run2."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "runs"
    rng = np.random.default_rng(7)
    writer = SummaryWriter(str(root / "run1"))
    for step in range(10):
        writer.add_scalar("Loss/train", 1.0 / (step + 1), step, walltime=WALL + step)
    first_histogram = rng.normal(0, 1, 1000)
    writer.add_histogram("weights/fc1", first_histogram, 0, walltime=WALL)
    writer.add_histogram("weights/fc1", rng.normal(2, 0.5, 1000), 5, walltime=WALL + 5)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    writer.add_image("inputs", image, 3, walltime=WALL + 3, dataformats="HWC")
    writer.add_text("notes", "hello **world**", 2, walltime=WALL + 2)
    writer.add_hparams(HPARAMS, {"hparam/accuracy": 0.75}, run_name="hp")
    writer.close()
    other = SummaryWriter(str(root / "run2"))
    other.add_scalar("x", 5.0, 7, walltime=WALL + 7)
    other.close()
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "hist0.npy", first_histogram)
    return root


def _runs(client: MlflowClient) -> dict[str, Run]:
    experiment = client.get_experiment_by_name("tb")
    assert experiment is not None
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def test_import_reads_back_every_kind_and_a_second_import_is_a_no_op(
    cli: Cli, logdir: Path, file_uri: str, tmp_path: Path
) -> None:
    result = cli("import-tensorboard", str(logdir), file_uri, "--experiment", "tb")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "runs: 3 imported, 0 already imported (skipped), 0 unfinished imports redone",
        "scalars:    12 points",
        "histograms: 2 steps",
        "images:     1",
        "texts:      1",
        "hparams:    3 params",
    ]
    client = MlflowClient(file_uri)
    runs = _runs(client)
    assert set(runs) == {"run1", "run1/hp", "run2"}
    run1, hp, run2 = runs["run1"], runs["run1/hp"], runs["run2"]
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert run1.data.tags[SOURCE_TAG] == str((logdir / "run1").resolve())
    assert (run1.info.start_time, run1.info.end_time) == (_ms(WALL), _ms(WALL + 9))

    # Scalars: every step, with the event's wall time (TensorBoard keeps float32 values).
    history = client.get_metric_history(run1.info.run_id, "Loss/train")
    assert [(m.step, m.timestamp) for m in history] == [(s, _ms(WALL + s)) for s in range(10)]
    assert [m.value for m in history] == pytest.approx([1 / (s + 1) for s in range(10)])
    assert [(m.step, m.value) for m in client.get_metric_history(run2.info.run_id, "x")] == [
        (7, 5.0)
    ]

    # Histograms: exact mean and std from the event's sums, raw bins read_histograms reads.
    first = np.load(tmp_path / "hist0.npy")
    mean = client.get_metric_history(run1.info.run_id, "weights/fc1/mean")
    std = client.get_metric_history(run1.info.run_id, "weights/fc1/std")
    assert [m.step for m in mean] == [m.step for m in std] == [0, 5]
    assert mean[0].value == pytest.approx(float(first.astype(np.float64).mean()), rel=1e-5)
    assert std[0].value == pytest.approx(float(first.astype(np.float64).std()), rel=1e-4)
    with _use_tracking_uri(file_uri):
        records = read_histograms(run1.info.run_id, "weights/fc1")
    assert [r.step for r in records] == [0, 5]
    assert len(records[0].edges) == 65 and len(records[0].counts) == 64
    assert sum(records[0].counts) == pytest.approx(1000)
    assert records[0].num == 1000
    assert (records[0].min, records[0].max) == (first.min(), first.max())
    assert records[0].sum == pytest.approx(float(first.sum()))
    artifacts = {f.path for f in client.list_artifacts(run1.info.run_id, "histograms/weights/fc1")}
    assert "histograms/weights/fc1/overview.png" in artifacts

    # The image, pixel for pixel, as a step image; the text as an artifact.
    images = [f.path for f in client.list_artifacts(run1.info.run_id, "images")]
    png = [p for p in images if p.startswith("images/inputs+step+3+") and p.endswith(".png")]
    assert len(png) == 1
    with Image.open(client.download_artifacts(run1.info.run_id, png[0], str(tmp_path))) as got:
        assert np.array_equal(np.asarray(got.convert("RGB")), np.load(tmp_path / "image.npy"))
    text = client.download_artifacts(
        run1.info.run_id, "text/notes/step-000000002.md", str(tmp_path)
    )
    assert Path(text).read_text() == "hello **world**"

    # add_hparams: a child run with the hparams as params and its metric.
    assert hp.data.params == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert hp.data.metrics == {"hparam/accuracy": pytest.approx(0.75)}
    assert hp.data.tags[MLFLOW_PARENT_RUN_ID] == run1.info.run_id
    assert MLFLOW_PARENT_RUN_ID not in run1.data.tags

    again = cli("import-tensorboard", str(logdir), file_uri, "--experiment", "tb")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:2] == [
        "runs: 0 imported, 3 already imported (skipped), 0 unfinished imports redone",
        "scalars:    0 points",
    ]
    assert {name: r.info.run_id for name, r in _runs(client).items()} == {
        name: r.info.run_id for name, r in runs.items()
    }


def test_an_interrupted_import_is_redone(cli: Cli, logdir: Path, file_uri: str) -> None:
    assert cli("import-tensorboard", str(logdir), file_uri, "--experiment", "tb").returncode == 0
    client = MlflowClient(file_uri)
    before = _runs(client)
    # What an import killed half-way leaves: the run, not FINISHED.
    client.update_run(before["run2"].info.run_id, status="RUNNING")

    result = cli("import-tensorboard", str(logdir), file_uri, "--experiment", "tb", "-q")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    after = _runs(client)
    assert after["run1"].info.run_id == before["run1"].info.run_id
    assert after["run2"].info.run_id != before["run2"].info.run_id
    assert after["run2"].info.status == "FINISHED"
    assert client.get_run(before["run2"].info.run_id).info.lifecycle_stage == "deleted"
    assert after["run2"].data.metrics == {"x": 5.0}


def test_a_folder_without_event_files_is_an_error(
    tmp_path: Path, file_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    assert main(["import-tensorboard", str(tmp_path / "empty"), file_uri]) == 1
    assert capsys.readouterr().err == (
        f"error: no TensorBoard event files under {str(tmp_path / 'empty')!r}\n"
    )
    assert not (tmp_path / "store").exists()  # nothing was created


def test_a_missing_tensorboard_is_a_clear_error(logdir: Path, file_uri: str) -> None:
    without_tensorboard = (
        "import sys; sys.modules['tensorboard'] = None; "
        "from mlflow_plugin.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_tensorboard, "import-tensorboard", str(logdir), file_uri],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "pip install -c constraints.txt '.[tensorboard]'" in result.stderr
    assert "Traceback" not in result.stderr

"""TensorBoard's quickstart loop runs with only its import line changed, and MLflow has it all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

# torch.utils.tensorboard's documented quickstart, verbatim (note: it never calls close()).
SEED_SCRIPT = """\
from torch.utils.tensorboard import SummaryWriter
import numpy as np

writer = SummaryWriter()

for n_iter in range(100):
    writer.add_scalar('Loss/train', np.random.random(), n_iter)
    writer.add_scalar('Loss/test', np.random.random(), n_iter)
    writer.add_scalar('Accuracy/train', np.random.random(), n_iter)
    writer.add_scalar('Accuracy/test', np.random.random(), n_iter)
"""
TAGS = ["Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test"]


def run_script(source: str, cwd: Path, env: dict[str, str]) -> None:
    script = cwd / "seed.py"
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]


def test_seed_script_logs_every_point_with_only_the_import_changed(tmp_path: Path) -> None:
    changed = SEED_SCRIPT.replace(
        "from torch.utils.tensorboard import SummaryWriter",
        "from mlflow_plugin.torch import SummaryWriter",
    )
    assert changed.count("\n") == SEED_SCRIPT.count("\n") and changed != SEED_SCRIPT
    uri = f"bucket+file://{tmp_path}/root"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    run_script(changed, tmp_path, env)

    client = MlflowClient(uri)
    (run,) = client.search_runs(["0"])
    assert run.info.status == "FINISHED"  # the run the writer started ended at exit
    for tag in TAGS:
        points = client.get_metric_history(run.info.run_id, tag)
        assert sorted(p.step for p in points) == list(range(100)), tag
        assert all(0.0 <= p.value < 1.0 for p in points)
    assert not (tmp_path / "runs").exists()  # nothing written where TensorBoard would write


def test_the_unchanged_script_is_tensorboards(tmp_path: Path) -> None:
    # The same text with the original import writes TensorBoard event files: it is the seed.
    run_script(SEED_SCRIPT, tmp_path, {**os.environ})
    assert list((tmp_path / "runs").glob("*/events.out.tfevents.*"))

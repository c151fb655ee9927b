"""The acceptance line: TensorBoard's tutorial runs with only its import line changed.

``tensorboard_tutorial_script.py`` (two writers, ``runs/exp/train`` and ``runs/exp/val``,
with the tags TensorBoard users write) runs once as it is, writing TensorBoard's own
event files, and once with ``from mlflow_plugin.torch import SummaryWriter``, on
bucket+file and on bucket+s3 (moto). TensorBoard's event files are the reference: every
scalar point, histogram, image step, text, PR curve, mesh, embedding, graph and hparams
trial they hold must be in MLflow, in two runs, and each renamed tag must be printed.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlflow_plugin.summaries.names import image_key, mlflow_key
from mlflow_plugin.torch import read_histograms
from tests.torch.conftest import artifact_paths, history, image_steps

SCRIPT = Path(__file__).with_name("tensorboard_tutorial_script.py")
TENSORBOARD_IMPORT = "from torch.utils.tensorboard import SummaryWriter"
MLFLOW_IMPORT = "from mlflow_plugin.torch import SummaryWriter"


def run_script(text: str, folder: Path, tracking_uri: str | None = None) -> str:
    """Run the tutorial in ``folder`` (its ``runs/`` land there); its stderr."""
    folder.mkdir(parents=True)
    script = folder / "tutorial.py"
    script.write_text(text, encoding="utf-8")
    env = dict(os.environ)
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    done = subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def tensorboard_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/exp`` as TensorBoard itself wrote it from the unchanged script."""
    folder = tmp_path_factory.mktemp("tensorboard")
    run_script(SCRIPT.read_text(encoding="utf-8"), folder / "tb")
    return folder / "tb" / "runs" / "exp"


@pytest.fixture
def mlflow_runs(any_client: MlflowClient, tmp_path: Path) -> Iterator[tuple[dict[str, Run], str]]:
    """The same script with only its import changed: its runs by name, and its stderr."""
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.count(TENSORBOARD_IMPORT) == 1
    stderr = run_script(
        text.replace(TENSORBOARD_IMPORT, MLFLOW_IMPORT), tmp_path / "ml", mlflow.get_tracking_uri()
    )
    runs = any_client.search_runs([e.experiment_id for e in any_client.search_experiments()])
    yield {str(r.info.run_name): r for r in runs}, stderr


def script_tags() -> list[str]:
    """The script's ``TAGS``, in the order it logs them (read, not imported: it would run)."""
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "TAGS":
            tags: list[str] = eval(compile(ast.Expression(node.value), str(SCRIPT), "eval"))
            return tags
    raise AssertionError("the tutorial script has no TAGS")


TAGS = script_tags()


def expected_keys(tags: list[str]) -> dict[str, str]:
    """The README's rule, tags taken in the order they were first logged in one run."""
    keys: dict[str, str] = {}
    holders: dict[str, str] = {}
    for tag in tags:
        key = mlflow_key(tag)
        if holders.setdefault(key, tag) != tag:
            key = f"{key[:239]}-{hashlib.sha256(tag.encode()).hexdigest()[:10]}"
        keys[tag] = key
    return keys


def test_the_tutorial_runs_with_only_the_import_changed(
    any_client: MlflowClient,
    tensorboard_runs: Path,
    mlflow_runs: tuple[dict[str, Run], str],
) -> None:
    runs, stderr = mlflow_runs

    # Two log directories, two runs; add_hparams's trials are children of train.
    top = {name for name, r in runs.items() if "mlflow.parentRunId" not in r.data.tags}
    assert top == {"train", "val"}
    train, val = runs["train"], runs["val"]
    assert train.data.tags["tensorboard.log_dir"] == "runs/exp/train"
    assert {r.info.status for r in runs.values()} == {"FINISHED"}

    # Every scalar point TensorBoard stored, under the key the rule gives, in its run.
    keys = expected_keys(["Loss", *TAGS])
    for run, folder in ((train, "train"), (val, "val")):
        reference = events(tensorboard_runs / folder)
        tags = reference.Tags()["scalars"]
        assert sorted(tags) == sorted(keys)
        for tag in tags:
            points = [(e.step, pytest.approx(e.value, rel=1e-6)) for e in reference.Scalars(tag)]
            assert history(any_client, run.info.run_id, keys[tag]) == points, tag
    assert set(val.data.metrics) == set(keys.values())  # nothing merged, nothing extra
    assert set(keys.values()) <= set(train.data.metrics)
    # add_scalars: TensorBoard's sub-runs <main>_<tag> are metrics main/tag.
    for sub in ("xsinx", "xcosx"):
        reference = events(tensorboard_runs / "train" / f"run_14h_{sub}")
        points = [(e.step, pytest.approx(e.value, rel=1e-6)) for e in reference.Scalars("run_14h")]
        assert history(any_client, train.info.run_id, f"run_14h/{sub}") == points

    reference = events(tensorboard_runs / "train")
    run_id = train.info.run_id
    # Histograms: each step, every value counted.
    for tag in reference.Tags()["histograms"]:
        expected = [(e.step, e.histogram_value.num) for e in reference.Histograms(tag)]
        assert [(r.step, r.num + r.nonfinite) for r in read_histograms(run_id, tag)] == expected
    # Images and figures: a step image for each step TensorBoard has.
    for tag in reference.Tags()["images"]:
        steps = [e.step for e in reference.Images(tag)]
        assert image_steps(any_client, run_id, image_key(tag)) == steps, tag
    # Text, PR curves, the mesh, the embedding, the graph: a file each.
    files = artifact_paths(any_client, run_id)
    for tag, step in (("lstm", 0), ("notes (train)", 1)):
        assert f"text/{image_key(tag)}/step-{step:09d}.md" in files
    for tag in ("class 0", "class 1"):
        assert [e.step for e in reference.Tensors(tag)] == [0]
        assert f"pr_curves/{tag}/step-000000000.json" in files
    assert "meshes/my_mesh/step-000000000.ply" in files
    assert {"tensors.tsv", "metadata.tsv", "sprite.png"} <= {
        Path(f).name for f in files if f.startswith("embeddings/default/000000000/")
    }
    assert reference.Tags()["graph"]
    assert {"model_graph/graph.svg", "model_graph/0-Net/graph.svg"} <= set(files)
    # hparams: one child run per trial, as TensorBoard's one sub-folder per call.
    trials = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == run_id]
    assert sorted((r.data.params["lr"], r.data.params["bsize"]) for r in trials) == [
        ("0.0", "0"),
        ("0.1", "1"),
    ]
    assert sorted(r.data.metrics["hparam/accuracy"] for r in trials) == [0.0, 10.0]

    # Each renamed tag's mapping is printed once; a tag that would merge with another says so.
    for tag, key in expected_keys([*TAGS, "fc1.weight@grad", "notes (train)"]).items():
        if key == tag:
            continue
        preview = repr(tag) if len(tag) <= 80 else f"{tag[:60]!r}... ({len(tag)} characters)"
        if key == mlflow_key(tag):
            assert stderr.count(f"{preview} is not a name MLflow accepts") == 1, tag
        else:
            assert f"{preview} would be logged as {mlflow_key(tag)!r}" in stderr, tag

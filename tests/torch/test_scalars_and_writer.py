"""SummaryWriter: scalars (buffered, tensors read in bulk), text, hparams, meshes, PR curves..."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_plugin.torch as mt
from mlflow_plugin.summaries.records import pr_curve
from mlflow_plugin.torch import SummaryWriter
from tests.torch.conftest import artifact_paths, history, image_steps


def test_public_names_are_pinned() -> None:
    assert sorted(mt.__all__) == sorted(
        [
            "AutologRun", "SummaryWriter", "Watch", "autolog", "flush", "log_config",
            "log_histogram", "log_image", "log_model_graph", "read_histograms", "unwatch", "watch",
        ]
    )  # fmt: skip


def test_scalars_of_every_kind_are_all_there_after_close(client: MlflowClient) -> None:
    weights = torch.ones(3, requires_grad=True)
    with SummaryWriter() as writer:
        for step in range(1500):  # more than one log_batch chunk
            loss = (weights * step).sum()  # a tensor with an autograd graph
            writer.add_scalar("loss", loss, step)
            writer.add_scalar("lr", 0.1, step)
            writer.add_scalar("np", np.float32(step / 2), step)
        writer.add_scalars("acc", {"train": 0.9, "test": 0.8}, 7)
        run_id = writer.run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert history(client, run_id, "loss") == [(s, 3.0 * s) for s in range(1500)]
    assert history(client, run_id, "np") == [(s, s / 2) for s in range(1500)]
    assert len(history(client, run_id, "lr")) == 1500
    assert history(client, run_id, "acc/train") == [(7, 0.9)]
    assert history(client, run_id, "acc/test") == [(7, 0.8)]


def test_walltime_sets_the_timestamp(client: MlflowClient) -> None:
    with SummaryWriter() as writer:
        writer.add_scalar("x", 1.0, 3, walltime=1_700_000_000.25)
    (point,) = client.get_metric_history(writer.run_id, "x")
    assert (point.step, point.timestamp) == (3, 1_700_000_000_250)


def test_a_writer_joins_the_active_run_and_leaves_it_open(client: MlflowClient) -> None:
    with mlflow.start_run() as run:
        writer = SummaryWriter()
        writer.add_scalar("x", 2.0, 1)
        writer.close()
        assert writer.run_id == run.info.run_id
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        assert history(client, run.info.run_id, "x") == [(1, 2.0)]


def test_bad_values_and_names_fail_at_the_call(client: MlflowClient) -> None:
    # Tags MLflow refuses are mapped instead (test_bad_names.py); a non-string is refused.
    with SummaryWriter() as writer:
        with pytest.raises(ValueError, match="one-element tensor"):
            writer.add_scalar("x", torch.ones(2), 0)
        with pytest.raises(MlflowException):
            writer.add_scalar(None, 1.0, 0)  # type: ignore[arg-type]


def test_text_hparams_mesh_pr_curve_and_embedding(client: MlflowClient) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    predictions = rng.random(50)
    with SummaryWriter() as writer:
        writer.add_text("notes", "**hello**", 4)
        writer.add_hparams(
            {"lr": 0.1, "opt": {"name": "sgd"}}, {"hparam/acc": 0.75}, run_name="trial"
        )
        vertices = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
        faces = torch.tensor([[[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]])
        colors = torch.full((1, 4, 3), 200, dtype=torch.uint8)
        writer.add_mesh("tetra", vertices, colors=colors, faces=faces, global_step=2)
        writer.add_pr_curve("pr", labels, predictions, 5, num_thresholds=11)
        writer.add_embedding(torch.eye(3), metadata=["a", "b", "c"], tag="emb", global_step=1)
    run_id = writer.run_id
    load = mlflow.artifacts.load_text
    assert load(f"runs:/{run_id}/text/notes/step-000000004.md") == "**hello**"

    (child,) = client.search_runs(
        [client.get_run(run_id).info.experiment_id], "tags.mlflow.parentRunId = '" + run_id + "'"
    )
    assert child.info.run_name == "trial"
    assert child.data.params == {"lr": "0.1", "opt.name": "sgd"}
    assert child.data.metrics == {"hparam/acc": 0.75}

    ply = load(f"runs:/{run_id}/meshes/tetra/step-000000002.ply").splitlines()
    assert ply[:3] == ["ply", "format ascii 1.0", "element vertex 4"]
    assert "element face 4" in ply and ply[-1] == "3 1 2 3" and "1 0 0 200 200 200" in ply
    assert image_steps(client, run_id, "meshes/tetra") == [2]

    curve = json.loads(load(f"runs:/{run_id}/pr_curves/pr/step-000000005.json"))
    assert curve == pr_curve(labels, predictions, 11)
    # At threshold 0.5, precision and recall are those of "predicted >= 0.5".
    chosen = predictions >= 0.5
    true_pos = int((chosen & (labels == 1)).sum())
    assert curve["true_positives"][5] == true_pos
    assert curve["precision"][5] == pytest.approx(true_pos / chosen.sum())
    assert curve["recall"][5] == pytest.approx(true_pos / (labels == 1).sum())
    assert image_steps(client, run_id, "pr_curves/pr") == [5]

    folder = f"runs:/{run_id}/embeddings/emb/000000001"
    assert load(f"{folder}/tensors.tsv").splitlines() == ["1\t0\t0", "0\t1\t0", "0\t0\t1"]
    assert load(f"{folder}/metadata.tsv").splitlines() == ["a", "b", "c"]


def test_unsupported_calls_raise_and_purge_step_warns(client: MlflowClient) -> None:
    with pytest.warns(UserWarning, match="purge_step"):
        writer = SummaryWriter(purge_step=10)
    calls = {
        "add_audio": lambda: writer.add_audio("tag", torch.zeros(1, 100)),
        "add_video": lambda: writer.add_video("tag", torch.zeros(1, 2, 3, 4, 4)),
        "add_onnx_graph": lambda: writer.add_onnx_graph("model.onnx"),
        "add_custom_scalars": lambda: writer.add_custom_scalars({}),
        "add_pr_curve_raw": lambda: writer.add_pr_curve_raw("t", *[[1.0]] * 6),
    }
    for name, call in calls.items():
        with pytest.raises(NotImplementedError, match=name):
            call()
    writer.close()
    assert artifact_paths(client, writer.run_id) == []


# -- each log directory is its own run --------------------------------------------------


def run_of(client: MlflowClient, run_id: str) -> tuple[str, str, str | None]:
    """(name, status, parent run id) of a run."""
    run = client.get_run(run_id)
    return str(run.info.run_name), str(run.info.status), run.data.tags.get("mlflow.parentRunId")


def test_two_log_directories_are_two_runs(any_client: MlflowClient) -> None:
    train, val = SummaryWriter("runs/exp/train"), SummaryWriter("runs/exp/val")
    assert train.run_id != val.run_id
    # The first is the active run (mlflow.log_* go to it, as before); the second beside it.
    assert mlflow.active_run().info.run_id == train.run_id  # type: ignore[union-attr]
    for step in range(5):
        train.add_scalar("loss", step, step)
        val.add_scalar("loss", -step, step)
    val.close()
    assert run_of(any_client, val.run_id) == ("val", "FINISHED", None)
    assert run_of(any_client, train.run_id) == ("train", "RUNNING", None)  # not ended by val
    train.close()
    assert mlflow.active_run() is None
    assert run_of(any_client, train.run_id) == ("train", "FINISHED", None)
    assert history(any_client, train.run_id, "loss") == [(s, s) for s in range(5)]
    assert history(any_client, val.run_id, "loss") == [(s, -s) for s in range(5)]
    tags = any_client.get_run(val.run_id).data.tags
    assert tags["tensorboard.log_dir"] == "runs/exp/val"


def test_log_directories_under_an_active_run_are_its_children(any_client: MlflowClient) -> None:
    with mlflow.start_run(run_name="sweep") as parent:
        train, val = SummaryWriter("runs/exp/train"), SummaryWriter("runs/exp/val")
        again = SummaryWriter("runs/exp/train")  # TensorBoard appends to the same folder
        assert again.run_id == train.run_id
        for step in range(3):
            train.add_scalar("loss", step, step)
            val.add_scalar("loss", 10 + step, step)
            again.add_scalar("acc", step, step)
        for writer in (train, val):
            writer.close()
        assert mlflow.active_run().info.run_id == parent.info.run_id  # type: ignore[union-attr]
        assert run_of(any_client, train.run_id)[1] == "RUNNING"  # `again` is still open
        again.close()
        assert run_of(any_client, parent.info.run_id)[1] == "RUNNING"
    parent_id = parent.info.run_id
    assert run_of(any_client, train.run_id) == ("train", "FINISHED", parent_id)
    assert run_of(any_client, val.run_id) == ("val", "FINISHED", parent_id)
    assert history(any_client, train.run_id, "loss") == [(s, s) for s in range(3)]
    assert history(any_client, train.run_id, "acc") == [(s, s) for s in range(3)]
    assert history(any_client, val.run_id, "loss") == [(s, 10 + s) for s in range(3)]
    assert any_client.get_run(parent_id).data.metrics == {}


def test_a_failed_flush_ends_only_that_writers_run(client: MlflowClient) -> None:
    train, val = SummaryWriter("runs/exp/train"), SummaryWriter("runs/exp/val")
    val.add_scalar("unreadable", torch.tensor(1.0, device="meta"), 0)
    with pytest.raises(MlflowException, match="unreadable"):
        val.close()
    assert run_of(client, val.run_id)[1] == "FAILED"
    train.add_scalar("loss", 1.0, 0)
    train.close()
    assert run_of(client, train.run_id)[1] == "FINISHED"


# -- TensorBoard's methods and signatures -------------------------------------------------


def test_every_public_method_has_tensorboards_signature() -> None:
    from torch.utils.tensorboard import SummaryWriter as TensorBoardWriter

    def shape(method: object) -> list[tuple[str, object, object]]:
        # Names, kinds and defaults: what an editor and a caller see (annotations aside).
        parameters = inspect.signature(method).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in parameters]

    public = [n for n in vars(TensorBoardWriter) if not n.startswith("_")]
    assert "add_tensor" in public and "add_video" in public
    for name in public:
        ours = getattr(SummaryWriter, name, None)
        assert ours is not None, name
        assert shape(ours) == shape(getattr(TensorBoardWriter, name)), name
    # The constructor takes TensorBoard's arguments in order, plus run_id by keyword.
    theirs = shape(TensorBoardWriter.__init__)
    assert shape(SummaryWriter.__init__)[: len(theirs)] == theirs


def test_add_tensor_stores_scalars_as_metrics_and_others_as_npy(any_client: MlflowClient) -> None:
    matrix = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    with SummaryWriter() as writer:
        for step in range(3):
            writer.add_tensor("scale", torch.tensor(0.5 * step), step)
            writer.add_tensor("weights@1", matrix + step, step)
    run_id = writer.run_id
    assert history(any_client, run_id, "scale") == [(s, 0.5 * s) for s in range(3)]
    paths = artifact_paths(any_client, run_id, "tensors")
    assert paths == [f"tensors/weights_1/step-{s:09d}.npy" for s in range(3)]
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=paths[2])
    assert np.array_equal(np.load(local), (matrix + 2).numpy())


def test_writers_never_closed_end_their_runs_at_exit(
    any_client: MlflowClient, tmp_path: Path
) -> None:
    script = tmp_path / "forgot_close.py"
    script.write_text(
        "from mlflow_plugin.torch import SummaryWriter\n"
        "train, val = SummaryWriter('runs/exp/train'), SummaryWriter('runs/exp/val')\n"
        "for step in range(5):\n"
        "    train.add_scalar('loss', step, step)\n"
        "    val.add_scalar('loss', -step, step)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    experiments = [e.experiment_id for e in any_client.search_experiments()]
    runs = {r.info.run_name: r for r in any_client.search_runs(experiments)}
    assert sorted(runs) == ["train", "val"]
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert history(any_client, runs["train"].info.run_id, "loss") == [(s, s) for s in range(5)]
    assert history(any_client, runs["val"].info.run_id, "loss") == [(s, -s) for s in range(5)]


# A process that logs to a run it joined (another rank, a run id given) starts the worker
# before it builds a store: the store's exit hook was then registered after the worker's,
# ran first, closed the write buffers, and the worker's last points met a closed buffer.
_LOG_TO_A_JOINED_RUN = """
import sys
from mlflow_plugin.torch.scalars import RunTarget
from mlflow_plugin.torch.worker import get_worker

uri, run_id = sys.argv[1:3]
worker, target = get_worker(), RunTarget(run_id, uri)
worker.log_scalar(target, "loss", 1.0, 0, 1)
worker.flush()  # the store is built now, after the worker registered its exit hook
worker.log_scalar(target, "loss", 2.0, 1, 2)  # queued; the exit hooks must store it
"""


def test_points_queued_at_exit_are_stored_when_the_worker_started_first(
    client: MlflowClient,
) -> None:
    run_id = client.create_run("0").info.run_id
    done = subprocess.run(
        [sys.executable, "-c", _LOG_TO_A_JOINED_RUN, mlflow.get_tracking_uri(), run_id],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert history(client, run_id, "loss") == [(0, 1.0), (1, 2.0)]


def test_a_forked_child_logs_each_call_before_it_returns(any_client: MlflowClient) -> None:
    # multiprocessing's fork children end with os._exit: no exit hook runs, and the
    # parent's worker thread does not exist in the child, so nothing would drain there.
    with SummaryWriter() as writer:
        writer.add_scalar("parent", 1.0, 0)
        mt.flush()
        writer.add_histogram("weights", torch.arange(4.0), 0)  # pending in the parent
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                for step in range(20):
                    writer.add_scalar("child", float(step), step)
                writer.add_histogram("child_weights", torch.arange(8.0), 0)
                mt.flush()  # writes the child's histograms, not the parent's pending ones
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        writer.add_scalar("parent", 2.0, 1)
    run_id = writer.run_id
    assert history(any_client, run_id, "child") == [(s, float(s)) for s in range(20)]
    assert history(any_client, run_id, "parent") == [(0, 1.0), (1, 2.0)]
    assert [h.step for h in mt.read_histograms(run_id, "weights")] == [0]  # written once
    assert [h.num for h in mt.read_histograms(run_id, "child_weights")] == [8]


def test_a_call_that_raises_stores_nothing_and_costs_no_other_call_its_points(
    client: MlflowClient,
) -> None:
    from mlflow_plugin.torch.worker import get_worker

    with SummaryWriter() as writer:
        with pytest.raises(TypeError):  # None is no number: the whole call is refused,
            writer.add_scalars("m", {"a": 1.0, "bad": None, "c": 3.0}, 0)
        writer.add_scalars("m", {"a": 1.0, "c": 3.0}, 1)  # as log_batch refuses a batch
        # A value that cannot be read fails later, in the background drain; the next
        # call reports it (and queues nothing), the one after is logged as usual.
        writer.add_scalar("unreadable", torch.empty((), device="meta"), 0)
        worker = get_worker()
        with worker._drain_lock:
            worker._drain()  # what the background thread does every 2 s
        with pytest.raises(MlflowException, match="unreadable"):
            writer.add_scalar("good", 41.0, 0)
        writer.add_scalar("good", 42.0, 1)
        mt.flush()
    assert history(client, writer.run_id, "m/a") == [(1, 1.0)]
    assert history(client, writer.run_id, "m/c") == [(1, 3.0)]
    assert history(client, writer.run_id, "good") == [(1, 42.0)]


def test_a_tensor_is_logged_with_its_value_at_the_call(client: MlflowClient) -> None:
    # As TensorBoard reads it: a running total changed in place before the drain.
    total = torch.zeros(())
    with SummaryWriter() as writer:
        for step in range(3):
            total += 1.0
            writer.add_scalar("total", total, step)
    assert history(client, writer.run_id, "total") == [(0, 1.0), (1, 2.0), (2, 3.0)]

"""Hostile values and damaged runs against issue 16's PyTorch work: the dashboard page,
SummaryWriter's records and autolog's per-step work.

Each test names what a TensorBoard or W&B user (or a value they log) does to the helpers
and what must still hold: the page is built from what is readable, a logged value
cannot make the page's data invalid, and the training loop neither crashes nor reads a
tensor back on its own thread.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mlflow_plugin.cli import main
from mlflow_plugin.summaries.dashboard import collect, render
from mlflow_plugin.summaries.dashboard.series import graph_from_text
from mlflow_plugin.torch import SummaryWriter, autolog, dashboard, flush, log_histogram
from mlflow_plugin.torch.dashboard import write_dashboard
from mlflow_plugin.torch.scalars import RunTarget
from mlflow_plugin.torch.worker import get_worker
from tests.torch.conftest import artifact_paths, history
from tests.torch.test_dashboard import page_data


def _strict_json(text: str) -> Any:
    """JSON as the page's ``JSON.parse`` reads it: NaN and Infinity are errors."""

    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _page_data(run_id: str) -> dict[str, Any]:
    page = mlflow.artifacts.load_text(f"runs:/{run_id}/dashboard.html")
    data: dict[str, Any] = page_data(page)
    return data


# -- the page's data --------------------------------------------------------------------


def test_hostile_text_and_tags_reach_the_page_as_data_only(client: MlflowClient) -> None:
    hostile = "</script><img src=x onerror=alert(1)>${x}\u2028\u2029<!--"
    with SummaryWriter() as writer:
        writer.add_text(hostile, hostile, 0)
    page = mlflow.artifacts.load_text(f"runs:/{writer.run_id}/dashboard.html")
    # The data block is the page's second script; nothing logged closes it or opens a tag.
    assert page.count("</script>") == 2 and "<img" not in page
    [text] = page_data(page)["text"]
    assert text["steps"][0]["text"] == hostile


def test_nan_weights_in_a_pr_curve_leave_the_page_valid_json(any_client: MlflowClient) -> None:
    # JSON.parse fails on NaN: the page would have no data at all (it was not written).
    weights = np.array([1.0, np.nan, 1.0, 1.0])
    with SummaryWriter() as writer:
        writer.add_pr_curve("pr", np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.6, 0.4]), 0,
                            weights=weights)  # fmt: skip
    page = mlflow.artifacts.load_text(f"runs:/{writer.run_id}/dashboard.html")
    data = page.split('type="application/json" id="dashboard-data">')[1].split("</script>")[0]
    [curve] = _strict_json(data)["pr_curves"]
    assert None in curve["steps"][0]["precision"]


def test_non_finite_numbers_become_null_and_strings_keep_their_words() -> None:
    page = render({"run": {"id": "r"}, "x": [float("nan"), float("inf"), -float("inf"), 1.5],
                   "s": 'NaN "Infinity" -Infinity'})  # fmt: skip
    data = page_data(page)
    assert data["x"] == [None, None, None, 1.5]
    assert data["s"] == 'NaN "Infinity" -Infinity'


def test_negative_steps_keep_their_step(client: MlflowClient) -> None:
    # step-<n:09d> writes step -1 as "step--00000001": it was read as step 0.
    with SummaryWriter() as writer:
        writer.add_text("notes", "before", -1)
        writer.add_text("notes", "after", 1)
        writer.add_pr_curve("pr", np.array([1, 0]), np.array([0.8, 0.3]), -2)
        writer.add_embedding(torch.randn(5, 3), global_step=-3, tag="emb")
    data = _page_data(writer.run_id)
    assert [s["step"] for s in data["text"][0]["steps"]] == [-1, 1]
    assert [s["step"] for s in data["pr_curves"][0]["steps"]] == [-2]
    assert data["embeddings"][0]["step"] == -3


# -- a damaged run ----------------------------------------------------------------------


def _damaged_run(client: MlflowClient) -> str:
    """A run whose histogram "h" has 3 good steps plus a chunk cut short (one good line,
    one truncated), a PR curve file that is not JSON and an embedding whose metadata has
    fewer rows than points; its text and histogram "g" are intact."""
    with mlflow.start_run() as run:
        for step in range(3):
            log_histogram("h", torch.arange(10.0) + step, step=step, image=False)
        log_histogram("g", torch.randn(10), step=0, image=False)
        with SummaryWriter() as writer:
            writer.add_text("notes", "intact", 0)
            writer.add_embedding(torch.randn(6, 4), metadata=[str(i) for i in range(6)],
                                 tag="emb")  # fmt: skip
        flush()
    run_id = run.info.run_id
    [chunk] = [
        e.path for e in client.list_artifacts(run_id, "histograms/h") if e.path.endswith("l")
    ]
    good = mlflow.artifacts.load_text(f"runs:/{run_id}/{chunk}").splitlines()[0]
    later = json.loads(good) | {"step": 3}
    cut = json.dumps(later | {"step": 4})[:60]
    client.log_text(run_id, json.dumps(later) + "\n" + cut, "histograms/h/steps-cut.jsonl")
    client.log_text(run_id, '{"precision": [1.0, 0.5', "pr_curves/pr/step-000000000.json")
    [emb] = [e.path for e in client.list_artifacts(run_id, "embeddings/emb")]
    client.log_text(run_id, "0\n1\n", f"{emb}/metadata.tsv")
    return run_id


def test_a_damaged_run_still_gets_the_page_of_what_is_readable(
    any_client: MlflowClient,
) -> None:
    run_id = _damaged_run(any_client)
    target = RunTarget(run_id, mlflow.get_tracking_uri())
    with pytest.warns(RuntimeWarning, match="leaves out damaged artifacts"):
        assert write_dashboard(target) is True
    data = _page_data(run_id)
    histograms = {h["key"]: h for h in data["histograms"]}
    assert [s["step"] for s in histograms["h"]["steps"]] == [0, 1, 2, 3]
    assert [s["step"] for s in histograms["g"]["steps"]] == [0]
    assert data["text"][0]["steps"][0]["text"] == "intact"
    assert data["pr_curves"] == []
    [embedding] = data["embeddings"]
    assert embedding["total_points"] == 6 and embedding["labels"] == []
    assert any("histograms/h" in d for d in data["damaged"])
    assert any("pr_curves/pr" in d for d in data["damaged"])


def test_cli_builds_what_it_can_of_a_damaged_run(
    client: MlflowClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _damaged_run(client)
    assert main(["dashboard", mlflow.get_tracking_uri(), run_id]) == 0
    err = capsys.readouterr().err
    assert "damaged: pr_curves/pr" in err and "Traceback" not in err
    assert [h["key"] for h in _page_data(run_id)["histograms"]] == ["g", "h"]


def test_a_layer_summary_in_another_form_keeps_the_graph() -> None:
    text = "%0 = input() -> [1, 3]\n%1 = fc (Linear)(%0) -> [1, 2]\n%2 = output(%1) -> [1, 2]\n"
    summary = "-----\nLayer  Params\n-----\nfc  two\n-----\n"
    graph = graph_from_text(text, summary)
    assert [n["name"] for n in graph["nodes"]] == ["input", "fc", "output"]
    assert graph["nodes"][1]["params"] == 0


def test_collect_of_an_intact_run_names_nothing_damaged(client: MlflowClient) -> None:
    with mlflow.start_run() as run:
        log_histogram("h", torch.randn(10), step=0, image=False)
        flush()
    assert collect(client, run.info.run_id)["damaged"] == []


# -- autolog on the training thread -----------------------------------------------------


class _HostReads(torch.Tensor):
    """A tensor that counts reads of its value made on the main (training) thread."""

    reads = 0

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in ("__float__", "item", "tolist") and threading.current_thread() is (
            threading.main_thread()
        ):
            cls.reads += 1
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_learning_rate_is_not_read_on_the_training_thread(
    client: MlflowClient,
) -> None:
    # Capturable and compiled optimizers keep lr in a tensor on the device: float(lr)
    # each step would wait for the device each step.
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.1).as_subclass(_HostReads))
    with autolog(model, optimizer, log_model=False, log_graph=False, log_every_n_steps=2) as run:
        _HostReads.reads = 0
        for _ in range(5):
            optimizer.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            optimizer.step()
            optimizer.param_groups[0]["lr"].mul_(0.5)  # a scheduler's in-place update
        reads = _HostReads.reads
    assert reads == 0
    # The value each logged step trained with (a copy, not the tensor as it ends).
    points = history(client, run.run_id, "optimizer/lr")
    assert [step for step, _ in points] == [1, 2, 4]
    assert [value for _, value in points] == pytest.approx([0.1, 0.05, 0.0125])


def test_autolog_trains_a_model_with_sparse_gradients(client: MlflowClient) -> None:
    # nn.Embedding(sparse=True) with SparseAdam: the gradient norm crashed the step.
    model = torch.nn.Embedding(10, 3, sparse=True)
    optimizer = torch.optim.SparseAdam(model.parameters(), lr=0.1)
    index = torch.tensor([1, 2, 2])  # 2 twice: its gradient rows add up
    with autolog(model, optimizer, log_model=False, log_graph=False) as run:
        optimizer.zero_grad()
        model(index).sum().backward()
        expected = float(model.weight.grad.to_dense().norm())
        optimizer.step()
    [(step, value)] = history(client, run.run_id, "train/grad_norm")
    assert step == 1 and value == pytest.approx(expected)


# -- the dashboard's timer --------------------------------------------------------------


def test_the_timer_forgets_a_run_deleted_while_it_runs(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deleted run keeps its RUNNING status: the timer rebuilt its page for ever.
    monkeypatch.setattr(dashboard, "INTERVAL_S", 0.2)
    run = client.create_run("0")
    target = RunTarget(run.info.run_id, mlflow.get_tracking_uri())
    dashboard.track(target)  # as a SummaryWriter does for its log directory's run
    log_histogram("h", torch.randn(10), step=0, image=False, run_id=run.info.run_id)
    flush()
    assert target in dashboard._live
    client.delete_run(run.info.run_id)
    deadline = time.monotonic() + 30
    while target in dashboard._live:
        assert time.monotonic() < deadline, "the timer still rebuilds a deleted run's page"
        time.sleep(0.05)
        get_worker().flush()  # the rebuild is queued on the worker: run it now


def test_the_timer_builds_the_page_outside_the_training_process(
    any_client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long run's build is seconds of Python: on a thread of this process it takes the
    # interpreter lock from the training loop every interval.
    monkeypatch.setattr(dashboard, "INTERVAL_S", 0.3)
    with mlflow.start_run() as run:
        target = RunTarget(run.info.run_id, mlflow.get_tracking_uri())
        dashboard.track(target)
        # Text reaches the store at the worker's periodic drain, with no flush.
        SummaryWriter(run_id=run.info.run_id).add_text("notes", "still training", 1)
        deadline = time.monotonic() + 60
        while "dashboard.html" not in artifact_paths(any_client, run.info.run_id):
            assert time.monotonic() < deadline, "no dashboard.html while the run was running"
            time.sleep(0.1)
        child = dashboard._children[target]
        assert child.pid != os.getpid() and child.args[-1] == run.info.run_id
        assert child.wait(timeout=60) == 0


def test_a_log_directory_run_flushed_before_close_gets_its_last_steps(
    any_client: MlflowClient, tmp_path: Path
) -> None:
    # train/val writers under the user's run: their runs are never the active one, and the
    # page was rebuilt only at the first flush after they opened (an epoch's flush()).
    with mlflow.start_run():
        writer = SummaryWriter(str(tmp_path / "runs" / "train"))
        writer.add_histogram("h", torch.randn(10), 0)
        writer.flush()
        writer.add_histogram("h", torch.randn(10), 1)
        writer.close()
    [series] = _page_data(writer.run_id)["histograms"]
    assert [s["step"] for s in series["steps"]] == [0, 1]

"""One bad name never loses other metrics: names are mapped at the call, failures reported.

Each storage scenario runs on bucket+file and on bucket+s3 (moto), and reads every point
back with ``MlflowClient.get_metric_history``.
"""

from __future__ import annotations

import hashlib
import posixpath
import random
import re
import time

import mlflow
import pytest
import torch
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric, _validate_param_name
from torch import nn

from mlflow_plugin.summaries.names import image_key, mlflow_key
from mlflow_plugin.torch import SummaryWriter, autolog, flush, log_config, read_histograms, watch
from mlflow_plugin.torch.scalars import RunTarget, ScalarBuffer
from tests.torch.conftest import history, image_steps

STEPS = range(10)


def shortened(name: str, limit: int) -> str:
    """The README's rule for a name too long: its head, "-", 10 hex digits of its SHA-256."""
    return f"{name[: limit - 11]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def status(client: MlflowClient, run_id: str) -> str:
    return str(client.get_run(run_id).info.status)


# -- the mapping rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["loss", "Loss/train", "a b.c-d_e:f", "é/温度", "x" * 250, "gradients/0.weight"]
)
def test_names_mlflow_accepts_are_kept(name: str) -> None:
    assert mlflow_key(name) == name


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("loss@1", "loss_1"),
        ("acc[top-1]", "acc_top-1_"),
        ("bad\x00name", "bad_name"),
        ("/a//b/", "a/b"),
        ("a/./b", "a/b"),
        ("a/../b", "a/__/b"),
        ("..", "__"),
        ("..hidden/x", "__hidden/x"),
        ("", "_"),
    ],
)
def test_refused_names_map_by_the_documented_rule(name: str, key: str) -> None:
    assert mlflow_key(name) == key


def test_long_names_keep_their_head_and_a_hash_of_the_whole_name() -> None:
    first, second = "a" * 260 + "/first", "a" * 260 + "/second"
    assert mlflow_key(first) == shortened(first, 250)
    assert mlflow_key(second) == shortened(second, 250)
    assert mlflow_key(first) != mlflow_key(second)  # two long tags stay two metrics
    assert mlflow_key(first, room=8) == shortened(first, 242)
    assert image_key(first) == shortened(first, 100)


def test_every_generated_name_maps_to_names_mlflow_accepts() -> None:
    rng = random.Random(13)
    alphabet = "ab/.@ :~#%é温\x00\t-_[]"
    names = ["".join(rng.choices(alphabet, k=rng.randint(0, 400))) for _ in range(2000)]
    for name in names:
        key = mlflow_key(name)
        _validate_metric(key, 0.0, 0, 0)  # MLflow's own checks, length included
        _validate_param_name(key)
        assert mlflow_key(name) == key  # the same tag always maps to the same key
        picture = image_key(name)
        assert re.fullmatch(r"[a-zA-Z0-9_\-./ ]{1,100}", picture)  # MlflowClient.log_image's
        assert posixpath.normpath(picture) == picture and not picture.startswith("/")
    long_names = {n for n in names if len(n) > 250}
    assert len({mlflow_key(n) for n in long_names}) == len(long_names)


@pytest.mark.parametrize("name", [None, 3, b"loss"])
def test_a_name_that_is_not_a_string_is_refused(name: object) -> None:
    with pytest.raises(MlflowException, match="must be a string") as caught:
        mlflow_key(name)  # type: ignore[arg-type]
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


# -- at the call, on both schemes --------------------------------------------------------


def test_over_long_scalar_tags_lose_nothing(any_client: MlflowClient) -> None:
    first, second = "x" * 300 + "/first", "x" * 300 + "/second"
    with SummaryWriter() as writer:
        for step in STEPS:
            writer.add_scalar("loss", step / 10, step)
            writer.add_scalar(first, step, step)
            writer.add_scalars("acc", {"x" * 260: step}, step)
            writer.add_scalar(second, -step, step)
    run_id = writer.run_id
    assert status(any_client, run_id) == "FINISHED"
    assert history(any_client, run_id, "loss") == [(s, s / 10) for s in STEPS]
    assert history(any_client, run_id, shortened(first, 250)) == [(s, s) for s in STEPS]
    assert history(any_client, run_id, shortened(second, 250)) == [(s, -s) for s in STEPS]
    long_acc = shortened("acc/" + "x" * 260, 250)
    assert history(any_client, run_id, long_acc) == [(s, s) for s in STEPS]


def test_histogram_tags_mlflow_refuses_lose_nothing(any_client: MlflowClient) -> None:
    long_tag = "h" * 300
    with SummaryWriter() as writer:
        for step in STEPS:
            writer.add_scalar("loss", step, step)
            writer.add_histogram("weights@layer1", torch.randn(64) + step, step)
            writer.add_histogram(long_tag, torch.rand(16), step)
    run_id = writer.run_id
    assert status(any_client, run_id) == "FINISHED"
    assert history(any_client, run_id, "loss") == [(s, s) for s in STEPS]
    metrics = any_client.get_run(run_id).data.metrics
    # Each summary metric of a histogram (whichever: mean, std...) has every step.
    for prefix in ("weights_layer1", shortened(long_tag, 242)):  # room kept for "/<summary>"
        derived = [k for k in metrics if k.startswith(f"{prefix}/")]
        assert derived, prefix
        for key in derived:
            assert [s for s, _ in history(any_client, run_id, key)] == list(STEPS)
    assert image_steps(any_client, run_id, "histograms/weights_layer1") == list(STEPS)
    assert [r.step for r in read_histograms(run_id, "weights@layer1")] == list(STEPS)
    assert image_steps(any_client, run_id, f"histograms/{shortened(long_tag, 100)}") == list(STEPS)
    assert [r.key for r in read_histograms(run_id, long_tag)] == [long_tag] * len(STEPS)


def test_histogram_tags_mapped_alike_and_a_scalar_named_like_a_summary_stay_apart(
    any_client: MlflowClient,
) -> None:
    # "w#b" and "w@b" both map to "w_b"; the user's own "w_b/mean" is a scalar of its own.
    with SummaryWriter() as writer:
        for step in STEPS:
            writer.add_scalar("w_b/mean", -1000 - step, step)
            writer.add_histogram("w#b", torch.full((8,), float(step)), step)
            writer.add_histogram("w@b", torch.full((8,), 100.0 + step), step)
    run_id = writer.run_id
    metrics = any_client.get_run(run_id).data.metrics
    means = sorted(k for k in metrics if k.endswith("/mean"))
    assert len(means) == 3, means  # the scalar's, and one per histogram tag
    series = {key: history(any_client, run_id, key) for key in means}
    assert series["w_b/mean"] == [(s, -1000 - s) for s in STEPS]
    assert sorted(series.values()) == sorted(
        [[(s, -1000 - s) for s in STEPS], [(s, s) for s in STEPS], [(s, 100 + s) for s in STEPS]]
    )
    # Each tag's raw bins in a folder of its own, read back by its own tag.
    assert [r.key for r in read_histograms(run_id, "w#b")] == ["w#b"] * len(STEPS)
    assert [r.key for r in read_histograms(run_id, "w@b")] == ["w@b"] * len(STEPS)
    assert [r.max for r in read_histograms(run_id, "w@b")] == [100.0 + s for s in STEPS]


def test_long_image_and_text_tags_are_shortened(any_client: MlflowClient) -> None:
    tag = "picture@" + "p" * 300
    with SummaryWriter() as writer:
        for step in range(3):
            writer.add_image(tag, torch.rand(3, 4, 4), step)
            writer.add_text(tag, f"note {step}", step)
    folder = shortened(tag, 100).replace("@", "_")
    assert image_steps(any_client, writer.run_id, folder) == [0, 1, 2]
    notes = [f.path for f in any_client.list_artifacts(writer.run_id, f"text/{folder}")]
    assert notes == [f"text/{folder}/step-{s:09d}.md" for s in range(3)]


def test_wandb_style_logging_with_bad_names_loses_nothing(any_client: MlflowClient) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, targets = torch.randn(16, 4), torch.randn(16, 1)
    long_key = "val/" + "z" * 300
    with autolog(model, optimizer, log_model=False, log_graph=False) as run:
        for _ in range(50):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss, "acc@top1": 0.5, long_key: run.step})
    run_id = run.run_id
    steps = list(range(1, 51))
    assert status(any_client, run_id) == "FINISHED"
    assert [s for s, _ in history(any_client, run_id, "train/loss")] == steps
    assert [s for s, _ in history(any_client, run_id, "train/grad_norm")] == [1, 50]
    assert history(any_client, run_id, "acc_top1") == [(s, 0.5) for s in steps]
    assert history(any_client, run_id, shortened(long_key, 250)) == [(s, s) for s in steps]


class Wide(nn.Module):
    """A model whose one layer has a 300-character name."""

    block = "b" * 300

    def __init__(self) -> None:
        super().__init__()
        self.add_module(self.block, nn.Linear(3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer: nn.Module = self.get_submodule(self.block)
        return layer(x)  # type: ignore[no-any-return]


def test_watch_maps_long_parameter_names(any_client: MlflowClient) -> None:
    model = Wide()
    with mlflow.start_run() as run:
        handle = watch(model, log="parameters", log_freq=1)
        for _ in range(3):  # no optimizer: each backward pass is a step
            model(torch.randn(2, 3)).sum().backward()
        handle.remove()
        flush()
    prefix = shortened(f"parameters/{Wide.block}.weight", 242)
    assert [s for s, _ in history(any_client, run.info.run_id, f"{prefix}/norm")] == [0, 1, 2]
    assert [
        r.step for r in read_histograms(run.info.run_id, f"parameters/{Wide.block}.weight")
    ] == [0, 1, 2]


def test_config_and_hparams_keys_mlflow_refuses_are_mapped(any_client: MlflowClient) -> None:
    config = {"lr": 0.1, "a@b": 1, "w" * 300: 2, "nested": {"v" * 300: 3, "": 4}}
    with SummaryWriter() as writer:
        log_config(config)
        writer.add_hparams({"opt": {"name@1": "sgd"}}, {"hparam/acc@1": 0.75}, run_name="trial")
    params = any_client.get_run(writer.run_id).data.params
    assert params == {
        "lr": "0.1",
        "a_b": "1",
        shortened("w" * 300, 250): "2",
        shortened("nested." + "v" * 300, 250): "3",
        "nested.": "4",
    }
    (child,) = any_client.search_runs(
        [any_client.get_run(writer.run_id).info.experiment_id], "attributes.run_name = 'trial'"
    )
    assert child.data.params == {"opt.name_1": "sgd"}
    assert child.data.metrics == {"hparam/acc_1": 0.75}


def test_names_and_values_mlflow_cannot_take_are_refused_at_the_call(
    any_client: MlflowClient,
) -> None:
    with SummaryWriter() as writer:
        writer.add_scalar("bad\x00name", 1.0, 0)  # mapped, like TensorBoard's own tag cleaning
        for call in (
            lambda: writer.add_scalar(None, 1.0, 0),  # type: ignore[arg-type]
            lambda: writer.add_histogram(3, torch.ones(4), 0),  # type: ignore[arg-type]
            lambda: writer.add_scalar("loss", 1.0, 2**64),
            lambda: writer.add_scalar("loss", 1.0, 0, walltime=-5.0),
        ):
            with pytest.raises(MlflowException) as caught:
                call()
            assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        writer.add_scalar("loss", 2.0, 1)
    assert history(any_client, writer.run_id, "bad_name") == [(0, 1.0)]
    assert history(any_client, writer.run_id, "loss") == [(1, 2.0)]


# -- what fails in the background --------------------------------------------------------


def test_a_refused_metric_in_a_batch_never_takes_the_others(any_client: MlflowClient) -> None:
    run_id = any_client.create_run(any_client.create_experiment("split")).info.run_id
    buffer = ScalarBuffer(lambda uri: any_client)
    target = RunTarget(run_id, mlflow.get_tracking_uri())
    for step in STEPS:
        buffer.append(target, "loss", step, step, 1)
        # A point that skipped the call-time mapping (as every point did before it).
        buffer._pending.append((target, "x" * 300, 1.0, step, 1))
        buffer.append(target, "acc", -step, step, 1)
    (error,) = buffer.drain()
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert f"10 metric point(s) of run {run_id} were not stored" in error.message
    assert history(any_client, run_id, "loss") == [(s, s) for s in STEPS]
    assert history(any_client, run_id, "acc") == [(s, -s) for s in STEPS]


def test_a_background_failure_is_raised_by_the_next_call(any_client: MlflowClient) -> None:
    experiment_id = any_client.create_experiment("deleted-under-a-writer")
    doomed = any_client.create_run(experiment_id).info.run_id
    healthy = any_client.create_run(experiment_id).info.run_id
    writer, other = SummaryWriter(run_id=doomed), SummaryWriter(run_id=healthy)
    acknowledged = []
    for step in STEPS:
        writer.add_scalar("x", step, step)
        other.add_scalar("y", step, step)
        acknowledged.append(step)
    flush()
    any_client.delete_run(doomed)
    writer.add_scalar("x", 10, 10)  # accepted: the worker learns of the deletion later
    # The worker drains on its own every few seconds; the first call after that raises.
    deadline, step = time.monotonic() + 60, 10
    with pytest.raises(MlflowException) as caught:
        while time.monotonic() < deadline:
            other.add_scalar("y", step, step)
            acknowledged.append(step)
            step += 1
            time.sleep(0.05)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert f"1 metric point(s) of run {doomed} were not stored: 'x' (1)" in caught.value.message
    flush()  # reported once; the healthy run's points were never held back
    assert history(any_client, healthy, "y") == [(s, s) for s in acknowledged]
    assert history(any_client, doomed, "x") == [(s, s) for s in STEPS]


def test_close_ends_its_run_failed_when_background_logging_failed(
    any_client: MlflowClient,
) -> None:
    with pytest.raises(MlflowException, match=r"'unreadable' \(1\)"), SummaryWriter() as writer:
        for step in STEPS:
            writer.add_scalar("loss", step, step)
        writer.add_scalar("unreadable", torch.tensor(1.0, device="meta"), 10)
    assert mlflow.active_run() is None
    assert status(any_client, writer.run_id) == "FAILED"
    assert history(any_client, writer.run_id, "loss") == [(s, s) for s in STEPS]


def test_autolog_ends_its_run_failed_when_background_logging_failed(
    any_client: MlflowClient,
) -> None:
    model = nn.Linear(2, 1)
    failing = pytest.raises(MlflowException, match=r"'unreadable' \(1\)")
    with failing, autolog(model, log_model=False, log_graph=False) as run:
        for step in STEPS:
            run.log({"loss": step})
        run.log({"unreadable": torch.tensor(1.0, device="meta")})
    assert mlflow.active_run() is None
    assert status(any_client, run.run_id) == "FAILED"
    assert history(any_client, run.run_id, "loss") == [(s, s) for s in STEPS]


def test_a_writer_block_that_raises_ends_its_run_failed(any_client: MlflowClient) -> None:
    with pytest.raises(KeyError), SummaryWriter() as writer:
        writer.add_scalar("loss", 1.0, 0)
        raise KeyError("the training loop failed")
    assert status(any_client, writer.run_id) == "FAILED"
    assert history(any_client, writer.run_id, "loss") == [(0, 1.0)]


# -- two names, one key -------------------------------------------------------------------


def test_two_tags_that_map_to_one_key_stay_two_metrics_and_say_so(
    any_client: MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    digest = hashlib.sha256(b"hit@1").hexdigest()[:10]
    with SummaryWriter() as writer:
        for step in STEPS:
            writer.add_scalar("hit_1", step, step)  # valid as it is: it keeps its name
            writer.add_scalar("hit@1", -step, step)  # would be hit_1 too
            writer.add_scalar("/hit", 2 * step, step)  # would be hit
            writer.add_scalar("hit", 3 * step, step)
        writer.add_image("温度", torch.zeros(3, 2, 2), 0)  # both become "__" as image keys
        writer.add_image("精度", torch.ones(3, 2, 2), 0)
    run_id = writer.run_id
    assert history(any_client, run_id, "hit_1") == [(s, s) for s in STEPS]
    assert history(any_client, run_id, f"hit_1-{digest}") == [(s, -s) for s in STEPS]
    assert history(any_client, run_id, "hit") == [(s, 2 * s) for s in STEPS]
    hit_digest = hashlib.sha256(b"hit").hexdigest()[:10]
    assert history(any_client, run_id, f"hit-{hit_digest}") == [(s, 3 * s) for s in STEPS]
    second = f"__-{hashlib.sha256('精度'.encode()).hexdigest()[:10]}"
    assert image_steps(any_client, run_id, "__") == [0]
    assert image_steps(any_client, run_id, second) == [0]
    said = [r.getMessage() for r in caplog.records if "already holds" in r.getMessage()]
    assert said == [
        f"'hit@1' would be logged as 'hit_1', which already holds 'hit_1'; "
        f"it is logged as 'hit_1-{digest}'",
        f"'hit' would be logged as 'hit', which already holds '/hit'; "
        f"it is logged as 'hit-{hit_digest}'",
        f"'精度' would be logged as '__', which already holds '温度'; it is logged as '{second}'",
    ]
    # Another run starts afresh: there, "hit@1" alone is plain hit_1.
    with SummaryWriter() as other:
        other.add_scalar("hit@1", 1.0, 0)
    assert history(any_client, other.run_id, "hit_1") == [(0, 1.0)]


def test_a_renamed_image_tag_is_said_once(
    client: MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    with SummaryWriter() as writer:
        for step in range(3):
            writer.add_image("写真 [val]", torch.zeros(3, 2, 2), step)
            writer.add_figure("写真 [val]", Figure(figsize=(1, 1)), step)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("'写真 [val]'")]
    assert said == ["'写真 [val]' is not a name MLflow accepts; it is logged as '__ _val_'"]
    assert image_steps(client, writer.run_id, "__ _val_") == [0, 0, 1, 1, 2, 2]

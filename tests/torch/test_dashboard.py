"""``dashboard.html``: its data equals what the run stores, it needs no network, it is
written when the helpers flush, and ``mlflow-bucket dashboard`` rebuilds it for any run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mlflow_plugin.cli import main
from mlflow_plugin.summaries.dashboard import DATA_ID, LIMITS, collect, render
from mlflow_plugin.summaries.dashboard.series import (
    decode_histogram,
    encode_histogram,
    graph_from_text,
    histogram_bands,
    pca,
    reservoir,
)
from mlflow_plugin.summaries.histograms import HistogramStats
from mlflow_plugin.torch import (
    SummaryWriter,
    autolog,
    dashboard,
    flush,
    log_histogram,
    read_histograms,
)
from mlflow_plugin.torch.dashboard import write_dashboard
from mlflow_plugin.torch.scalars import RunTarget
from tests.summaries.golden import expected_text
from tests.torch.conftest import artifact_paths

GOLDEN = Path(__file__).parent / "golden"


def _page(run_id: str) -> str:
    return mlflow.artifacts.load_text(f"runs:/{run_id}/dashboard.html")


def page_data(page: str) -> dict:
    """The JSON the page embeds."""
    match = re.search(
        rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', page, re.DOTALL
    )
    assert match, "the page embeds no data"
    return json.loads(match.group(1))


def _hand_made() -> HistogramStats:
    # 8 values: 4 in [1, 2), 4 in [2, 3]; min 1, max 3.
    return HistogramStats("w", 7, 0, [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 4.0, 4.0, 0.0], 8, 0,
                          1.0, 3.0, 16.0, 36.0)  # fmt: skip


def test_bands_interpolate_inside_the_bins_of_a_hand_made_histogram() -> None:
    bands = histogram_bands([_hand_made()])
    # The q-th value lies q * 8 values in, spread evenly inside its bin.
    expected = {
        "p0": 1.0,
        "p7": 1.0 + 0.0668 * 8 / 4,
        "p16": 1.0 + 0.1587 * 8 / 4,
        "p31": 1.0 + 0.3085 * 8 / 4,
        "p50": 2.0,
        "p69": 2.0 + (0.6915 * 8 - 4) / 4,
        "p84": 2.0 + (0.8413 * 8 - 4) / 4,
        "p93": 2.0 + (0.9332 * 8 - 4) / 4,
        "p100": 3.0,
    }
    assert bands["steps"] == [7]
    assert {k: bands[k][0] for k in expected} == pytest.approx(expected)


def test_an_all_nan_step_has_no_bands() -> None:
    empty = HistogramStats("w", 8, 0, [0.0, 1.0], [0.0], 0, 5, 0.0, 0.0, 0.0, 0.0)
    assert histogram_bands([_hand_made(), empty])["steps"] == [7]


def test_encoding_keeps_every_histogram_exactly() -> None:
    edges = np.linspace(-0.3, 0.7, 65).tolist()
    counts = [float(i % 5) for i in range(64)]
    uniform = HistogramStats("w", 1, 5, edges, counts, 128, 1, -0.3, 0.7, 3.5, 9.25)
    for stats in (uniform, _hand_made()):
        record = encode_histogram(stats)
        assert decode_histogram("w", json.loads(json.dumps(record))) == stats
    assert "range" in encode_histogram(uniform) and "edges" not in encode_histogram(uniform)


def test_reservoir_keeps_first_and_last_and_is_deterministic() -> None:
    steps = list(range(10_000))
    kept = reservoir(steps, 500)
    assert len(kept) == 500 and kept[0] == 0 and kept[-1] == 9_999
    assert kept == sorted(kept) and kept == reservoir(steps, 500)
    assert reservoir(steps[:20], 500) == steps[:20]


def test_graph_golden_folds_functions_into_their_block() -> None:
    graph = graph_from_text(
        (GOLDEN / "residual_graph.txt").read_text(), (GOLDEN / "residual_summary.txt").read_text()
    )
    actual = json.dumps(graph, indent=1) + "\n"
    assert actual == expected_text(GOLDEN / "dashboard_residual_graph.json", actual)
    modules = [n for n in graph["nodes"] if n["kind"] == "module"]
    assert sum(n["params"] for n in modules) > 0


def test_page_data_equals_read_histograms(any_client: MlflowClient) -> None:
    rng = np.random.default_rng(0)
    with SummaryWriter() as writer:
        for step in range(0, 30, 3):
            writer.add_histogram("weights/fc1", torch.tensor(rng.normal(step, 1, 500)), step)
        # Caller-made buckets: edges that are not equal-width.
        writer.add_histogram_raw("acc@1 raw", 0.0, 9.0, 6, 20.0, 90.0,
                                 [1.0, 4.0, 9.0], [1.0, 2.0, 3.0], global_step=4)  # fmt: skip
        run_id = writer.run_id
    data = page_data(_page(run_id))
    assert len(data["histograms"]) == 2
    for series in data["histograms"]:
        stored = read_histograms(run_id, series["key"])
        assert [decode_histogram(series["key"], r) for r in series["steps"]] == stored
        assert series["bands"] == json.loads(json.dumps(histogram_bands(stored)))
        assert series["total_steps"] == len(stored)


def test_the_page_refers_to_nothing_outside_itself(client: MlflowClient) -> None:
    with SummaryWriter() as writer:
        writer.add_histogram("h", torch.randn(100), 0)
        writer.add_graph(torch.nn.Sequential(torch.nn.Linear(4, 2)), torch.zeros(1, 4))
        writer.add_pr_curve("pr", torch.tensor([0, 1, 1]), torch.tensor([0.2, 0.7, 0.9]), 0)
        writer.add_embedding(torch.randn(12, 5), metadata=list("abcabcabcabc"),
                             label_img=torch.rand(12, 1, 4, 4), tag="emb")  # fmt: skip
        writer.add_text("notes", "</script><script>alert(1)</script> https://example.org", 0)
        run_id = writer.run_id
    page = _page(run_id)
    data = page_data(page)
    assert data["text"][0]["steps"][0]["text"].startswith("</script>")  # data survives, inert
    outside_data = page.replace(
        re.search(r'<script type="application/json".*?</script>', page, re.DOTALL).group(0), ""
    )
    assert not re.search(r"https?:|//[a-z]", outside_data, re.IGNORECASE)
    # The one source set: the sprite, from the data (a data: URI, checked below).
    sources = re.findall(r"[\w.]*\b(?:src|href|action)\s*=\s*[\w.]*", outside_data, re.I)
    assert sources == ["sprite.src = em.sprite"]
    for banned in ("fetch(", "XMLHttpRequest", "import(", "localStorage", "sessionStorage",
                   "window.parent", "window.top", "document.cookie", "WebSocket"):  # fmt: skip
        assert banned not in outside_data, banned
    # Sprites travel inline, as data: URIs.
    assert data["embeddings"][0]["sprite"].startswith("data:image/png;base64,")


def test_written_at_close_and_rebuilt_at_each_flush(any_client: MlflowClient) -> None:
    writer = SummaryWriter()
    writer.add_histogram("h", torch.randn(50), 0)
    writer.flush()
    assert page_data(_page(writer.run_id))["histograms"][0]["total_steps"] == 1
    writer.add_histogram("h", torch.randn(50), 1)
    writer.close()
    assert page_data(_page(writer.run_id))["histograms"][0]["total_steps"] == 2


def test_a_run_with_only_scalars_gets_no_page(client: MlflowClient) -> None:
    with SummaryWriter() as writer:
        writer.add_scalar("loss", 1.0, 0)
    assert "dashboard.html" not in artifact_paths(client, writer.run_id)


def test_a_failed_build_warns_and_the_flush_goes_on(client: MlflowClient) -> None:
    with mlflow.start_run() as run:
        log_histogram("h", torch.randn(20), step=0)
        flush()
    gone = RunTarget("0" * 32, mlflow.get_tracking_uri())
    with pytest.warns(RuntimeWarning, match="could not write dashboard.html"):
        assert write_dashboard(gone) is False
    assert "dashboard.html" in artifact_paths(client, run.info.run_id)


def test_long_runs_keep_a_bounded_sample_of_steps(client: MlflowClient) -> None:
    limit = LIMITS["histogram_steps"]
    with mlflow.start_run() as run:
        for step in range(limit + 40):
            log_histogram("h", torch.randn(10), step=step, image=False)
    flush()
    [series] = collect(client, run.info.run_id)["histograms"]
    steps = [r["step"] for r in series["steps"]]
    assert series["total_steps"] == limit + 40
    assert len(steps) == limit and steps[0] == 0 and steps[-1] == limit + 39


def test_cli_builds_the_page_of_an_imported_tensorboard_run(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter as TensorBoardWriter

    logdir = tmp_path / "runs"
    tb = TensorBoardWriter(str(logdir / "run1"))
    for step in range(3):
        tb.add_histogram("weights/fc1", np.random.default_rng(step).normal(size=200), step)
    tb.add_text("notes", "imported", 1)
    tb.close()
    uri = f"bucket+file://{tmp_path}/store"
    assert main(["import-tensorboard", str(logdir), uri, "--experiment", "tb", "-q"]) == 0
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("tb").experiment_id])
    run_id = run.info.run_id
    assert "dashboard.html" not in artifact_paths(client, run_id)

    assert main(["dashboard", uri, run_id]) == 0

    page = client.download_artifacts(run_id, "dashboard.html", str(tmp_path))
    data = page_data(Path(page).read_text())
    assert [h["key"] for h in data["histograms"]] == ["weights/fc1"]
    assert [s["step"] for s in data["histograms"][0]["steps"]] == [0, 1, 2]
    assert data["text"][0]["steps"][0]["text"] == "imported"


def test_cli_refuses_a_run_with_nothing_to_show(client: MlflowClient, capsys) -> None:
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0)
    uri = mlflow.get_tracking_uri()
    assert main(["dashboard", uri, run.info.run_id]) == 1
    assert "nothing for a dashboard to show" in capsys.readouterr().err


def test_render_escapes_the_end_of_its_script() -> None:
    page = render({"run": {"id": "r", "name": "</script>"}, "histograms": []})
    data = page_data(page)
    assert data["run"]["name"] == "</script>"
    assert page.count("</script>") == 2  # the data's and the script's own


def test_a_long_run_gets_its_page_on_the_timer_without_a_flush(
    any_client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "INTERVAL_S", 0.3)
    model = torch.nn.Linear(2, 1)
    with autolog(model, log_graph=False, log_model=False) as run:
        writer = SummaryWriter()  # joins the run; its text reaches the store on the timer
        writer.add_text("notes", "still training", 1)
        deadline = time.monotonic() + 60
        while "dashboard.html" not in artifact_paths(any_client, run.run_id):
            assert time.monotonic() < deadline, "no dashboard.html while the run was running"
            time.sleep(0.1)
        assert any_client.get_run(run.run_id).info.status == "RUNNING"
        writer.close()
    assert page_data(_page(run.run_id))["text"][0]["steps"][0]["text"] == "still training"


class _Bottleneck(torch.nn.Module):
    def __init__(self, inside: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * 4
        self.conv1 = torch.nn.Conv2d(inside, width, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.conv2 = torch.nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(width)
        self.conv3 = torch.nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(out)
        self.relu = torch.nn.ReLU()
        self.downsample = (
            torch.nn.Sequential(torch.nn.Conv2d(inside, out, 1, stride, bias=False),
                                torch.nn.BatchNorm2d(out))
            if stride != 1 or inside != out else None
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ResNet50(torch.nn.Module):
    """torchvision's ResNet-50 layout (3, 4, 6, 3 bottlenecks), without torchvision."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64)
        self.relu = torch.nn.ReLU()
        self.maxpool = torch.nn.MaxPool2d(3, 2, 1)
        inside, layers = 64, []
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layer = []
            for b in range(blocks):
                layer.append(_Bottleneck(inside, width, stride if b == 0 else 1))
                inside = width * 4
            layers.append(torch.nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(2048, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_a_resnet50_graph_folds_to_its_top_level_modules() -> None:
    from mlflow_plugin.torch.graph import record_graph, render_summary, render_text

    model = _ResNet50()
    recorded = record_graph(model, torch.zeros(1, 3, 32, 32))
    graph = graph_from_text(render_text(recorded), render_summary(recorded))
    nodes = graph["nodes"]
    assert len(nodes) > 150
    # Folded as the page opens: a box per top-level module path or top-level node.
    folded = {n["group"].split(".")[0] or n["name"] for n in nodes}
    assert folded == {"input", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                      "layer3", "layer4", "avgpool", "flatten", "fc", "output"}  # fmt: skip
    # Each residual add sits in its own block, so expanding layer3 shows six blocks.
    adds = [n["group"] for n in nodes if n["op"] == "add"]
    assert adds == [f"layer{i}.{b}" for i, n in enumerate((3, 4, 6, 3), 1) for b in range(n)]
    assert sum(n["params"] for n in nodes) == sum(p.numel() for p in model.parameters())


def test_each_log_directory_run_gets_its_page(any_client: MlflowClient, tmp_path: Path) -> None:
    with mlflow.start_run():
        writers = {name: SummaryWriter(str(tmp_path / "runs" / name)) for name in ("train", "val")}
        for name, writer in writers.items():
            writer.add_histogram(f"{name}/logits", torch.randn(40), 0)
        for writer in writers.values():
            writer.close()
    for name, writer in writers.items():
        [series] = page_data(_page(writer.run_id))["histograms"]
        assert series["key"] == f"{name}/logits"


def test_pca_gives_three_finite_coordinates_per_point() -> None:
    matrix = np.array([[1.0, np.nan], [2.0, 3.0], [np.inf, 1.0], [0.5, 0.5]])
    points = pca(matrix)
    assert np.asarray(points).shape == (4, 3)
    assert np.isfinite(points).all() and np.abs(points).max() == 1.0
    json.dumps(points, allow_nan=False)

"""The run's ``dashboard.html`` inside MLflow's own artifact viewer, in Chromium, on both
schemes: a sandboxed iframe from a blob: URL (scripts on, no same-origin access).

The demo run (``examples/demo.py``: autolog with ``watch="all"``, a writer's histogram
and text) brings histograms and the graph; a second run, logged here into the same store
under its own experiment, brings PR curves and an embedding. Every test ends with
``ui.finish``: a console error (the iframe's included) fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from playwright.sync_api import Browser, FrameLocator, expect

from mlflow_plugin.summaries.dashboard import render
from mlflow_plugin.summaries.dashboard.series import graph_from_text
from mlflow_plugin.torch import SummaryWriter, read_histograms
from tests.browser.page import UiPage
from tests.browser.server import UiServer

SIZE_BUDGET = 2 * 1024 * 1024


@dataclass(frozen=True)
class ExtrasRun:
    experiment_id: str
    run_id: str
    pr_steps: int
    points: int


@pytest.fixture(scope="module")
def extras_run(ui_server: UiServer) -> Iterator[ExtrasRun]:
    """A run with PR curves over three steps and an embedding with sprites."""
    with _use_tracking_uri(ui_server.store.tracking_uri):
        experiment_id = mlflow.create_experiment("dashboard-extras")
        generator = torch.Generator().manual_seed(0)
        labels = torch.randint(0, 2, (200,), generator=generator)
        with mlflow.start_run(experiment_id=experiment_id) as run, SummaryWriter() as writer:
            for step in range(3):
                noise = torch.rand(200, generator=generator) * (1.0 - 0.3 * step)
                writer.add_pr_curve("val/pr", labels, (labels * 0.5 + noise * 0.5), step)
            vectors = torch.randn(60, 8, generator=generator)
            writer.add_embedding(vectors, metadata=[f"class {i % 3}" for i in range(60)],
                                 label_img=torch.rand(60, 1, 6, 6, generator=generator),
                                 tag="features")  # fmt: skip
        yield ExtrasRun(experiment_id, run.info.run_id, 3, 60)


def _dashboard(ui: UiPage, experiment_id: str, run_id: str) -> FrameLocator:
    ui.open(f"/experiments/{experiment_id}/runs/{run_id}/artifacts/dashboard.html")
    frame = ui.page.frame_locator("iframe.mlflow-html-iframe")
    expect(frame.locator("#tabs [role=tab]").first).to_be_visible(timeout=30_000)
    return frame


def test_demo_dashboard_is_within_budget(ui_server: UiServer) -> None:
    store = ui_server.store
    client = MlflowClient(store.tracking_uri)
    with _use_tracking_uri(store.tracking_uri):
        page = mlflow.artifacts.load_text(f"runs:/{store.run_id}/dashboard.html")
    assert 0 < len(page.encode()) <= SIZE_BUDGET, len(page.encode())
    assert "dashboard.html" in {f.path for f in client.list_artifacts(store.run_id)}


def test_histogram_slider_moves_and_hover_shows_the_logged_bins(
    ui: UiPage, ui_server: UiServer
) -> None:
    store = ui_server.store
    frame = _dashboard(ui, store.experiment_id, store.run_id)
    card = frame.locator("[data-histogram]").first
    key = card.get_attribute("data-histogram")
    assert key
    with _use_tracking_uri(store.tracking_uri):
        stored = {r.step: r for r in read_histograms(store.run_id, key)}
    steps = sorted(stored)
    slider = card.locator("input[type=range]")
    label = card.locator(".step-label")
    expect(label).to_have_text(f"step {steps[-1]}")
    slider.focus()
    slider.press("ArrowLeft")
    expect(label).to_have_text(f"step {steps[-2]}")
    view = card.locator("select")
    view.select_option("overlay")
    expect(card.locator("polyline.ridge")).to_have_count(len(steps))  # the demo has < 500
    view.select_option("offset")
    frame.locator("#tab-distributions").click()
    expect(frame.locator(f'[data-distribution="{key}"] polygon.band')).to_have_count(4)
    frame.locator("#tab-histograms").click()
    record = stored[steps[-2]]
    fullest = max(range(len(record.counts)), key=lambda i: record.counts[i])
    card.locator(f'rect.bin[data-bin="{fullest}"]').hover()
    tip = frame.locator("#tip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-step", str(record.step))
    assert float(tip.get_attribute("data-count") or "nan") == record.counts[fullest]
    assert float(tip.get_attribute("data-lo") or "nan") == pytest.approx(record.edges[fullest])
    assert float(tip.get_attribute("data-hi") or "nan") == pytest.approx(record.edges[fullest + 1])
    ui.finish("dashboard-histograms")


def test_graph_expands_and_collapses_by_module(ui: UiPage, ui_server: UiServer) -> None:
    store = ui_server.store
    frame = _dashboard(ui, store.experiment_id, store.run_id)
    frame.locator("#tab-graph").click()
    features = frame.locator('g.node.group[data-group="features"]')
    expect(features).to_be_visible()
    expect(frame.locator('g.node[data-node="features.0"]')).to_have_count(0)
    features.hover()
    expect(frame.locator("#tip")).to_contain_text("params")
    features.click()
    conv = frame.locator('g.node[data-node="features.0"]')
    expect(conv).to_be_visible()
    conv.hover()
    expect(frame.locator("#tip")).to_have_attribute("data-params", "160")  # 1*16*3*3 + 16
    frame.locator('[data-collapse="features"]').click()
    expect(frame.locator('g.node[data-node="features.0"]')).to_have_count(0)
    frame.locator("input[type=search]").fill("classifier.4")
    expect(frame.locator('g.node.match[data-node="classifier.4"]')).to_be_visible()
    ui.finish("dashboard-graph")


def test_pr_curve_and_projector_render(
    ui: UiPage, ui_server: UiServer, extras_run: ExtrasRun
) -> None:
    frame = _dashboard(ui, extras_run.experiment_id, extras_run.run_id)
    frame.locator("#tab-pr_curves").click()
    card = frame.locator('[data-pr-curve="val/pr"]')
    curve = card.locator("polyline.pr")
    expect(curve).to_have_attribute("data-step", str(extras_run.pr_steps - 1))
    assert len((curve.get_attribute("points") or "").split()) > 10
    slider = card.locator("input[type=range]")
    slider.focus()
    slider.press("Home")
    expect(curve).to_have_attribute("data-step", "0")
    frame.locator("#tab-embeddings").click()
    canvas = frame.locator('[data-embedding="features"] canvas')
    expect(canvas).to_have_attribute("data-drawn", str(extras_run.points))
    ui.finish("dashboard-projector")


def test_a_module_named_like_an_object_property_folds_like_any_other(browser: Browser) -> None:
    # expanded["constructor"] was Object.prototype's: that module could never be folded.
    text = "# Net\n# note\n\n%0 = input() -> [1, 3]\n"
    for i, module in enumerate(("constructor", "__proto__", "toString", "head"), start=1):
        text += f"%{i} = {module}.fc (Linear)(%{i - 1}) -> [1, 3]\n"
    text += "%5 = output(%4) -> [1, 3]\n"
    page_html = render({"run": {"id": "r"}, "graph": graph_from_text(text)})
    page = browser.new_page()
    try:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_content(page_html)
        shown = "els => els.map(e => e.dataset.group || e.dataset.node)"
        folded = page.eval_on_selector_all("g.node", shown)
        page.click('g.node[data-group="constructor"]')
        page.click('button.chip[data-collapse="constructor"]')
        refolded = page.eval_on_selector_all("g.node", shown)
    finally:
        page.close()
    assert folded == ["input", "constructor", "__proto__", "toString", "head", "output"]
    assert refolded == folded and errors == []

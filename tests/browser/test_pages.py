"""Each page a user opens after the demo, in Chromium, on ``mlflow server`` over a bucket store.

Every test runs once per backend (bucket+file:, bucket+s3: on moto), checks that the page
shows what the store holds, and ends with ``ui.finish``: any console error, API answer
>= 400, GraphQL error or error banner fails it; then the page is saved as a screenshot.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.page import ERROR_TEXT, UiPage
from tests.browser.server import UiServer
from tests.browser.store import ALIAS, EXPERIMENT_NAME, HISTOGRAM_IMAGE_KEY, REGISTERED_MODEL

CARD = "experiment-view-compare-runs-card"
SECTION = "experiment-view-compare-runs-section-header"


def _run_route(server: UiServer, tab: str = "") -> str:
    store = server.store
    return f"/experiments/{store.experiment_id}/runs/{store.run_id}{tab}"


def test_experiments_list_shows_the_demo_experiment(ui: UiPage, ui_server: UiServer) -> None:
    ui.open("/experiments")
    link = ui.page.get_by_role("link", name=EXPERIMENT_NAME, exact=True)
    expect(link).to_be_visible()
    expect(link).to_have_attribute(
        "href", re.compile(f"/experiments/{ui_server.store.experiment_id}$")
    )
    ui.finish("experiments")


def test_runs_table_lists_the_demo_run(ui: UiPage, ui_server: UiServer) -> None:
    store = ui_server.store
    ui.open(f"/experiments/{store.experiment_id}/runs")
    page = ui.page
    run_link = page.locator(f'a[href$="/runs/{store.run_id}"]')
    expect(run_link).to_have_text(store.run_name)
    # The Models column links the run's registered version.
    version_link = page.locator(f'a[href$="/models/{REGISTERED_MODEL}/versions/{store.version}"]')
    expect(version_link).to_have_text(re.compile(rf"{REGISTERED_MODEL}\s*v{store.version}"))
    expect(page.get_by_text("1 matching run")).to_be_visible()
    ui.finish("runs-table")


def test_run_overview_shows_status_params_and_metrics(ui: UiPage, ui_server: UiServer) -> None:
    store = ui_server.store
    ui.open(_run_route(ui_server))
    page = ui.page
    expect(page.get_by_role("heading", name=store.run_name, exact=True)).to_be_visible()
    expect(page.get_by_text(store.run_id, exact=True)).to_be_visible()
    expect(page.get_by_text("Finished", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name=f"Parameters ({len(store.params)})")).to_be_visible()
    expect(page.get_by_role("heading", name=f"Metrics ({store.metric_count})")).to_be_visible()
    lr = page.get_by_role("row").filter(has=page.get_by_text("optimizer.lr", exact=True))
    expect(lr).to_contain_text(store.params["optimizer.lr"])
    loss = page.get_by_role("row").filter(has=page.get_by_text("train/loss", exact=True))
    expect(loss).to_have_count(1)
    ui.finish("run-overview")


def test_metric_chart_draws_the_training_loss(ui: UiPage, ui_server: UiServer) -> None:
    ui.open(_run_route(ui_server, "/model-metrics"))
    page = ui.page
    ui.scroll_to(page.get_by_test_id(SECTION).filter(has_text=re.compile(r"^train\s*\(")))
    card = page.get_by_test_id(CARD).filter(has_text="(train/loss)")
    ui.scroll_to(card)
    line = card.locator("svg path.js-line").first
    expect(line).to_be_visible()
    # A drawn curve: one move and a line segment per plotted step.
    expect(line).to_have_attribute("d", re.compile(r"^M[^L]+(L[^L]+){20,}$"))
    ui.finish("metric-chart")


def test_histogram_images_step_through_with_the_slider(ui: UiPage, ui_server: UiServer) -> None:
    steps = ui_server.store.histogram_steps
    assert len(steps) > 1, steps
    ui.open(_run_route(ui_server, "/model-metrics"))
    page = ui.page
    ui.scroll_to(
        page.get_by_test_id(SECTION).filter(has_text=HISTOGRAM_IMAGE_KEY.rsplit("/", 1)[0])
    )
    card = page.get_by_test_id(CARD).filter(has_text=HISTOGRAM_IMAGE_KEY)
    ui.scroll_to(card)
    slider = card.get_by_role("slider")
    expect(slider).to_have_attribute("aria-valuemin", str(steps[0]))
    expect(slider).to_have_attribute("aria-valuemax", str(steps[-1]))

    sanitized = HISTOGRAM_IMAGE_KEY.replace("/", "~")
    image = card.locator("img")
    step_box = card.locator("input[type=number]")

    def show_step(step: int) -> None:
        expect(slider).to_have_attribute("aria-valuenow", str(step))
        expect(step_box).to_have_value(str(step))
        expect(image).to_have_attribute(
            "src", re.compile(rf"get-artifact\?path=images%2F{sanitized}%2Bstep%2B{step}%2B")
        )

    step_box.fill(str(steps[0]))
    step_box.press("Tab")
    show_step(steps[0])
    slider.press("ArrowRight")  # the slider stops only at logged steps
    show_step(steps[1])
    step_box.fill(str(steps[-1]))
    step_box.press("Tab")
    show_step(steps[-1])
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0, "the histogram picture did not decode"

    # The card is small; its full-screen view shows the picture with the same slider.
    card.locator('[data-component-id="fullscreen_button_chartcard"]').click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("slider")).to_have_attribute("aria-valuenow", str(steps[-1]))
    dialog.locator("img").evaluate("img => img.scrollIntoView({block: 'center'})")
    ui.finish("histogram-images")


def test_artifact_viewer_shows_the_model_graph_svg(ui: UiPage, ui_server: UiServer) -> None:
    ui.open(_run_route(ui_server, "/artifacts/model_graph/graph.svg"))
    page = ui.page
    expect(page.get_by_text("model_graph/graph.svg", exact=True)).to_be_visible()
    # The viewer downloads the file and shows it as an image from a blob: URL.
    graph = page.locator("img[src^='blob:']").filter(visible=True).first
    expect(graph).to_be_visible()
    expect(graph).to_have_js_property("complete", True)
    assert graph.evaluate("img => img.naturalWidth") > 0, "the model graph did not decode"
    shown = graph.evaluate("img => fetch(img.src).then(answer => answer.text())")
    assert shown == ui_server.store.graph_svg
    ui.finish("artifact-model-graph")


def test_artifact_viewer_shows_the_config_file(ui: UiPage, ui_server: UiServer) -> None:
    ui.open(_run_route(ui_server, "/artifacts/config.yaml"))
    page = ui.page
    expect(page.get_by_text("config.yaml", exact=True).first).to_be_visible()
    # The whole file, as the store holds it (whitespace normalised by the comparison).
    expect(page.locator("code.language-yaml")).to_have_text(ui_server.store.config_yaml)
    ui.finish("artifact-config")


def test_logged_model_page_shows_the_model_and_its_version(ui: UiPage, ui_server: UiServer) -> None:
    store = ui_server.store
    ui.open(f"/experiments/{store.experiment_id}/models/{store.model_id}")
    page = ui.page
    expect(page.get_by_text(store.model_id, exact=True)).to_be_visible()
    expect(page.get_by_text("Ready", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name=f"Parameters ({len(store.params)})")).to_be_visible()
    lr = page.get_by_role("row").filter(has=page.get_by_text("optimizer.lr", exact=True))
    expect(lr).to_contain_text(store.params["optimizer.lr"])
    # Links to the run that logged it and to the registry version made from it.
    expect(page.locator(f'a[href$="/runs/{store.run_id}"]').first).to_have_text(store.run_name)
    version_link = page.locator(f'a[href$="/models/{REGISTERED_MODEL}/versions/{store.version}"]')
    expect(version_link).to_contain_text(REGISTERED_MODEL)
    ui.finish("logged-model")


def test_models_tab_lists_the_registered_model(ui: UiPage, ui_server: UiServer) -> None:
    ui.open("/models")
    page = ui.page
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=REGISTERED_MODEL))
    expect(row).to_be_visible()
    version = ui_server.store.version
    expect(row).to_contain_text(f"Version {version}")
    expect(row).to_contain_text(re.compile(rf"@\s*{ALIAS}\s*:\s*Version {version}"))
    ui.finish("registered-models")


def test_model_version_page_shows_the_champion_alias(ui: UiPage, ui_server: UiServer) -> None:
    store = ui_server.store
    ui.open(f"/models/{REGISTERED_MODEL}/versions/{store.version}")
    page = ui.page
    expect(page.get_by_text(f"Version {store.version}", exact=True).first).to_be_visible()
    expect(page.locator("main")).to_contain_text(re.compile(rf"Aliases\W*@\s*{ALIAS}"))
    # The version points back at the run and at the logged model it was registered from.
    expect(page.locator(f'a[href$="/runs/{store.run_id}"]')).to_have_text(store.run_name)
    expect(page.locator(f'a[href$="/models/{store.model_id}"]')).to_be_visible()
    ui.finish("model-version")


def test_error_checks_catch_a_run_that_does_not_exist(ui: UiPage, ui_server: UiServer) -> None:
    """The checks above fail when the store fails: a missing run is an error they report."""
    missing = "0" * 32
    ui.open(f"/experiments/{ui_server.store.experiment_id}/runs/{missing}")
    expect(ui.page.get_by_text(ERROR_TEXT).first).to_be_visible()
    ui.settle()
    problems = ui.problems()
    assert any(line.startswith("GraphQL error") and missing in line for line in problems), problems
    assert any(line.startswith("error text") for line in problems), problems

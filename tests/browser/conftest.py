"""Fixtures of the browser tests: one demo-filled store and ``mlflow server`` per backend,
one Chromium for the session, a fresh browser context (no shared storage) per test.

Screenshots go to ``$MLFLOW_BUCKET_SCREENSHOTS`` when it is set (``make screenshots``
sets ``docs/screenshots``; a relative path is taken from the repository root), otherwise
to a pytest temporary folder, so a plain test run leaves the working tree as it was.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ViewportSize, expect, sync_playwright

from tests.browser.page import UiPage
from tests.browser.server import UiServer, mlflow_server
from tests.browser.store import DemoStore, fill_with_demo
from tests.servers import S3Endpoint

REPOSITORY = Path(__file__).resolve().parents[2]
# Debian's package; Playwright never downloads a browser of its own here.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No test reaches the internet: a link to mlflow.org fails alike on every machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Playwright's expectations poll until they hold; its 5 s default failed pages that were
# only slow, on a machine running two test runs at once. A page that never shows what is
# expected still fails, after this long.
expect.set_options(timeout=30_000)
# UI preferences a user would set once: the navigation of a view (the sidebar's GenAI /
# Model training switch; ``workflow_type``), no assistant side panel, and no registry-UI
# announcement, telemetry notice (an info alert on the home page) or traces-page guidance
# (a modal tip that blocks the page until dismissed) over the page. Set in the top window
# only: the script runs in every frame, and in a sandboxed artifact iframe (an .html
# artifact) there is no storage at all, so ``localStorage`` throws.
PREFERENCES = """
if (window === window.top) {
localStorage.setItem("mlflow.workflowType_v1", JSON.stringify(%s));
localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
localStorage.setItem("_mlflow_model_registry_promo_modal_dismissed_v1", "true");
localStorage.setItem("mlflow.telemetry.info.alert.dismissed_v1", "true");
localStorage.setItem("mlflow.detectIssues.guidanceShown_v1", "true");
}
"""


@pytest.fixture(scope="session", params=["bucket_file", "bucket_s3"])
def demo_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DemoStore:
    """The demo run in a bucket+file: folder, then in a bucket+s3: prefix on moto."""
    workdir = tmp_path_factory.mktemp(f"browser-{request.param}")
    if request.param == "bucket_file":
        uri = f"bucket+file://{workdir}/store"
    else:
        moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
        prefix = f"browser/{uuid.uuid4().hex}"
        uri = f"bucket+s3://{moto_s3.shared_bucket}/{prefix}?endpoint_url={moto_s3.url}"
    return fill_with_demo(uri, workdir)


@pytest.fixture(scope="session")
def ui_server(
    demo_store: DemoStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiServer]:
    with mlflow_server(demo_store.tracking_uri, tmp_path_factory.mktemp("ui-server")) as url:
        yield UiServer(url, demo_store)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium "
            "package (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(demo_store: DemoStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("MLFLOW_BUCKET_SCREENSHOTS")
    if chosen:
        return REPOSITORY / chosen  # an absolute path stays as it is
    scheme = demo_store.tracking_uri.split(":", 1)[0]
    return tmp_path_factory.mktemp(f"screenshots-{scheme.replace('+', '-')}")


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture
def workflow_type() -> str:
    """The view the UI opens in: model training (what this project logs) unless a test
    parametrizes ``workflow_type`` with ``sidebar.WORKFLOW_TYPES``."""
    return "machine_learning"


@pytest.fixture
def ui(
    request: pytest.FixtureRequest,
    browser: Browser,
    ui_server: UiServer,
    workflow_type: str,
    screenshot_dir: Path,
    tmp_path: Path,
) -> Iterator[UiPage]:
    """A fresh tab (own cookies and local storage) on the UI in the ``workflow_type``
    view; the test must check it for errors (``ui.finish`` or ``ui.problems``)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(PREFERENCES % json.dumps(workflow_type))
    page = UiPage(context.new_page(), ui_server.url, screenshot_dir)
    try:
        yield page
        if request.node.stash.get(CALL_FAILED, True):
            page.page.screenshot(path=tmp_path / "failure.png")
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
        else:
            assert page.checked, "the test never looked for errors (ui.finish or ui.problems)"
    finally:
        context.close()

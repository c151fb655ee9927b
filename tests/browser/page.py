"""One browser tab on the MLflow UI that records everything that goes wrong while it is open.

A page check is only as good as its failure detection, so every tab listens for console
errors, uncaught exceptions, API answers >= 400, GraphQL errors (MLflow answers those
with 200) and failed API requests; ``finish`` then also looks for visible error banners
and fails the test with all of it at once.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Error, Locator, Page, Request, Response

# MLflow's UI asks who is signed in (every page) and, on the AI Gateway's usage page, for
# the list of users; both APIs belong to MLflow's basic-auth app, so with authentication off
# the server answers 404 (MLflow's own sqlite:/// server does the same) and the browser logs
# that 404 as a console error. Both are expected and allowed, nothing else.
AUTH_APP_PATHS = frozenset(
    ["/ajax-api/2.0/mlflow/users/current", "/ajax-api/2.0/mlflow/users/list"]
)
# Some empty pages embed media from mlflow.org (the traces page's tutorial video). The
# browser resolves no host but the test server's (conftest.CHROMIUM_ARGS), so such a load
# fails the same way on every machine and the browser logs it; it says nothing of the store.
OUTSIDE_LOAD_FAILED = "Failed to load resource"
# Chromium reports a ResizeObserver callback that resized its own target (plotly charts
# adjusting to their card) as an error event, and MLflow's global handler logs it. The spec
# calls it benign: the resize is delivered on the next frame.
RESIZE_OBSERVER_NOTE = "ResizeObserver loop completed with undelivered notifications"

# Error toasts, alerts and inline error views of MLflow's UI (its design system prefixes
# class names, hence the substring matches); only visible ones count.
ERROR_BANNERS = ", ".join(
    [
        '[role="alert"]',
        '[class*="notification"]',
        '[class*="alert-error"]',
        '[class*="message-error"]',
    ]
)
ERROR_TEXT = re.compile(
    r"Can't load|Something went wrong|not found|does not exist|Request failed|"
    r"INTERNAL_ERROR|RESOURCE_DOES_NOT_EXIST|INVALID_PARAMETER_VALUE",
    re.IGNORECASE,
)


def _is_api(url: str) -> bool:
    """The server's API, artifact downloads included (images and files come through them)."""
    path = urlsplit(url).path
    return path.startswith(("/ajax-api/", "/api/", "/get-artifact")) or path.endswith("/graphql")


def _is_auth_app(url: str) -> bool:
    return urlsplit(url).path in AUTH_APP_PATHS


def _graphql_errors(body: Any) -> list[str]:
    """GraphQL ``errors`` and every non-null ``apiError`` found anywhere in ``body``."""
    found = [json.dumps(error) for error in (body.get("errors") or [])]
    pending = [body.get("data")]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("apiError"):
                found.append(json.dumps(node["apiError"]))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


class UiPage:
    """A tab of the MLflow UI served at ``base_url``.

    ``ui.open("/experiments"); expect(...); ui.finish("experiments")`` checks for errors
    and saves ``experiments.png`` in ``screenshot_dir``.
    """

    def __init__(self, page: Page, base_url: str, screenshot_dir: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.screenshot_dir = screenshot_dir
        self.checked = False
        self._problems: list[str] = []
        self._bad_responses: list[Response] = []
        self._graphql: list[Response] = []
        self._in_flight: set[Request] = set()
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_finished)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

    def open(self, route: str) -> None:
        """Load the UI at ``route``, a path of its hash router: ``/experiments/1/runs``."""
        self.page.goto(f"{self.base_url}/#{route}")

    def scroll_to(self, locator: Locator, attempts: int = 5) -> None:
        """Scroll ``locator`` into view; the charts re-render as data arrives and may
        replace the element between finding and scrolling, so find it again then."""
        for attempt in range(attempts):
            try:
                locator.scroll_into_view_if_needed()
                return
            except Error:
                if attempt == attempts - 1:
                    raise

    def settle(self, quiet: float = 0.5, timeout: float = 30.0) -> None:
        """Wait until no API request has been running for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(100)  # lets Playwright deliver the request events
            if self._in_flight:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                return
        running = sorted(request.url for request in self._in_flight)
        pytest.fail(f"API requests still running after {timeout}s: {running}")

    def problems(self) -> list[str]:
        """Everything that went wrong so far, each as one readable line."""
        return self._report(self._problems, self._bad_responses, self._graphql)

    def take_problems(self) -> list[str]:
        """``problems``, then forget them: the next call covers only what follows, as when
        one tab visits several pages (requests still running stay watched)."""
        recorded = (self._problems, self._bad_responses, self._graphql)
        # Swapped before reading: events that arrive meanwhile count for the next call.
        self._problems, self._bad_responses, self._graphql = [], [], []
        return self._report(*recorded)

    def _report(
        self, problems: list[str], bad_responses: list[Response], graphql: list[Response]
    ) -> list[str]:
        self.checked = True
        found = list(problems)
        for response in bad_responses:
            found.append(
                f"HTTP {response.status} {response.request.method} {response.url}: "
                f"{self._body(response)[:2000]}"
            )
        for response in graphql:
            try:
                errors = _graphql_errors(response.json())
            except (Error, ValueError) as exc:
                errors = [f"unreadable answer ({exc})"]
            for error in errors:
                request_body = (response.request.post_data or "")[:300]
                found.append(f"GraphQL error from {request_body}: {error}")
        for banner in self.page.locator(ERROR_BANNERS).filter(visible=True).all():
            found.append(f"error banner: {banner.inner_text()[:500]!r}")
        for text in self.page.get_by_text(ERROR_TEXT).filter(visible=True).all():
            found.append(f"error text: {text.inner_text()[:500]!r}")
        return found

    def finish(self, screenshot: str) -> None:
        """Fail on anything that went wrong, then save ``<screenshot>.png``."""
        self.settle()
        problems = self.problems()
        assert not problems, "the UI reported errors:\n" + "\n".join(problems)
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=self.screenshot_dir / f"{screenshot}.png")

    @staticmethod
    def _body(response: Response) -> str:
        try:
            return response.text()
        except Error as exc:  # the page moved on and the body is gone
            return f"<body unavailable: {exc}>"

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        source = message.location.get("url", "")
        if _is_auth_app(source) or RESIZE_OBSERVER_NOTE in message.text:
            return
        outside = urlsplit(source).netloc not in ("", urlsplit(self.base_url).netloc)
        if outside and message.text.startswith(OUTSIDE_LOAD_FAILED):
            return
        self._problems.append(f"console error: {message.text} ({source})")

    def _on_page_error(self, error: Error) -> None:
        if RESIZE_OBSERVER_NOTE not in str(error):
            self._problems.append(f"uncaught exception: {error}")

    def _on_request(self, request: Request) -> None:
        if _is_api(request.url):
            self._in_flight.add(request)

    def _on_request_finished(self, request: Request) -> None:
        self._in_flight.discard(request)

    def _on_request_failed(self, request: Request) -> None:
        self._in_flight.discard(request)
        failure = request.failure or ""
        # Aborted: the UI cancelled a request it no longer needs (a newer one replaced it).
        if _is_api(request.url) and "ERR_ABORTED" not in failure:
            self._problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def _on_response(self, response: Response) -> None:
        if not _is_api(response.url):
            return
        if urlsplit(response.url).path.endswith("/graphql"):
            self._graphql.append(response)
        if response.status >= 400 and not (response.status == 404 and _is_auth_app(response.url)):
            self._bad_responses.append(response)

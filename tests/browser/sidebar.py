"""A walk through every page MLflow's sidebar offers, in one tab, as a user clicks through it.

The pages are not listed here: the walk reads the links the rendered sidebar shows on each
page it reaches and follows every one it has not seen, so an entry a later MLflow adds is
visited (and checked) without a change here. The sidebar also nests sub-entries under the
page that is open (an experiment's tabs, the AI Gateway's pages, the settings sections);
those appear as the walk reaches their page. On every page the walk also clicks each tab
the page itself shows (the overview's usage / quality / tool-call charts, the gateway's
policies / alerts ...), and it records, per page, everything the tab reported.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Locator, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.page import UiPage

# The UI's own pages are hash routes; the sidebar's other links leave the UI (the Docs
# entry opens mlflow.org in a new tab) and are no page of this server to check.
SIDEBAR_LINKS = "aside nav a[href]"
PAGE_TABS = 'main [role="tab"]:not([aria-disabled="true"])'
VISIBLE_PAGE_TABS = f"{PAGE_TABS}:visible"
# A visible tab is clicked at once, and a page's hidden tabs show within this; past it, a
# tab has gone (the tabs are read again), cannot be clicked (a failure), or stays hidden.
TAB_WAIT_MS = 10_000

# The UI's two views (its sidebar's GenAI / Model training switch), each with its own
# sidebar, as the UI's localStorage names them (conftest.PREFERENCES sets one per tab).
WORKFLOW_TYPES = ["genai", "machine_learning"]
# Every page the walks reached, per walk name, for the end-of-run summary.
VISITED: dict[str, list[str]] = {}


def route_of(href: str) -> str:
    """The page a link opens: ``#/experiments/1/runs?startTime=ALL`` -> ``/experiments/1/runs``.

    The query only carries view state (filters, the page to return to), not another page.
    """
    return urlsplit(href.removeprefix("#")).path or "/"


@dataclass
class PageVisit:
    """One page: the sidebar entry that opened it, the tabs clicked on it, what went wrong."""

    route: str
    label: str
    tabs: list[str] = field(default_factory=list)
    # Tabs that went away between being read and being clicked (the page swapped them).
    skipped_tabs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        tabs = f" (tabs: {', '.join(self.tabs)})" if self.tabs else ""
        if self.skipped_tabs:
            tabs += f" (gone before their click: {', '.join(self.skipped_tabs)})"
        return f"{self.label!r} {self.route}{tabs}"


@dataclass
class SidebarWalk:
    """Every sidebar page in ``area`` (a predicate on routes) reachable from ``start``.

    ``walk = SidebarWalk(ui, lambda route: route.startswith("/experiments/1/"))``
    ``walk.run("/experiments/1")`` then ``walk.visits`` (in order) and ``walk.offered``.
    """

    ui: UiPage
    area: Callable[[str], bool]
    visits: dict[str, PageVisit] = field(default_factory=dict)
    # Every route in ``area`` any sidebar offered, with the label it had there.
    offered: dict[str, str] = field(default_factory=dict)

    def run(self, start: str) -> None:
        """Open ``start`` (a page the sidebar may not link, such as an experiment's own
        address, which opens its first tab), then follow every sidebar link in ``area``
        until none is left."""
        self.ui.open(start)
        self._check_page(start)
        while pending := [route for route in self.offered if route not in self.visits]:
            self._go_to(pending[0])
            self._check_page(self.offered[pending[0]], pending[0])
        for route, visit in self.visits.items():  # the start page's sidebar name
            visit.label = self.offered.get(route, visit.label)

    def _go_to(self, route: str) -> None:
        links = self._sidebar_links()
        if route in links:
            links[route].click()  # a user's click: the UI routes without reloading
        else:  # offered by an earlier page's sidebar only
            self.ui.open(route)
        # The address settles on the page's own route (a few redirect to their first tab).
        expect(self.ui.page).to_have_url(re.compile(rf"#{re.escape(route)}(?:[/?].*)?$"))

    def _check_page(self, label: str, route: str | None = None) -> None:
        """Check the open page, reached by ``route`` (by default the address it shows once
        settled: an experiment's own address redirects to its first tab)."""
        page = self.ui.page
        self.ui.settle()
        route = route or route_of(page.url.split("#", 1)[1])
        # Taken, not just read: each page and tab is charged only with what it caused.
        visit = PageVisit(route, label, problems=self.ui.take_problems())
        # Read again before each click: a page may swap its tabs once its data arrives (an
        # empty state's set-up tabs give way to the content, a loading overview hides its
        # tabs), and a tab found before that would be waited for until the test times out.
        # Only visible tabs count (a user cannot click the others); a tab is known by its
        # name and how many tabs before it have that name.
        tried: set[tuple[str, int]] = set()
        while pending := [
            (index, key) for index, key in enumerate(self._visible_tabs()) if key not in tried
        ]:
            index, key = pending[0]
            tried.add(key)
            clicked = self._click_tab(index, key[0])
            problems = self.ui.take_problems()
            if clicked:
                self.ui.settle()
                problems += self.ui.take_problems()
                visit.tabs.append(key[0])
            else:  # gone or renamed since it was read: the page swapped its tabs
                visit.skipped_tabs.append(key[0])
            visit.problems += [f"[tab {key[0]!r}] {problem}" for problem in problems]
        self.visits[visit.route] = visit
        self._read_sidebar()

    def _visible_tabs(self) -> list[tuple[str, int]]:
        """The visible tabs in order, each as (name, how many before it have that name);
        when the page has tabs but shows none yet, it is given time to show them."""
        page = self.ui.page
        if page.locator(PAGE_TABS).count() and not page.locator(VISIBLE_PAGE_TABS).count():
            with contextlib.suppress(PlaywrightTimeoutError):
                page.locator(VISIBLE_PAGE_TABS).first.wait_for(timeout=TAB_WAIT_MS)
        seen: Counter[str] = Counter()
        keys = []
        for text in page.locator(VISIBLE_PAGE_TABS).all_inner_texts():
            name = " ".join(text.split())
            keys.append((name, seen[name]))
            seen[name] += 1
        return keys

    def _click_tab(self, index: int, name: str) -> bool:
        """Click the ``index``-th visible tab if it is still ``name``; False when the
        page no longer shows it there."""
        tab = self.ui.page.locator(VISIBLE_PAGE_TABS).nth(index)
        try:
            if " ".join(tab.inner_text(timeout=TAB_WAIT_MS).split()) != name:
                return False
            tab.click(timeout=TAB_WAIT_MS)
        except PlaywrightTimeoutError:
            if name in (shown for shown, _ in self._visible_tabs()):
                raise  # still shown, yet it could not be clicked: a real problem
            return False
        return True

    def _sidebar(self) -> list[tuple[str, Locator]]:
        """Each link of the sidebar as it is now, with its href."""
        anchors = self.ui.page.locator(SIDEBAR_LINKS)
        expect(anchors.first).to_be_visible()
        return [(anchor.get_attribute("href") or "", anchor) for anchor in anchors.all()]

    def _sidebar_links(self) -> dict[str, Locator]:
        return {route_of(href): anchor for href, anchor in self._sidebar() if href.startswith("#/")}

    def _read_sidebar(self) -> None:
        for href, anchor in self._sidebar():
            if not href.startswith("#/"):
                # Anything else must leave the UI in a new tab, or it is a kind of
                # entry this walk does not know how to visit: say so.
                assert href.startswith("https://"), f"sidebar link of an unknown kind: {href!r}"
                assert anchor.get_attribute("target") == "_blank", href
                continue
            route = route_of(href)
            if self.area(route) and route not in self.offered:
                self.offered[route] = " ".join(anchor.inner_text().split())

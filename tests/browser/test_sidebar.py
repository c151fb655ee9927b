"""Every page MLflow's sidebar offers loads without an error, in both views of the UI.

MLflow's UI has two views, switched in its sidebar: GenAI (traces, sessions, judges,
datasets, evaluation runs, prompts, agent versions, AI Gateway ...) and Model training
(runs, models, the model registry). A user's first clicks land on pages this product does
not store (traces, judges, review queues ...): those must show an empty page, never an
error. Each test walks one part of the sidebar in one view, on each backend, and fails on
any console error, API answer >= 400, GraphQL error or visible error on any of its pages
(``tests.browser.page`` lists the few allowed notes and why).

The pages come from the rendered sidebar itself (``tests.browser.sidebar``): the top-level
entries and what they nest (the AI Gateway's pages, the settings sections) from the home
page; the experiment's tabs from the demo experiment's page.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.browser.page import UiPage
from tests.browser.server import UiServer
from tests.browser.sidebar import VISITED, WORKFLOW_TYPES, SidebarWalk


def _walk(
    ui: UiPage, workflow_type: str, name: str, start: str, area: Callable[[str], bool]
) -> SidebarWalk:
    """Walk the sidebar from ``start`` within ``area``; fail on any page's problems."""
    walk = SidebarWalk(ui, area)
    walk.run(start)
    pages = [visit.describe() for visit in walk.visits.values()]
    VISITED[f"{workflow_type} view, {name}"] = pages

    # The view stayed the one asked for (the sidebar's switch was never flipped).
    stored = ui.page.evaluate("localStorage.getItem('mlflow.workflowType_v1')")
    assert json.loads(stored) == workflow_type
    # Every entry the sidebar offered was visited: the start page is the only page visited
    # without a sidebar link to it (an experiment's own address opens its first tab).
    unoffered = set(walk.visits) - set(walk.offered)
    assert len(unoffered) <= 1 and set(walk.offered) <= set(walk.visits), (unoffered, pages)
    failures = [
        f"{visit.describe()}:\n    " + "\n    ".join(visit.problems)
        for visit in walk.visits.values()
        if visit.problems
    ]
    assert not failures, (
        f"{len(failures)} of the {len(pages)} pages reported errors:\n" + "\n".join(failures)
    )
    return walk


@pytest.mark.parametrize("workflow_type", WORKFLOW_TYPES)
def test_every_top_level_sidebar_page_loads_without_errors(
    ui: UiPage, ui_server: UiServer, workflow_type: str
) -> None:
    def top_level(route: str) -> bool:
        return not route.startswith("/experiments/")

    walk = _walk(ui, workflow_type, f"top level, {_scheme(ui_server)}", "/", top_level)
    # The walk really went through the sidebar: from the home page it found the list.
    assert "/experiments" in walk.visits, walk.visits


@pytest.mark.parametrize("workflow_type", WORKFLOW_TYPES)
def test_every_experiment_tab_loads_without_errors(
    ui: UiPage, ui_server: UiServer, workflow_type: str
) -> None:
    experiment = f"/experiments/{ui_server.store.experiment_id}"

    def in_experiment(route: str) -> bool:
        return route.startswith(f"{experiment}/")

    walk = _walk(
        ui, workflow_type, f"experiment tabs, {_scheme(ui_server)}", experiment, in_experiment
    )
    # The experiment's tabs are nested in the sidebar: more than the page it opened on.
    assert len(walk.visits) > 1, walk.visits


def _scheme(server: UiServer) -> str:
    return server.store.tracking_uri.split(":", 1)[0]

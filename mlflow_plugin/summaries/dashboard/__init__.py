"""A self-contained ``dashboard.html`` per run: TensorBoard's views inside MLflow's UI.

``build_dashboard(client, run_id)`` reads what the run logged (``collect``) and returns
the page (``render``): tabs for histograms (offset and overlay views, a step slider,
values on hover), distributions (percentile bands), the model graph (folded by module),
PR curves, embeddings (PCA), text and the step pictures, shown only when the run has them.

>>> html = build_dashboard(MlflowClient(), run_id)  # doctest: +SKIP
>>> MlflowClient().log_text(run_id, html, "dashboard.html")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflow_plugin.summaries.dashboard.collect import LIMITS, collect
from mlflow_plugin.summaries.dashboard.render import DATA_ID, render

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "ARTIFACT_FILE",
    "DATA_ID",
    "LIMITS",
    "VIEWS",
    "build_dashboard",
    "collect",
    "has_views",
    "render",
]

ARTIFACT_FILE = "dashboard.html"
#: What the page has a tab for; a run with none of them (only scalars) gets no page.
VIEWS = ("histograms", "graph", "pr_curves", "embeddings", "text", "images")


def has_views(data: dict[str, Any]) -> bool:
    """Whether ``collect``'s ``data`` holds anything the page shows."""
    return any(data.get(view) for view in VIEWS)


def build_dashboard(client: MlflowClient, run_id: str) -> str:
    """The dashboard page of ``run_id``, built from what the run holds now."""
    return render(collect(client, run_id))

"""``dashboard URI RUN_ID``: (re)build a run's ``dashboard.html`` from what it stores.

Works for any run of the store: runs logged with ``mlflow_plugin.torch`` and runs
imported with ``import-tensorboard`` alike. The page is built by
``mlflow_plugin.summaries.dashboard``; this module parses and prints.
"""

from __future__ import annotations

import argparse

from mlflow_plugin.cli.common import EXIT_OK, Command, CommandFailed, Output, argument, human_bytes

__all__ = ["COMMAND"]


def _dashboard(args: argparse.Namespace, out: Output) -> int:
    from mlflow.tracking import MlflowClient

    from mlflow_plugin.summaries.dashboard import (
        ARTIFACT_FILE,
        VIEWS,
        collect,
        has_views,
        render,
    )

    client = MlflowClient(args.uri)
    data = collect(client, args.run_id)
    if not has_views(data):
        raise CommandFailed(
            f"run {args.run_id} has no histograms, graph, PR curves, embeddings, text or "
            "step images: nothing for a dashboard to show"
        )
    page = render(data)
    client.log_text(args.run_id, page, ARTIFACT_FILE)
    for damaged in data["damaged"]:
        out.error(f"warning: left out, damaged: {damaged}")
    tabs = ", ".join(view for view in VIEWS if data.get(view))
    out.info(f"wrote {ARTIFACT_FILE} ({human_bytes(len(page.encode()))}) to run {args.run_id}")
    out.info(f"views: {tabs}")
    return EXIT_OK


_DESCRIPTION = (
    "Build the self-contained dashboard.html of RUN_ID from what the run stores (raw "
    "histogram bins, the model graph, PR curves, embeddings, text, step pictures) and save "
    "it at the run's artifact root, replacing the one there. MLflow's UI shows it in the "
    "run's Artifacts tab. The PyTorch helpers write it themselves when they flush; use "
    "this for imported runs (import-tensorboard) or after a build failed."
)
_RUN_ID = argument("run_id", metavar="RUN_ID", help="the run to build the page for")

COMMAND = Command(
    "dashboard",
    help="(re)build a run's dashboard.html (histograms, graph, PR curves, projector)",
    description=_DESCRIPTION,
    body=_dashboard,
    arguments=(_RUN_ID,),
)

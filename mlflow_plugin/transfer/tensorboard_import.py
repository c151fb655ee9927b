"""Importing a TensorBoard log directory into MLflow: one run per folder with event files.

What each kind becomes, the same as ``mlflow_plugin.torch.SummaryWriter`` logs it:

- scalars: metric ``tag`` at the event's step, its wall time as the timestamp;
- histograms: the summary metrics ``tag/mean`` and ``tag/std`` (exact, from the
  event's sums), a picture per step (image key ``histograms/<tag>``), the raw bins
  re-binned to 64 equal-width bins over [min, max] in the JSON Lines format
  ``read_histograms`` reads, and ``histograms/<tag>/overview.png``;
- images: ``log_image(key=tag, step=...)`` (the UI's step slider);
- text: artifacts ``text/<tag>/step-<n>.md``;
- hparams (``add_hparams``): params of the run of the folder they were written to;
  their metrics are that folder's scalars. A folder inside another imported folder
  becomes its child run (``mlflow.parentRunId``), as ``SummaryWriter.add_hparams`` does.

Re-running is safe: each run carries the tag ``mlflow_bucket.tensorboard.source``
(the folder's absolute path) and ends FINISHED only once everything is logged. A
folder whose finished run exists in the experiment is skipped; a run an interrupted
import left unfinished is deleted and the folder imported again. Data appended to
an event folder after its import is not picked up: delete that run to re-import it.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlflow_plugin.summaries.histograms import HistogramStats
    from mlflow_plugin.transfer.tensorboard_events import EventRun, HistogramPoint

__all__ = [
    "HISTOGRAM_BINS",
    "SOURCE_TAG",
    "ImportSummary",
    "MissingDependency",
    "import_logdir",
]

SOURCE_TAG = "mlflow_bucket.tensorboard.source"
HISTOGRAM_BINS = 64
_BATCH_METRICS = 1000  # MLflow's limit per log_batch
_BATCH_PARAMS = 100


class MissingDependency(ImportError):
    """TensorBoard is not installed (PyTorch is not needed: the import never loads it)."""


@dataclass
class ImportSummary:
    """What an import did, counted per kind."""

    runs_created: int = 0
    runs_skipped: int = 0
    runs_replaced: int = 0  # unfinished runs of an interrupted import, imported again
    scalars: int = 0
    histograms: int = 0
    images: int = 0
    texts: int = 0
    hparams: int = 0


def _require_dependencies() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError as exc:
        # The package is not on PyPI: the extra is installed from the source checkout.
        raise MissingDependency(
            "import-tensorboard needs TensorBoard: in the mlflow-bucket clone, "
            "pip install -c constraints.txt '.[tensorboard]'"
        ) from exc


def import_logdir(
    logdir: str | os.PathLike[str],
    tracking_uri: str,
    experiment_name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportSummary:
    """Import every event folder under ``logdir`` into ``experiment_name`` (created if new).

    The experiment defaults to the log directory's folder name.

    >>> import_logdir("runs", "bucket+file:./mlruns-bucket").scalars  # doctest: +SKIP
    400
    """
    _require_dependencies()
    from mlflow import MlflowClient

    from mlflow_plugin.transfer.tensorboard_events import find_run_dirs, read_run

    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"log directory {str(root)!r} does not exist")
    folders = find_run_dirs(root)
    if not folders:
        raise FileNotFoundError(f"no TensorBoard event files under {str(root)!r}")
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment(client, experiment_name or root.resolve().name)
    earlier = _earlier_imports(client, experiment_id)
    summary = ImportSummary()
    imported: dict[str, str] = {}  # relative folder -> run id
    for done, folder in enumerate(folders):
        if progress is not None:
            progress("importing", done, len(folders))
        relative = folder.relative_to(root).as_posix()
        source = str(folder.resolve())
        finished = [r for r in earlier.get(source, []) if r.info.status == "FINISHED"]
        if finished:
            imported[relative] = finished[0].info.run_id
            summary.runs_skipped += 1
            continue
        for unfinished in earlier.get(source, []):
            client.delete_run(unfinished.info.run_id)
            summary.runs_replaced += 1
        events = read_run(root, folder)
        name = root.resolve().name if relative == "." else relative
        parent = _parent_run(imported, relative)
        imported[relative] = _write_run(
            client, experiment_id, events, name, source, parent, summary
        )
        summary.runs_created += 1
    if progress is not None:
        progress("importing", len(folders), len(folders))
    return summary


def _experiment(client: MlflowClient, name: str) -> str:
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return str(client.create_experiment(name))
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise MlflowException(
            f"experiment {name!r} is deleted: restore it or import into another experiment"
        )
    return str(experiment.experiment_id)


def _earlier_imports(client: MlflowClient, experiment_id: str) -> dict[str, list[Any]]:
    from mlflow.entities import ViewType

    by_source: dict[str, list[Any]] = defaultdict(list)
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
        )
        for run in page:
            source = run.data.tags.get(SOURCE_TAG)
            if source:
                by_source[source].append(run)
        token = page.token
        if not token:
            return by_source


def _parent_run(imported: dict[str, str], relative: str) -> str | None:
    if relative == ".":
        return None
    parts = relative.split("/")
    for cut in range(len(parts) - 1, -1, -1):
        ancestor = "/".join(parts[:cut]) or "."
        if ancestor in imported:
            return imported[ancestor]
    return None


def _millis(wall_time: float) -> int:
    return int(wall_time * 1000)


def _write_run(
    client: MlflowClient,
    experiment_id: str,
    events: EventRun,
    name: str,
    source: str,
    parent: str | None,
    summary: ImportSummary,
) -> str:
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = {SOURCE_TAG: source}
    if parent is not None:
        tags[MLFLOW_PARENT_RUN_ID] = parent
    start = _millis(events.first_wall_time) if events.first_wall_time else None
    run_id: str = client.create_run(
        experiment_id, start_time=start, tags=tags, run_name=name
    ).info.run_id
    params = [Param(key, value) for key, value in sorted(events.hparams.items())]
    for chunk in _chunks(params, _BATCH_PARAMS):
        client.log_batch(run_id, params=chunk)
    summary.hparams += len(params)
    metrics = [
        Metric(_metric_key(p.tag), p.value, _millis(p.wall_time), p.step) for p in events.scalars
    ]
    metrics += _log_histograms(client, run_id, events.histograms)
    for chunk in _chunks(metrics, _BATCH_METRICS):
        client.log_batch(run_id, metrics=chunk)
    summary.scalars += len(events.scalars)
    summary.histograms += len(events.histograms)
    _log_images(client, run_id, events)
    summary.images += len(events.images)
    from mlflow_plugin.summaries.names import image_key

    for text in events.texts:
        path = f"text/{image_key(text.tag)}/step-{text.step:09d}.md"
        client.log_text(run_id, text.text, path)
    summary.texts += len(events.texts)
    end = _millis(events.last_wall_time) if events.last_wall_time else int(time.time() * 1000)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=end)
    return run_id


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _metric_key(tag: str) -> str:
    """The tag itself when MLflow accepts it as a metric name, else a cleaned copy."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric_name

    from mlflow_plugin.summaries.names import image_key

    try:
        _validate_metric_name(tag)
    except MlflowException:
        return image_key(tag)
    return tag


def _log_images(client: MlflowClient, run_id: str, events: EventRun) -> None:
    from mlflow_plugin.summaries.images import decode_picture
    from mlflow_plugin.summaries.names import image_key

    for image in events.images:
        client.log_image(
            run_id,
            decode_picture(image.encoded),
            key=image_key(image.tag),
            step=image.step,
            timestamp=_millis(image.wall_time),
        )


def _log_histograms(
    client: MlflowClient, run_id: str, histograms: list[HistogramPoint]
) -> list[Any]:
    """Log pictures and raw bins; return the summary metrics for the caller's batches."""
    from mlflow.entities import Metric

    from mlflow_plugin.summaries.histograms import (
        CHUNK_RECORDS,
        artifact_dir,
        raw_chunk,
        rebin,
        render_overview,
        render_step,
        summary_metrics,
    )

    metrics: list[Any] = []
    by_tag: dict[str, list[HistogramStats]] = defaultdict(list)
    for point in histograms:
        exact = _stats(point)
        for name, value in summary_metrics(exact).items():
            metrics.append(Metric(f"{exact.key}/{name}", value, exact.timestamp, exact.step))
        binned = rebin(exact, HISTOGRAM_BINS)
        client.log_image(
            run_id,
            render_step(binned),
            key=artifact_dir(binned.key),
            step=binned.step,
            timestamp=binned.timestamp,
        )
        by_tag[binned.key].append(binned)
    for key, records in by_tag.items():
        records.sort(key=lambda r: (r.step, r.timestamp))
        for start in range(0, len(records), CHUNK_RECORDS):
            name, text = raw_chunk(records[start : start + CHUNK_RECORDS])
            client.log_text(run_id, text, f"{artifact_dir(key)}/{name}")
        client.log_figure(run_id, render_overview(records), f"{artifact_dir(key)}/overview.png")
    return metrics


def _stats(point: HistogramPoint) -> HistogramStats:
    from mlflow_plugin.summaries.histograms import HistogramStats

    return HistogramStats(
        key=_metric_key(point.tag),
        step=point.step,
        timestamp=_millis(point.wall_time),
        edges=list(point.edges),
        counts=list(point.counts),
        num=round(point.num),
        nonfinite=0,
        min=point.min,
        max=point.max,
        sum=point.sum,
        sum_squares=point.sum_squares,
    )

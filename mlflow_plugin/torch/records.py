"""What each ``SummaryWriter.add_*`` records, as functions of the run it logs to.

The writer is a facade: every ``add_*`` method is one call to a function here (or in
``histogram_log`` / ``images``), with TensorBoard's arguments converted on the way
(``walltime`` seconds to milliseconds, ``global_step`` None to 0). The pictures and
files themselves come from the pure builders in ``mlflow_plugin.summaries``; this
module decides where they are stored and hands the uploads to the background worker.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric, Param, RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_IMAGES, MLFLOW_PARENT_RUN_ID

from mlflow_plugin.summaries.histograms import HistogramStats
from mlflow_plugin.summaries.images import (
    figure_to_array,
    side_by_side,
    step_image_files,
    step_image_names,
)
from mlflow_plugin.summaries.names import image_key, mlflow_key
from mlflow_plugin.summaries.records import (
    embedding_files,
    ply_text,
    pr_curve,
    render_mesh,
    render_pr_curve,
)
from mlflow_plugin.torch.config import flatten_config, to_plain
from mlflow_plugin.torch.graph import log_model_graph, render_text
from mlflow_plugin.torch.histogram_log import queue_histogram
from mlflow_plugin.torch.histograms import histogram_rows
from mlflow_plugin.torch.images import to_hwc_uint8
from mlflow_plugin.torch.scalars import RunTarget, now_ms
from mlflow_plugin.torch.worker import get_worker

__all__ = [
    "as_numpy",
    "log_embedding",
    "log_figure",
    "log_graph",
    "log_hparams",
    "log_mesh",
    "log_pr_curve",
    "log_raw_histogram",
    "log_scalars",
    "log_tensor",
    "log_text",
    "log_values_histogram",
    "millis",
    "submit_step_image",
]


def millis(walltime: float | None) -> int:
    """TensorBoard's ``walltime`` (seconds, None for now) as MLflow's milliseconds."""
    return now_ms() if walltime is None else int(walltime * 1000)


def as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _bin_count(values: Any, bins: Any) -> int:
    if isinstance(bins, int):
        return bins
    if bins == "tensorflow":
        return 64
    # numpy's estimators ("auto", "fd", ...) all give equal-width bins: keep their count.
    return len(np.histogram_bin_edges(as_numpy(values), bins=bins)) - 1


def _step_file(target: RunTarget, kind: str, tag: str, step: int, suffix: str) -> str:
    """``<kind>/<tag>/step-<n><suffix>``: the artifact of one step of one tag."""
    return f"{kind}/{_folder(target, kind, tag)}/step-{step:09d}{suffix}"


def _image_tag(target: RunTarget, tag: str) -> str:
    """The step-image key of ``tag`` in its run: two tags of a run never share one."""
    return image_key(tag, scope=(target.run_id, "images"))


def submit_step_image(
    target: RunTarget, tag: str, picture: np.ndarray, step: int | None, walltime: float | None
) -> None:
    """Queue an HWC uint8 picture as step image ``tag``, with a readable card thumbnail.

    Stored under the names ``MlflowClient.log_image`` uses (the UI's image cards and step
    slider find it), with ``summaries.images``'s thumbnail instead of MLflow's 256-px one.
    """
    key, at, stamp = _image_tag(target, tag), int(step or 0), millis(walltime)
    worker = get_worker()
    client = worker.client(target.tracking_uri)
    worker.submit(lambda: _upload_step_image(client, target.run_id, picture, key, at, stamp))


# Runs whose image tag is set, so each run gets one set_tag, not one per picture.
_runs_with_images: set[str] = set()


def _upload_step_image(
    client: Any, run_id: str, picture: np.ndarray, key: str, step: int, stamp: int
) -> None:
    names = step_image_names(key, step, stamp, str(uuid.uuid4()))
    with tempfile.TemporaryDirectory() as scratch:
        for name, data in zip(names, step_image_files(picture), strict=True):
            (Path(scratch) / name).write_bytes(data)
        client.log_artifacts(run_id, scratch, "images")
    if run_id not in _runs_with_images:
        client.set_tag(run_id, MLFLOW_LOGGED_IMAGES, True)
        _runs_with_images.add(run_id)


def _folder(target: RunTarget, kind: str, tag: str) -> str:
    """The folder name of ``tag`` under ``<kind>/``: two tags of a run never share one."""
    return image_key(tag, scope=(target.run_id, kind))


def _submit_text(target: RunTarget, text: str, path: str) -> None:
    worker = get_worker()
    worker.submit(lambda: worker.client(target.tracking_uri).log_text(target.run_id, text, path))


def log_scalars(
    target: RunTarget, main_tag: str, values: dict[str, Any], step: int, walltime: float | None
) -> None:
    """One metric per entry, named ``main_tag/tag`` (TensorBoard writes sub-runs)."""
    entries = ((f"{main_tag}/{tag}", value) for tag, value in values.items())
    get_worker().log_scalars(target, entries, step, millis(walltime))


def log_values_histogram(
    target: RunTarget,
    tag: str,
    values: Any,
    step: int | None,
    bins: Any,
    walltime: float | None,
    max_bins: int | None,
) -> None:
    """Bins on the tensor's device; ``bins``: an int, "tensorflow" (64) or numpy's names."""
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(as_numpy(values))
    count = (
        _bin_count(values, bins) if max_bins is None else min(_bin_count(values, bins), max_bins)
    )
    queue_histogram(target, tag, histogram_rows([tensor], count), step, millis(walltime))


def log_raw_histogram(
    target: RunTarget,
    tag: str,
    lo: float,
    hi: float,
    num: int,
    total: float,
    squares: float,
    bucket_limits: Any,
    bucket_counts: Any,
    step: int | None,
    walltime: float | None,
) -> None:
    """A histogram the caller binned: ``bucket_limits`` are the right edges of the buckets."""
    limits = [float(x) for x in as_numpy(bucket_limits).reshape(-1)]
    counts = [float(x) for x in as_numpy(bucket_counts).reshape(-1)]
    if len(limits) != len(counts):
        raise ValueError("add_histogram_raw: len(bucket_limits) != len(bucket_counts)")
    stamp, at = millis(walltime), int(step or 0)
    stats = HistogramStats(
        tag, at, stamp, [float(lo), *limits], counts, int(num), 0,
        float(lo), float(hi), float(total), float(squares),
    )  # fmt: skip
    queue_histogram(target, tag, stats, at, stamp)


def log_figure(
    target: RunTarget, tag: str, figure: Any, step: int | None, close: bool, walltime: float | None
) -> None:
    """A matplotlib figure (or a list of them, side by side) as a step image."""
    figures = figure if isinstance(figure, list) else [figure]
    picture = side_by_side([figure_to_array(f, close) for f in figures])
    submit_step_image(target, tag, picture, step, walltime)


def log_text(target: RunTarget, tag: str, text: str, step: int | None) -> None:
    """Markdown text saved as ``text/<tag>/step-<n>.md``."""
    _submit_text(target, text, _step_file(target, "text", tag, int(step or 0), ".md"))


def log_graph(target: RunTarget, model: torch.nn.Module, example: Any, verbose: bool) -> None:
    """The model graph under ``model_graph/`` (the latest) and ``model_graph/<n>-<Model>/``."""
    if example is None:
        raise ValueError("add_graph needs input_to_model: the graph is recorded by running it")
    graph = log_model_graph(model, example, run_id=target.run_id, keep_each=True)
    if verbose:
        print(render_text(graph))


def log_hparams(
    target: RunTarget,
    hparams: dict[str, Any],
    metrics: dict[str, Any],
    run_name: str | None,
    step: int | None,
) -> None:
    """A child run (as TensorBoard's sub-folder) holding the hparams and the metrics."""
    worker = get_worker()
    worker.raise_pending()
    client = worker.client(target.tracking_uri)
    parent = client.get_run(target.run_id)
    name = run_name or datetime.now().strftime("%Y%m%d-%H%M%S.%f")
    child = client.create_run(
        parent.info.experiment_id, tags={MLFLOW_PARENT_RUN_ID: target.run_id}, run_name=name
    )
    scope = child.info.run_id
    # to_plain prints a float32 tensor at its own precision: 0.3, not 0.30000001192092896.
    values = [(mlflow_key(k, scope=scope), float(to_plain(v))) for k, v in metrics.items()]
    params = [Param(k, v) for k, v in flatten_config(hparams, scope=(scope, "params")).items()]
    stamp, at = now_ms(), int(step or 0)
    points = [Metric(k, v, stamp, at) for k, v in values]
    client.log_batch(child.info.run_id, metrics=points, params=params)
    client.set_terminated(child.info.run_id, RunStatus.to_string(RunStatus.FINISHED))


def log_tensor(
    target: RunTarget, tag: str, tensor: Any, step: int | None, walltime: float | None
) -> None:
    """A one-element tensor as metric ``tag``; any other as ``tensors/<tag>/step-<n>.npy``."""
    worker, at = get_worker(), int(step or 0)
    if isinstance(tensor, torch.Tensor) and tensor.numel() == 1:
        worker.log_scalar(target, tag, tensor, at, millis(walltime))
        return
    if not isinstance(tensor, torch.Tensor) and np.asarray(tensor).size == 1:
        worker.log_scalar(target, tag, float(np.asarray(tensor).reshape(())), at, millis(walltime))
        return
    # A copy on the tensor's device (no host sync); the worker copies it to the host.
    data = tensor.detach().clone() if isinstance(tensor, torch.Tensor) else np.array(tensor)
    path = _step_file(target, "tensors", tag, at, ".npy")
    worker.submit(lambda: _upload_npy(worker.client(target.tracking_uri), target, data, path))


def _upload_npy(client: Any, target: RunTarget, data: Any, path: str) -> None:
    folder, name = path.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / name
        np.save(local, as_numpy(data))
        client.log_artifact(target.run_id, str(local), folder)


def log_mesh(
    target: RunTarget,
    tag: str,
    vertices: Any,
    colors: Any,
    faces: Any,
    step: int | None,
    walltime: float | None,
) -> None:
    """Each mesh of the batch as ``meshes/<tag>/step-<n>[-i].ply`` plus a step image."""
    batch = as_numpy(vertices)
    at = int(step or 0)
    for i in range(batch.shape[0]):
        face = None if faces is None else as_numpy(faces)[i].astype(np.int64)
        color = None if colors is None else as_numpy(colors)[i]
        suffix = "" if batch.shape[0] == 1 else f"-{i}"
        path = _step_file(target, "meshes", tag, at, f"{suffix}.ply")
        _submit_text(target, ply_text(batch[i], face, color), path)
        picture = figure_to_array(render_mesh(batch[i], face, color), close=False)
        submit_step_image(target, f"meshes/{tag}", picture, at, walltime)


def log_pr_curve(
    target: RunTarget,
    tag: str,
    labels: Any,
    predictions: Any,
    step: int | None,
    num_thresholds: int,
    weights: Any,
    walltime: float | None,
) -> None:
    """Counts and precision/recall per threshold (JSON) plus a plotted step image."""
    curve = pr_curve(as_numpy(labels), as_numpy(predictions), num_thresholds, weights)
    at = int(step or 0)
    _submit_text(target, json.dumps(curve), _step_file(target, "pr_curves", tag, at, ".json"))
    picture = figure_to_array(render_pr_curve(curve, f"{tag} (step {at})"), close=False)
    submit_step_image(target, f"pr_curves/{tag}", picture, at, walltime)


def log_embedding(
    target: RunTarget,
    mat: Any,
    metadata: list[Any] | None,
    label_img: Any,
    step: int | None,
    tag: str,
    metadata_header: list[str] | None,
) -> None:
    """``embeddings/<tag>/<step>/``: TSV files the Embedding Projector loads, a sprite."""
    matrix = as_numpy(mat).reshape(len(mat), -1)
    folder = f"embeddings/{_folder(target, 'embeddings', tag)}/{int(step or 0):09d}"
    for name, text in embedding_files(matrix, metadata, metadata_header).items():
        _submit_text(target, text, f"{folder}/{name}")
    if label_img is not None:
        sprite = to_hwc_uint8(label_img, "NCHW")
        worker = get_worker()
        worker.submit(
            lambda: worker.client(target.tracking_uri).log_image(
                target.run_id, sprite, artifact_file=f"{folder}/sprite.png"
            )
        )

"""``SummaryWriter``: ``torch.utils.tensorboard.SummaryWriter``'s signatures, on MLflow.

Swap the import and a TensorBoard loop logs to the active MLflow run (or to a run the
writer starts and ends). Each ``add_*`` method is a one-line delegation:

==================  ============================================================
add_scalar(s)       buffered metrics (``main/tag`` for add_scalars)
add_histogram(_raw) percentile metrics, a step image, raw bins (histogram_log)
add_image(s)        ``mlflow.log_image(key=tag, step=...)``
add_figure          the figure rendered, then as add_image
add_text            ``text/<tag>/step-<n>.md``
add_graph           ``model_graph/`` (graph.svg, graph.txt, summary.txt)
add_hparams         a child run with the hparams as params and the metrics
add_mesh            ``meshes/<tag>/step-<n>.ply`` plus a rendered step image
add_pr_curve        ``pr_curves/<tag>/step-<n>.json`` plus a plotted step image
add_embedding       ``embeddings/<tag>/<step>/`` tensors.tsv, metadata.tsv, sprite
==================  ============================================================

Audio, video, custom-scalar layouts, ONNX graphs and raw PR curves raise
``NotImplementedError``; nothing is dropped silently. Every tag maps to a name MLflow
accepts, at the call (``names``); a background write that failed is raised by the next
``add_*`` call, ``flush`` or ``close``, and ``close`` ends a run it started even then.
"""

from __future__ import annotations

import json
import socket
import warnings
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric, Param, RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mlflow_plugin.torch.config import flatten_config
from mlflow_plugin.torch.graph import log_model_graph
from mlflow_plugin.torch.histogram_log import queue_histogram
from mlflow_plugin.torch.histograms import HistogramStats, device_histogram
from mlflow_plugin.torch.images import figure_to_array, submit_image, to_hwc_uint8
from mlflow_plugin.torch.lifecycle import ending_run, exit_status
from mlflow_plugin.torch.names import image_key, mlflow_key
from mlflow_plugin.torch.scalars import RunTarget, now_ms
from mlflow_plugin.torch.summaries import (
    embedding_files,
    ply_text,
    pr_curve,
    render_mesh,
    render_pr_curve,
)
from mlflow_plugin.torch.worker import get_worker

__all__ = ["SummaryWriter"]


def _ms(walltime: float | None) -> int:
    return now_ms() if walltime is None else int(walltime * 1000)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _bin_count(values: Any, bins: Any) -> int:
    if isinstance(bins, int):
        return bins
    if bins == "tensorflow":
        return 64
    # numpy's estimators ("auto", "fd", ...) all give equal-width bins: keep their count.
    return len(np.histogram_bin_edges(_numpy(values), bins=bins)) - 1


class SummaryWriter:
    """A drop-in for ``torch.utils.tensorboard.SummaryWriter`` that logs to MLflow.

    >>> from mlflow_plugin.torch import SummaryWriter
    >>> writer = SummaryWriter()  # joins the active run, or starts one named after log_dir
    >>> for n_iter in range(100):  # doctest: +SKIP
    ...     writer.add_scalar("Loss/train", loss, n_iter)
    >>> writer.close()  # flushes; ends the run if the writer started it

    ``log_dir`` and ``comment`` only name the run it starts (TensorBoard's default
    ``runs/<date>_<host><comment>``); ``run_id=`` attaches to an existing run.
    """

    def __init__(
        self,
        log_dir: str | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
        *,
        run_id: str | None = None,
    ) -> None:
        if purge_step is not None:
            warnings.warn(
                "SummaryWriter(purge_step=...) is ignored: MLflow metric history is "
                "append-only, so points after purge_step are kept",
                UserWarning,
                stacklevel=2,
            )
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = str(Path("runs") / f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = log_dir
        self._owns_run = False
        if run_id is None:
            active = mlflow.active_run()
            if active is None:
                active = mlflow.start_run(run_name=Path(log_dir).name)
                self._owns_run = True
            run_id = active.info.run_id
        self.target = RunTarget(run_id, mlflow.get_tracking_uri())
        self._worker = get_worker()
        self._closed = False

    @property
    def run_id(self) -> str:
        return self.target.run_id

    def get_logdir(self) -> str:
        return self.log_dir

    def _client(self) -> Any:
        return self._worker.client(self.target.tracking_uri)

    def _artifact_text(self, text: str, path: str) -> None:
        self._worker.submit(lambda: self._client().log_text(self.run_id, text, path))

    # -- scalars -----------------------------------------------------------------------

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """A metric point; a tensor value is read at flush time, not now."""
        self._worker.log_scalar(self.target, tag, scalar_value, global_step or 0, _ms(walltime))

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """One metric per entry, named ``main_tag/tag`` (TensorBoard writes sub-runs)."""
        for tag, value in tag_scalar_dict.items():
            self.add_scalar(f"{main_tag}/{tag}", value, global_step, walltime)

    # -- histograms --------------------------------------------------------------------

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = None,
        bins: Any = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
    ) -> None:
        """Bins on the tensor's device; ``bins``: an int, "tensorflow" (64) or numpy's names."""
        tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(_numpy(values))
        count = (
            _bin_count(values, bins)
            if max_bins is None
            else min(_bin_count(values, bins), max_bins)
        )
        packed = device_histogram(tensor, count)
        queue_histogram(self.target, tag, packed, global_step, _ms(walltime))

    def add_histogram_raw(
        self,
        tag: str,
        min: float,
        max: float,
        num: int,
        sum: float,
        sum_squares: float,
        bucket_limits: Any,
        bucket_counts: Any,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """A histogram you binned: ``bucket_limits`` are the right edges of the buckets."""
        limits = [float(x) for x in _numpy(bucket_limits).reshape(-1)]
        counts = [float(x) for x in _numpy(bucket_counts).reshape(-1)]
        if len(limits) != len(counts):
            raise ValueError("add_histogram_raw: len(bucket_limits) != len(bucket_counts)")
        stamp, step = _ms(walltime), int(global_step or 0)
        stats = HistogramStats(
            tag, step, stamp, [float(min), *limits], counts, int(num), 0,
            float(min), float(max), float(sum), float(sum_squares),
        )  # fmt: skip
        queue_histogram(self.target, tag, stats, step, stamp)

    # -- images ------------------------------------------------------------------------

    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
    ) -> None:
        """An image in CHW/HWC/HW layout, float in [0, 1] or uint8, as a step image."""
        array = to_hwc_uint8(img_tensor, dataformats)
        submit_image(self.target, tag, array, global_step, _ms(walltime))

    def add_images(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
    ) -> None:
        """A batch (NCHW/NHWC) tiled 8 per row into one step image."""
        self.add_image(tag, img_tensor, global_step, walltime, dataformats)

    def add_figure(
        self,
        tag: str,
        figure: Any,
        global_step: int | None = None,
        close: bool = True,
        walltime: float | None = None,
    ) -> None:
        """A matplotlib figure (or a list of them, side by side) as a step image."""
        figures = figure if isinstance(figure, list) else [figure]
        arrays = [figure_to_array(f, close) for f in figures]
        height = max(a.shape[0] for a in arrays)
        padded = [
            np.pad(a, ((0, height - a.shape[0]), (0, 0), (0, 0)), constant_values=255)
            for a in arrays
        ]
        self.add_image(tag, np.concatenate(padded, axis=1), global_step, walltime, "HWC")

    # -- text, graph, hparams ----------------------------------------------------------

    def add_text(
        self,
        tag: str,
        text_string: str,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Markdown text saved as ``text/<tag>/step-<n>.md``."""
        self._artifact_text(
            text_string, f"text/{image_key(tag)}/step-{int(global_step or 0):09d}.md"
        )

    def add_graph(
        self,
        model: torch.nn.Module,
        input_to_model: Any = None,
        verbose: bool = False,
        use_strict_trace: bool = True,
    ) -> None:
        """The model graph (SVG, text, layer summary) under ``model_graph/``."""
        if input_to_model is None:
            raise ValueError("add_graph needs input_to_model: the graph is recorded by running it")
        graph = log_model_graph(model, input_to_model, run_id=self.run_id)
        if verbose:
            from mlflow_plugin.torch.graph import render_text

            print(render_text(graph))

    def add_hparams(
        self,
        hparam_dict: dict[str, Any],
        metric_dict: dict[str, Any],
        hparam_domain_discrete: dict[str, list[Any]] | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
    ) -> None:
        """A child run (as TensorBoard's sub-folder) holding the hparams and the metrics."""
        self._worker.raise_pending()
        client = self._client()
        metrics = [(mlflow_key(k), float(_numpy(v))) for k, v in metric_dict.items()]
        params = [Param(k, v) for k, v in flatten_config(hparam_dict).items()]
        parent = client.get_run(self.run_id)
        name = run_name or datetime.now().strftime("%Y%m%d-%H%M%S.%f")
        child = client.create_run(
            parent.info.experiment_id, tags={MLFLOW_PARENT_RUN_ID: self.run_id}, run_name=name
        )
        stamp, step = now_ms(), int(global_step or 0)
        points = [Metric(k, v, stamp, step) for k, v in metrics]
        client.log_batch(child.info.run_id, metrics=points, params=params)
        client.set_terminated(child.info.run_id, RunStatus.to_string(RunStatus.FINISHED))

    # -- meshes, PR curves, embeddings -------------------------------------------------

    def add_mesh(
        self,
        tag: str,
        vertices: Any,
        colors: Any = None,
        faces: Any = None,
        config_dict: Any = None,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Each mesh of the batch as ``meshes/<tag>/step-<n>[-i].ply`` plus a step image."""
        batch = _numpy(vertices)
        step = int(global_step or 0)
        for i in range(batch.shape[0]):
            face = None if faces is None else _numpy(faces)[i].astype(np.int64)
            color = None if colors is None else _numpy(colors)[i]
            suffix = "" if batch.shape[0] == 1 else f"-{i}"
            path = f"meshes/{image_key(tag)}/step-{step:09d}{suffix}.ply"
            self._artifact_text(ply_text(batch[i], face, color), path)
            picture = figure_to_array(render_mesh(batch[i], face, color), close=False)
            submit_image(self.target, f"meshes/{tag}", picture, step, _ms(walltime))

    def add_pr_curve(
        self,
        tag: str,
        labels: Any,
        predictions: Any,
        global_step: int | None = None,
        num_thresholds: int = 127,
        weights: Any = None,
        walltime: float | None = None,
    ) -> None:
        """Counts and precision/recall per threshold (JSON) plus a plotted step image."""
        curve = pr_curve(_numpy(labels), _numpy(predictions), num_thresholds, weights)
        step = int(global_step or 0)
        self._artifact_text(json.dumps(curve), f"pr_curves/{image_key(tag)}/step-{step:09d}.json")
        picture = figure_to_array(render_pr_curve(curve, f"{tag} (step {step})"), close=False)
        submit_image(self.target, f"pr_curves/{tag}", picture, step, _ms(walltime))

    def add_embedding(
        self,
        mat: Any,
        metadata: list[Any] | None = None,
        label_img: Any = None,
        global_step: int | None = None,
        tag: str = "default",
        metadata_header: list[str] | None = None,
    ) -> None:
        """``embeddings/<tag>/<step>/``: TSV files the Embedding Projector loads, a sprite."""
        matrix = _numpy(mat).reshape(len(mat), -1)
        folder = f"embeddings/{image_key(tag)}/{int(global_step or 0):09d}"
        for name, text in embedding_files(matrix, metadata, metadata_header).items():
            self._artifact_text(text, f"{folder}/{name}")
        if label_img is not None:
            sprite = to_hwc_uint8(label_img, "NCHW")
            self._worker.submit(
                lambda: self._client().log_image(
                    self.run_id, sprite, artifact_file=f"{folder}/sprite.png"
                )
            )

    # -- unsupported -------------------------------------------------------------------

    def _unsupported(self, name: str) -> None:
        raise NotImplementedError(
            f"SummaryWriter.{name} has no MLflow equivalent in mlflow_plugin.torch; "
            "log the data as an artifact with mlflow.log_artifact instead"
        )

    def add_audio(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_audio")

    def add_video(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_video")

    def add_onnx_graph(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_onnx_graph")

    def add_custom_scalars(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_custom_scalars")

    def add_custom_scalars_multilinechart(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_custom_scalars_multilinechart")

    def add_custom_scalars_marginchart(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_custom_scalars_marginchart")

    def add_pr_curve_raw(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_pr_curve_raw")

    def add_image_with_boxes(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("add_image_with_boxes")

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self) -> None:
        """Log everything buffered so far; raises if a background write failed."""
        self._worker.flush()

    def close(self) -> None:
        """Flush, and end the run if this writer started it (it is still the active one).

        The run ends FINISHED, or FAILED when the flush raises (a background write
        failed); the error is raised after the run has ended.
        """
        self._finish("FINISHED")

    def _finish(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        with ending_run(self.run_id if self._owns_run else None, status):
            self.flush()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exit_status(exc_type))

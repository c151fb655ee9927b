"""``SummaryWriter``: ``torch.utils.tensorboard.SummaryWriter``'s signatures, on MLflow.

Swap the import and a TensorBoard loop logs to the active MLflow run (or to a run the
writer starts and ends). Each ``add_*`` method is one call: to ``records`` (what each
kind stores, one function per kind), ``images`` or an unsupported stub:

==================  ============================================================
add_scalar(s)       buffered metrics (``main/tag`` for add_scalars)
add_histogram(_raw) summary metrics, raw bins, pictures (histogram_log)
add_image(s)        a step image ``tag`` (MLflow's names, a readable card thumbnail)
add_figure          the figure rendered, then as add_image
add_text            ``text/<tag>/step-<n>.md``
add_graph           ``model_graph/`` (graph.svg, graph.txt, summary.txt), each kept
add_tensor          a metric (one element) or ``tensors/<tag>/step-<n>.npy``
add_hparams         a child run with the hparams as params and the metrics
add_mesh            ``meshes/<tag>/step-<n>.ply`` plus a rendered step image
add_pr_curve        ``pr_curves/<tag>/step-<n>.json`` plus a plotted step image
add_embedding       ``embeddings/<tag>/<step>/`` tensors.tsv, metadata.tsv, sprite
==================  ============================================================

Audio, video, custom-scalar layouts, ONNX graphs, raw PR curves and boxes raise
``NotImplementedError`` (with TensorBoard's signatures); nothing is dropped silently.
Every tag maps to a name MLflow accepts, at the call (``mlflow_plugin.summaries.names``);
a background write that failed is raised by the next ``add_*`` call, ``flush`` or
``close``, and ``close`` ends a run it started even then.
"""

from __future__ import annotations

import socket
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import mlflow
import torch

from mlflow_plugin.torch import distributed, records
from mlflow_plugin.torch.images import to_hwc_uint8
from mlflow_plugin.torch.lifecycle import FINISHED, RunContext, ending_run
from mlflow_plugin.torch.logdir_runs import LogDirRun, closing_log_dir_run, open_log_dir_run
from mlflow_plugin.torch.records import millis
from mlflow_plugin.torch.scalars import RunTarget
from mlflow_plugin.torch.worker import get_worker

__all__ = ["SummaryWriter"]


def _unsupported(name: str, what: str) -> NotImplementedError:
    """The error of a method TensorBoard has and MLflow has no view for: it raises, never drops."""
    return NotImplementedError(
        f"SummaryWriter.{name} is not supported by mlflow_plugin.torch ({what}); "
        "log the data as a file with mlflow.log_artifact instead"
    )


class SummaryWriter(RunContext):
    """A drop-in for ``torch.utils.tensorboard.SummaryWriter`` that logs to MLflow.

    >>> from mlflow_plugin.torch import SummaryWriter
    >>> writer = SummaryWriter()  # joins the active run, or starts one named after log_dir
    >>> for n_iter in range(100):  # doctest: +SKIP
    ...     writer.add_scalar("Loss/train", loss, n_iter)
    >>> writer.close()  # flushes; ends the run if the writer started it

    Without ``log_dir`` it joins the active run or starts one, named after TensorBoard's
    default ``runs/<date>_<host><comment>``. A ``log_dir`` is a run of its own, as in
    TensorBoard: a child of the active run, or a run beside the others
    (``logdir_runs`` has the rule), so ``runs/exp/train`` and ``runs/exp/val`` are
    two runs. ``run_id=`` attaches to an existing run and leaves it open.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> SummaryWriter:
        # Under torch.distributed only rank 0 logs, unless every rank does (distributed).
        if not distributed.logs_here():
            return cast(SummaryWriter, distributed.Silent())
        return super().__new__(cls)

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
        opens_run = run_id is None
        if opens_run:  # another rank, when every rank logs: rank 0's run of this writer
            run_id = distributed.joined_run_id()
        # A log directory given is a run of its own (logdir_runs); none keeps one run.
        self._log_dir_run: LogDirRun | None = None
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = str(Path("runs") / f"{stamp}_{socket.gethostname()}{comment}")
        elif run_id is None:
            self._log_dir_run = open_log_dir_run(log_dir)
            run_id = self._log_dir_run.run_id
        self.log_dir = log_dir
        self._owns_run = False
        if run_id is None:
            active = mlflow.active_run()
            if active is None:
                active = mlflow.start_run(run_name=Path(log_dir).name)
                self._owns_run = True
            run_id = active.info.run_id
        self.target = RunTarget(run_id, mlflow.get_tracking_uri())
        if opens_run:
            distributed.publish_run_id(run_id)
        self._closed = False

    @property
    def run_id(self) -> str:
        return self.target.run_id

    def get_logdir(self) -> str:
        return self.log_dir

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
        """A metric point; a tensor value is copied now (no device sync) and read later."""
        get_worker().log_scalar(self.target, tag, scalar_value, global_step or 0, millis(walltime))

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """One metric per entry, named ``main_tag/tag`` (TensorBoard writes sub-runs)."""
        records.log_scalars(self.target, main_tag, tag_scalar_dict, global_step or 0, walltime)

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
        records.log_values_histogram(
            self.target, tag, values, global_step, bins, walltime, max_bins
        )

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
        records.log_raw_histogram(
            self.target,
            tag,
            min,
            max,
            num,
            sum,
            sum_squares,
            bucket_limits,
            bucket_counts,
            global_step,
            walltime,
        )

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
        picture = to_hwc_uint8(img_tensor, dataformats)
        records.submit_step_image(self.target, tag, picture, global_step, walltime)

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
        records.log_figure(self.target, tag, figure, global_step, close, walltime)

    # -- text, graph, hparams ----------------------------------------------------------

    def add_text(
        self,
        tag: str,
        text_string: str,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Markdown text saved as ``text/<tag>/step-<n>.md``."""
        records.log_text(self.target, tag, text_string, global_step)

    def add_graph(
        self,
        model: torch.nn.Module,
        input_to_model: Any = None,
        verbose: bool = False,
        use_strict_trace: bool = True,
    ) -> None:
        """The model graph (SVG, text, layer summary) under ``model_graph/``."""
        records.log_graph(self.target, model, input_to_model, verbose)

    def add_hparams(
        self,
        hparam_dict: dict[str, Any],
        metric_dict: dict[str, Any],
        hparam_domain_discrete: dict[str, list[Any]] | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
    ) -> None:
        """A child run (as TensorBoard's sub-folder) holding the hparams and the metrics."""
        records.log_hparams(self.target, hparam_dict, metric_dict, run_name, global_step)

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
        records.log_mesh(self.target, tag, vertices, colors, faces, global_step, walltime)

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
        records.log_pr_curve(
            self.target, tag, labels, predictions, global_step, num_thresholds, weights, walltime
        )

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
        records.log_embedding(
            self.target, mat, metadata, label_img, global_step, tag, metadata_header
        )

    # -- tensors -----------------------------------------------------------------------

    def add_tensor(
        self,
        tag: str,
        tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """A one-element tensor as a metric; any other as ``tensors/<tag>/step-<n>.npy``."""
        records.log_tensor(self.target, tag, tensor, global_step, walltime)

    # -- unsupported: TensorBoard's signatures, each raises NotImplementedError -----------

    def add_audio(
        self,
        tag: Any,
        snd_tensor: Any,
        global_step: Any = None,
        sample_rate: Any = 44100,
        walltime: Any = None,
    ) -> None:
        """Not supported: raises NotImplementedError (MLflow has no audio view)."""
        raise _unsupported("add_audio", "MLflow has no audio view")

    def add_video(
        self,
        tag: Any,
        vid_tensor: Any,
        global_step: Any = None,
        fps: Any = 4,
        walltime: Any = None,
    ) -> None:
        """Not supported: raises NotImplementedError (MLflow has no video view)."""
        raise _unsupported("add_video", "MLflow has no video view")

    def add_onnx_graph(self, prototxt: Any) -> None:
        """Not supported: raises NotImplementedError; ``add_graph`` records a torch model."""
        raise _unsupported("add_onnx_graph", "use add_graph with the torch model")

    def add_custom_scalars(self, layout: Any) -> None:
        """Not supported: raises NotImplementedError (MLflow charts have no layout file)."""
        raise _unsupported("add_custom_scalars", "MLflow's charts have no layout file")

    def add_custom_scalars_multilinechart(
        self, tags: Any, category: Any = "default", title: Any = "untitled"
    ) -> None:
        """Not supported: raises NotImplementedError (MLflow charts have no layout file)."""
        raise _unsupported("add_custom_scalars_multilinechart", "MLflow has no layout file")

    def add_custom_scalars_marginchart(
        self, tags: Any, category: Any = "default", title: Any = "untitled"
    ) -> None:
        """Not supported: raises NotImplementedError (MLflow charts have no layout file)."""
        raise _unsupported("add_custom_scalars_marginchart", "MLflow has no layout file")

    def add_pr_curve_raw(
        self,
        tag: Any,
        true_positive_counts: Any,
        false_positive_counts: Any,
        true_negative_counts: Any,
        false_negative_counts: Any,
        precision: Any,
        recall: Any,
        global_step: Any = None,
        num_thresholds: Any = 127,
        weights: Any = None,
        walltime: Any = None,
    ) -> None:
        """Not supported: raises NotImplementedError; ``add_pr_curve`` takes the labels."""
        raise _unsupported("add_pr_curve_raw", "use add_pr_curve with labels and predictions")

    def add_image_with_boxes(
        self,
        tag: Any,
        img_tensor: Any,
        box_tensor: Any,
        global_step: Any = None,
        walltime: Any = None,
        rescale: Any = 1,
        dataformats: Any = "CHW",
        labels: Any = None,
    ) -> None:
        """Not supported: raises NotImplementedError; draw the boxes, then ``add_image``."""
        raise _unsupported("add_image_with_boxes", "draw the boxes and use add_image")

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self) -> None:
        """Log everything buffered so far; raises if a background write failed."""
        get_worker().flush()

    def close(self) -> None:
        """Flush, and end the run if this writer started it (it is still the active one).

        The run ends FINISHED, or FAILED when the flush raises (a background write
        failed); the error is raised after the run has ended.
        """
        self._finish(FINISHED)

    def _finish(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._log_dir_run is not None:
            with closing_log_dir_run(self._log_dir_run, status):
                self.flush()
            return
        with ending_run(self.run_id if self._owns_run else None, status):
            self.flush()

    def __enter__(self) -> SummaryWriter:
        return self

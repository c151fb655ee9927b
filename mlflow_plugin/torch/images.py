"""Images in TensorBoard's tensor layouts, logged as MLflow step images.

``to_hwc_uint8`` accepts what ``add_image``/``add_images`` accept: a tensor or array in
``CHW``, ``HWC``, ``HW`` or (batches, tiled 8 to a row like TensorBoard) ``NCHW`` /
``NHWC``; floats are taken as [0, 1] and scaled to 0..255, uint8 is kept. Logging goes
through ``MlflowClient.log_image(key=..., step=...)``, so the MLflow UI shows each key
with a step slider.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mlflow_plugin.torch.names import image_key
from mlflow_plugin.torch.scalars import now_ms
from mlflow_plugin.torch.worker import RunTarget, current_target, get_worker

__all__ = ["figure_to_array", "log_image", "make_grid", "safe_key", "submit_image", "to_hwc_uint8"]

# ``key`` as MLflow's image keys and artifact paths accept it: the rule of names.image_key.
safe_key = image_key


def _as_array(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return np.asarray(image)


def make_grid(batch: np.ndarray, ncols: int = 8) -> np.ndarray:
    """Tile an NCHW batch into one CHW picture, ``ncols`` per row (TensorBoard's layout)."""
    count, channels, height, width = batch.shape
    ncols = min(count, ncols)
    nrows = math.ceil(count / ncols)
    grid = np.zeros((channels, height * nrows, width * ncols), dtype=batch.dtype)
    for i in range(count):
        row, col = divmod(i, ncols)
        grid[:, row * height : (row + 1) * height, col * width : (col + 1) * width] = batch[i]
    return grid


def to_hwc_uint8(image: Any, dataformats: str = "CHW") -> np.ndarray:
    """An HWC uint8 array (3 or 4 channels) from any of TensorBoard's image layouts.

    >>> to_hwc_uint8(torch.zeros(3, 8, 10)).shape
    (8, 10, 3)
    >>> to_hwc_uint8(torch.rand(5, 1, 4, 4), "NCHW").shape  # five tiles in one row
    (4, 20, 3)
    """
    array = _as_array(image)
    layout = dataformats.upper()
    if array.ndim != len(layout) or sorted(layout) not in (sorted(f) for f in _LAYOUTS):
        raise ValueError(
            f"image of shape {array.shape} does not match dataformats {dataformats!r}; "
            f"expected one of {', '.join(_LAYOUTS)}"
        )
    if "N" in layout:
        array = make_grid(array.transpose([layout.index(c) for c in "NCHW"]))
        layout = "CHW"
    if "C" not in layout:
        array = array[None]
        layout = "C" + layout
    array = array.transpose([layout.index(c) for c in "HWC"])
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.shape[2] not in (3, 4):
        raise ValueError(f"an image needs 1, 3 or 4 channels, got {array.shape[2]}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    return (array.astype(np.float64) * 255.0).clip(0, 255).round().astype(np.uint8)


_LAYOUTS = ("CHW", "HWC", "HW", "WH", "NCHW", "NHWC")


def figure_to_array(figure: Any, close: bool = True) -> np.ndarray:
    """Render a matplotlib figure to an HWC uint8 RGB array (in the caller's thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    array = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if close:
        import matplotlib.pyplot as plt

        plt.close(figure)
    return array


def submit_image(
    target: RunTarget, key: str, array: np.ndarray, step: int | None, timestamp_ms: int | None
) -> None:
    """Queue ``array`` (HWC uint8) for ``MlflowClient.log_image`` on the worker thread."""
    worker = get_worker()
    timestamp = now_ms() if timestamp_ms is None else int(timestamp_ms)
    name, at = image_key(key), int(step or 0)
    worker.submit(
        lambda: worker.client(target.tracking_uri).log_image(
            target.run_id, array, key=name, step=at, timestamp=timestamp
        )
    )


def log_image(
    key: str,
    image: Any,
    step: int | None = None,
    dataformats: str = "CHW",
    *,
    run_id: str | None = None,
) -> None:
    """Log an image tensor in any TensorBoard layout as an MLflow step image.

    >>> log_image("inputs", batch, step=3, dataformats="NCHW")  # doctest: +SKIP
    """
    submit_image(current_target(run_id), key, to_hwc_uint8(image, dataformats), step, None)

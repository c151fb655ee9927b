"""Images in TensorBoard's tensor layouts, logged as MLflow step images.

``to_hwc_uint8`` accepts what ``add_image``/``add_images`` accept (a tensor or array
in any of TensorBoard's layouts; ``mlflow_plugin.summaries.images`` has the rules).
Logging goes through ``MlflowClient.log_image(key=..., step=...)``, so the MLflow UI
shows each key with a step slider.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlflow_plugin.summaries import images as pictures
from mlflow_plugin.summaries.names import image_key
from mlflow_plugin.torch.distributed import logs_here, rank_key
from mlflow_plugin.torch.scalars import now_ms
from mlflow_plugin.torch.worker import RunTarget, current_target, get_worker

__all__ = ["log_image", "submit_image", "to_hwc_uint8"]


def _as_array(image: Any) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return np.asarray(image)


def to_hwc_uint8(image: Any, dataformats: str = "CHW") -> np.ndarray:
    """An HWC uint8 array (3 or 4 channels) from a tensor or array in TensorBoard's layouts.

    >>> to_hwc_uint8(torch.zeros(3, 8, 10)).shape
    (8, 10, 3)
    >>> to_hwc_uint8(torch.rand(5, 1, 4, 4), "NCHW").shape  # five tiles in one row
    (4, 20, 3)
    """
    return pictures.to_hwc_uint8(_as_array(image), dataformats)


def submit_image(
    target: RunTarget, key: str, array: np.ndarray, step: int | None, timestamp_ms: int | None
) -> None:
    """Queue ``array`` (HWC uint8) for ``MlflowClient.log_image`` on the worker thread."""
    worker = get_worker()
    timestamp = now_ms() if timestamp_ms is None else int(timestamp_ms)
    name, at = image_key(rank_key(key)), int(step or 0)
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
    if not logs_here():
        return
    submit_image(current_target(run_id), key, to_hwc_uint8(image, dataformats), step, None)

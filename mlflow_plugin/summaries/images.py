"""Pictures as arrays: TensorBoard's image layouts, figures, tiles and decoded PNGs.

``to_hwc_uint8`` accepts what ``add_image``/``add_images`` accept, as a numpy array:
``CHW``, ``HWC``, ``HW`` or (batches, tiled 8 to a row like TensorBoard) ``NCHW`` /
``NHWC``; floats are taken as [0, 1] and scaled to 0..255, uint8 is kept. The result
is what ``MlflowClient.log_image`` takes. Pure functions (numpy, PIL, matplotlib's
Agg canvas); ``mlflow_plugin.torch.images`` adds tensors and the logging.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "THUMBNAIL_LONGEST",
    "TINY_LONGEST",
    "decode_picture",
    "figure_to_array",
    "make_grid",
    "side_by_side",
    "step_image_files",
    "step_image_names",
    "thumbnail_size",
    "to_hwc_uint8",
]

_LAYOUTS = ("CHW", "HWC", "HW", "WH", "NCHW", "NHWC")
# The thumbnail MLflow's Model metrics cards show: MLflowClient.log_image fits every picture
# in 256 px (a 1200 x 4800 figure became a 64 x 256 sliver, a 28 x 28 digit a blur). Ours
# keeps the aspect ratio, shrinks only past 1024 px, and enlarges a tiny picture by whole
# pixels (nearest neighbour, so it stays sharp) up to 256 px.
THUMBNAIL_LONGEST = 1024
TINY_LONGEST = 256


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

    >>> to_hwc_uint8(np.zeros((3, 8, 10))).shape
    (8, 10, 3)
    >>> to_hwc_uint8(np.ones((5, 1, 4, 4)), "NCHW").shape  # five tiles in one row
    (4, 20, 3)
    """
    array = np.asarray(image)
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


def side_by_side(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """HWC pictures in one row, shorter ones padded white at the bottom."""
    height = max(a.shape[0] for a in arrays)
    padded = [
        np.pad(a, ((0, height - a.shape[0]), (0, 0), (0, 0)), constant_values=255) for a in arrays
    ]
    return np.concatenate(padded, axis=1)


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


def decode_picture(encoded: bytes) -> Any:
    """An encoded image (PNG, JPEG...) as a PIL image in RGB, or RGBA where it has alpha."""
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as opened:
        return opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The card thumbnail's size for a ``width`` x ``height`` picture (aspect ratio kept).

    >>> thumbnail_size(1200, 4800), thumbnail_size(640, 480), thumbnail_size(28, 28)
    ((256, 1024), (640, 480), (252, 252))
    """
    longest = max(width, height)
    if longest < TINY_LONGEST:
        factor = float(TINY_LONGEST // longest)
    else:
        factor = min(1.0, THUMBNAIL_LONGEST / longest)
    return max(1, round(width * factor)), max(1, round(height * factor))


def step_image_files(picture: np.ndarray) -> tuple[bytes, bytes]:
    """The PNG (the picture as it is) and the WebP card thumbnail of an HWC uint8 picture."""
    from PIL import Image

    full = Image.fromarray(np.ascontiguousarray(picture))
    size = thumbnail_size(*full.size)
    sharp = size[0] > full.size[0]  # enlarged: whole pixels; shrunk: a smooth filter
    resample = Image.Resampling.NEAREST if sharp else Image.Resampling.LANCZOS
    png, webp = io.BytesIO(), io.BytesIO()
    full.save(png, format="PNG")
    # An enlarged tiny picture is small: lossless keeps its pixels exact.
    full.resize(size, resample).save(webp, format="WEBP", lossless=sharp)
    return png.getvalue(), webp.getvalue()


def step_image_names(key: str, step: int, timestamp: int, unique: str) -> tuple[str, str]:
    """The names MLflowClient.log_image gives a step image and its thumbnail under ``images/``.

    The UI finds a run's step images by these names (``/`` in the key becomes ``~``).

    >>> step_image_names("a/b", 3, 7, "u")
    ('a~b+step+3+timestamp+7+u.png', 'a~b+step+3+timestamp+7+u+compressed.webp')
    """
    base = f"{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{unique}"
    return f"{base}.png", f"{base}+compressed.webp"

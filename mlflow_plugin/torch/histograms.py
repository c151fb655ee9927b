"""Histograms as pure functions: bins computed on the tensor's device, percentiles, pictures.

``device_histogram`` runs entirely on the tensor's device without a host sync: it
returns one small packed tensor (range, count, sum, sum of squares, bin counts) that
the background worker copies to the host. Bins follow ``numpy.histogram``: ``bins``
equal-width bins over [min, max] of the finite values, the last bin closed; a constant
input gets the range [v - 0.5, v + 0.5]; NaN and infinities are left out and counted.

Raw-bin artifact format (JSON Lines, one object per logged step)::

    histograms/<key>/steps-<first step>-<last step>-<id>.jsonl
    {"key": "weights/fc1", "step": 100, "timestamp": 1700000000000,
     "edges": [e0, ..., eN], "counts": [c0, ..., cN-1],
     "num": 4096, "nonfinite": 0, "min": -0.31, "max": 0.29,
     "sum": 1.2, "sum_squares": 40.5}

Files are immutable: buffered records are written as a new file per flush (or every
100 steps), never by re-uploading a growing one. ``read_histograms`` merges them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "PERCENTILES",
    "HistogramStats",
    "device_histogram",
    "percentiles",
    "render_overview",
    "render_step",
    "stats_from_json",
    "unpack_histogram",
]

# TensorBoard's distribution bands: min, -1.5, -1, -0.5 sd, median, +0.5, +1, +1.5 sd, max.
PERCENTILES: dict[str, float] = {
    "p0": 0.0,
    "p7": 0.0668,
    "p16": 0.1587,
    "p31": 0.3085,
    "p50": 0.5,
    "p69": 0.6915,
    "p84": 0.8413,
    "p93": 0.9332,
    "p100": 1.0,
}
_HEADER = 8  # first, last, num, nonfinite, sum, sum_squares, min, max


@dataclass
class HistogramStats:
    """One histogram on the host: the record written to the raw-bin artifact."""

    key: str
    step: int
    timestamp: int
    edges: list[float]
    counts: list[float]
    num: int
    nonfinite: int
    min: float
    max: float
    sum: float
    sum_squares: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)


def stats_from_json(line: str) -> HistogramStats:
    return HistogramStats(**json.loads(line))


def device_histogram(values: torch.Tensor, bins: int = 64) -> torch.Tensor:
    """Bins and moments of ``values``, computed where ``values`` lives, packed in one tensor.

    >>> packed = device_histogram(torch.tensor([0.0, 1.0, 1.0, 2.0]), bins=2)
    >>> unpack_histogram(packed, "w", step=0, timestamp=0).counts
    [1.0, 3.0]
    """
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    flat = values.detach().reshape(-1)
    if flat.numel() == 0:
        raise ValueError("cannot compute the histogram of an empty tensor")
    # float64 keeps bin edges identical to numpy's; MPS has no float64.
    dtype = torch.float32 if flat.device.type == "mps" else torch.float64
    flat = flat.to(dtype)
    finite = torch.isfinite(flat)
    weight = finite.to(dtype)
    num = weight.sum()
    present = num > 0
    lo = torch.where(finite, flat, math.inf).amin()
    hi = torch.where(finite, flat, -math.inf).amax()
    lo = torch.where(present, lo, 0.0)
    hi = torch.where(present, hi, 0.0)
    constant = hi <= lo
    first = torch.where(constant, lo - 0.5, lo)
    last = torch.where(constant, hi + 0.5, hi)
    clean = torch.where(finite, flat, first)
    index = ((clean - first) * (bins / (last - first))).floor().clamp_(0, bins - 1).long()
    # index_add_ keeps this on the device; bincount would size its output from a host read.
    counts = torch.zeros(bins, dtype=dtype, device=flat.device).index_add_(0, index, weight)
    kept = clean * weight
    header = torch.stack(
        [first, last, num, flat.numel() - num, kept.sum(), (kept * kept).sum(), lo, hi]
    )
    return torch.cat([header, counts])


def unpack_histogram(
    packed: torch.Tensor | Sequence[float], key: str, step: int, timestamp: int
) -> HistogramStats:
    """The host-side record of a ``device_histogram`` result (this is where it is copied)."""
    host = packed.cpu().tolist() if isinstance(packed, torch.Tensor) else list(packed)
    first, last, num, nonfinite, total, squares, lo, hi = host[:_HEADER]
    counts = host[_HEADER:]
    edges = np.linspace(first, last, len(counts) + 1).tolist()
    return HistogramStats(
        key, step, timestamp, edges, counts, int(num), int(nonfinite), lo, hi, total, squares
    )


def percentiles(stats: HistogramStats) -> dict[str, float]:
    """TensorBoard's distribution bands, interpolated linearly inside the bins."""
    if stats.num == 0:
        return {}
    cumulative = np.cumsum(stats.counts)
    result: dict[str, float] = {}
    for name, q in PERCENTILES.items():
        if q == 0.0:
            result[name] = stats.min
            continue
        if q == 1.0:
            result[name] = stats.max
            continue
        target = q * cumulative[-1]
        i = int(np.searchsorted(cumulative, target))
        before = cumulative[i - 1] if i > 0 else 0.0
        inside = stats.counts[i]
        fraction = (target - before) / inside if inside else 0.0
        value = stats.edges[i] + fraction * (stats.edges[i + 1] - stats.edges[i])
        result[name] = float(min(max(value, stats.min), stats.max))
    return result


def render_step(stats: HistogramStats, size: tuple[int, int] = (480, 270)) -> Any:
    """A bar chart of one step as a PIL image (PIL, not matplotlib: ~1 ms, thread-safe)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    left, right, top, bottom = 50, width - 12, 28, height - 30
    draw.text((left, 6), f"{stats.key}   step {stats.step}   n={stats.num}", "black", font)
    peak = max(stats.counts) or 1.0
    bar = (right - left) / len(stats.counts)
    for i, count in enumerate(stats.counts):
        x0 = left + i * bar
        y0 = bottom - (bottom - top) * count / peak
        draw.rectangle((x0, y0, max(x0, x0 + bar - 1), bottom), fill=(255, 112, 67))
    draw.line((left, bottom, right, bottom), "black")
    draw.line((left, top, left, bottom), "black")
    draw.text((left, bottom + 6), f"{stats.edges[0]:.4g}", "black", font)
    last = f"{stats.edges[-1]:.4g}"
    draw.text((right - draw.textlength(last, font), bottom + 6), last, "black", font)
    draw.text((4, top), f"{peak:.4g}", "black", font)
    draw.text((4, bottom - 12), "0", "black", font)
    return image


def render_overview(history: Sequence[HistogramStats], max_curves: int = 40) -> Any:
    """TensorBoard's offset view: one curve per step, later steps lower and darker.

    Returns a matplotlib Figure (built with the object API, no pyplot state).
    """
    from matplotlib.figure import Figure

    ordered = sorted(history, key=lambda s: s.step)
    stride = max(1, math.ceil(len(ordered) / max_curves))
    shown = ordered[::stride]
    if ordered and shown[-1] is not ordered[-1]:
        shown.append(ordered[-1])
    figure = Figure(figsize=(7, 5), dpi=100)
    axes = figure.add_subplot()
    peak = max((max(s.counts) for s in shown if s.counts), default=1.0) or 1.0
    spacing = 0.35
    for rank, stats in enumerate(shown):
        centers = [(a + b) / 2 for a, b in zip(stats.edges, stats.edges[1:], strict=False)]
        offset = -rank * spacing
        curve = [offset + c / peak for c in stats.counts]
        shade = 0.25 + 0.75 * rank / max(1, len(shown) - 1)
        color = (1.0 * shade, 0.44 * shade, 0.26 * shade)
        axes.fill_between(centers, offset, curve, color=color, alpha=0.25, linewidth=0)
        axes.plot(centers, curve, color=color, linewidth=1)
    ticks = list(range(0, len(shown), max(1, len(shown) // 8)))
    axes.set_yticks([-r * spacing for r in ticks], [str(shown[r].step) for r in ticks])
    axes.set_ylabel("step")
    axes.set_xlabel("value")
    key = ordered[0].key if ordered else ""
    axes.set_title(f"{key}: distribution over steps")
    figure.tight_layout()
    return figure

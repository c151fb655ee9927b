"""Histograms on the host: the raw-bin record, summary metrics, percentiles, pictures.

Pure functions over ``HistogramStats`` (numpy, PIL and matplotlib; never torch):
``mlflow_plugin.torch`` computes the bins on the tensor's device and hands the
host record here, and ``import-tensorboard`` builds the same record from
TensorBoard's buckets.

Raw-bin artifact format (JSON Lines, one object per logged step)::

    histograms/<key>/steps-<first step>-<last step>-<id>.jsonl
    {"key": "weights/fc1", "step": 100, "timestamp": 1700000000000,
     "edges": [e0, ..., eN], "counts": [c0, ..., cN-1],
     "num": 4096, "nonfinite": 0, "min": -0.31, "max": 0.29,
     "sum": 1.2, "sum_squares": 40.5}

A non-finite number (a sum of squares that overflowed) is written as ``null`` and read
back as NaN. Files are immutable: buffered records are written as a new file per flush (or every
100 steps), never by re-uploading a growing one (``raw_chunk``).

Metrics per histogram key are few on purpose (``summary_metrics``): ``<key>/mean`` and
``<key>/std`` (``<key>/norm`` for ``watch``), exact from the record's sums, so MLflow's
Model metrics tab shows one or two charts per key; the percentile bands
(``percentiles``) are computed from the raw bins by whoever draws them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlflow_plugin.summaries.names import image_key

__all__ = [
    "CHUNK_RECORDS",
    "CONSTANT_RELATIVE_HALF_WIDTH",
    "PERCENTILES",
    "SUMMARY_METRICS",
    "HistogramStats",
    "artifact_dir",
    "percentiles",
    "raw_chunk",
    "rebin",
    "render_overview",
    "render_step",
    "stats_from_json",
    "summary_metrics",
]

CHUNK_RECORDS = 100  # records per raw-bin file at most

# A constant histogram's range is v ± max(0.5, |v| * this): past 2**52, v ± 0.5 == v
# would give zero-width bins (NaN bin indices); 2**-20 stays wide in float32 too.
CONSTANT_RELATIVE_HALF_WIDTH = 2.0**-20

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


# What ``log_histogram`` logs as metrics per key; ``watch`` logs ("norm",).
SUMMARY_METRICS: tuple[str, ...] = ("mean", "std")


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
        # A sum that overflowed (squares of values past ~1e154) is written as null, so
        # the record, and the chunk's other steps, stay valid JSON.
        return json.dumps({k: _finite_or_null(v) for k, v in asdict(self).items()}, allow_nan=False)


def stats_from_json(line: str) -> HistogramStats:
    fields = json.loads(line)
    fields = {k: _null_as_nan(v) if k in _FLOAT_FIELDS else v for k, v in fields.items()}
    return HistogramStats(**fields)


_FLOAT_FIELDS = frozenset({"edges", "min", "max", "sum", "sum_squares"})


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _null_as_nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_null_as_nan(v) for v in value]
    return math.nan if value is None else value


def artifact_dir(key: str, scope: Hashable = None) -> str:
    """``histograms/<key>``, the key mapped by MLflow's image-key rule (``names.image_key``;
    within ``scope``, a run, two keys never share a folder)."""
    return f"histograms/{image_key(key, scope=scope)}"


def raw_chunk(records: Sequence[HistogramStats]) -> tuple[str, str]:
    """The file name (under ``artifact_dir``) and JSON Lines text of one raw-bin chunk.

    A random suffix keeps chunk files immutable: a later chunk never replaces one.
    """
    name = f"steps-{records[0].step:09d}-{records[-1].step:09d}-{uuid.uuid4().hex[:8]}.jsonl"
    return name, "".join(record.to_json() + "\n" for record in records)


def summary_metrics(
    stats: HistogramStats, names: Sequence[str] = SUMMARY_METRICS
) -> dict[str, float]:
    """``mean``, ``std`` (population) and/or ``norm`` (L2) of the finite values, exact.

    They come from the record's sums, not from the bins. A histogram with non-finite
    values gets NaN for each (what ``torch.mean`` of such a tensor says), so a
    diverging run shows a gap in the chart rather than a plausible number.
    """
    if stats.nonfinite or stats.num == 0:
        return {name: math.nan for name in names}
    mean = stats.sum / stats.num
    variance = max(stats.sum_squares / stats.num - mean * mean, 0.0)
    values = {"mean": mean, "std": math.sqrt(variance), "norm": math.sqrt(stats.sum_squares)}
    # An overflowed sum is unknown, not infinite: NaN, a gap in the chart.
    return {name: values[name] if math.isfinite(values[name]) else math.nan for name in names}


def percentiles(stats: HistogramStats) -> dict[str, float]:
    """TensorBoard's distribution bands, interpolated linearly inside the bins.

    By hand rather than ``np.interp``: that rounds differently (about one value in
    eight moves in its last bits) and, at a band that falls exactly on a bin edge
    followed by empty bins, picks the far edge instead of the near one.
    """
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


def rebin(stats: HistogramStats, bins: int) -> HistogramStats:
    """``stats`` with its counts spread over ``bins`` equal-width bins over [min, max].

    Counts are assumed uniform inside each source bucket (TensorBoard's exponential
    buckets become the equal-width bins our own histograms use); a constant histogram
    gets [v - 0.5, v + 0.5] (wider at a large v), as ``device_histogram`` does.
    """
    lo, hi = stats.min, stats.max
    if not hi > lo:
        half = max(0.5, abs(lo) * CONSTANT_RELATIVE_HALF_WIDTH)
        lo, hi = lo - half, hi + half
    edges = np.linspace(lo, hi, bins + 1)
    source = np.asarray(stats.edges, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(stats.counts, dtype=float))])
    # np.interp needs increasing points: at a repeated edge keep the count *before* it,
    # so a bucket of zero width counts to the right of its edge (bins are left-closed).
    unique, first = np.unique(source, return_index=True)
    cdf = np.interp(edges, unique, cumulative[first], left=0.0, right=cumulative[-1])
    cdf[-1] = cumulative[-1]
    counts = np.clip(np.diff(cdf), 0.0, None)
    return dataclasses.replace(stats, edges=edges.tolist(), counts=counts.tolist())

"""Histograms on the tensor's device: bins and moments without a host sync.

``device_histogram`` runs entirely on the tensor's device: it returns one small
packed tensor (range, count, sum, sum of squares, bin counts) that the background
worker copies to the host with ``unpack_histogram``. Bins follow
``numpy.histogram``: ``bins`` equal-width bins over [min, max] of the finite values,
the last bin closed; a constant input gets the range [v - 0.5, v + 0.5]; NaN and
infinities are left out and counted. Everything after the copy (percentiles,
pictures, the raw-bin format) is torch-free: ``mlflow_plugin.summaries.histograms``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from mlflow_plugin.summaries.histograms import HistogramStats

__all__ = ["device_histogram", "unpack_histogram"]

_HEADER = 8  # first, last, num, nonfinite, sum, sum_squares, min, max


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

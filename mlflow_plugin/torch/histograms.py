"""Histograms on the tensor's device: bins and moments without a host sync.

``device_histogram`` runs entirely on the tensor's device: it returns one small
packed tensor (range, count, sum, sum of squares, bin counts) that the background
worker copies to the host with ``unpack_histogram``. Bins follow
``numpy.histogram``: ``bins`` equal-width bins over [min, max] of the finite values,
the last bin closed; a constant input gets the range [v - 0.5, v + 0.5] (wider past
2**52, where v ± 0.5 == v: ``CONSTANT_RELATIVE_HALF_WIDTH``); NaN and
infinities are left out and counted. Everything after the copy (percentiles,
pictures, the raw-bin format) is torch-free: ``mlflow_plugin.summaries.histograms``.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mlflow_plugin.summaries.histograms import CONSTANT_RELATIVE_HALF_WIDTH, HistogramStats

__all__ = [
    "HostSnapshot",
    "device_histogram",
    "device_histograms",
    "histogram_rows",
    "host_histograms",
    "stored_values",
    "unpack_histogram",
    "unpack_histograms",
]

_HEADER = 8  # first, last, num, nonfinite, sum, sum_squares, min, max
_CHUNK = 8192  # values per step of the CPU binning: 64 KiB buffers, reused
# CPU values copied for the worker thread to bin, all snapshots alive together at most.
_SNAPSHOT_ELEMENTS = 1 << 22
# Reentrant: a snapshot freed by the cyclic collector releases at any bytecode boundary.
_snapshot_lock = threading.RLock()
_snapshot_elements = 0  # held by the snapshots alive now


def device_histogram(values: torch.Tensor, bins: int = 64) -> torch.Tensor:
    """Bins and moments of ``values``, computed where ``values`` lives, packed in one tensor.

    >>> packed = device_histogram(torch.tensor([0.0, 1.0, 1.0, 2.0]), bins=2)
    >>> unpack_histogram(packed, "w", step=0, timestamp=0).counts
    [1.0, 3.0]
    """
    return device_histograms([values], bins)[0]


_COMPRESSED = (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


def stored_values(tensor: torch.Tensor) -> torch.Tensor:
    """The values ``tensor`` stores: a sparse tensor's specified values (coalesced), whose
    norm is the tensor's; its implicit zeros are not binned (a sparse embedding gradient's
    dense form can be gigabytes)."""
    if tensor.layout == torch.sparse_coo:
        return tensor.coalesce().values()
    if tensor.layout in _COMPRESSED:
        return tensor.values()
    return tensor


# The dtypes a snapshot copies; others are binned at the call.
_SNAPSHOT_DTYPES = frozenset(
    {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool}
    | {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
)


@dataclass(frozen=True)
class HostSnapshot:
    """CPU tensors' values, copied in the training loop, binned later by the worker."""

    values: torch.Tensor  # the tensors' stored values, concatenated
    sizes: tuple[int, ...]
    bins: int

    def packed(self) -> torch.Tensor:
        """``device_histograms`` of the copied tensors, in the calling thread."""
        return torch.from_numpy(host_histograms(self.values, self.sizes, self.bins))


def histogram_rows(tensors: Sequence[torch.Tensor], bins: int = 64) -> torch.Tensor | HostSnapshot:
    """What the training loop queues for the histograms of ``tensors`` (one device).

    On an accelerator: ``device_histograms``, a dozen asynchronous kernels. On the CPU
    those kernels would run in the training thread itself (about 5 ms for a small CNN's
    parameters), so the values are copied (one kernel: the tensors may change in place
    at the next step) and binned by the worker thread, unless the copies waiting for it
    would pass ``_SNAPSHOT_ELEMENTS`` values: those are binned now, so a large model's
    copies never pile up in memory.
    """
    flats = _flat_values(tensors, bins)
    sizes = tuple(f.numel() for f in flats)
    total = sum(sizes)
    # Anything unusual (quantized, complex...) is binned now, so its error or warning
    # reaches the caller here, not the worker.
    usual = all(f.device.type == "cpu" and f.dtype in _SNAPSHOT_DTYPES for f in flats)
    if not usual or not _reserve(total):
        return device_histograms(flats, bins)
    try:
        if len({f.dtype for f in flats}) > 1:  # cat would promote: float64 holds them all
            flats = [f.to(torch.float64) for f in flats]
        snapshot = HostSnapshot(torch.cat(flats), sizes, bins)
    except BaseException:
        _release(total)
        raise
    weakref.finalize(snapshot, _release, total)  # binned or dropped: its memory is free
    return snapshot


def _reserve(elements: int) -> bool:
    """Room for ``elements`` more copied values (``_SNAPSHOT_ELEMENTS`` for all alive)?"""
    global _snapshot_elements
    with _snapshot_lock:
        if _snapshot_elements + elements > _SNAPSHOT_ELEMENTS:
            return False
        _snapshot_elements += elements
        return True


def _release(elements: int) -> None:
    global _snapshot_elements
    with _snapshot_lock:
        _snapshot_elements -= elements


def device_histograms(tensors: Sequence[torch.Tensor], bins: int = 64) -> torch.Tensor:
    """``device_histogram`` of each tensor (all on one device), one row each, in one pass.

    The tensors are concatenated and binned together with a segment index, so a
    model's parameters cost a dozen kernels, not a dozen per parameter.
    """
    flats = _flat_values(tensors, bins)
    device = flats[0].device
    # float64 keeps bin edges identical to numpy's; MPS has no float64.
    dtype = torch.float32 if device.type == "mps" else torch.float64
    flat = torch.cat([f.to(dtype) for f in flats])
    count = len(flats)
    segment = _segments(tuple(f.numel() for f in flats), device)
    finite = torch.isfinite(flat)
    weight = finite.to(dtype)
    num = torch.zeros(count, dtype=dtype, device=device).index_add_(0, segment, weight)
    present = num > 0
    fill = torch.full((count,), math.inf, dtype=dtype, device=device)
    lo = fill.scatter_reduce(0, segment, torch.where(finite, flat, math.inf), "amin")
    hi = (-fill).scatter_reduce(0, segment, torch.where(finite, flat, -math.inf), "amax")
    lo = torch.where(present, lo, 0.0) + 0.0  # + 0.0: a -0.0 bound is 0.0 on every path
    hi = torch.where(present, hi, 0.0) + 0.0
    # A constant input gets v ± 0.5, wider where that rounds back to v (|v| >= 2**52).
    half = (lo.abs() * CONSTANT_RELATIVE_HALF_WIDTH).clamp_(min=0.5)
    half = torch.where(hi <= lo, half, 0.0)
    first, last = lo - half, hi + half
    # A true division, as NumPy's: ``bins / tensor`` is a reciprocal times ``bins`` in
    # torch, one ulp off for some widths, which moves values on a bin edge.
    width = last - first
    scale = torch.full_like(first, bins) / width
    start = first[segment]
    clean = torch.where(finite, flat, start)
    position = (clean - start) * scale[segment]
    # A range past float's limit (width inf) or a few subnormals wide (bins / width inf)
    # takes halves or a division: without it its bin would be NaN and fail the pass.
    usual = (torch.isfinite(scale) & (scale > 0))[segment]
    wide = ((clean * 0.5 - start * 0.5) / (last * 0.5 - first * 0.5)[segment]) * bins
    narrow = ((clean - start) / width[segment]) * bins
    unusual = torch.where(torch.isinf(width)[segment], wide, narrow)
    position = torch.where(usual, position, unusual)
    index = position.floor().clamp_(0, bins - 1).long() + segment * bins
    # index_add_ keeps this on the device; bincount would size its output from a host read.
    counts = torch.zeros(count * bins, dtype=dtype, device=device).index_add_(0, index, weight)
    kept = clean * weight
    zeros = torch.zeros(count, dtype=dtype, device=device)
    total = zeros.index_add(0, segment, kept)
    squares = zeros.index_add(0, segment, kept * kept)
    nonfinite = zeros.index_add(0, segment, (~finite).to(dtype))
    header = torch.stack([first, last, num, nonfinite, total, squares, lo, hi], dim=1)
    return torch.cat([header, counts.reshape(count, bins)], dim=1)


def host_histograms(values: torch.Tensor, sizes: Sequence[int], bins: int) -> np.ndarray:
    """``device_histograms`` of CPU values (segments of ``sizes``), computed with NumPy.

    The same bins, ranges and counts at a fraction of the CPU: torch's scatter kernels
    are slow on the CPU, and this runs on the worker thread beside the training loop.
    Sums are NumPy's (pairwise within a chunk), so they may differ from a device's in
    the last bits, as two devices' do. The arithmetic goes through one small buffer,
    chunk by chunk (fresh pages for model-sized temporaries cost more than the
    arithmetic); only the float64 copy of the values and a mask per tensor are whole.
    """
    flat = values.reshape(-1).to(torch.float64).numpy()
    rows = np.zeros((len(sizes), _HEADER + bins))
    scratch = np.empty(min(_CHUNK, flat.size))
    index = np.empty(scratch.size, dtype=np.int64)
    offset = 0
    with np.errstate(all="ignore"):  # overflow gives inf, as on a device: no warning
        for row, size in zip(rows, sizes, strict=True):
            segment = flat[offset : offset + size]
            offset += size
            finite = np.isfinite(segment)
            if not finite.all():
                row[3] = size - np.count_nonzero(finite)
                segment = segment[finite]
            _host_row(segment, bins, row, scratch, index)
    return rows


def _host_row(
    values: np.ndarray, bins: int, row: np.ndarray, scratch: np.ndarray, index: np.ndarray
) -> None:
    """Fill ``row`` (header and counts) from finite ``values``; header[3] is set already."""
    if values.size == 0:
        lo = hi = 0.0
    else:
        lo, hi = float(values.min()) + 0.0, float(values.max()) + 0.0
    half = max(abs(lo) * CONSTANT_RELATIVE_HALF_WIDTH, 0.5) if hi <= lo else 0.0
    first, last = lo - half, hi + half
    width = last - first
    scale = bins / width
    usual = math.isfinite(scale) and scale > 0
    # Otherwise, as device_histograms: a division, by halves past float's range.
    factor = 0.5 if math.isinf(width) else 1.0
    origin, span = first * factor, last * factor - first * factor
    counts = row[_HEADER:]
    total = squares = 0.0
    for start in range(0, values.size, scratch.size):
        chunk = values[start : start + scratch.size]
        x, i = scratch[: chunk.size], index[: chunk.size]
        if usual:
            np.subtract(chunk, first, out=x)
            np.multiply(x, scale, out=x)
        else:
            np.multiply(chunk, factor, out=x)
            np.subtract(x, origin, out=x)
            np.divide(x, span, out=x)
            np.multiply(x, bins, out=x)
        np.floor(x, out=x)
        np.clip(x, 0, bins - 1, out=x)
        np.copyto(i, x, casting="unsafe")
        counts += np.bincount(i, minlength=bins)
        total += float(chunk.sum())
        squares += float(np.dot(chunk, chunk))
    row[[0, 1, 2, 4, 5, 6, 7]] = first, last, values.size, total, squares, lo, hi


def _flat_values(tensors: Sequence[torch.Tensor], bins: int) -> list[torch.Tensor]:
    """Each tensor's stored values, flat and detached; refuses what cannot be binned."""
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    flats = [stored_values(t).detach().reshape(-1) for t in tensors]
    if any(f.numel() == 0 for f in flats):
        raise ValueError("cannot compute the histogram of an empty tensor")
    return flats


_segment_cache: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}


def _segments(sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The row index of every element; cached, as ``watch`` bins the same shapes each time."""
    if len(sizes) == 1:  # a stride-0 view: no memory, and nothing to cache
        return torch.zeros((), dtype=torch.long, device=device).expand(sizes[0])
    key = (sizes, device)
    segment = _segment_cache.get(key)
    if segment is None:
        if len(_segment_cache) > 64:
            _segment_cache.clear()
        # Filled on the device: a copy from the host would wait for the device's queue.
        parts = [torch.full((n,), i, dtype=torch.long, device=device) for i, n in enumerate(sizes)]
        segment = _segment_cache[key] = torch.cat(parts)
    return segment


def unpack_histogram(
    packed: torch.Tensor | Sequence[float], key: str, step: int, timestamp: int
) -> HistogramStats:
    """The host-side record of a ``device_histogram`` result (this is where it is copied)."""
    host = packed.cpu().tolist() if isinstance(packed, torch.Tensor) else list(packed)
    return _record(host, key, step, timestamp)


def unpack_histograms(
    packed: torch.Tensor | HostSnapshot, keys: Sequence[str], step: int, timestamp: int
) -> list[HistogramStats]:
    """The records of a ``histogram_rows`` result: one copy to the host for all rows."""
    if isinstance(packed, HostSnapshot):
        packed = packed.packed()
    rows: list[list[float]] = packed.cpu().tolist()
    return [_record(row, key, step, timestamp) for row, key in zip(rows, keys, strict=True)]


def _record(host: list[float], key: str, step: int, timestamp: int) -> HistogramStats:
    first, last, num, nonfinite, total, squares, lo, hi = host[:_HEADER]
    counts = host[_HEADER:]
    if math.isinf(last - first):  # a range past float's limit: linspace's edges are NaN
        edges = (np.linspace(first * 0.5, last * 0.5, len(counts) + 1) * 2.0).tolist()
    else:
        edges = np.linspace(first, last, len(counts) + 1).tolist()
    return HistogramStats(
        key, step, timestamp, edges, counts, int(num), int(nonfinite), lo, hi, total, squares
    )

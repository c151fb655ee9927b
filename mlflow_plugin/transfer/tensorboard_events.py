"""Reading a TensorBoard log directory: one ``EventRun`` per folder holding event files.

Built on TensorBoard's own ``EventAccumulator`` (every event kept, no sampling). Both
summary styles are understood: TF1/PyTorch (``simple_value``, ``histo``, ``image``)
and TF2 tensors tagged with their plugin (``scalars``, ``histograms``, ``images``,
``text``). Hyperparameters are the HParams plugin's ``session_start_info``, which
``SummaryWriter.add_hparams`` writes into a sub-folder of its own (so that folder is
a run of its own, as TensorBoard shows it).

Needs the ``tensorboard`` package (the ``tensorboard`` extra), never PyTorch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EVENT_FILE_MARKER",
    "EventRun",
    "HistogramPoint",
    "ImagePoint",
    "ScalarPoint",
    "TextPoint",
    "find_run_dirs",
    "iter_runs",
    "read_run",
]

EVENT_FILE_MARKER = "tfevents"
_TEXT_SUFFIX = "/text_summary"  # PyTorch's add_text appends it to the tag


@dataclass(frozen=True)
class ScalarPoint:
    tag: str
    step: int
    wall_time: float
    value: float


@dataclass(frozen=True)
class HistogramPoint:
    """One histogram: ``edges`` has one more entry than ``counts``."""

    tag: str
    step: int
    wall_time: float
    edges: list[float]
    counts: list[float]
    num: float
    min: float
    max: float
    sum: float
    sum_squares: float


@dataclass(frozen=True)
class ImagePoint:
    tag: str
    step: int
    wall_time: float
    encoded: bytes  # PNG (or whatever the writer encoded), as stored


@dataclass(frozen=True)
class TextPoint:
    tag: str
    step: int
    wall_time: float
    text: str


@dataclass
class EventRun:
    """Everything one event folder holds."""

    folder: Path
    relative: str  # "." for the log directory itself
    scalars: list[ScalarPoint] = field(default_factory=list)
    histograms: list[HistogramPoint] = field(default_factory=list)
    images: list[ImagePoint] = field(default_factory=list)
    texts: list[TextPoint] = field(default_factory=list)
    hparams: dict[str, str] = field(default_factory=dict)
    first_wall_time: float | None = None
    last_wall_time: float | None = None

    def _saw(self, wall_time: float) -> None:
        if self.first_wall_time is None or wall_time < self.first_wall_time:
            self.first_wall_time = wall_time
        if self.last_wall_time is None or wall_time > self.last_wall_time:
            self.last_wall_time = wall_time


def find_run_dirs(logdir: str | os.PathLike[str]) -> list[Path]:
    """Folders under ``logdir`` (itself included) holding event files, parents first."""
    root = Path(logdir)
    found = {
        Path(folder)
        for folder, _, files in os.walk(root)
        if any(EVENT_FILE_MARKER in name for name in files)
    }
    return sorted(found, key=lambda path: (len(path.relative_to(root).parts), str(path)))


def _accumulator(folder: Path) -> Any:
    from tensorboard.backend.event_processing import event_accumulator as ea

    keep_everything = {
        ea.SCALARS: 0,
        ea.HISTOGRAMS: 0,
        ea.COMPRESSED_HISTOGRAMS: 0,
        ea.IMAGES: 0,
        ea.TENSORS: 0,
        ea.AUDIO: 0,
    }
    accumulator = ea.EventAccumulator(str(folder), size_guidance=keep_everything)
    accumulator.Reload()
    return accumulator


def read_run(logdir: str | os.PathLike[str], folder: Path) -> EventRun:
    """Read one event folder (only its own files, not its sub-folders')."""
    relative = folder.relative_to(Path(logdir)).as_posix()
    run = EventRun(folder=folder, relative=relative)
    accumulator = _accumulator(folder)
    tags = accumulator.Tags()
    for tag in tags.get("scalars", []):
        for event in accumulator.Scalars(tag):
            run.scalars.append(ScalarPoint(tag, int(event.step), event.wall_time, event.value))
            run._saw(event.wall_time)
    for tag in tags.get("histograms", []):
        for event in accumulator.Histograms(tag):
            run.histograms.append(_v1_histogram(tag, event))
            run._saw(event.wall_time)
    for tag in tags.get("images", []):
        for event in accumulator.Images(tag):
            encoded = bytes(event.encoded_image_string)
            run.images.append(ImagePoint(tag, int(event.step), event.wall_time, encoded))
            run._saw(event.wall_time)
    for tag in tags.get("tensors", []):
        plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        for event in accumulator.Tensors(tag):
            _add_tensor(run, plugin, tag, event)
    run.hparams = _hparams(accumulator)
    return run


def _v1_histogram(tag: str, event: Any) -> HistogramPoint:
    """A ``HistogramProto``: counts per bucket and each bucket's right limit.

    As TensorBoard's own conversion does, the first bucket starts at ``min`` and the
    last ends at ``max``; limits outside [min, max] (TF's +-DBL_MAX guards) are clamped.
    """
    value = event.histogram_value
    counts = [float(c) for c in value.bucket]
    limits = [float(b) for b in value.bucket_limit]
    lo, hi = float(value.min), float(value.max)
    edges = [lo, *limits[:-1], hi] if counts else [lo, hi]
    clamped: list[float] = []
    for edge in edges:
        edge = min(max(edge, lo), hi)
        clamped.append(max(edge, clamped[-1]) if clamped else edge)
    return HistogramPoint(
        tag,
        int(event.step),
        event.wall_time,
        clamped,
        counts or [0.0],
        float(value.num),
        lo,
        hi,
        float(value.sum),
        float(value.sum_squares),
    )


def _add_tensor(run: EventRun, plugin: str, tag: str, event: Any) -> None:
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(event.tensor_proto)
    step, wall_time = int(event.step), event.wall_time
    if plugin == "scalars":
        run.scalars.append(ScalarPoint(tag, step, wall_time, float(array.item())))
    elif plugin == "text":
        name = tag.removesuffix(_TEXT_SUFFIX)
        items = [array.item()] if array.ndim == 0 else list(array.reshape(-1))
        text = "\n\n".join(_decode(item) for item in items)
        run.texts.append(TextPoint(name, step, wall_time, text))
    elif plugin == "images" and array.ndim == 1 and array.size >= 3:
        # TF2 image summaries: [width, height, encoded image, ...]; the first image is kept.
        run.images.append(ImagePoint(tag, step, wall_time, bytes(array[2])))
    elif plugin == "histograms" and array.ndim == 2 and array.shape[1] == 3 and len(array):
        # TF2 histograms: rows of (left edge, right edge, count).
        lefts, rights, counts = (array[:, i].astype(float).tolist() for i in range(3))
        centers = [(a + b) / 2 for a, b in zip(lefts, rights, strict=True)]
        total = float(sum(counts))
        run.histograms.append(
            HistogramPoint(
                tag,
                step,
                wall_time,
                [lefts[0], *rights],
                counts,
                total,
                lefts[0],
                rights[-1],
                sum(c * x for c, x in zip(counts, centers, strict=True)),
                sum(c * x * x for c, x in zip(counts, centers, strict=True)),
            )
        )
    else:
        return  # audio, PR curves, meshes...: not imported
    run._saw(wall_time)


def _decode(item: object) -> str:
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def _hparams(accumulator: Any) -> dict[str, str]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    found: dict[str, str] = {}
    try:
        contents = accumulator.PluginTagToContent("hparams")
    except KeyError:  # no HParams data in this folder
        return found
    for content in contents.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.WhichOneof("data") != "session_start_info":
            continue
        for name, value in data.session_start_info.hparams.items():
            found[name] = _hparam_text(value)
    return found


def _hparam_text(value: Any) -> str:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = float(value.number_value)
        # TensorBoard stores every number as a double: 32 comes back as 32.0.
        return str(int(number)) if number.is_integer() else repr(number)
    if kind == "bool_value":
        return str(bool(value.bool_value))
    if kind == "string_value":
        return str(value.string_value)
    return ""


def iter_runs(logdir: str | os.PathLike[str]) -> Iterator[EventRun]:
    """``read_run`` for every folder ``find_run_dirs`` finds."""
    for folder in find_run_dirs(logdir):
        yield read_run(logdir, folder)

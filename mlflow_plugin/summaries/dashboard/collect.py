"""What a run logged, read back through MLflow's client, as the dashboard's JSON data.

Each folder the helpers write (``histograms/``, ``model_graph/``, ``pr_curves/``,
``embeddings/``, ``text/``) is downloaded once into a scratch folder and parsed there;
``images/`` is only listed (the page links the step pictures by artifact path). Long
runs stay bounded: each series keeps at most ``LIMITS`` steps, picked by ``reservoir``.

The page is derived data, so a damaged file (a truncated raw-bin chunk, a line that is
not JSON, a graph text in another form) costs only what it holds: it is left out, named
in ``data["damaged"]``, and everything else is still shown.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlflow_plugin.summaries.dashboard.series import (
    encode_histogram,
    graph_from_text,
    histogram_bands,
    pca,
    reservoir,
)
from mlflow_plugin.summaries.histograms import HistogramStats, stats_from_json

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["LIMITS", "collect"]

#: Steps kept per series (TensorBoard's reservoir sizes: 500 histograms, 100 PR curves),
#: points per embedding, and the largest sprite inlined.
LIMITS = {
    "histogram_steps": 500,
    "pr_curve_steps": 100,
    "text_steps": 100,
    "image_steps": 100,
    "embedding_points": 5000,
    "sprite_bytes": 1_000_000,
}
_FOLDERS = ("histograms", "model_graph", "pr_curves", "embeddings", "text")
# step-<n:09d>: a negative step is written "step--00000001"
_STEP_FILE = re.compile(r"^step-(-?\d+)")
_STEP_AND_TIME = re.compile(r'"step": (-?\d+), "timestamp": (-?\d+)')
# What a damaged file raises when it is parsed (json's errors are ValueErrors).
_DAMAGE = (ValueError, TypeError, KeyError, IndexError, AttributeError)
# images/<key with / as ~>+step+<n>+timestamp+<ms>+<uuid>.png (MlflowClient.log_image)
_IMAGE = re.compile(r"^(.+)\+step\+(-?\d+)\+timestamp\+\d+\+[^+]+\.png$")


def collect(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The dashboard's data for ``run_id``: one entry per kind of record the run holds."""
    top = {entry.path: entry.is_dir for entry in client.list_artifacts(run_id)}
    data: dict[str, Any] = {"run": {"id": run_id}, "limits": LIMITS, "damaged": []}
    if not any(top.get(folder) for folder in (*_FOLDERS, "images")):
        return data  # only scalars (the common flush): one listing, nothing more
    run = client.get_run(run_id)
    data["run"] |= {"name": run.info.run_name, "experiment_id": run.info.experiment_id}
    with tempfile.TemporaryDirectory(prefix="mlflow-dashboard-") as scratch:
        root = Path(scratch)
        for folder in _FOLDERS:
            if top.get(folder):
                client.download_artifacts(run_id, folder, str(root))
        damaged: list[str] = data["damaged"]
        data["histograms"] = _histograms(root / "histograms", damaged)
        data["graph"] = _graph(root / "model_graph", damaged)
        data["pr_curves"] = _each(root / "pr_curves", "step-*.json", _pr_curve, damaged)
        data["embeddings"] = _each(root / "embeddings", "tensors.tsv", _embedding, damaged)
        data["text"] = _each(root / "text", "step-*.md", _text, damaged)
    data["images"] = _images(client, run_id) if top.get("images") else []
    return data


def _by_tag(folder: Path, pattern: str) -> Iterator[tuple[str, list[Path]]]:
    """Files matching ``pattern`` grouped by their parent folder relative to ``folder``."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob(pattern)) if folder.is_dir() else []:
        groups.setdefault(path.parent.relative_to(folder).as_posix(), []).append(path)
    yield from sorted(groups.items())


def _each(
    folder: Path,
    pattern: str,
    build: Callable[[str, list[Path]], dict[str, Any]],
    damaged: list[str],
) -> list[dict[str, Any]]:
    """``build(tag, files)`` for each tag of ``folder``; a tag whose files are damaged is
    left out and named in ``damaged``."""
    result = []
    for tag, files in _by_tag(folder, pattern):
        try:
            result.append(build(tag, files))
        except _DAMAGE as exc:
            damaged.append(f"{folder.name}/{tag}: {type(exc).__name__}: {exc}")
    return result


def _histograms(folder: Path, damaged: list[str]) -> list[dict[str, Any]]:
    def build(tag: str, files: list[Path]) -> dict[str, Any]:
        lines = [line for f in files for line in f.read_text().splitlines() if line]
        # Order by (step, timestamp) read cheaply; only the kept lines are decoded.
        ordered = [(at, line) for line in lines if (at := _step_and_time(line))]
        ordered.sort(key=lambda pair: pair[0])
        kept = reservoir([line for _, line in ordered], LIMITS["histogram_steps"])
        records = [r for r in map(_histogram_record, kept) if r is not None]
        unreadable = len(lines) - len(ordered) + len(kept) - len(records)
        if unreadable:  # a truncated chunk's last line, say: the other steps still show
            damaged.append(f"histograms/{tag}: {unreadable} unreadable line(s) left out")
        if not records:
            raise ValueError("no readable histogram record")
        return {
            "key": records[0].key,
            "folder": f"histograms/{tag}",
            "total_steps": len(ordered),
            "steps": [encode_histogram(r) for r in records],
            "bands": histogram_bands(records),
        }

    return _each(folder, "*.jsonl", build, damaged)


def _histogram_record(line: str) -> HistogramStats | None:
    """The record of a raw-bin line; None for a damaged one."""
    try:
        stats = stats_from_json(line)
    except _DAMAGE:
        return None
    return stats if len(stats.edges) == len(stats.counts) + 1 and stats.counts else None


def _step_and_time(line: str) -> tuple[int, int] | None:
    """A raw-bin record's (step, timestamp), by pattern: decoding every line of a long run
    costs seconds (``HistogramStats.to_json`` writes them in this order). None for a line
    that holds neither."""
    match = _STEP_AND_TIME.search(line)
    if match:
        return int(match.group(1)), int(match.group(2))
    try:
        record = json.loads(line)
        return int(record["step"]), int(record["timestamp"])
    except _DAMAGE:
        return None


def _graph(folder: Path, damaged: list[str]) -> dict[str, Any] | None:
    text = folder / "graph.txt"
    if not text.is_file():
        return None
    summary = folder / "summary.txt"
    try:
        return graph_from_text(text.read_text(), summary.read_text() if summary.is_file() else "")
    except _DAMAGE as exc:
        damaged.append(f"model_graph/graph.txt: {type(exc).__name__}: {exc}")
        return None


def _step_of(path: Path) -> int:
    match = _STEP_FILE.match(path.name)
    return int(match.group(1)) if match else 0


def _pr_curve(tag: str, files: list[Path]) -> dict[str, Any]:
    files.sort(key=_step_of)
    steps = []
    for path in reservoir(files, LIMITS["pr_curve_steps"]):
        curve = json.loads(path.read_text())
        steps.append(
            {"step": _step_of(path)}
            | {k: [round(v, 6) for v in curve[k]] for k in ("precision", "recall", "thresholds")}
        )
    return {"tag": tag, "total_steps": len(files), "steps": steps}


def _text(tag: str, files: list[Path]) -> dict[str, Any]:
    files.sort(key=_step_of)
    kept = reservoir(files, LIMITS["text_steps"])
    steps = [{"step": _step_of(p), "text": p.read_text()} for p in kept]
    return {"tag": tag, "total_steps": len(files), "steps": steps}


def _embedding(where: str, files: list[Path]) -> dict[str, Any]:
    tag, _, step = where.rpartition("/")
    rows = [line.split("\t") for line in files[0].read_text().splitlines() if line]
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    keep = reservoir(list(range(len(matrix))), LIMITS["embedding_points"])
    header, labels = _metadata(files[0].parent / "metadata.tsv", len(matrix))
    return {
        "tag": tag,
        "step": int(step) if re.fullmatch(r"-?\d+", step) else 0,
        "total_points": len(matrix),
        "dimensions": int(matrix.shape[1]),
        "index": keep,
        "points": pca(matrix[keep]),
        "header": header,
        "labels": [labels[i] for i in keep] if labels else [],
        "sprite": _sprite(files[0].parent / "sprite.png"),
    }


def _metadata(path: Path, count: int) -> tuple[list[str], list[list[str]]]:
    """The header (empty when there is none) and the rows of ``metadata.tsv``."""
    if not path.is_file():
        return [], []
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    if len(rows) < count:  # damaged, or not one row per point: no labels rather than wrong ones
        return [], []
    if len(rows) == count + 1:  # TensorBoard writes a header only for several columns
        return rows[0], rows[1:]
    return [], rows[:count]


def _sprite(path: Path) -> str | None:
    if not path.is_file() or path.stat().st_size > LIMITS["sprite_bytes"]:
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _images(client: MlflowClient, run_id: str) -> list[dict[str, Any]]:
    series: dict[str, list[tuple[int, str]]] = {}
    for entry in client.list_artifacts(run_id, "images"):
        match = _IMAGE.match(entry.path.rpartition("/")[2])
        if match and not entry.is_dir:
            series.setdefault(match.group(1).replace("~", "/"), []).append(
                (int(match.group(2)), entry.path)
            )
    result = []
    for key, steps in sorted(series.items()):
        steps.sort()
        kept = reservoir(steps, LIMITS["image_steps"])
        result.append(
            {"key": key, "total_steps": len(steps),
             "steps": [{"step": s, "path": p} for s, p in kept]}
        )  # fmt: skip
    return result

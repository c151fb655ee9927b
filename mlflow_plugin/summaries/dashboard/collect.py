"""What a run logged, read back through MLflow's client, as the dashboard's JSON data.

Each folder the helpers write (``histograms/``, ``model_graph/``, ``pr_curves/``,
``embeddings/``, ``text/``) is downloaded once into a scratch folder and parsed there;
``images/`` is only listed (the page links the step pictures by artifact path). Long
runs stay bounded: each series keeps at most ``LIMITS`` steps, picked by ``reservoir``.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Iterator
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
from mlflow_plugin.summaries.histograms import stats_from_json

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
_STEP_FILE = re.compile(r"^step-(\d+)")
_STEP_AND_TIME = re.compile(r'"step": (-?\d+), "timestamp": (-?\d+)')
# images/<key with / as ~>+step+<n>+timestamp+<ms>+<uuid>.png (MlflowClient.log_image)
_IMAGE = re.compile(r"^(.+)\+step\+(-?\d+)\+timestamp\+\d+\+[^+]+\.png$")


def collect(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The dashboard's data for ``run_id``: one entry per kind of record the run holds."""
    top = {entry.path: entry.is_dir for entry in client.list_artifacts(run_id)}
    data: dict[str, Any] = {"run": {"id": run_id}, "limits": LIMITS}
    if not any(top.get(folder) for folder in (*_FOLDERS, "images")):
        return data  # only scalars (the common flush): one listing, nothing more
    run = client.get_run(run_id)
    data["run"] |= {"name": run.info.run_name, "experiment_id": run.info.experiment_id}
    with tempfile.TemporaryDirectory(prefix="mlflow-dashboard-") as scratch:
        root = Path(scratch)
        for folder in _FOLDERS:
            if top.get(folder):
                client.download_artifacts(run_id, folder, str(root))
        data["histograms"] = _histograms(root / "histograms")
        data["graph"] = _graph(root / "model_graph")
        data["pr_curves"] = _pr_curves(root / "pr_curves")
        data["embeddings"] = _embeddings(root / "embeddings")
        data["text"] = _texts(root / "text")
    data["images"] = _images(client, run_id) if top.get("images") else []
    return data


def _by_tag(folder: Path, pattern: str) -> Iterator[tuple[str, list[Path]]]:
    """Files matching ``pattern`` grouped by their parent folder relative to ``folder``."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob(pattern)) if folder.is_dir() else []:
        groups.setdefault(path.parent.relative_to(folder).as_posix(), []).append(path)
    yield from sorted(groups.items())


def _histograms(folder: Path) -> list[dict[str, Any]]:
    result = []
    for tag, files in _by_tag(folder, "*.jsonl"):
        lines = [line for f in files for line in f.read_text().splitlines() if line]
        # Order by (step, timestamp) read cheaply; only the kept lines are decoded.
        lines.sort(key=_step_and_time)
        records = [stats_from_json(line) for line in reservoir(lines, LIMITS["histogram_steps"])]
        result.append(
            {
                "key": records[0].key,
                "folder": f"histograms/{tag}",
                "total_steps": len(lines),
                "steps": [encode_histogram(r) for r in records],
                "bands": histogram_bands(records),
            }
        )
    return result


def _step_and_time(line: str) -> tuple[int, int]:
    """A raw-bin record's (step, timestamp), by pattern: decoding every line of a long run
    costs seconds (``HistogramStats.to_json`` writes them in this order)."""
    match = _STEP_AND_TIME.search(line)
    if match:
        return int(match.group(1)), int(match.group(2))
    record = json.loads(line)
    return int(record["step"]), int(record["timestamp"])


def _graph(folder: Path) -> dict[str, Any] | None:
    text = folder / "graph.txt"
    if not text.is_file():
        return None
    summary = folder / "summary.txt"
    return graph_from_text(text.read_text(), summary.read_text() if summary.is_file() else "")


def _step_of(path: Path) -> int:
    match = _STEP_FILE.match(path.name)
    return int(match.group(1)) if match else 0


def _pr_curves(folder: Path) -> list[dict[str, Any]]:
    result = []
    for tag, files in _by_tag(folder, "step-*.json"):
        files.sort(key=_step_of)
        steps = []
        for path in reservoir(files, LIMITS["pr_curve_steps"]):
            curve = json.loads(path.read_text())
            steps.append(
                {"step": _step_of(path)}
                | {
                    k: [round(v, 6) for v in curve[k]]
                    for k in ("precision", "recall", "thresholds")
                }
            )
        result.append({"tag": tag, "total_steps": len(files), "steps": steps})
    return result


def _texts(folder: Path) -> list[dict[str, Any]]:
    result = []
    for tag, files in _by_tag(folder, "step-*.md"):
        files.sort(key=_step_of)
        kept = reservoir(files, LIMITS["text_steps"])
        steps = [{"step": _step_of(p), "text": p.read_text()} for p in kept]
        result.append({"tag": tag, "total_steps": len(files), "steps": steps})
    return result


def _embeddings(folder: Path) -> list[dict[str, Any]]:
    result = []
    for where, files in _by_tag(folder, "tensors.tsv"):
        tag, _, step = where.rpartition("/")
        rows = [line.split("\t") for line in files[0].read_text().splitlines() if line]
        matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        keep = reservoir(list(range(len(matrix))), LIMITS["embedding_points"])
        header, labels = _metadata(files[0].parent / "metadata.tsv", len(matrix))
        result.append(
            {
                "tag": tag,
                "step": int(step) if step.isdigit() else 0,
                "total_points": len(matrix),
                "dimensions": int(matrix.shape[1]),
                "index": keep,
                "points": pca(matrix[keep]),
                "header": header,
                "labels": [labels[i] for i in keep] if labels else [],
                "sprite": _sprite(files[0].parent / "sprite.png"),
            }
        )
    return result


def _metadata(path: Path, count: int) -> tuple[list[str], list[list[str]]]:
    """The header (empty when there is none) and the rows of ``metadata.tsv``."""
    if not path.is_file():
        return [], []
    rows = [line.split("\t") for line in path.read_text().splitlines()]
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

"""Pure builders for TensorBoard's less common records: PR curves, meshes, embeddings.

Each returns plain data or text; ``mlflow_plugin.torch.records`` decides where it is stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["embedding_files", "pr_curve", "ply_text", "render_mesh", "render_pr_curve"]


def pr_curve(
    labels: np.ndarray, predictions: np.ndarray, num_thresholds: int = 127, weights: Any = None
) -> dict[str, list[float]]:
    """TensorBoard's PR curve: counts and precision/recall at evenly spaced thresholds.

    >>> curve = pr_curve(np.array([1, 0]), np.array([0.9, 0.2]), num_thresholds=3)
    >>> curve["precision"], curve["recall"]
    ([0.5, 1.0, 1.0], [1.0, 1.0, 0.0])
    """
    labels = np.asarray(labels).reshape(-1).astype(bool)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if predictions.size and (predictions.min() < 0 or predictions.max() > 1):
        raise ValueError("add_pr_curve: predictions must lie in [0, 1]")
    weight = (
        np.ones_like(predictions)
        if weights is None
        else np.asarray(weights, np.float64).reshape(-1)
    )
    buckets = np.floor(predictions * (num_thresholds - 1)).astype(np.int64)
    tp_hist = np.bincount(buckets, weights=weight * labels, minlength=num_thresholds)
    fp_hist = np.bincount(buckets, weights=weight * ~labels, minlength=num_thresholds)
    # Counts at threshold t: everything in bucket >= t is predicted positive.
    tp = np.cumsum(tp_hist[::-1])[::-1]
    fp = np.cumsum(fp_hist[::-1])[::-1]
    tn, fn = fp[0] - fp, tp[0] - tp
    precision = tp / np.maximum(tp + fp, 1e-12)
    precision[(tp + fp) == 0] = 1.0
    recall = tp / np.maximum(tp + fn, 1e-12)
    return {
        "thresholds": np.linspace(0, 1, num_thresholds).tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "true_positives": tp.tolist(),
        "false_positives": fp.tolist(),
        "true_negatives": tn.tolist(),
        "false_negatives": fn.tolist(),
    }


def render_pr_curve(curve: dict[str, list[float]], title: str) -> Any:
    """A matplotlib Figure of precision against recall."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 4), dpi=100)
    axes = figure.add_subplot()
    axes.plot(curve["recall"], curve["precision"], color="#ef6c00")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title=title)
    figure.tight_layout()
    return figure


def ply_text(vertices: np.ndarray, faces: np.ndarray | None, colors: np.ndarray | None) -> str:
    """An ASCII PLY file (vertices (N, 3), faces (F, 3) ints, colors (N, 3) uint8)."""
    head = ["ply", "format ascii 1.0", f"element vertex {len(vertices)}"]
    head += ["property float x", "property float y", "property float z"]
    if colors is not None:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
    if faces is not None:
        head += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    lines = [*head, "end_header"]
    for i, (x, y, z) in enumerate(vertices.tolist()):
        color = "" if colors is None else " " + " ".join(str(int(c)) for c in colors[i][:3])
        lines.append(f"{x:.6g} {y:.6g} {z:.6g}{color}")
    for face in [] if faces is None else faces.tolist():
        lines.append(f"{len(face)} " + " ".join(str(int(v)) for v in face))
    return "\n".join(lines) + "\n"


def render_mesh(vertices: np.ndarray, faces: np.ndarray | None, colors: np.ndarray | None) -> Any:
    """A matplotlib Figure of the mesh (triangles) or point cloud in 3D."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot(projection="3d")
    rgb = None if colors is None else colors[:, :3] / 255.0
    if faces is not None and len(faces):
        from mpl_toolkits.mplot3d.art3d import Poly3DCollection

        polygons = vertices[faces]
        face_colors = None if rgb is None else rgb[faces].mean(axis=1)
        collection = Poly3DCollection(
            polygons, facecolors=face_colors, edgecolor="#455a64", linewidths=0.2
        )
        if face_colors is None:
            collection.set_facecolor("#ffcc80")
        axes.add_collection3d(collection)
    else:
        axes.scatter(vertices[:, 0], vertices[:, 1], vertices[:, 2], c=rgb, s=4)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    axes.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), zlim=(low[2], high[2]))
    figure.tight_layout()
    return figure


def embedding_files(
    mat: np.ndarray, metadata: list[Any] | None, metadata_header: list[str] | None
) -> dict[str, str]:
    """``tensors.tsv`` and ``metadata.tsv`` as the Embedding Projector loads them."""
    files = {
        "tensors.tsv": "\n".join("\t".join(f"{v:.6g}" for v in row) for row in mat.tolist()) + "\n"
    }
    if metadata is not None:
        if len(metadata) != len(mat):
            raise ValueError(f"add_embedding: {len(metadata)} metadata rows for {len(mat)} vectors")
        rows = ["\t".join(map(str, r)) if isinstance(r, list | tuple) else str(r) for r in metadata]
        if metadata_header is not None:
            rows.insert(0, "\t".join(metadata_header))
        files["metadata.tsv"] = "\n".join(rows) + "\n"
    return files

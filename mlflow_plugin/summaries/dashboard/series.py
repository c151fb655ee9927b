"""Pure pieces of the dashboard's data: step sampling, histogram encoding, bands, PCA, graphs.

Every function here maps plain data to plain JSON-ready data; ``collect`` reads the run
and ``render`` writes the page. Nothing here touches MLflow or torch.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from mlflow_plugin.summaries.histograms import HistogramStats, percentiles

__all__ = [
    "decode_histogram",
    "encode_histogram",
    "graph_from_text",
    "histogram_bands",
    "pca",
    "reservoir",
]

T = TypeVar("T")


def reservoir(items: Sequence[T], limit: int, seed: int = 0) -> list[T]:
    """At most ``limit`` of ``items``, in order: the first and last always, the rest by a
    seeded reservoir (TensorBoard keeps a reservoir per tag the same way), so a long run
    shows its whole span at a bounded size and a rebuild picks the same steps.

    >>> reservoir(list(range(10)), 4)
    [0, 2, 6, 9]
    """
    if len(items) <= limit:
        return list(items)
    if limit < 2:
        return [items[-1]][:limit]
    inner = items[1:-1]
    chosen = list(range(limit - 2))
    rng = random.Random(seed)
    for i in range(limit - 2, len(inner)):
        slot = rng.randint(0, i)
        if slot < limit - 2:
            chosen[slot] = i
    return [items[0], *(inner[i] for i in sorted(chosen)), items[-1]]


def _number(value: float) -> float | int:
    """Integral floats as ints: counts are whole numbers, and ``3`` is a third of ``3.0``."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _uniform(edges: Sequence[float]) -> bool:
    """Edges that ``np.linspace(first, last, n)`` rebuilds exactly (device histograms)."""
    rebuilt = np.linspace(edges[0], edges[-1], len(edges)).tolist()
    return bool(rebuilt == list(edges))


def encode_histogram(stats: HistogramStats) -> dict[str, Any]:
    """One step of a histogram for the page; equal-width edges stored as their range only.

    ``decode_histogram`` gives back the record exactly (the golden test checks it).
    """
    record: dict[str, Any] = {
        "step": stats.step,
        "timestamp": stats.timestamp,
        "counts": [_number(c) for c in stats.counts],
        "num": stats.num,
        "nonfinite": stats.nonfinite,
        "min": stats.min,
        "max": stats.max,
        "sum": stats.sum,
        "sum_squares": stats.sum_squares,
    }
    if _uniform(stats.edges):
        record["range"] = [stats.edges[0], stats.edges[-1]]
    else:
        record["edges"] = list(stats.edges)
    return record


def decode_histogram(key: str, record: dict[str, Any]) -> HistogramStats:
    """The ``HistogramStats`` an ``encode_histogram`` record stands for."""
    counts = [float(c) for c in record["counts"]]
    if "edges" in record:
        edges = [float(e) for e in record["edges"]]
    else:
        first, last = record["range"]
        edges = np.linspace(first, last, len(counts) + 1).tolist()
    return HistogramStats(
        key, record["step"], record["timestamp"], edges, counts, record["num"],
        record["nonfinite"], record["min"], record["max"], record["sum"], record["sum_squares"],
    )  # fmt: skip


def histogram_bands(history: Sequence[HistogramStats]) -> dict[str, Any]:
    """TensorBoard's distribution bands over steps: ``{"steps": [...], "p0": [...], ...}``.

    Steps with no finite value have no bands and are left out.
    """
    steps: list[int] = []
    bands: dict[str, list[float]] = {}
    for stats in history:
        values = percentiles(stats)
        if not values:
            continue
        steps.append(stats.step)
        for name, value in values.items():
            bands.setdefault(name, []).append(value)
    return {"steps": steps, **bands}


def pca(matrix: np.ndarray, components: int = 3) -> list[list[float]]:
    """The rows of ``matrix`` projected on their first principal components (SVD).

    Fewer columns than ``components`` are padded with zeros, so the page always gets 3.
    """
    # JSON has no NaN: NaN and infinities count as 0, so one bad vector keeps the page.
    data = np.nan_to_num(np.asarray(matrix, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    centred = data - data.mean(axis=0, keepdims=True)
    if centred.shape[0] > 1 and centred.shape[1] > 0:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projected = centred @ vt[:components].T
    else:
        projected = np.zeros((data.shape[0], 0))
    if projected.shape[1] < components:
        projected = np.pad(projected, ((0, 0), (0, components - projected.shape[1])))
    scale = float(np.abs(projected).max()) or 1.0
    rounded: list[list[float]] = np.round(projected / scale, 5).tolist()
    return rounded


# %3 = layer1.conv (Conv2d)(%1) -> [1, 8, 8, 8]   (graphs.render_text)
_NODE = re.compile(r"^%(\d+) = (.+?)\(((?:%\d+(?:, )?)*)\) -> (.*)$")
_MODULE = re.compile(r"^(\S+) \((\S+)\)$")


def _summary_params(summary: str) -> list[int]:
    """Parameter counts of the module rows of ``summary.txt``, in graph order."""
    lines = summary.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    if len(rules) < 3:
        return []
    rows = lines[rules[1] + 1 : rules[2]]
    try:
        return [int(row.split()[-1].replace(",", "")) for row in rows if row.strip()]
    except ValueError:  # a summary in another form: the graph is shown without counts
        return []


def graph_from_text(text: str, summary: str = "") -> dict[str, Any]:
    """The model graph of ``graph.txt`` (and parameter counts of ``summary.txt``) as nodes
    with a module path each, so the page can fold them by module.

    A function call (``add``, ``flatten``) records no module: it is placed in the deepest
    module holding the module calls just before and after it (a residual ``add`` lands in
    its block).
    """
    nodes: list[dict[str, Any]] = []
    head = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    for line in text.splitlines():
        match = _NODE.match(line)
        if not match:
            continue
        index, what, inputs, shape = match.groups()
        module = _MODULE.match(what)
        name, op = (module.group(1), module.group(2)) if module else (what, what)
        kind = (
            "module" if module else "input" if not nodes and op.startswith("input") else "function"
        )
        nodes.append(
            {"name": name, "op": op, "kind": kind, "shape": shape, "params": 0,
             "inputs": [int(i) for i in re.findall(r"%(\d+)", inputs)], "index": int(index)}
        )  # fmt: skip
    if nodes and nodes[-1]["op"] == "output":
        nodes[-1]["kind"] = "output"
    for node in nodes:
        if node["op"] == "input" and not node["inputs"]:
            node["kind"] = "input"
    modules = [n for n in nodes if n["kind"] == "module"]
    for node, params in zip(modules, _summary_params(summary), strict=False):
        node["params"] = params
    _place_functions(nodes)
    return {"title": head[0] if head else "", "note": head[1] if len(head) > 1 else "",
            "nodes": nodes}  # fmt: skip


def _place_functions(nodes: list[dict[str, Any]]) -> None:
    # Nodes are in execution order, so a function call runs inside the forward() of the
    # modules called just before and just after it: it goes in the deepest one holding both.
    paths: list[list[str] | None] = []
    for n in nodes:
        if n["kind"] == "module":
            n["group"] = n["name"].rsplit(".", 1)[0] if "." in n["name"] else ""
            paths.append(n["name"].split(".")[:-1])
        else:
            n["group"] = ""
            paths.append(None)
    for i, n in enumerate(nodes):
        if n["kind"] != "function":
            continue
        before = next((p for p in reversed(paths[:i]) if p is not None), None)
        after = next((p for p in paths[i + 1 :] if p is not None), None)
        around = [p for p in (before, after) if p is not None]
        n["group"] = ".".join(_common_prefix(around)) if len(around) == 2 else ""


def _common_prefix(paths: list[list[str]]) -> list[str]:
    """The leading module names all ``paths`` share (none for no paths)."""
    common = paths[0] if paths else []
    for path in paths[1:]:
        same = 0
        while same < min(len(common), len(path)) and common[same] == path[same]:
            same += 1
        common = common[:same]
    return common

"""Model graphs: record a forward pass, then write an SVG, a text form and a layer summary.

The recorder runs the example input through the model in eval mode under ``no_grad``
and notes every leaf module call (forward hooks) and every torch function called
outside a leaf module (a ``TorchFunctionMode``), linking each to the nodes that
produced its input tensors. Skip connections therefore appear as real edges, and a
model with data-dependent Python control flow still gets a graph: the path this
example input took. When ``torch.fx`` cannot trace the model symbolically, the text
form says so, so nobody mistakes that path for the whole program.

The SVG is drawn in pure Python (a layered top-to-bottom layout), so no Graphviz is
needed; the MLflow UI shows ``.svg`` artifacts as images.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

__all__ = [
    "GraphNode",
    "ModelGraph",
    "log_model_graph",
    "record_graph",
    "render_summary",
    "render_svg",
    "render_text",
]


@dataclass
class GraphNode:
    """One box of the graph: an input, a leaf module call, a function, or the output."""

    index: int
    kind: str  # "input" | "module" | "function" | "output"
    name: str
    op: str
    shape: str
    inputs: list[int] = field(default_factory=list)
    params: int = 0


@dataclass
class ModelGraph:
    """The recorded graph plus what the text form must tell the reader."""

    model_type: str
    nodes: list[GraphNode]
    total_params: int
    trainable_params: int
    note: str


def _shape(value: Any) -> str:
    tensors = [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    return ", ".join(str(list(t.shape)) for t in tensors) if tensors else "-"


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    if name == "__get__":  # a property such as Tensor.T
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name.strip("_") or name


class _Recorder(TorchFunctionMode):
    """Links tensors to the node that produced them while the model runs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.nodes: list[GraphNode] = []
        self.producer: dict[int, int] = {}
        self.keep: list[Any] = []  # holds every tensor seen, so no id() is reused meanwhile
        self.depth = 0
        self.names = {m: n for n, m in model.named_modules()}

    def node(self, kind: str, name: str, op: str, args: Any, output: Any, params: int = 0) -> None:
        inputs: list[int] = []
        for value in tree_flatten(args)[0]:
            source = self.producer.get(id(value)) if isinstance(value, torch.Tensor) else None
            if source is not None and source not in inputs:
                inputs.append(source)
        index = len(self.nodes)
        self.nodes.append(GraphNode(index, kind, name, op, _shape(output), inputs, params))
        for value in tree_flatten(output)[0]:
            if isinstance(value, torch.Tensor):
                self.producer[id(value)] = index
                self.keep.append(value)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        output = func(*args, **(kwargs or {}))
        if self.depth == 0:
            outputs = [v for v in tree_flatten(output)[0] if isinstance(v, torch.Tensor)]
            known = any(
                isinstance(v, torch.Tensor) and id(v) in self.producer
                for v in tree_flatten((args, kwargs))[0]
            )
            if outputs and known:
                op = _op_name(func)
                self.node("function", op, op, (args, kwargs), output)
        return output

    def pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        self.depth += 1

    def hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.depth -= 1
        if self.depth == 0:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            name = self.names.get(module, type(module).__name__)
            self.node("module", name, type(module).__name__, args, output, params)


def _leaves(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    for module in model.modules():
        if next(module.children(), None) is None and module is not model:
            yield module


def _fx_note(model: torch.nn.Module) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.fx.symbolic_trace(model)
    except Exception as exc:  # any failure means the same thing for the reader
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            "torch.fx could not trace this model symbolically "
            f"({type(exc).__name__}: {reason[:200]}); this graph is the path the example "
            "input took through its Python control flow, recorded while it ran."
        )
    return "Recorded from one forward pass of the example input (torch.fx traces it too)."


def record_graph(model: torch.nn.Module, example_input: Any) -> ModelGraph:
    """Run ``example_input`` through ``model`` (eval mode, no grad) and record the graph.

    >>> graph = record_graph(torch.nn.Sequential(torch.nn.Linear(4, 2)), torch.zeros(1, 4))
    >>> [(n.kind, n.op) for n in graph.nodes]
    [('input', 'input'), ('module', 'Linear'), ('output', 'output')]
    """
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    recorder = _Recorder(model)
    for i, value in enumerate(tree_flatten(args)[0]):
        if isinstance(value, torch.Tensor):
            recorder.node("input", f"input{i if i else ''}", "input", (), value)
    handles = []
    for module in _leaves(model):
        handles.append(module.register_forward_pre_hook(recorder.pre_hook))
        handles.append(module.register_forward_hook(recorder.hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), recorder:
            output = model(*args)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    recorder.node("output", "output", "output", output, output)
    recorder.nodes[-1].shape = _shape(output)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelGraph(type(model).__name__, recorder.nodes, total, trainable, _fx_note(model))


def render_text(graph: ModelGraph) -> str:
    """One line per node: ``%3 = layer1.conv (Conv2d)(%1) -> [1, 8, 8, 8]``."""
    lines = [f"# {graph.model_type}", f"# {graph.note}", ""]
    for n in graph.nodes:
        inputs = ", ".join(f"%{i}" for i in n.inputs)
        what = f"{n.name} ({n.op})" if n.kind == "module" else n.op
        lines.append(f"%{n.index} = {what}({inputs}) -> {n.shape}")
    return "\n".join(lines) + "\n"


def render_summary(graph: ModelGraph) -> str:
    """Keras-style layer table: name, type, output shape, params, then totals."""
    rows = [(n.name, n.op, n.shape, f"{n.params:,}") for n in graph.nodes if n.kind == "module"]
    header = ("layer", "type", "output shape", "params")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    rule = "-" * (sum(widths) + 6)

    def line(row: tuple[str, str, str, str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    frozen = graph.total_params - graph.trainable_params
    return "\n".join(
        [f"{graph.model_type}", rule, line(header), rule, *map(line, rows), rule,
         f"total params: {graph.total_params:,}", f"trainable params: {graph.trainable_params:,}",
         f"non-trainable params: {frozen:,}",
         f"parameter size: {graph.total_params * 4 / 2**20:.2f} MiB (float32)", ""]
    )  # fmt: skip


_COLORS = {"input": "#e3f2fd", "module": "#fff3e0", "function": "#f1f8e9", "output": "#e3f2fd"}


def render_svg(graph: ModelGraph) -> str:
    """A top-to-bottom layered drawing: layer = longest path from an input."""
    layer: dict[int, int] = {}
    for n in graph.nodes:  # nodes are recorded in execution order, so parents come first
        layer[n.index] = 1 + max((layer[i] for i in n.inputs), default=-1)
    rows: dict[int, list[GraphNode]] = {}
    for n in graph.nodes:
        rows.setdefault(layer[n.index], []).append(n)
    position: dict[int, float] = {}
    for depth in sorted(rows):  # order each row by its parents' mean position (barycentre)
        rows[depth].sort(
            key=lambda n: (
                sum(position[i] for i in n.inputs) / len(n.inputs) if n.inputs else n.index
            )
        )
        for rank, n in enumerate(rows[depth]):
            position[n.index] = rank
    char, box_h, gap_y, gap_x = 7.0, 36, 28, 24

    def label(n: GraphNode) -> tuple[str, str]:
        top = f"{n.name}: {n.op}" if n.kind == "module" else n.op
        return top, n.shape if not n.params else f"{n.shape}  ({n.params:,} params)"

    width_of = {n.index: max(90.0, char * max(map(len, label(n))) + 16) for n in graph.nodes}
    row_widths = {
        d: sum(width_of[n.index] for n in r) + gap_x * (len(r) - 1) for d, r in rows.items()
    }
    canvas_w = max(row_widths.values()) + 40
    xy: dict[int, tuple[float, float]] = {}
    for d, r in rows.items():
        x = (canvas_w - row_widths[d]) / 2
        for n in r:
            xy[n.index] = (x, 20 + d * (box_h + gap_y))
            x += width_of[n.index] + gap_x
    canvas_h = 40 + (max(rows) + 1) * (box_h + gap_y)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{canvas_w:.0f}" height="{canvas_h:.0f}" '
        f'viewBox="0 0 {canvas_w:.0f} {canvas_h:.0f}" font-family="monospace" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for n in graph.nodes:
        x2, y2 = xy[n.index]
        for i in n.inputs:
            x1, y1 = xy[i]
            sx, sy = x1 + width_of[i] / 2, y1 + box_h
            ex, ey = x2 + width_of[n.index] / 2, y2
            mid = (sy + ey) / 2
            out.append(
                f'<path d="M{sx:.1f},{sy:.1f} C{sx:.1f},{mid:.1f} {ex:.1f},{mid:.1f} '
                f'{ex:.1f},{ey:.1f}" fill="none" stroke="#555" stroke-width="1.2" '
                'marker-end="url(#arrow)"/>'
            )
    for n in graph.nodes:
        x, y = xy[n.index]
        top, bottom = (html.escape(s) for s in label(n))
        out.append(
            f'<g><title>{html.escape(n.name)}</title><rect x="{x:.1f}" y="{y:.1f}" '
            f'width="{width_of[n.index]:.1f}" height="{box_h}" rx="6" fill="{_COLORS[n.kind]}" '
            'stroke="#607d8b"/>'
            f'<text x="{x + 8:.1f}" y="{y + 15:.1f}" font-weight="bold">{top}</text>'
            f'<text x="{x + 8:.1f}" y="{y + 29:.1f}" fill="#455a64">{bottom}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def log_model_graph(
    model: torch.nn.Module,
    example_input: Any,
    artifact_path: str = "model_graph",
    *,
    run_id: str | None = None,
) -> ModelGraph:
    """Log ``graph.svg``, ``graph.txt`` and ``summary.txt`` under ``artifact_path``.

    >>> from mlflow_plugin.torch import log_model_graph
    >>> log_model_graph(model, torch.zeros(1, 1, 8, 8))  # doctest: +SKIP
    """
    from mlflow_plugin.torch.worker import current_target, get_worker

    graph = record_graph(model, example_input)
    worker = get_worker()
    worker.raise_pending()  # what background logging failed to do, before anything else
    target = current_target(run_id)
    client = worker.client(target.tracking_uri)
    folder = artifact_path.rstrip("/")
    client.log_text(target.run_id, render_svg(graph), f"{folder}/graph.svg")
    client.log_text(target.run_id, render_text(graph), f"{folder}/graph.txt")
    client.log_text(target.run_id, render_summary(graph), f"{folder}/summary.txt")
    return graph

"""Model graphs as data, and their three pictures: an SVG, a text form, a layer table.

Pure builders: ``mlflow_plugin.torch.graph.record_graph`` fills a ``ModelGraph`` from
one forward pass; these functions turn it into the text of ``graph.svg``,
``graph.txt`` and ``summary.txt``. The SVG is drawn in pure Python (a layered
top-to-bottom layout), so no Graphviz is needed; the MLflow UI shows ``.svg``
artifacts as images.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

__all__ = ["GraphNode", "ModelGraph", "render_summary", "render_svg", "render_text"]


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

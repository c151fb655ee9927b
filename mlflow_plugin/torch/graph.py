"""Model graphs: record a forward pass, then write an SVG, a text form and a layer summary.

The recorder runs the example input through the model in eval mode under ``no_grad``
and notes every leaf module call (forward hooks) and every torch function called
outside a leaf module (a ``TorchFunctionMode``), linking each to the nodes that
produced its input tensors. Skip connections therefore appear as real edges, and a
model with data-dependent Python control flow still gets a graph: the path this
example input took. When ``torch.fx`` cannot trace the model symbolically, the text
form says so, so nobody mistakes that path for the whole program.

The drawings are pure builders over the recorded ``ModelGraph``
(``mlflow_plugin.summaries.graphs``); this module records and logs.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from mlflow_plugin.summaries.graphs import (
    GraphNode,
    ModelGraph,
    render_summary,
    render_svg,
    render_text,
)
from mlflow_plugin.summaries.names import image_key

__all__ = [
    "GraphNode",
    "ModelGraph",
    "log_model_graph",
    "record_graph",
    "render_summary",
    "render_svg",
    "render_text",
]


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


def log_model_graph(
    model: torch.nn.Module,
    example_input: Any,
    artifact_path: str = "model_graph",
    *,
    run_id: str | None = None,
    keep_each: bool = False,
) -> ModelGraph:
    """Log ``graph.svg``, ``graph.txt`` and ``summary.txt`` under ``artifact_path``.

    ``keep_each`` also logs them under ``artifact_path/<n>-<ModelClass>/`` (n counts the
    run's graphs from 0), so a second graph does not replace the first
    (``SummaryWriter.add_graph``); ``artifact_path`` itself holds the latest.

    >>> from mlflow_plugin.torch import log_model_graph
    >>> log_model_graph(model, torch.zeros(1, 1, 8, 8))  # doctest: +SKIP
    """
    from mlflow_plugin.torch.distributed import describes_run
    from mlflow_plugin.torch.worker import current_target, get_worker

    if not describes_run():  # under torch.distributed: rank 0 describes the run
        return ModelGraph(type(model).__name__, [], 0, 0, "not recorded on this rank")
    graph = record_graph(model, example_input)
    worker = get_worker()
    worker.raise_pending()  # what background logging failed to do, before anything else
    target = current_target(run_id)
    client = worker.client(target.tracking_uri)
    folder = artifact_path.rstrip("/")
    folders = [folder]
    if keep_each:
        with _graphs_lock:
            number = _graphs_logged.get((target.run_id, folder), 0)
            _graphs_logged[(target.run_id, folder)] = number + 1
        folders.insert(0, f"{folder}/{number}-{image_key(graph.model_type)}")
    files = {
        "graph.svg": render_svg(graph),
        "graph.txt": render_text(graph),
        "summary.txt": render_summary(graph),
    }
    for place in folders:
        for name, text in files.items():
            client.log_text(target.run_id, text, f"{place}/{name}")
    return graph


# How many graphs each (run, folder) has kept, so the next one gets the next number.
_graphs_logged: dict[tuple[str, str], int] = {}
_graphs_lock = threading.Lock()

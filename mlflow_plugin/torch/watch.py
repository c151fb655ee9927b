"""W&B's ``watch``: gradient and parameter histograms and norms every ``log_freq`` steps.

A step is one training-mode forward pass of the model (W&B counts batches the same
way), unless the caller supplies a step (``autolog`` passes its optimizer step).
Gradients are read in ``post_accumulate_grad`` hooks, so they are the accumulated
``.grad`` of that step. Everything stays on the device until the worker copies bins.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Literal

import torch

from mlflow_plugin.torch.histogram_log import metric_prefix, queue_histogram
from mlflow_plugin.torch.histograms import device_histogram
from mlflow_plugin.torch.scalars import now_ms
from mlflow_plugin.torch.worker import RunTarget, current_target, get_worker

__all__ = [
    "Watch",
    "WatchWhat",
    "unwatch",
    "watch",
]

WatchWhat = Literal["gradients", "parameters", "all"]
_watched: weakref.WeakKeyDictionary[torch.nn.Module, Watch] = weakref.WeakKeyDictionary()


class Watch:
    """The hooks of one ``watch`` call; ``remove()`` takes them all off."""

    def __init__(
        self,
        model: torch.nn.Module,
        target: RunTarget,
        log: WatchWhat,
        log_freq: int,
        bins: int,
        step_fn: Callable[[], int] | None,
    ) -> None:
        if log not in ("gradients", "parameters", "all"):
            raise ValueError(f"log must be 'gradients', 'parameters' or 'all', got {log!r}")
        if log_freq < 1:
            raise ValueError(f"log_freq must be at least 1, got {log_freq}")
        self.model, self.target, self.log_freq, self.bins = model, target, log_freq, bins
        self.forward_count = 0
        self._step_fn = step_fn
        self._handles: list[Any] = [model.register_forward_pre_hook(self._on_forward)]
        self._named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.gradients = log in ("gradients", "all")
        self.parameters = log in ("parameters", "all")
        if self.gradients:
            for name, param in self._named:
                self._handles.append(
                    param.register_post_accumulate_grad_hook(self._grad_hook(name))
                )

    def step(self) -> int:
        return self._step_fn() if self._step_fn is not None else self.forward_count - 1

    def due(self) -> bool:
        # The first training step is always logged, so the starting point is on record.
        return self.forward_count == 1 or self.step() % self.log_freq == 0

    def _on_forward(self, module: torch.nn.Module, args: Any) -> None:
        if not module.training:
            return
        self.forward_count += 1
        if self.parameters and self.due():
            step, stamp = self.step(), now_ms()
            for name, param in self._named:
                self._log(f"parameters/{name}", param, step, stamp)

    def _grad_hook(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(param: torch.Tensor) -> None:
            if param.grad is not None and self.model.training and self.due():
                self._log(f"gradients/{name}", param.grad, self.step(), now_ms())

        return hook

    def _log(self, key: str, values: torch.Tensor, step: int, stamp: int) -> None:
        queue_histogram(self.target, key, device_histogram(values, self.bins), step, stamp)
        norm = torch.linalg.vector_norm(values.detach())
        get_worker().log_scalar(self.target, f"{metric_prefix(key)}/norm", norm, step, stamp)

    def remove(self) -> None:
        """Take the hooks off; the model can be watched again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if _watched.get(self.model) is self:
            del _watched[self.model]


def watch(
    model: torch.nn.Module,
    log: WatchWhat = "gradients",
    log_freq: int = 100,
    *,
    bins: int = 64,
    run_id: str | None = None,
    step_fn: Callable[[], int] | None = None,
) -> Watch:
    """Log gradient and/or parameter histograms and norms every ``log_freq`` steps.

    >>> from mlflow_plugin.torch import watch
    >>> handle = watch(model, log="all", log_freq=100)  # doctest: +SKIP
    >>> handle.remove()  # doctest: +SKIP

    Metrics: ``gradients/<param>/norm``, ``gradients/<param>/p50``...; histograms under
    ``histograms/gradients/<param>`` (and ``parameters/...`` for parameters). A model
    can be watched once at a time: call ``remove()`` (or ``unwatch``) first.
    """
    if model in _watched:
        raise ValueError(
            f"{type(model).__name__} is already watched; call unwatch(model) before watching again"
        )
    handle = Watch(model, current_target(run_id), log, log_freq, bins, step_fn)
    _watched[model] = handle
    return handle


def unwatch(model: torch.nn.Module) -> None:
    """Remove the hooks ``watch`` put on ``model`` (no error if none)."""
    handle = _watched.get(model)
    if handle is not None:
        handle.remove()

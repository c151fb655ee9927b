"""W&B's ``watch``: gradient and parameter histograms and norms every ``log_freq`` steps.

A step is one ``optimizer.step()`` of any torch optimizer that updates the model's
parameters (seen through torch's global optimizer hook, so ``watch`` needs no handle
on the optimizer): gradient accumulation over several backward passes, or several
forward passes per step, is one step, as the user counts it. A model trained without a
torch optimizer counts backward passes instead: until an optimizer step is seen, the
end of each backward pass is a step. ``autolog`` supplies its own step number
(``step_fn``, its optimizer step). Gradients are read just before the optimizer
uses them: the accumulated (and, under DDP, all-reduced) ``.grad``.

On a step that is not logged, the only work is one global hook call and a counter
check. On a logged step all histograms of one kind are binned together on the device
(``device_histograms``) and queued as one small tensor (on the CPU, copied and binned
by the worker thread: ``histogram_rows``); the norm per tensor comes from its sum of
squares, so nothing is read back to the host in the training loop.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mlflow_plugin.torch.distributed import Silent, logs_here, unwrap
from mlflow_plugin.torch.histogram_log import queue_histograms
from mlflow_plugin.torch.histograms import histogram_rows, stored_values
from mlflow_plugin.torch.scalars import now_ms
from mlflow_plugin.torch.worker import RunTarget, current_target

__all__ = [
    "Watch",
    "WatchWhat",
    "unwatch",
    "watch",
]

WatchWhat = Literal["gradients", "parameters", "all"]
_watched: weakref.WeakKeyDictionary[torch.nn.Module, Watch] = weakref.WeakKeyDictionary()
# Elements binned in one batch at most: bounds the temporary memory on a large model.
_BATCH_ELEMENTS = 1 << 22
_WATCH_METRICS = ("norm",)


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
        self.steps_seen = 0
        self.gradients = log in ("gradients", "all")
        self.parameters = log in ("parameters", "all")
        self._step_fn = step_fn
        self._named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._ids = {id(p) for _, p in self._named}
        self._optimizers: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        self._by_optimizer = False
        self._last_logged: int | None = None
        # Torch keeps global hooks for good: this one holds the Watch weakly.
        this = weakref.ref(self)

        def on_optimizer_step(optimizer: Any, args: Any, kwargs: Any) -> None:
            watch = this()
            if watch is not None:
                watch._on_optimizer_step(optimizer)

        self._handles: list[Any] = [register_optimizer_step_pre_hook(on_optimizer_step)]
        self._backward: Any = None
        if self._named:
            first = self._named[0][1]
            self._backward = first.register_post_accumulate_grad_hook(self._on_backward)
            self._handles.append(self._backward)

    def step(self) -> int:
        """The step the next logged histograms get (0 for the first step seen)."""
        return self._step_fn() if self._step_fn is not None else self.steps_seen

    def _on_optimizer_step(self, optimizer: Any) -> None:
        mine = self._optimizers.get(optimizer)
        if mine is None:  # once per optimizer: does it update this model?
            params = (p for group in optimizer.param_groups for p in group["params"])
            mine = self._optimizers[optimizer] = any(id(p) in self._ids for p in params)
        if not mine:
            return
        if not self._by_optimizer:  # from now on optimizer steps are the steps
            self._by_optimizer, self.steps_seen = True, 0
            if self._backward is not None:
                self._backward.remove()
                self._backward = None
        self._user_step()

    def _on_backward(self, param: torch.Tensor) -> None:
        # One parameter's gradient is ready; the others are when the backward pass ends.
        torch.autograd.Variable._execution_engine.queue_callback(self._after_backward)

    def _after_backward(self) -> None:
        if not self._by_optimizer:
            self._user_step()

    def _user_step(self) -> None:
        step = self.step()
        # The first step is always logged, so the starting point is on record.
        if step != self._last_logged and (self._last_logged is None or step % self.log_freq == 0):
            self._last_logged = step
            self._log(step)
        self.steps_seen += 1

    def _log(self, step: int) -> None:
        stamp = now_ms()
        if self.gradients:
            grads = [(f"gradients/{n}", p.grad) for n, p in self._named if p.grad is not None]
            self._queue(grads, step, stamp)
        if self.parameters:
            self._queue([(f"parameters/{n}", p) for n, p in self._named], step, stamp)

    def _queue(self, named: list[tuple[str, torch.Tensor]], step: int, stamp: int) -> None:
        # Empty tensors (a device-marker parameter) have no histogram: left out, not raised.
        values = [(key, stored_values(tensor)) for key, tensor in named]
        for batch in _batches([(key, t) for key, t in values if t.numel()]):
            keys = [key for key, _ in batch]
            packed = histogram_rows([t for _, t in batch], self.bins)
            queue_histograms(
                self.target, keys, packed, step, stamp, metrics=_WATCH_METRICS, image=False
            )

    def remove(self) -> None:
        """Take the hooks off; the model can be watched again."""
        for handle in self._handles:
            handle.remove()
        self._handles, self._backward = [], None
        if _watched.get(self.model) is self:
            del _watched[self.model]


def _batches(
    named: list[tuple[str, torch.Tensor]],
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Tensors grouped by device, a group at most ``_BATCH_ELEMENTS`` (or one tensor)."""
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for key, tensor in named:
        by_device.setdefault(tensor.device, []).append((key, tensor))
    for group in by_device.values():
        batch: list[tuple[str, torch.Tensor]] = []
        size = 0
        for key, tensor in group:
            if batch and size + tensor.numel() > _BATCH_ELEMENTS:
                yield batch
                batch, size = [], 0
            batch.append((key, tensor))
            size += tensor.numel()
        if batch:
            yield batch


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

    A step is an ``optimizer.step()`` (see the module's notes). Per watched tensor:
    the metric ``gradients/<param>/norm`` (``parameters/<param>/norm``) and the raw
    bins under ``histograms/gradients/<param>`` (``read_histograms``), with an
    ``overview.png`` drawn at flush. An empty tensor is left out; a sparse gradient's
    histogram and norm are those of its stored (coalesced) values. A
    ``DistributedDataParallel`` model is watched through its inner module; under
    ``torch.distributed`` only rank 0 logs unless every rank does
    (``mlflow_plugin.torch.distributed``). A model can be watched once at a time:
    call ``remove()`` (or ``unwatch``) first.
    """
    if not logs_here():
        return cast(Watch, Silent())
    model = unwrap(model)
    if model in _watched:
        raise ValueError(
            f"{type(model).__name__} is already watched; call unwatch(model) before watching again"
        )
    handle = Watch(model, current_target(run_id), log, log_freq, bins, step_fn)
    _watched[model] = handle
    return handle


def unwatch(model: torch.nn.Module) -> None:
    """Remove the hooks ``watch`` put on ``model`` (no error if none)."""
    handle = _watched.get(unwrap(model))
    if handle is not None:
        handle.remove()

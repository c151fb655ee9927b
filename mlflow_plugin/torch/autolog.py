"""``autolog``: one context manager that tracks a plain PyTorch training loop.

Step numbering: with an optimizer, the step is the number of ``optimizer.step()``
calls so far (like a trainer's global step): the learning rate and gradient norm of
update n are logged at step n, and ``run.log({...})`` called after that update logs at
step n too. Without an optimizer, each ``run.log`` call without a step logs at the
current step and then advances it (W&B's rule).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, cast

import mlflow
import numpy as np
import torch
from mlflow.entities import Param

from mlflow_plugin.summaries.names import mlflow_key
from mlflow_plugin.torch import distributed
from mlflow_plugin.torch.collector import freeze_heap, thaw_heap
from mlflow_plugin.torch.config import log_config
from mlflow_plugin.torch.dashboard import track as track_dashboard
from mlflow_plugin.torch.graph import log_model_graph
from mlflow_plugin.torch.histograms import stored_values
from mlflow_plugin.torch.lifecycle import FINISHED, RunContext, ending_run
from mlflow_plugin.torch.scalars import ScalarValue, now_ms
from mlflow_plugin.torch.watch import Watch, WatchWhat, watch
from mlflow_plugin.torch.worker import RunTarget, get_worker

__all__ = ["AutologRun", "autolog"]

_EXAMPLE_ROWS = 2


class AutologRun(RunContext):
    """What ``autolog`` returns: the run, its step, and ``log`` (see ``autolog``)."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        config: Any,
        *,
        run_name: str | None,
        log_graph: bool,
        log_model: bool,
        watch_log: WatchWhat | None,
        log_freq: int,
        log_system_metrics: bool,
        log_every_n_steps: int,
    ) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.run_name = run_name
        self.log_graph, self.log_model = log_graph, log_model
        self.watch_log, self.log_freq = watch_log, log_freq
        self.log_system_metrics, self.log_every_n_steps = log_system_metrics, log_every_n_steps
        self.step = 0
        self.example_input: Any = None
        self._owns_run = False
        self._handles: list[Any] = []
        self._watch: Watch | None = None
        self._last_lrs: list[float] = []
        self._window_start: float | None = None
        self._window_step = 0
        self._target: RunTarget | None = None
        self._first_forward: Any = None

    @property
    def run_id(self) -> str:
        return self.target.run_id

    @property
    def target(self) -> RunTarget:
        if self._target is None:
            raise RuntimeError("autolog(...) must be entered with 'with' first")
        return self._target

    # -- the context -------------------------------------------------------------------

    def __enter__(self) -> AutologRun:
        # Another rank, when every rank logs: rank 0's run, which only rank 0 describes.
        run_id = distributed.joined_run_id()
        describes = distributed.describes_run()
        if run_id is None:
            run = mlflow.active_run()
            if run is None:
                run = mlflow.start_run(
                    run_name=self.run_name, log_system_metrics=self.log_system_metrics
                )
                self._owns_run = True
            run_id = run.info.run_id
            distributed.publish_run_id(run_id)
        self._target = RunTarget(run_id, mlflow.get_tracking_uri())
        if describes:
            track_dashboard(self._target)  # dashboard.html on the slow timer while it runs
        if self.config is not None and describes:
            log_config(self.config, run_id=self.run_id)
        self._first_forward = self.model.register_forward_pre_hook(self._on_first_forward)
        self._handles.append(self._first_forward)
        if self.optimizer is not None:
            if describes:
                self._log_optimizer_params(self.optimizer)
            self._handles.append(self.optimizer.register_step_pre_hook(self._before_step))
            self._handles.append(self.optimizer.register_step_post_hook(self._after_step))
        if self.watch_log is not None:
            self._watch = watch(
                self.model,
                self.watch_log,
                self.log_freq,
                run_id=self.run_id,
                step_fn=self._update_step,
            )
        freeze_heap()  # full collections skip the heap that was there before the loop
        return self

    def _finish(self, status: str) -> None:
        for handle in self._handles:
            handle.remove()
        if self._watch is not None:
            self._watch.remove()
        thaw_heap()
        # A failed flush (background logging) ends the run FAILED and is raised here.
        with ending_run(self.run_id if self._owns_run else None, status):
            self._log_rate()  # the last steps' rate: a short run has one too
            get_worker().flush()
            if status == FINISHED and self.log_model and distributed.describes_run():
                self._log_final_model()

    # -- W&B-style logging ---------------------------------------------------------------

    def log(self, metrics: dict[str, ScalarValue], step: int | None = None) -> None:
        """Log scalars (numbers or one-element tensors, no device sync) at ``step``.

        >>> with autolog(model, optimizer) as run:  # doctest: +SKIP
        ...     run.log({"loss": loss, "acc": acc})
        """
        at = self.step if step is None else int(step)
        get_worker().log_scalars(self.target, metrics.items(), at, now_ms())
        if step is None and self.optimizer is None:
            self.step += 1

    # -- hooks ---------------------------------------------------------------------------

    def _update_step(self) -> int:
        return self.step + 1 if self.optimizer is not None else self.step

    def _on_first_forward(self, module: torch.nn.Module, args: Any) -> None:
        self._first_forward.remove()
        self.example_input = _slice_example(args)
        if self.log_graph and distributed.describes_run():
            log_model_graph(module, self.example_input, run_id=self.run_id)

    def _log_optimizer_params(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer`` (its class) and ``optimizer.<setting>``: the config's dotted names.

        A setting the run already has (the config's ``optimizer.lr``) is logged once, as
        the config gave it.
        """
        scope = (self.run_id, "params")
        settings: dict[str, Any] = {"optimizer": type(optimizer).__name__}
        settings.update({f"optimizer.{key}": v for key, v in optimizer.defaults.items()})
        params = {}
        for name, value in settings.items():
            if isinstance(value, bool | int | float | str) or value is None:
                params[mlflow_key(name, scope=scope)] = str(value)
            elif isinstance(value, tuple | list):
                params[mlflow_key(name, scope=scope)] = str(list(value))
        client = get_worker().client(self.target.tracking_uri)
        logged = client.get_run(self.run_id).data.params
        fresh = [Param(k, v) for k, v in params.items() if k not in logged]
        client.log_batch(self.run_id, params=fresh)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        at = self.step + 1
        if at == 1 or at % self.log_every_n_steps == 0:
            self._log_grad_norm(optimizer, at)
        self._log_lrs([group["lr"] for group in optimizer.param_groups], at, now_ms())

    def _log_grad_norm(self, optimizer: torch.optim.Optimizer, at: int) -> None:
        """The gradients' total norm, a tensor read by the worker: sampled, not taken at
        every step, as it costs about as much as a few optimizer kernels."""
        grads = [
            # A sparse gradient (nn.Embedding(sparse=True)) has no norm kernel: its
            # stored values have its norm (SparseAdam coalesces it the same way).
            stored_values(p.grad)
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads, foreach=None)
            get_worker().log_scalar(self.target, "train/grad_norm", norm, at, now_ms())

    def _log_lrs(self, lrs: list[Any], at: int, stamp: int) -> None:
        """Each param group's learning rate: when it changes, or, for a tensor learning
        rate (capturable and compiled optimizers keep it on the device, where comparing
        it would wait for the device each step), a copy at the first step and every
        ``log_every_n_steps`` steps."""
        keys = (
            ["optimizer/lr"]
            if len(lrs) == 1
            else [f"optimizer/lr/group{i}" for i in range(len(lrs))]
        )
        worker = get_worker()
        if any(isinstance(lr, torch.Tensor) for lr in lrs):
            if at == 1 or at % self.log_every_n_steps == 0:
                for key, lr in zip(keys, lrs, strict=True):
                    value = lr.detach().clone() if isinstance(lr, torch.Tensor) else lr
                    worker.log_scalar(self.target, key, value, at, stamp)
            return
        values = [float(lr) for lr in lrs]
        if values != self._last_lrs:
            self._last_lrs = values
            for key, value in zip(keys, values, strict=True):
                worker.log_scalar(self.target, key, value, at, stamp)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.step += 1
        if self._window_start is None:  # timing starts after the first (warm-up) step
            self._window_start, self._window_step = time.perf_counter(), self.step
        elif self.step % self.log_every_n_steps == 0:
            self._log_rate()

    def _log_rate(self) -> None:
        """``perf/steps_per_sec`` over the steps since the last rate (or the first step)."""
        if self._window_start is None or self.step <= self._window_step:
            return
        now = time.perf_counter()
        rate = (self.step - self._window_step) / max(now - self._window_start, 1e-9)
        get_worker().log_scalar(self.target, "perf/steps_per_sec", rate, self.step, now_ms())
        self._window_start, self._window_step = now, self.step

    def _log_final_model(self) -> None:
        import mlflow.pytorch

        example = self.example_input
        if isinstance(example, tuple) and len(example) == 1:
            example = example[0]
        if isinstance(example, torch.Tensor):
            mlflow.pytorch.log_model(self.model, name="model", input_example=example.numpy())
        else:  # pt2 export needs one tensor example; pickle takes any model
            mlflow.pytorch.log_model(self.model, name="model", serialization_format="pickle")


def _slice_example(args: Any) -> Any:
    """The first rows of each tensor argument, detached on the CPU (the model's example)."""

    def cut(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach()[:_EXAMPLE_ROWS].cpu().clone()
        if isinstance(value, np.ndarray):
            return value[:_EXAMPLE_ROWS].copy()
        return value

    return tuple(cut(v) for v in args)


def autolog(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    config: Any = None,
    *,
    run_name: str | None = None,
    log_graph: bool = True,
    log_model: bool = True,
    watch: WatchWhat | None = None,
    log_freq: int = 100,
    log_system_metrics: bool = False,
    log_every_n_steps: int = 50,
    timing_every: int | None = None,
) -> AutologRun:
    """Track a plain training loop: a context manager that starts (or joins) a run.

    >>> from mlflow_plugin.torch import autolog
    >>> with autolog(model, optimizer, config={"lr": 1e-3}, watch="all") as run:  # doctest: +SKIP
    ...     for x, y in loader:
    ...         optimizer.zero_grad()
    ...         loss = loss_fn(model(x), y)
    ...         loss.backward()
    ...         optimizer.step()
    ...         run.log({"train/loss": loss})

    Logs the config (params + ``config.yaml``), the model graph on the first forward
    pass (``model_graph/``), the optimizer's class and settings as params (``optimizer``,
    ``optimizer.lr``...: the config's names, each logged once), the learning rate of each
    param group whenever it changes (metric ``optimizer/lr``), the gradient norm
    (``train/grad_norm``) at the first step and every ``log_every_n_steps`` steps
    (Lightning's default, 50: a norm per step costs as much as a few optimizer kernels),
    ``perf/steps_per_sec`` every ``log_every_n_steps`` steps and at the end
    (``timing_every``: its former name, deprecated);
    ``watch=`` adds histograms; ``log_system_metrics=True`` starts MLflow's system
    monitor. On exit: the model with ``mlflow.pytorch.log_model`` (``log_model=False``
    to skip), and, for a run it started, status FAILED on an exception, KILLED on
    KeyboardInterrupt, FINISHED otherwise.
    """
    if timing_every is not None:
        warnings.warn(
            "autolog(timing_every=...) is deprecated: use log_every_n_steps (the gradient "
            "norm and steps per second share it)",
            DeprecationWarning,
            stacklevel=2,
        )
        log_every_n_steps = timing_every
    if log_every_n_steps < 1:
        raise ValueError(f"log_every_n_steps must be at least 1, got {log_every_n_steps}")
    if not distributed.logs_here():  # under torch.distributed: rank 0 only, unless asked
        return cast(AutologRun, distributed.Silent())
    return AutologRun(
        model,
        optimizer,
        config,
        run_name=run_name,
        log_graph=log_graph,
        log_model=log_model,
        watch_log=watch,
        log_freq=log_freq,
        log_system_metrics=log_system_metrics,
        log_every_n_steps=log_every_n_steps,
    )

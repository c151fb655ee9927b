"""Which ranks log under ``torch.distributed``, and under which keys.

By default only rank 0 logs (as Lightning and W&B do): on the other ranks every helper
is a cheap no-op and no run is created. With ``MLFLOW_BUCKET_TORCH_ALL_RANKS=1`` in the
environment every rank logs into rank 0's run, its metric and histogram keys prefixed
with ``rank<N>/`` (``rank1/loss``); what describes the run itself (params, config,
graph, model) still comes from rank 0 alone. Rank 0 hands its run id to the other
ranks through the process group's key-value store, so nothing else (no shared run
name, no environment variable) has to be arranged.

Outside an initialised process group, or with a world of one, everything logs as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch.distributed as dist

__all__ = [
    "ALL_RANKS_ENV",
    "Silent",
    "all_ranks",
    "describes_run",
    "joined_run_id",
    "last_joined_run_id",
    "logs_here",
    "publish_run_id",
    "rank",
    "rank_key",
    "unwrap",
]

ALL_RANKS_ENV = "MLFLOW_BUCKET_TORCH_ALL_RANKS"
_STORE_PREFIX = "mlflow_bucket/run/"
# Run ids rank 0 has published and the other ranks taken: the n-th run a helper opens on
# each rank is rank 0's n-th run.
_handed_out = 0
_taken = 0
_last_joined: str | None = None


def rank() -> int:
    """This process's rank, 0 outside a process group."""
    return dist.get_rank() if _distributed() else 0


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_ranks() -> bool:
    """Whether every rank logs (``MLFLOW_BUCKET_TORCH_ALL_RANKS=1``; also true, yes, on)."""
    return os.environ.get(ALL_RANKS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def logs_here() -> bool:
    """Whether the helpers log from this process: rank 0, any rank when all ranks log."""
    return not _distributed() or dist.get_rank() == 0 or all_ranks()


def describes_run() -> bool:
    """Whether this process logs what describes the run (params, config, graph, model)."""
    return not _distributed() or dist.get_rank() == 0


def rank_key(key: str) -> str:
    """``rank<N>/<key>`` when every rank logs into one run, else ``key`` unchanged."""
    if all_ranks() and _distributed():
        return f"rank{dist.get_rank()}/{key}"
    return key


def publish_run_id(run_id: str) -> None:
    """On rank 0 when every rank logs: ``run_id`` is the other ranks' next run.

    Called where a helper opens a run (``SummaryWriter()``, entering ``autolog``);
    the other ranks' matching call takes it with ``joined_run_id``.
    """
    global _handed_out
    if all_ranks() and _distributed() and dist.get_rank() == 0:
        _store().set(f"{_STORE_PREFIX}{_handed_out}", run_id)
        _handed_out += 1


def joined_run_id() -> str | None:
    """On another rank when every rank logs: rank 0's next run id (waits for it); else None."""
    global _taken, _last_joined
    if not (all_ranks() and _distributed()) or dist.get_rank() == 0:
        return None
    # get() waits (up to the process group's timeout) until rank 0 has set the key.
    _last_joined = _store().get(f"{_STORE_PREFIX}{_taken}").decode()
    _taken += 1
    return _last_joined


def last_joined_run_id() -> str | None:
    """The run this rank joined last (``joined_run_id``), if any: helpers with no run use it."""
    return _last_joined if all_ranks() and _distributed() else None


def _store() -> Any:
    # The process group's own key-value store: no other rendezvous to arrange.
    return dist.distributed_c10d._get_default_store()


def unwrap(model: Any) -> Any:
    """The module inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper."""
    inner = getattr(model, "module", None)
    wrappers = ("DistributedDataParallel", "DataParallel")
    return inner if inner is not None and type(model).__name__ in wrappers else model


class Silent:
    """What a helper returns on a rank that does not log: every method does nothing.

    >>> with Silent() as run:
    ...     run.log({"loss": 1.0})
    """

    run_id: str | None = None
    step = 0

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)
        return _nothing

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None

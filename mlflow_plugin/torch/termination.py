"""SIGTERM: the helpers' queued points reach the store's spool before the process ends.

Points wait up to 2 s in memory for the worker's next drain, and a process ended by
SIGTERM (a scheduler's preemption, ``kill``, ``docker stop``) runs no exit hook: the
calls returned, yet their points would be lost. When the helpers start in the main
thread and SIGTERM still has its default action, they install a handler that asks the
worker thread for a drain (into the store, whose spool line is written at each call),
waits for it, then restores the default action and sends SIGTERM again, so the process
ends as SIGTERM ends it. The wait is bounded (``DRAIN_WAIT``): the interrupted main
thread may hold a lock the drain needs. A handler the program set is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["DRAIN_WAIT", "drain_on_sigterm"]

DRAIN_WAIT = 5.0  # seconds a SIGTERM waits for the worker's drain

_drain: Callable[[float], object] | None = None


def drain_on_sigterm(drain: Callable[[float], object]) -> None:
    """Have SIGTERM call ``drain(DRAIN_WAIT)`` first, if its action is still the default."""
    global _drain
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler; the default action stays
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        _drain = drain
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # a subinterpreter, or no signals here
        return


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    if _drain is not None:
        with contextlib.suppress(Exception):  # the process is ending either way
            _drain(DRAIN_WAIT)
    os.kill(os.getpid(), signum)

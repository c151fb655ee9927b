"""Python's cyclic garbage collector while ``autolog`` runs: the heap that existed before
the loop is frozen (``gc.freeze``), so a full collection skips it.

A full collection walks every tracked object: about 500,000 once torch and MLflow are
imported, 0.2 s on a 2-core machine, with the interpreter lock held. The helpers keep
each point (and its tensor) until the worker's next drain, seconds later, so points
reach the oldest generation and, together, start a full collection every few thousand
steps: a 0.2 s stall of the training loop each time. Frozen, such a collection walks
only what was allocated since. Entering collects once first (so no garbage is frozen);
objects from before the loop that become cyclic garbage during it are freed after it,
when leaving unfreezes the heap. When something else has frozen objects already, the
collector is left as it is (a freeze made inside the block is undone on leaving).
"""

from __future__ import annotations

import gc
import threading

__all__ = ["freeze_heap", "thaw_heap"]

_lock = threading.Lock()
_users = 0  # autolog contexts open now
_frozen_by_us = False


def freeze_heap() -> None:
    """Freeze the current heap, once for any number of nested callers."""
    global _users, _frozen_by_us
    with _lock:
        _users += 1
        if _users == 1 and gc.get_freeze_count() == 0:
            gc.collect()  # garbage frozen now would live until the thaw (a GPU tensor too)
            gc.freeze()
            _frozen_by_us = True


def thaw_heap() -> None:
    """The matching exit of ``freeze_heap``: the last one unfreezes what it froze."""
    global _users, _frozen_by_us
    with _lock:
        _users = max(_users - 1, 0)
        if _users == 0 and _frozen_by_us:
            gc.unfreeze()
            _frozen_by_us = False

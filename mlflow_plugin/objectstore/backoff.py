"""Exponential backoff between tries of an operation that may conflict or fail for a moment.

One rule for every hand-made retry loop of the package (a conditional write that
meets another in flight, a compare-and-swap that lost a race, an upload retried at
close): wait ``first``, then twice that, and so on up to ``ceiling``; with
``jitter`` a random share of that wait (AWS's "full jitter"), so writers racing on
one object spread out instead of colliding again in step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delays between tries: ``first * 2**attempt``, capped at ``ceiling``.

    >>> [Backoff(first=0.1, ceiling=0.3).delay(attempt) for attempt in range(4)]
    [0.1, 0.2, 0.3, 0.3]
    """

    first: float
    ceiling: float
    jitter: bool = False

    def delay(self, attempt: int) -> float:
        """The wait after failed try number ``attempt`` (0 for the first)."""
        # The exponent is bounded so a long loop never computes a huge float.
        bound = min(self.ceiling, self.first * 2 ** min(attempt, 62))
        return random.uniform(0, bound) if self.jitter else bound

    def sleep(self, attempt: int) -> None:
        """Wait before the next try."""
        time.sleep(self.delay(attempt))

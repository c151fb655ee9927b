from __future__ import annotations

from mlflow_plugin.objectstore.backoff import Backoff


def test_delays_double_up_to_the_ceiling() -> None:
    backoff = Backoff(first=0.05, ceiling=0.4)
    assert [backoff.delay(attempt) for attempt in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]


def test_jitter_waits_a_random_share_of_the_delay() -> None:
    backoff = Backoff(first=0.002, ceiling=0.2, jitter=True)
    delays = [backoff.delay(10) for _ in range(200)]
    assert all(0 <= delay <= 0.2 for delay in delays)
    assert len(set(delays)) > 1


def test_a_long_loop_never_overflows() -> None:
    assert Backoff(first=0.1, ceiling=2.0).delay(10_000) == 2.0

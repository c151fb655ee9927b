"""The in-process cache of sorted histories: bounded in bytes, least recently used goes first."""

from __future__ import annotations

import numpy as np

from mlflow_plugin.tracking.history import HistoryCache, MetricColumns


def _history(points: int) -> MetricColumns:
    steps = np.arange(points, dtype=np.int64)
    return MetricColumns(steps, steps.copy(), steps.astype(np.float64))


def test_the_least_recently_read_history_goes_when_the_bytes_run_out() -> None:
    ten = _history(10)
    cache = HistoryCache(max_bytes=2 * ten.nbytes)
    cache.put("a", ten)
    cache.put("b", _history(10))
    assert cache.get("a") is ten  # "a" is now the most recently used

    cache.put("c", _history(10))

    assert cache.get("b") is None
    assert cache.get("a") is ten and cache.get("c") is not None


def test_a_history_larger_than_the_whole_cache_is_not_kept_and_evicts_nothing() -> None:
    small = _history(10)
    cache = HistoryCache(max_bytes=3 * small.nbytes)
    cache.put("small", small)

    cache.put("huge", _history(100))

    assert cache.get("huge") is None
    assert cache.get("small") is small


def test_a_key_already_cached_keeps_its_first_history() -> None:
    first = _history(3)
    cache = HistoryCache()
    cache.put("k", first)
    cache.put("k", _history(5))
    assert cache.get("k") is first

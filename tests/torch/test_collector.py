"""The heap is frozen while autolog runs, so full collections skip it; thawed on leaving.

The checks run in one process forked from the test server (``tests.processes``), whose
heap is unfrozen and small, as a user's training script starts. In a test worker they
would unfreeze the worker's heap, frozen after hundreds of tests, and every full
collection would walk millions of objects: 36 s of CPU for these five checks.
"""

from __future__ import annotations

import gc
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.processes import SPAWN


def _autolog_freezes_the_heap_inside_and_thaws_it_on_leaving() -> None:
    import torch

    from mlflow_plugin.torch import autolog

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert gc.get_freeze_count() == 0
    with autolog(model, optimizer, log_model=False, log_graph=False):
        assert gc.get_freeze_count() > 0
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
    assert gc.get_freeze_count() == 0


def _the_heap_is_thawed_when_the_loop_raises() -> None:
    import torch

    from mlflow_plugin.torch import autolog

    model = torch.nn.Linear(2, 1)
    with (
        pytest.raises(RuntimeError, match="boom"),
        autolog(model, log_model=False, log_graph=False),
    ):
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def _nested_users_thaw_once_at_the_last_exit() -> None:
    from mlflow_plugin.torch.collector import freeze_heap, thaw_heap

    freeze_heap()
    freeze_heap()
    thaw_heap()
    assert gc.get_freeze_count() > 0
    thaw_heap()
    assert gc.get_freeze_count() == 0
    thaw_heap()  # an extra exit changes nothing
    assert gc.get_freeze_count() == 0


def _a_heap_frozen_by_someone_else_is_left_frozen() -> None:
    from mlflow_plugin.torch.collector import freeze_heap, thaw_heap

    gc.freeze()  # e.g. a server that freezes before forking its workers
    freeze_heap()
    thaw_heap()
    assert gc.get_freeze_count() > 0  # still frozen: not ours to thaw


class _Node:
    other: object


def _garbage_is_collected_before_freezing_and_after_thawing() -> None:
    from mlflow_plugin.torch.collector import freeze_heap, thaw_heap

    def cycle() -> weakref.ref[_Node]:
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
        return weakref.ref(a)

    dropped = cycle()  # garbage already: not frozen (a GPU tensor in it would stay)
    kept = _Node()
    kept.other = kept
    alive = weakref.ref(kept)
    freeze_heap()
    assert dropped() is None
    del kept  # garbage during the loop: freed once the heap is thawed
    gc.collect()
    assert alive() is not None
    thaw_heap()
    gc.collect()
    assert alive() is None


CHECKS: dict[str, Callable[[], None]] = {
    check.__name__.lstrip("_"): check
    for check in (
        _autolog_freezes_the_heap_inside_and_thaws_it_on_leaving,
        _the_heap_is_thawed_when_the_loop_raises,
        _nested_users_thaw_once_at_the_last_exit,
        _a_heap_frozen_by_someone_else_is_left_frozen,
        _garbage_is_collected_before_freezing_and_after_thawing,
    )
}


def _run_checks(tracking_uri: str, results: Any) -> None:
    """Each check from an unfrozen heap; its traceback, or None, by name."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    outcomes: dict[str, str | None] = {}
    for name, check in CHECKS.items():
        gc.unfreeze()
        try:
            check()
            outcomes[name] = None
        except BaseException:
            outcomes[name] = traceback.format_exc()
        gc.unfreeze()
    results.put(outcomes)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    root: Path = tmp_path_factory.mktemp("collector") / "root"
    results = SPAWN.Queue()
    child = SPAWN.Process(target=_run_checks, args=(f"bucket+file://{root}", results))
    child.start()
    found: dict[str, str | None] = results.get(timeout=240)
    child.join(timeout=60)
    assert child.exitcode == 0
    return found


@pytest.mark.parametrize("name", list(CHECKS))
def test_heap_freezing(name: str, outcomes: dict[str, str | None]) -> None:
    assert name in outcomes
    if outcomes[name] is not None:
        pytest.fail(f"{name} failed in its process:\n{outcomes[name]}", pytrace=False)

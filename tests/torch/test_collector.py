"""The heap is frozen while autolog runs, so full collections skip it; thawed on leaving."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import torch
from mlflow import MlflowClient

from mlflow_plugin.torch import autolog
from mlflow_plugin.torch.collector import freeze_heap, thaw_heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_autolog_freezes_the_heap_inside_and_thaws_it_on_leaving(client: MlflowClient) -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert gc.get_freeze_count() == 0
    with autolog(model, optimizer, log_model=False, log_graph=False):
        assert gc.get_freeze_count() > 0
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
    assert gc.get_freeze_count() == 0


def test_the_heap_is_thawed_when_the_loop_raises(client: MlflowClient) -> None:
    model = torch.nn.Linear(2, 1)
    with (
        pytest.raises(RuntimeError, match="boom"),
        autolog(model, log_model=False, log_graph=False),
    ):
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def test_nested_users_thaw_once_at_the_last_exit() -> None:
    freeze_heap()
    freeze_heap()
    thaw_heap()
    assert gc.get_freeze_count() > 0
    thaw_heap()
    assert gc.get_freeze_count() == 0
    thaw_heap()  # an extra exit changes nothing
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_someone_else_is_left_frozen() -> None:
    gc.freeze()  # e.g. a server that freezes before forking its workers
    freeze_heap()
    thaw_heap()
    assert gc.get_freeze_count() > 0  # still frozen: not ours to thaw


def test_garbage_is_collected_before_freezing_and_after_thawing() -> None:
    class Node:
        other: object

    def cycle() -> weakref.ref[Node]:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
        return weakref.ref(a)

    dropped = cycle()  # garbage already: not frozen (a GPU tensor in it would stay)
    kept = Node()
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

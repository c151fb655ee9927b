"""A facade method that is a collaborator's own method: one line per method, no wrapper.

``create_experiment = Delegated("_experiments", Experiments.create_experiment)`` on a
class makes ``store.create_experiment`` the bound ``store._experiments.create_experiment``:
MLflow's name on the facade, the collaborator's signature and types (mypy checks
callers against them), and no extra call frame on hot paths such as ``log_batch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

__all__ = ["Delegated"]

P = ParamSpec("P")
R = TypeVar("R")


class Delegated(Generic[P, R]):
    """Reads as ``method`` of the instance's ``collaborator`` attribute."""

    def __init__(self, collaborator: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self._collaborator = collaborator
        self._method = method
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> Callable[Concatenate[Any, P], R]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> Callable[P, R]: ...

    def __get__(self, instance: object, owner: type) -> Callable[..., R]:
        if instance is None:  # on the class: the function, for inspect.signature
            return self._method
        bound: Callable[P, R] = getattr(getattr(instance, self._collaborator), self._name)
        return bound

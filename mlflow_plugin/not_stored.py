"""Store methods for kinds of things this product does not store, declared as a table.

MLflow's ``AbstractStore`` classes leave many methods to the backend (evaluation
datasets, scorers, the AI gateway, webhooks...); left alone, they raise
``NotImplementedError`` or return ``None``, and the server answers HTTP 500. A kind
that is not stored answers instead, by the rule of each row:

- ``kind.empty(factory)``: a read of many (list, search) answers an empty result of the
  shape MLflow expects (``factory()``: a list, an empty ``PagedList``, a count of 0);
- ``kind.get()``: a read of one item answers RESOURCE_DOES_NOT_EXIST (HTTP 404), with
  the ids asked for and the sentence below;
- ``kind.write()``: anything that would store or change an item answers NOT_IMPLEMENTED
  (HTTP 501) with a sentence that says what is not stored.

Rows are class attributes, so a table reads like the class it is; methods that
answer by the same rule share one row::

    DATASETS = Kind("Evaluation datasets", "Evaluation dataset", TRACKING)

    class DatasetsNotStored:
        create_dataset = delete_dataset = DATASETS.write()
        get_dataset = DATASETS.get()
        search_datasets = DATASETS.empty(empty_page)

``answers(cls)`` lists a class's rows (the tests compare them with MLflow's methods).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList

__all__ = [
    "REGISTRY",
    "TRACKING",
    "Answer",
    "Kind",
    "answers",
    "empty_page",
    "no_results_no_token",
]

TRACKING = "tracking store"
REGISTRY = "model registry"


def empty_page() -> PagedList[Any]:
    """An empty ``PagedList`` with no next-page token."""
    return PagedList([], None)


def no_results_no_token() -> tuple[list[Any], None]:
    """``(results, next_page_token)`` with nothing in it, as ``search_traces`` returns."""
    return [], None


@dataclass(frozen=True)
class Kind:
    """A kind of item that is not stored: ``Kind("Scorers", "Scorer", TRACKING)``."""

    plural: str
    singular: str
    store: str

    @property
    def sentence(self) -> str:
        return (
            f"{self.plural} are not stored by the mlflow-bucket {self.store} "
            "(bucket+s3 / bucket+file keeps experiments, runs, metrics, logged models, "
            f"artifacts and registered models); use a database-backed MLflow store "
            f"(e.g. sqlite:///mlflow.db) for {self.plural.lower()}."
        )

    def empty(self, factory: Callable[[], object]) -> Answer:
        """A read of many: answers ``factory()``."""
        return Answer(self, "empty", factory)

    def get(self) -> Answer:
        """A read of one item: RESOURCE_DOES_NOT_EXIST."""
        return Answer(self, "get", None)

    def write(self) -> Answer:
        """Storing or changing an item: NOT_IMPLEMENTED."""
        return Answer(self, "write", None)


class Answer:
    """One row of a table: the methods named by the attributes it is bound to answer by ``rule``."""

    def __init__(
        self,
        kind: Kind,
        rule: Literal["empty", "get", "write"],
        factory: Callable[[], object] | None,
    ) -> None:
        self.kind = kind
        self.rule = rule
        self._factory = factory
        self.names: list[str] = []

        # Positional-only: no keyword argument of the caller's can collide with it.
        def method(store: object, /, *args: Any, **kwargs: Any) -> Any:
            return self._respond(*args, **kwargs)

        self._function = method

    def __set_name__(self, owner: type, name: str) -> None:
        # Called once per name (``a = b = KIND.write()``); the function is named like the
        # first method it stands for, in tracebacks and introspection.
        self.names.append(name)
        if len(self.names) == 1:
            self._function.__name__ = name
            self._function.__qualname__ = f"{owner.__qualname__}.{name}"
        self._function.__doc__ = (
            f"{self.kind.plural} are not stored: {self.rule} answer (for {', '.join(self.names)})."
        )

    def __get__(self, instance: object | None, owner: type | None = None) -> Callable[..., Any]:
        # A plain function on the class, a bound method on an instance: as a `def` would be.
        if instance is None:
            return self._function
        return types.MethodType(self._function, instance)

    def _respond(self, *args: Any, **kwargs: Any) -> Any:
        if self.rule == "empty":
            assert self._factory is not None
            return self._factory()
        if self.rule == "get":
            self._not_found(args, kwargs)
        raise MlflowException(self.kind.sentence, NOT_IMPLEMENTED)

    def _not_found(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> NoReturn:
        asked = [repr(value) for value in (*args, *kwargs.values()) if isinstance(value, str)]
        named = f" {', '.join(asked)}" if asked else ""
        raise MlflowException(
            f"{self.kind.singular}{named} not found. {self.kind.sentence}",
            RESOURCE_DOES_NOT_EXIST,
        )


def answers(cls: type) -> dict[str, Answer]:
    """The rows in effect on ``cls``: method name -> answer (a real method hides a row)."""
    rows: dict[str, Answer] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name not in seen and isinstance(value, Answer):
                rows[name] = value
            seen.add(name)
    return rows

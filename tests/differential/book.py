"""A suite's scenarios, registered by name, and the helpers scenarios are written with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlflow import MlflowClient
from mlflow.store.entities.paged_list import PagedList

Scenario = Callable[[MlflowClient], object]


class ScenarioBook:
    """The scenarios of one differential suite and how their results become comparable.

    A scenario is ``scenario(client) -> object``: it drives an ``MlflowClient`` and returns
    what a user could observe. ``observe`` turns that into plain JSON (``to_json``) and hides
    what legitimately differs between stores (``normalise``)::

        BOOK = ScenarioBook(to_json, normalise)
        scenario, attempt = BOOK.scenario, BOOK.attempt

        @scenario
        def get_missing_experiment(client: MlflowClient) -> object:
            return attempt(client.get_experiment, "404")
    """

    def __init__(
        self,
        to_json: Callable[[object], object],
        normalise: Callable[[object], object],
        *,
        attempts_to_json: bool = False,
        max_pages: int = 100,
    ) -> None:
        self.scenarios: dict[str, Scenario] = {}
        self.to_json = to_json
        self.normalise = normalise
        # Whether ``attempt`` hands back plain JSON (and a failing ``to_json`` counts as the
        # call's error) or the entities themselves, for scenarios that read their attributes.
        self.attempts_to_json = attempts_to_json
        self.max_pages = max_pages

    def scenario(self, fn: Scenario) -> Scenario:
        """Register a scenario under its function name."""
        if fn.__name__ in self.scenarios:
            raise ValueError(f"duplicate scenario name {fn.__name__}")
        self.scenarios[fn.__name__] = fn
        return fn

    def attempt(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> object:
        """Call ``fn``; on failure return ``["error", class name, error code]`` instead of raising.

        The message text is not part of the result: stores may word errors differently.
        """
        try:
            result = fn(*args, **kwargs)
            return self.to_json(result) if self.attempts_to_json else result
        except Exception as exc:
            return ["error", type(exc).__name__, getattr(exc, "error_code", None)]

    def all_pages(self, fetch: Callable[[str | None], PagedList[Any]]) -> list[object]:
        """Follow page tokens from the first page to the last; each page as ``to_json`` shows it."""
        pages: list[object] = []
        token: str | None = None
        for _ in range(self.max_pages):
            page = fetch(token)
            pages.append(self.to_json(page))
            token = page.token
            if not token:
                return pages
        raise AssertionError(f"more than {self.max_pages} pages: a page token never ran out")

    def observe(self, name: str, client: MlflowClient) -> object:
        """The named scenario's normalised result on ``client``."""
        return self.normalise(self.to_json(self.scenarios[name](client)))


def plain_json(value: object, to_json: Callable[[object], object]) -> object:
    """Containers and scalars as plain JSON, their items through a suite's ``to_json``.

    A suite's ``to_json`` serialises its own entities and hands everything else here; what
    neither knows is a ``TypeError``, so that no scenario result goes uncompared.
    """
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"scenario returned a {type(value).__name__}, which to_json does not know")

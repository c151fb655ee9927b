"""MLflow's store methods, enumerated from MLflow itself, and calls built from their signatures.

Shared by the tracking and registry tests of what the bucket stores do not store: the
methods of MLflow's ``AbstractStore`` (public ones, and private ones MLflow's server
calls), plus any method the server calls that the base class lacks; where each comes
from on our class; and a call with placeholder arguments whose outcome is recorded.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow.server
from mlflow.exceptions import MlflowException
from mlflow.utils.async_logging.run_operations import RunOperations

from mlflow_plugin.not_stored import Answer

Origin = Literal["table", "ours", "mlflow", "missing"]

_SERVER_SOURCES = [path.read_text() for path in Path(mlflow.server.__file__).parent.rglob("*.py")]


def server_calls(getter: str) -> set[str]:
    """Methods MLflow's server calls as ``getter().name(``, e.g. ``_get_tracking_store``."""
    pattern = re.compile(rf"{getter}\(\)\s*\.\s*(\w+)\s*\(")
    return {name for source in _SERVER_SOURCES for name in pattern.findall(source)}


def mlflow_methods(base: type, getter: str) -> set[str]:
    """The store methods MLflow's server can call: ``base``'s public methods, the private
    ones the server calls, and what the server calls that ``base`` lacks."""
    called = server_calls(getter)
    private_called = {
        name for source in _SERVER_SOURCES for name in re.findall(r"\.(_\w+)\(", source)
    }
    names = {
        name
        for name in dir(base)
        if not name.startswith("__")
        and callable(getattr(base, name))
        and (not name.startswith("_") or name in private_called)
    }
    return names | called


def origin(cls: type, name: str) -> Origin:
    """Where ``cls`` gets ``name``: a not-stored table row, our own code, or MLflow's base."""
    for klass in cls.__mro__:
        if name in vars(klass):
            if isinstance(vars(klass)[name], Answer):
                return "table"
            return "ours" if klass.__module__.startswith("mlflow_plugin") else "mlflow"
    return "missing"


def _placeholder(annotation: object) -> object:
    text = str(annotation)
    if re.search(r"\b(list|List|Sequence|set)\b", text):
        return []
    if re.search(r"\b(dict|Mapping)\b", text):
        return {}
    if re.search(r"\bbool\b", text):
        return False
    if re.search(r"\bint\b", text):
        return 1
    if re.search(r"\bfloat\b", text):
        return 1.0
    return "x"


def arguments(function: Callable[..., Any], overrides: Mapping[str, object]) -> dict[str, object]:
    """Keyword arguments for every required parameter: ``overrides``, else a placeholder."""
    kwargs: dict[str, object] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == "self" or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        if parameter.name in overrides:
            kwargs[parameter.name] = overrides[parameter.name]
        elif parameter.default is inspect.Parameter.empty:
            kwargs[parameter.name] = _placeholder(parameter.annotation)
    return kwargs


@dataclass
class Outcome:
    """What one call did: returned ``value``, or raised ``error``."""

    value: object = None
    error: BaseException | None = None

    @property
    def mlflow_error_code(self) -> str | None:
        return self.error.error_code if isinstance(self.error, MlflowException) else None


def call(store: object, name: str, base: type, overrides: Mapping[str, object]) -> Outcome:
    """Call ``store.name`` with arguments from MLflow's signature (ours when the base lacks it)."""
    reference = getattr(base, name, None) or getattr(type(store), name)
    try:
        value = getattr(store, name)(**arguments(reference, overrides))
        if inspect.iscoroutine(value):
            # On a thread of its own: an earlier test (Playwright's sync API) may have left
            # an event loop running in this one, where asyncio.run refuses to start.
            with ThreadPoolExecutor(1) as runner:
                value = runner.submit(asyncio.run, value).result()
        if isinstance(value, RunOperations):  # async logging: the errors arrive on wait()
            value.wait()
        return Outcome(value=value)
    except Exception as exc:
        return Outcome(error=exc)

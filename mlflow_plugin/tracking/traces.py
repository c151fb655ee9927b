"""Traces are not stored on the bucket: this product is for training runs.

Reads answer an empty, valid result (the UI's traces tab shows "no traces");
writes raise a clear ``MlflowException`` instead of MLflow's bare
``NotImplementedError`` (which the server would turn into an HTTP 500).
"""

from __future__ import annotations

from typing import Any, NoReturn

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED, RESOURCE_DOES_NOT_EXIST

__all__ = ["TracesNotStoredMixin"]

_NOT_STORED = (
    "Traces are not stored by the mlflow-bucket tracking store (it keeps training runs); "
    "send traces to another MLflow tracking backend."
)


def _refuse() -> NoReturn:
    raise MlflowException(_NOT_STORED, NOT_IMPLEMENTED)


class TracesNotStoredMixin:
    """Empty reads and refused writes for every trace method the client or server calls."""

    def search_traces(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        return [], None

    def batch_get_traces(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def batch_get_trace_infos(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def get_trace_info(self, trace_id: str) -> NoReturn:
        raise MlflowException(
            f"Trace with ID {trace_id} is not found. {_NOT_STORED}", RESOURCE_DOES_NOT_EXIST
        )

    def get_trace(self, trace_id: str, *, allow_partial: bool = False) -> NoReturn:
        self.get_trace_info(trace_id)
        raise AssertionError("unreachable")

    def start_trace(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def log_spans(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def set_trace_tag(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def delete_trace_tag(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def link_traces_to_run(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def delete_traces(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def _delete_traces(self, *args: Any, **kwargs: Any) -> int:
        return 0

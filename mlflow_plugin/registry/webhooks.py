"""Webhooks are not stored on the bucket: every webhook call answers cleanly.

Listing answers an empty page (the server asks for webhooks on every registry event),
reading or deleting one is RESOURCE_DOES_NOT_EXIST, and creating, updating or testing
one is NOT_IMPLEMENTED with a sentence saying why, never an HTTP 500.
"""

from __future__ import annotations

from typing import Any, NoReturn

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList

__all__ = ["WebhooksNotStoredMixin"]

_NOT_STORED = (
    "Webhooks are not stored by the mlflow-bucket model registry (bucket+s3 / bucket+file); "
    "use a database-backed registry (e.g. sqlite:///mlflow.db) for webhooks."
)


def _not_stored() -> NoReturn:
    raise MlflowException(_NOT_STORED, NOT_IMPLEMENTED)


def _no_webhook(webhook_id: str) -> NoReturn:
    raise MlflowException(
        f"Webhook with ID {webhook_id} not found. {_NOT_STORED}", RESOURCE_DOES_NOT_EXIST
    )


class WebhooksNotStoredMixin:
    """Webhook methods of the registry store: none are stored."""

    def create_webhook(self, name: str, url: str, events: Any, *args: Any, **kwargs: Any) -> Any:
        _not_stored()

    def get_webhook(self, webhook_id: str) -> Any:
        _no_webhook(webhook_id)

    def list_webhooks(
        self, max_results: int | None = None, page_token: str | None = None
    ) -> PagedList[Any]:
        return PagedList([], None)

    def list_webhooks_by_event(
        self, event: Any, max_results: int | None = None, page_token: str | None = None
    ) -> PagedList[Any]:
        return PagedList([], None)

    def update_webhook(self, webhook_id: str, *args: Any, **kwargs: Any) -> Any:
        _no_webhook(webhook_id)

    def delete_webhook(self, webhook_id: str) -> None:
        _no_webhook(webhook_id)

    def test_webhook(self, webhook_id: str, event: Any = None) -> Any:
        _no_webhook(webhook_id)

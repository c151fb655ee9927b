"""What the model registry does not store: webhooks, as a table (``mlflow_plugin.not_stored``).

Listing answers an empty page (the server asks for the webhooks of every registry
event), reading one is RESOURCE_DOES_NOT_EXIST, and creating, changing, deleting or
testing one is NOT_IMPLEMENTED with a sentence saying why, never an HTTP 500. Every
other method of MLflow's registry ``AbstractStore`` is implemented by the store or is
a base-class default built on it (prompts are tagged registered models); a test
enumerates them from MLflow so that a method a new MLflow adds is noticed.
"""

from __future__ import annotations

from mlflow_plugin.not_stored import REGISTRY, Kind, empty_page

__all__ = [
    "WEBHOOKS",
    "RegistryKindsNotStoredMixin",
]

WEBHOOKS = Kind("Webhooks", "Webhook", REGISTRY)


class RegistryKindsNotStoredMixin:
    """Empty reads, missing items and refused writes for what the registry does not store."""

    list_webhooks = list_webhooks_by_event = WEBHOOKS.empty(empty_page)
    get_webhook = WEBHOOKS.get()
    create_webhook = update_webhook = delete_webhook = test_webhook = WEBHOOKS.write()

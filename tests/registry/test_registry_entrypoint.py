"""MLflow finds the registry store for both schemes through the installed entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from mlflow_plugin.registry.store import BucketRegistryStore


def test_entry_points_register_both_schemes() -> None:
    found = {
        ep.name: ep.value
        for ep in entry_points(group="mlflow.model_registry_store")
        if ep.value.startswith("mlflow_plugin.")
    }
    assert found == {
        "bucket+s3": "mlflow_plugin.registry.entrypoint:build_registry_store",
        "bucket+file": "mlflow_plugin.registry.entrypoint:build_registry_store",
    }


def test_mlflow_builds_our_store_with_the_tracking_uri(tmp_path: Path) -> None:
    from mlflow.tracking._model_registry.utils import _get_store

    uri = f"bucket+file://{tmp_path}/root"
    store = _get_store(uri, uri)
    assert isinstance(store, BucketRegistryStore)
    assert store.tracking_uri == uri


def test_entry_point_module_imports_nothing_from_mlflow() -> None:
    code = (
        "import sys, mlflow_plugin.registry.entrypoint; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_webhooks_answer_cleanly(tmp_path: Path) -> None:
    store = BucketRegistryStore(f"bucket+file://{tmp_path}/root")
    assert list(store.list_webhooks()) == []
    assert list(store.list_webhooks_by_event(None)) == []
    with pytest.raises(MlflowException) as created:
        store.create_webhook("hook", "https://example.invalid/hook", [])
    assert created.value.error_code == "NOT_IMPLEMENTED"
    with pytest.raises(MlflowException) as read:
        store.get_webhook("w-1")
    assert read.value.error_code == "RESOURCE_DOES_NOT_EXIST"

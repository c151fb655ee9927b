"""A listing reads each document once: a damaged one is left out and named, the rest listed.

Logged models and registered models are listed by reading every document under their
prefix (``format.reading.read_listed``). A document that is damaged, or deleted between
the listing and the read, must never fail the listing of the others.
"""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import uuid4

import pytest
from mlflow.entities import ViewType

from mlflow_plugin.format import keys
from mlflow_plugin.format.reading import read_listed
from mlflow_plugin.registry import keys as registry_keys
from mlflow_plugin.registry.store import BucketRegistryStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.servers import S3Endpoint


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/hostile-listed/{uuid4().hex}?endpoint_url={moto.url}"


def test_read_listed_answers_none_for_a_gone_or_damaged_document(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = BucketTrackingStore(uri)
    experiment_id = store.create_experiment("listed")
    healthy = store.create_logged_model(experiment_id, name="healthy").model_id
    damaged = store.create_logged_model(experiment_id, name="damaged").model_id
    objects = store.object_store
    damaged_key = keys.logged_model_key(damaged)
    objects.put(damaged_key, objects.get(damaged_key).data[:30])

    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.format.reading"):
        assert read_listed(objects, keys.logged_model_key("m-" + "0" * 32)) is None
        assert read_listed(objects, damaged_key, "the test") is None
        doc = read_listed(objects, keys.logged_model_key(healthy))
    assert doc is not None and doc["model_id"] == healthy
    warned = [r.getMessage() for r in caplog.records if r.name == "mlflow_plugin.format.reading"]
    assert len(warned) == 1
    assert warned[0].startswith("left out of the test:") and damaged_key in warned[0]


def test_searches_of_models_leave_a_damaged_document_out(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracking = BucketTrackingStore(uri)
    registry = BucketRegistryStore(uri)
    experiment_id = tracking.create_experiment("models")
    healthy = tracking.create_logged_model(experiment_id, name="healthy").model_id
    damaged = tracking.create_logged_model(experiment_id, name="damaged").model_id
    registry.create_registered_model("healthy-model")
    registry.create_registered_model("damaged-model")
    objects = tracking.object_store
    model_keys = [
        info.key
        for info in objects.list(registry_keys.models_prefix())
        if info.key.endswith("/model.json")
    ]
    damaged_registered = next(
        key for key in model_keys if b"damaged-model" in objects.get(key).data
    )
    for key in (keys.logged_model_key(damaged), damaged_registered):
        objects.put(key, b'{"model_id": 7')

    with caplog.at_level(logging.WARNING, logger="mlflow_plugin.format.reading"):
        found = tracking.search_logged_models([experiment_id])
        registered = registry.search_registered_models()
    assert [m.model_id for m in found] == [healthy]
    assert [m.name for m in registered] == ["healthy-model"]
    warned = [r.getMessage() for r in caplog.records if r.name == "mlflow_plugin.format.reading"]
    for key in (keys.logged_model_key(damaged), damaged_registered):
        assert any(key in m for m in warned)
    assert tracking.search_experiments(ViewType.ALL)

"""No HTTP 500 for what the model registry does not store: every MLflow method answers.

As ``tests/tracking/test_not_stored.py`` does for the tracking store: the methods come
from MLflow's registry ``AbstractStore`` (and what its server calls), each is
implemented, answered in ``mlflow_plugin/registry/not_stored.py`` (webhooks), or a
base-class default listed below (prompts are tagged registered models); each answered
or inherited one is called on both schemes and returns or raises ``MlflowException``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.entities.model_registry import ModelVersion
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore

from mlflow_plugin.not_stored import answers
from mlflow_plugin.registry.store import BucketRegistryStore
from tests.servers import S3Endpoint
from tests.store_methods import call, mlflow_methods, origin

REGISTRY_GETTER = "_get_model_registry_store"

# Base-class defaults that work through the store's own methods (read in MLflow 3.17):
# prompts are registered models tagged mlflow.prompt.is_prompt, versions their versions.
PROMPTS = {
    "create_prompt", "create_prompt_version", "delete_prompt", "delete_prompt_alias",
    "delete_prompt_tag", "delete_prompt_version", "delete_prompt_version_tag", "get_prompt",
    "get_prompt_version", "get_prompt_version_by_alias", "search_prompt_versions",
    "search_prompts", "set_prompt_alias", "set_prompt_tag", "set_prompt_version_tag",
    # Tags on the tracking store's logged models, runs and traces.
    "link_prompt_version_to_model", "link_prompt_version_to_run", "link_prompts_to_trace",
}  # fmt: skip
DEFAULTS_THAT_WORK = PROMPTS | {"copy_model_version"}  # our create_* methods

OVERRIDES: dict[str, object] = {
    "template": "Hello {{name}}",
    "version": "1",
    "src_mv": ModelVersion("no-such-model", "1", 0),
    "prompt_versions": [],
}

REGISTRY_METHODS = mlflow_methods(AbstractStore, REGISTRY_GETTER)
ROWS = answers(BucketRegistryStore)


def test_every_method_is_implemented_answered_or_a_default_that_works() -> None:
    origins = {name: origin(BucketRegistryStore, name) for name in sorted(REGISTRY_METHODS)}
    unknown = [
        name
        for name, where in origins.items()
        if where == "missing" or (where == "mlflow" and name not in DEFAULTS_THAT_WORK)
    ]
    assert not unknown, (
        f"MLflow {mlflow.__version__}'s registry store methods {unknown} are neither "
        "implemented by BucketRegistryStore nor answered in "
        "mlflow_plugin/registry/not_stored.py: add each to that table, or implement it"
    )
    typos = [name for name in DEFAULTS_THAT_WORK | ROWS.keys() if name not in origins]
    assert not typos, f"not methods of MLflow's registry store: {typos}"


@pytest.fixture(params=["bucket+file", "bucket+s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BucketRegistryStore]:
    if request.param == "bucket+file":
        uri = f"bucket+file://{tmp_path / 'root'}"
    else:
        moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
        prefix = f"registry-not-stored/{uuid.uuid4().hex}"
        uri = f"bucket+s3://{moto_s3.shared_bucket}/{prefix}?endpoint_url={moto_s3.url}"
    # The prompt-linking defaults reach the tracking store through the global tracking URI.
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    yield BucketRegistryStore(uri)


def test_each_method_answers_by_its_row_or_raises_only_mlflow_errors(
    store: BucketRegistryStore,
) -> None:
    wrong: list[str] = []
    for name in sorted(ROWS.keys() | DEFAULTS_THAT_WORK):
        outcome = call(store, name, AbstractStore, OVERRIDES)
        row = ROWS.get(name)
        if outcome.error is not None and outcome.mlflow_error_code is None:
            wrong.append(f"{name}: {outcome.error!r}")
        elif row is None:
            continue
        elif row.rule == "empty" and not (
            isinstance(outcome.value, PagedList) and list(outcome.value) == []
        ):
            wrong.append(f"{name}: not an empty page: {outcome}")
        elif row.rule == "get" and outcome.mlflow_error_code != "RESOURCE_DOES_NOT_EXIST":
            wrong.append(f"{name}: not RESOURCE_DOES_NOT_EXIST: {outcome}")
        elif row.rule == "write" and outcome.mlflow_error_code != "NOT_IMPLEMENTED":
            wrong.append(f"{name}: not NOT_IMPLEMENTED: {outcome}")
    assert wrong == []


def test_prompts_work_as_tagged_registered_models(store: BucketRegistryStore) -> None:
    store.create_prompt("greeting", description="says hello")
    store.create_prompt_version("greeting", "Hello {{name}}")
    store.set_prompt_alias("greeting", "live", 1)
    assert store.get_prompt_version_by_alias("greeting", "live").template == "Hello {{name}}"
    assert [prompt.name for prompt in store.search_prompts()] == ["greeting"]

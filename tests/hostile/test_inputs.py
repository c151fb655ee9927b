"""The differential corpus (``inputs.py``) on sqlite (reference) and on both bucket schemes.

Each case is one test per bucket backend; its sqlite result is computed once, by whichever
backend asks first. Cases of one group share a populated store per backend (a world is
built once per group, not per case: a store and its world cost more than most cases), so
cases run in the same order on every backend and each sees the same history.

Every case also checks, on each bucket backend: no raw Python exception came out of
``mlflow_plugin``; nothing outside the root changed (``guards.py``); the sentinel run reads
back exactly as before the case.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from uuid import uuid4

import mlflow
import pytest
from mlflow import MlflowClient

from tests.differential.normalise import difference
from tests.differential.suite import CANDIDATES
from tests.hostile.corpus import World, head, normalise, to_json
from tests.hostile.guards import outside_root_unchanged
from tests.hostile.inputs import CASES, InputCase
from tests.servers import S3Endpoint
from tests.sqlite_reference import migrated_sqlite_uri


@pytest.fixture(scope="module")
def hostile_bucket(moto_s3: S3Endpoint) -> str:
    """A bucket of its own, so that 'nothing outside the root changed' sees only our cases."""
    return moto_s3.create_bucket("hostile")


def flush(client: MlflowClient) -> None:
    """Upload what the bucket store buffered, so that nothing lands after the snapshot."""
    store = client._tracking_client.store
    if hasattr(store, "flush"):
        store.flush()


def raw_plugin_errors(value: object) -> list[object]:
    """Every outcome in a result that is a raw exception raised through mlflow_plugin."""
    if isinstance(value, list) and len(value) == 3 and value[0] == "error":
        return [value] if value[2] == "raw, through mlflow_plugin" else []
    if isinstance(value, dict):
        return [found for item in value.values() for found in raw_plugin_errors(item)]
    if isinstance(value, list):
        return [found for item in value for found in raw_plugin_errors(item)]
    return []


def check_case(case: InputCase, expected: object, actual: object, backend: str) -> None:
    assert isinstance(expected, dict) and isinstance(actual, dict)
    raw = raw_plugin_errors(actual)
    assert not raw, f"{case.name} on {backend}: raw exception out of mlflow_plugin: {raw}"
    assert actual.get("sentinel_intact") is True, f"{case.name} changed the sentinel run"
    if case.divergence is None:
        if actual != expected:
            pytest.fail(
                f"{case.name} differs on {backend}:\n{difference(expected, actual)}", pytrace=False
            )
        return
    assert head(expected["call"]) == case.divergence.sqlite, (
        f"sqlite no longer answers {case.divergence.sqlite} for {case.name}: "
        f"{expected['call']}; review the divergence ({case.divergence.why})"
    )
    assert head(actual["call"]) == case.divergence.bucket, (
        f"{case.name} on {backend}: {actual['call']}, expected {case.divergence.bucket}"
    )


@dataclass
class Store:
    """One backend's populated store for one group of cases."""

    world: World
    sentinel: object
    uri: str


class TestHostileInputs:
    stores: ClassVar[dict[tuple[str, str], Store]] = {}
    references: ClassVar[dict[str, object]] = {}

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "name" in metafunc.fixturenames:
            metafunc.parametrize("name", list(CASES))  # in definition order: groups stay together
        if "backend" in metafunc.fixturenames:
            metafunc.parametrize("backend", CANDIDATES)

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def folder(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
        folder = tmp_path_factory.mktemp("hostile-inputs")
        with pytest.MonkeyPatch.context() as patch:
            # The sqlite store resolves its default artifact root (./mlruns) against the cwd.
            patch.chdir(folder)
            for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
                patch.delenv(name, raising=False)
            yield folder
            for store in cls.stores.values():
                flush(store.world.client)
        cls.stores = {}
        cls.references = {}
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None resets it
        shutil.rmtree(folder, ignore_errors=True)

    def store(
        self, backend: str, group: str, folder: Path, request: pytest.FixtureRequest
    ) -> Store:
        """The backend's store for ``group``, built and populated by the group's first case."""
        if (backend, group) not in self.stores:
            place = folder / f"{backend}-{group.replace(' ', '-')}"
            place.mkdir()
            if backend == "sqlite":
                uri = migrated_sqlite_uri(place / "reference.db")
            elif backend == "bucket_file":
                uri = f"bucket+file://{place}/root"
            else:
                moto: S3Endpoint = request.getfixturevalue("moto_s3")
                bucket = request.getfixturevalue("hostile_bucket")
                uri = f"bucket+s3://{bucket}/hostile-inputs/{uuid4().hex}?endpoint_url={moto.url}"
            world = World.build(MlflowClient(tracking_uri=uri, registry_uri=uri))
            assert world.model_name and world.logged_model_id  # searches find something
            self.stores[backend, group] = Store(world, world.sentinel(), uri)
        return self.stores[backend, group]

    @staticmethod
    def observe(case: InputCase, store: Store) -> object:
        result = case.action(store.world)
        flush(store.world.client)
        intact = store.world.sentinel() == store.sentinel
        return normalise(to_json({**result, "sentinel_intact": intact}))

    def test_case(
        self, name: str, backend: str, folder: Path, request: pytest.FixtureRequest
    ) -> None:
        case = CASES[name]
        if name not in self.references:
            reference = self.store("sqlite", case.group, folder, request)
            self.references[name] = self.observe(case, reference)
        expected = self.references[name]
        assert isinstance(expected, dict) and expected["sentinel_intact"] is True
        store = self.store(backend, case.group, folder, request)
        with outside_root_unchanged(store.uri):
            actual = self.observe(case, store)
        check_case(case, expected, actual, backend)

    def test_corpus_is_large(self) -> None:
        assert len(CASES) >= 300, len(CASES)

"""Differential suite: every registry scenario on MLflow's SqlAlchemyStore (sqlite) and the bucket.

The sqlite result is the expected one; the bucket registry, on a local folder and on a moto
S3 server, must give the same normalised result (see ``tests/registry/harness.py``).
Run ``pytest tests/registry -s`` to see the scenario count.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import mlflow
import pytest
from mlflow import MlflowClient

from tests.registry import scenarios
from tests.registry.harness import SCENARIOS, difference, normalise, to_json
from tests.servers import S3Endpoint

SCENARIO_MODULE = scenarios  # registers the scenarios on import
CANDIDATES = ("bucket_file", "bucket_s3")
MIN_SCENARIOS = 40

# Stages (transition_model_version_stage, get_latest_versions) are deprecated but still
# MLflow's API; the scenarios exercise them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated since 2.9.0:FutureWarning")
SHARED_MEMORY = Path("/dev/shm")


@pytest.fixture(scope="session")
def sqlite_template() -> Iterator[Path]:
    """One migrated MLflow database (in /dev/shm where there is one); each scenario copies it."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-registry-diff-", dir=_shm_or_none()))
    path = folder / "template.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def _shm_or_none() -> str | None:
    return str(SHARED_MEMORY) if SHARED_MEMORY.is_dir() else None


@pytest.fixture(scope="session")
def reference_results() -> dict[str, object]:
    """Normalised sqlite results, computed once per scenario and shared by both candidates."""
    return {}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The sqlite store resolves its default artifact root (./mlruns) against the cwd.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _run(name: str, uri: str) -> object:
    # MLflow's SQL store resolves ``models:/<id>`` sources through the global tracking URI.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return normalise(to_json(SCENARIOS[name](client)))


def _run_on_sqlite(name: str, template: Path) -> object:
    path = template.with_name(f"{name}-{uuid4().hex}.db")
    shutil.copyfile(template, path)
    try:
        return _run(name, f"sqlite:///{path}")
    finally:
        path.unlink()


def _candidate_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "bucket_file":
        return f"bucket+file://{tmp_path}/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/registry/{uuid4().hex}?endpoint_url={moto.url}"


@pytest.mark.parametrize("backend", CANDIDATES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(
    name: str,
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    reference_results: dict[str, object],
    request: pytest.FixtureRequest,
) -> None:
    if name not in reference_results:
        reference_results[name] = _run_on_sqlite(name, sqlite_template)
    expected = reference_results[name]
    actual = _run(name, _candidate_uri(backend, tmp_path, request))
    assert actual == expected, f"{name} differs on {backend}:\n{difference(expected, actual)}"


def test_reference_is_deterministic(
    sqlite_template: Path, reference_results: dict[str, object]
) -> None:
    """Two sqlite runs agree on every scenario: a difference is the candidate's fault."""
    for name in sorted(SCENARIOS):
        if name not in reference_results:
            reference_results[name] = _run_on_sqlite(name, sqlite_template)
        second = _run_on_sqlite(name, sqlite_template)
        assert reference_results[name] == second, difference(reference_results[name], second)


def test_scenario_count() -> None:
    message = f"registry differential scenarios: {len(SCENARIOS)}"
    print(message)
    assert len(SCENARIOS) >= MIN_SCENARIOS, message

"""Differential suite: every scenario on MLflow's SqlAlchemyStore (sqlite) and on the bucket store.

The sqlite result is the expected one; the bucket store, on a local folder and on a moto S3
server, must give the same normalised result (see ``tests/tracking/differential.py``).
Run ``pytest tests/tracking -s`` to see the scenario count.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from mlflow import MlflowClient

from tests.servers import S3Endpoint
from tests.tracking import scenarios_experiments, scenarios_models, scenarios_runs, scenarios_search
from tests.tracking.differential import SCENARIOS, difference, normalise, to_json

# The modules register their scenarios on import; keep the names referenced.
SCENARIO_MODULES = (scenarios_experiments, scenarios_runs, scenarios_search, scenarios_models)
CANDIDATES = ("bucket_file", "bucket_s3")
MIN_SCENARIOS = 80
SHARED_MEMORY = Path("/dev/shm")


@pytest.fixture(scope="session")
def sqlite_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the reference databases live: in memory (/dev/shm) where there is one.

    SQLite syncs every commit to disk; on tmpfs the reference runs about twice as fast.
    """
    if SHARED_MEMORY.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="mlflow-diff-", dir=SHARED_MEMORY))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("sqlite")


@pytest.fixture(scope="session")
def sqlite_template(sqlite_folder: Path) -> Path:
    """One migrated MLflow database; each scenario gets a copy (migrations take about 1 s)."""
    path = sqlite_folder / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def reference_results() -> dict[str, object]:
    """Normalised sqlite results, computed once per scenario and shared by both candidates."""
    return {}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The sqlite store resolves its default artifact root (./mlruns) against the cwd.
    monkeypatch.chdir(tmp_path)
    yield


def _run_on_sqlite(name: str, template: Path) -> object:
    path = template.with_name(f"{name}-{uuid4().hex}.db")
    shutil.copyfile(template, path)
    try:
        client = MlflowClient(tracking_uri=f"sqlite:///{path}")
        return normalise(to_json(SCENARIOS[name](client)))
    finally:
        path.unlink()


def _candidate_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "bucket_file":
        return f"bucket+file://{tmp_path}/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/diff/{uuid4().hex}?endpoint_url={moto.url}"


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
    client = MlflowClient(tracking_uri=_candidate_uri(backend, tmp_path, request))
    actual = normalise(to_json(SCENARIOS[name](client)))
    if actual != expected:
        pytest.fail(f"{name} differs on {backend}:\n{difference(expected, actual)}", pytrace=False)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_is_deterministic_on_the_reference(
    name: str, sqlite_template: Path, reference_results: dict[str, object]
) -> None:
    """Two sqlite runs agree: a difference on a candidate is the store's, not the harness's."""
    if name not in reference_results:
        reference_results[name] = _run_on_sqlite(name, sqlite_template)
    first = reference_results[name]
    second = _run_on_sqlite(name, sqlite_template)
    if first != second:
        pytest.fail(f"{name} is not deterministic:\n{difference(first, second)}", pytrace=False)


def test_scenario_count() -> None:
    message = f"differential scenarios: {len(SCENARIOS)}"
    print(message)
    assert len(SCENARIOS) >= MIN_SCENARIOS, message

"""The differential test class: each scenario on MLflow's sqlite store and on the bucket store.

The sqlite result is the expected one; the bucket store, on a local folder and on a moto S3
server, must give the same normalised result. A suite subclasses ``DifferentialSuite``,
sets its ``book`` (the scenarios), the ``title`` its scenario count is printed under, the
least number of scenarios it expects and its prefix in the moto bucket, and says how to
create the reference schema; it may override how a client opens a store.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar
from uuid import uuid4

import mlflow
import pytest
from mlflow import MlflowClient

from tests.differential.book import ScenarioBook
from tests.differential.normalise import difference
from tests.servers import S3Endpoint

CANDIDATES = ("bucket_file", "bucket_s3")
SHARED_MEMORY = Path("/dev/shm")


#: "<suite>: <count>" lines, printed by tests/conftest.py at the end of the run.
SCENARIO_COUNTS: list[str] = []


class ReferenceResults:
    """The sqlite results of one test run, by scenario (its module and name: two books may
    name a scenario alike).

    Two suites drive the same scenarios (the tracking one on a SQLite index and on a
    PostgreSQL one), often at once in two processes: each result is left in ``folder`` for
    the other, so a scenario's reference costs one sqlite run per test run.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._results: dict[str, object] = {}

    def get(self, key: str, compute: Callable[[], object]) -> object:
        if key not in self._results:
            path = self.folder / f"{key}.pickle"
            try:
                self._results[key] = pickle.loads(path.read_bytes())
            except FileNotFoundError:
                self._results[key] = compute()
                written = path.with_name(f"{path.name}.{uuid4().hex}")
                written.write_bytes(pickle.dumps(self._results[key]))
                written.replace(path)  # whole or absent for a reader in another process
        return self._results[key]


class DifferentialSuite:
    """Each scenario of ``book`` on sqlite (expected) and on each candidate (actual)."""

    book: ClassVar[ScenarioBook]
    title: ClassVar[str]  # printed with the scenario count
    min_scenarios: ClassVar[int]
    s3_prefix: ClassVar[str]  # where the moto candidate lives in the shared bucket
    candidates: ClassVar[tuple[str, ...]] = CANDIDATES

    @staticmethod
    def create_reference_schema(client: MlflowClient) -> None:
        """Make MLflow create and migrate a new sqlite database (its first call does)."""
        raise NotImplementedError

    def client(self, uri: str) -> MlflowClient:
        """The client a scenario drives on the store at ``uri``."""
        return MlflowClient(tracking_uri=uri)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "name" in metafunc.fixturenames:
            metafunc.parametrize("name", sorted(self.book.scenarios))
        if "backend" in metafunc.fixturenames:
            metafunc.parametrize("backend", self.candidates)

    @pytest.fixture(scope="class")
    @classmethod
    def sqlite_template(cls) -> Iterator[Path]:
        """One migrated MLflow database; each scenario gets a copy (migrations take about 1 s).

        It lives in memory (/dev/shm) where there is one: SQLite syncs every commit to disk,
        and on tmpfs the reference runs about twice as fast.
        """
        shm = str(SHARED_MEMORY) if SHARED_MEMORY.is_dir() else None
        folder = Path(tempfile.mkdtemp(prefix="mlflow-diff-", dir=shm))
        path = folder / "template.db"
        uri = f"sqlite:///{path}"
        cls.create_reference_schema(MlflowClient(tracking_uri=uri, registry_uri=uri))
        yield path
        shutil.rmtree(folder, ignore_errors=True)

    @pytest.fixture(scope="class")
    @classmethod
    def reference_results(cls, tmp_path_factory: pytest.TempPathFactory) -> ReferenceResults:
        """Normalised sqlite results, computed once per scenario and test run."""
        base = tmp_path_factory.getbasetemp()
        # This run's own folder: pytest's numbered one, or under pytest-xdist the one
        # above the workers'.
        run_folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
        folder = run_folder / "differential-references"
        folder.mkdir(exist_ok=True)
        return ReferenceResults(folder)

    @pytest.fixture(autouse=True)
    def _isolated(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        # The sqlite store resolves its default artifact root (./mlruns) against the cwd.
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        yield
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)

    def run_on_sqlite(self, name: str, template: Path) -> object:
        path = template.with_name(f"{name}-{uuid4().hex}.db")
        shutil.copyfile(template, path)
        try:
            return self.book.observe(name, self.client(f"sqlite:///{path}"))
        finally:
            path.unlink()

    def reference(self, name: str, template: Path, results: ReferenceResults) -> object:
        scenario = self.book.scenarios[name]
        return results.get(
            f"{scenario.__module__}.{name}", lambda: self.run_on_sqlite(name, template)
        )

    def candidate_uri(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
        if backend == "bucket_file":
            return f"bucket+file://{tmp_path}/root"
        moto: S3Endpoint = request.getfixturevalue("moto_s3")
        prefix = f"{self.s3_prefix}/{uuid4().hex}"
        return f"bucket+s3://{moto.shared_bucket}/{prefix}?endpoint_url={moto.url}"

    def check_reference_is_deterministic(
        self, name: str, template: Path, results: ReferenceResults
    ) -> None:
        """Two sqlite runs agree: a difference on a candidate is the store's, not the harness's."""
        first = self.reference(name, template, results)
        second = self.run_on_sqlite(name, template)
        if first != second:
            pytest.fail(f"{name} is not deterministic:\n{difference(first, second)}", pytrace=False)

    def test_scenario(
        self,
        name: str,
        backend: str,
        tmp_path: Path,
        sqlite_template: Path,
        reference_results: ReferenceResults,
        request: pytest.FixtureRequest,
    ) -> None:
        expected = self.reference(name, sqlite_template, reference_results)
        client = self.client(self.candidate_uri(backend, tmp_path, request))
        actual = self.book.observe(name, client)
        if actual != expected:
            pytest.fail(
                f"{name} differs on {backend}:\n{difference(expected, actual)}", pytrace=False
            )

    def test_scenario_count(self) -> None:
        message = f"{self.title}: {len(self.book.scenarios)}"
        print(message)
        SCENARIO_COUNTS.append(message)  # shown again in pytest's closing summary
        assert len(self.book.scenarios) >= self.min_scenarios, message

"""The tracking differential suite with every search through a PostgreSQL index.

The scenarios and the ``sqlite:///`` reference are ``tests/tracking/test_differential.py``'s;
the candidate is a local folder whose store URI also names an index database of its own on
the session's PostgreSQL server, spelled as the README spells it
(``?index=postgresql+psycopg://...``). No SQLite index may appear meanwhile: a search that
did not go through PostgreSQL fails its scenario.

Only the folder: the index holds what the documents say, whichever object store they came
from, and the S3 side is the SQLite-index differential's and the PostgreSQL replica tests'
(two servers on one moto bucket, concurrent syncs of changing documents).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.differential.suite import DifferentialSuite
from tests.tracking import test_differential
from tests.tracking.harness import BOOK


class TestTrackingDifferentialOnPostgres(DifferentialSuite):
    book = BOOK
    title = "differential scenarios through a PostgreSQL index"
    min_scenarios = test_differential.TestTrackingDifferential.min_scenarios
    s3_prefix = "diff-postgres"
    candidates = ("bucket_file",)

    @staticmethod
    def create_reference_schema(client: MlflowClient) -> None:
        test_differential.TestTrackingDifferential.create_reference_schema(client)

    @pytest.fixture(autouse=True)
    def _no_sqlite_index(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        folder = tmp_path / "local-index"
        monkeypatch.setenv("MLFLOW_BUCKET_INDEX_DIR", str(folder))
        yield
        assert not list(folder.glob("*.sqlite")), "a search used a SQLite index"

    def candidate_uri(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
        uri = super().candidate_uri(backend, tmp_path, request)
        index: str = request.getfixturevalue("postgres_index")
        return f"{uri}{'&' if '?' in uri else '?'}index={index}"

"""Differential suite: every registry scenario on MLflow's SqlAlchemyStore (sqlite) and the bucket.

The harness is ``tests/differential``; the scenarios are ``scenarios.py`` and their
serialisation and normalisation ``harness.py``. Run ``pytest tests/registry -s`` to see the
scenario count.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.differential.suite import DifferentialSuite, ReferenceResults
from tests.registry import scenarios
from tests.registry.harness import BOOK

SCENARIO_MODULE = scenarios  # registers the scenarios on import

# Stages (transition_model_version_stage, get_latest_versions) are deprecated but still
# MLflow's API; the scenarios exercise them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated since 2.9.0:FutureWarning")


class TestRegistryDifferential(DifferentialSuite):
    book = BOOK
    title = "registry differential scenarios"
    min_scenarios = 40
    s3_prefix = "registry"

    @staticmethod
    def create_reference_schema(client: MlflowClient) -> None:
        client.search_registered_models()

    def client(self, uri: str) -> MlflowClient:
        # MLflow's SQL store resolves ``models:/<id>`` sources through the global tracking URI.
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def test_reference_is_deterministic(
        self,
        sqlite_template: Path,
        reference_results: ReferenceResults,
    ) -> None:
        """Two sqlite runs agree on every scenario: a difference is the candidate's fault."""
        for name in sorted(self.book.scenarios):
            self.check_reference_is_deterministic(name, sqlite_template, reference_results)

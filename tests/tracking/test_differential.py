"""Differential suite: every scenario on MLflow's SqlAlchemyStore (sqlite) and on the bucket store.

The harness is ``tests/differential``; the scenarios are ``scenarios_*.py`` and their
serialisation and normalisation ``harness.py``. Run ``pytest tests/tracking -s`` to see the
scenario count.
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from tests.differential.suite import DifferentialSuite, ReferenceResults
from tests.tracking import (
    scenarios_experiment_delete,
    scenarios_experiments,
    scenarios_models,
    scenarios_runs,
    scenarios_search,
)
from tests.tracking.harness import BOOK

# The modules register their scenarios on import; keep the names referenced.
SCENARIO_MODULES = (
    scenarios_experiments,
    scenarios_runs,
    scenarios_search,
    scenarios_models,
    scenarios_experiment_delete,
)


class TestTrackingDifferential(DifferentialSuite):
    book = BOOK
    title = "differential scenarios"
    min_scenarios = 80
    s3_prefix = "diff"

    @staticmethod
    def create_reference_schema(client: MlflowClient) -> None:
        client.search_experiments()

    def test_scenario_is_deterministic_on_the_reference(
        self,
        name: str,
        sqlite_template: Path,
        reference_results: ReferenceResults,
    ) -> None:
        self.check_reference_is_deterministic(name, sqlite_template, reference_results)

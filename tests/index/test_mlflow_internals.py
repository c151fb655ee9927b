"""The MLflow internals the index relies on still exist with the shape it uses.

An MLflow upgrade that renames a private function, changes its parameters or a
column of its tables fails here, naming the MLflow version and the name, before
it fails somewhere deep in a search.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest

from mlflow_plugin.index import mlflow_internals
from mlflow_plugin.index.rows import experiment_rows, run_rows

INDEX = Path(mlflow_internals.__file__).parent

# Modules whose names are MLflow internals wherever they are imported from.
_INTERNAL_MODULES = (
    "mlflow.store.db.base_sql_model",
    "mlflow.store.tracking.dbmodels",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.utils.search_utils",
)

# name -> the parameters the index passes (by position, so their order matters too).
_CALLED = {
    "_get_sqlalchemy_filter_clauses": ["parsed", "session", "dialect"],
    "_get_search_experiments_filter_clauses": ["parsed_filters", "dialect"],
    "_get_search_experiments_order_by_clauses": ["order_by"],
    "_DatasetSummary": ["experiment_id", "name", "digest", "context"],
    "SearchUtils.parse_search_filter": ["filter_string"],
    "SearchUtils.parse_order_by_for_search_runs": ["order_by"],
    "SearchUtils.parse_start_offset_from_page_token": ["page_token"],
    "SearchUtils.create_page_token": ["offset"],
    "SearchUtils.translate_key_alias": ["key"],
    "SearchUtils.is_metric": ["key_type", "comparator"],
    "SearchUtils.is_param": ["key_type", "comparator"],
    "SearchUtils.is_tag": ["key_type", "comparator"],
    "SearchUtils.is_string_attribute": ["key_type", "key_name", "comparator"],
    "SearchUtils.is_numeric_attribute": ["key_type", "key_name", "comparator"],
    "SearchExperimentsUtils.parse_search_filter": ["filter_string"],
    "SqlRun.get_attribute_name": ["mlflow_attribute_name"],
}

_RUN_DOC: dict[str, Any] = {
    "run_id": "r1",
    "experiment_id": "7",
    "run_name": "name",
    "user_id": "u",
    "status": "RUNNING",
    "lifecycle_stage": "active",
    "start_time": 1,
    "artifact_uri": "bucket+file:/a",
    "tags": {"t": "v"},
    "params": {"p": "1"},
    "latest_metrics": {"m": {"value": 1.0, "timestamp": 1, "step": 0}},
    "inputs": [{"dataset": {"name": "d", "digest": "x"}, "tags": {"mlflow.data.context": "t"}}],
}
_EXPERIMENT_DOC: dict[str, Any] = {
    "experiment_id": "7",
    "name": "e",
    "lifecycle_stage": "active",
    "tags": {"t": "v"},
}


def _columns_written() -> dict[str, set[str]]:
    """Table -> the columns the index writes (from the rows it builds) or queries by name."""
    run = run_rows(_RUN_DOC, "r1", "7")
    experiment = experiment_rows(_EXPERIMENT_DOC, "7")
    written = {
        "SqlRun": [run.run],
        "SqlTag": run.tags,
        "SqlParam": run.params,
        "SqlLatestMetric": run.latest_metrics,
        "SqlDataset": run.datasets,
        "SqlInput": run.inputs,
        "SqlInputTag": run.input_tags,
        "SqlExperiment": [experiment.experiment],
        "SqlExperimentTag": experiment.tags,
    }
    columns = {table: {name for row in rows for name in row} for table, rows in written.items()}
    assert all(columns.values()), "every table gets at least one row from the sample documents"
    return columns


def _failure(name: str, what: str) -> str:
    return (
        f"MLflow {mlflow.__version__}: {name} (see mlflow_plugin/index/mlflow_internals.py) {what}"
    )


def _resolve(dotted: str) -> Callable[..., Any]:
    first, *rest = dotted.split(".")
    value = getattr(mlflow_internals, first, None)
    assert value is not None, _failure(first, "is gone")
    for part in rest:
        assert hasattr(value, part), _failure(dotted, "is gone")
        value = getattr(value, part)
    return value  # type: ignore[no-any-return]


@pytest.mark.parametrize("dotted", sorted(_CALLED))
def test_called_names_take_the_parameters_we_pass(dotted: str) -> None:
    parameters = list(inspect.signature(_resolve(dotted)).parameters)
    assert parameters == _CALLED[dotted], _failure(
        dotted, f"takes {parameters}, the index passes {_CALLED[dotted]}"
    )


@pytest.mark.parametrize("table", sorted(_columns_written()))
def test_tables_have_the_columns_we_fill(table: str) -> None:
    model = _resolve(table)
    columns = set(model.__table__.columns.keys())  # type: ignore[attr-defined]
    missing = _columns_written()[table] - columns
    assert not missing, _failure(table, f"has no column {sorted(missing)}")
    assert model.__table__.metadata is mlflow_internals.MlflowBase.metadata, _failure(  # type: ignore[attr-defined]
        table, "is no longer declared on MLflow's Base"
    )


def test_queries_read_these_run_and_experiment_columns() -> None:
    for table, columns in {
        "SqlRun": {"run_uuid", "experiment_id", "lifecycle_stage", "start_time"},
        "SqlExperiment": {"experiment_id", "name", "lifecycle_stage"},
        "SqlDataset": {"dataset_uuid", "digest", "experiment_id", "name"},
        "SqlInput": {"destination_id", "input_uuid", "source_id"},
        "SqlInputTag": {"input_uuid", "name", "value"},
    }.items():
        missing = columns - set(_resolve(table).__table__.columns.keys())  # type: ignore[attr-defined]
        assert not missing, _failure(table, f"has no column {sorted(missing)}")


def test_the_attribute_prefix_of_an_order_by_key_is_unchanged() -> None:
    identifier = mlflow_internals.SearchUtils._ATTRIBUTE_IDENTIFIER
    assert identifier == "attribute", _failure(
        "SearchUtils._ATTRIBUTE_IDENTIFIER", f"is {identifier!r}"
    )


def test_every_internal_name_is_checked_here() -> None:
    checked = {name.split(".")[0] for name in _CALLED} | set(_columns_written()) | {"MlflowBase"}
    assert set(mlflow_internals.__all__) == checked


def _internal_imports(path: Path) -> list[str]:
    """Names a module imports from MLflow that are internals (private, or of an internal module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlflow."):
            module = node.module or ""
            for alias in node.names:
                if alias.name.startswith("_") or module.startswith(_INTERNAL_MODULES):
                    found.append(f"{module}.{alias.name}")
    return found


@pytest.mark.parametrize(
    "module", sorted(p.name for p in INDEX.glob("*.py") if p.name != "mlflow_internals.py")
)
def test_other_index_modules_import_internals_only_from_one_module(module: str) -> None:
    assert _internal_imports(INDEX / module) == []

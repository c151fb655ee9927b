"""Logged-model search filters, evaluated in memory with the SQL store's semantics.

MLflow's SQL store parses logged-model filters with
``mlflow.utils.search_logged_model_utils.parse_filter_string`` (a conjunction of
comparisons on attributes, metrics, params and tags) and compares in SQL; this
module parses with the same function and compares the same fields in Python, so
both stores accept and reject the same filter strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.search_utils import SearchUtils

from mlflow_plugin.format.documents import Document

__all__ = ["model_matches_filter", "parse_model_filter"]

# SqlLoggedModel column names -> logged-model document fields.
_ATTRIBUTES = {
    "creation_timestamp_ms": "creation_timestamp",
    "last_updated_timestamp_ms": "last_updated_timestamp",
}


def _compare(op: str) -> Callable[[Any, Any], bool]:
    compare: Callable[[Any, Any], bool] = SearchUtils.get_comparison_func(op)
    return compare


def _on_datasets(metric: Document, datasets: list[dict[str, Any]] | None) -> bool:
    if not datasets:
        return True
    return any(
        metric.get("dataset_name") == d["dataset_name"]
        and ("dataset_digest" not in d or metric.get("dataset_digest") == d["dataset_digest"])
        for d in datasets
    )


def parse_model_filter(filter_string: str | None) -> list[Any]:
    """The filter's comparisons, or INVALID_PARAMETER_VALUE; checked before any model is read.

    MLflow's parser lets some bad filters through as raw errors (a non-numeric value for a
    numeric attribute, a malformed ``IN`` list) and the SQL store answers an unknown
    attribute with a 500; here all of them are INVALID_PARAMETER_VALUE.
    """
    from mlflow.store.tracking.dbmodels.models import SqlLoggedModel
    from mlflow.utils.search_logged_model_utils import EntityType, parse_filter_string

    try:
        comparisons: list[Any] = parse_filter_string(filter_string)
    except MlflowException:
        raise
    except (ValueError, TypeError, SyntaxError) as exc:
        raise MlflowException(
            f"Invalid filter string {filter_string!r}: {exc}", INVALID_PARAMETER_VALUE
        ) from None
    columns = {column.key for column in SqlLoggedModel.__table__.columns}
    for comp in comparisons:
        if comp.entity.type == EntityType.ATTRIBUTE and comp.entity.key not in columns:
            raise MlflowException(
                f"Invalid attribute {comp.entity.key!r} in filter string {filter_string!r}. "
                f"Valid attributes: {sorted(columns)}",
                INVALID_PARAMETER_VALUE,
            )
    return comparisons


def model_matches_filter(
    doc: Document, comparisons: list[Any], datasets: list[dict[str, Any]] | None
) -> bool:
    """Whether a logged-model document passes the parsed filter and the dataset clause."""
    from mlflow.utils.search_logged_model_utils import EntityType

    has_metric_filter = False
    for comp in comparisons:
        compare = _compare(comp.op)
        kind, key = comp.entity.type, comp.entity.key
        if kind == EntityType.ATTRIBUTE:
            value = doc.get(_ATTRIBUTES.get(key, key))
            if value is None or not compare(value, comp.value):
                return False
        elif kind == EntityType.METRIC:
            has_metric_filter = True
            if not any(
                m["key"] == key and _on_datasets(m, datasets) and compare(m["value"], comp.value)
                for m in doc.get("metrics", [])
            ):
                return False
        else:
            values = doc.get("params" if kind == EntityType.PARAM else "tags", {})
            if key not in values or not compare(values[key], comp.value):
                return False
    if datasets and not has_metric_filter:
        return any(_on_datasets(m, datasets) for m in doc.get("metrics", []))
    return True

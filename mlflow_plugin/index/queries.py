"""Searches answered by SQL over the index, with MLflow's own filter and order translation.

``search_runs`` and ``search_experiments`` parse the filter and order-by strings with
MLflow's ``SearchUtils`` and build the WHERE, JOIN and ORDER BY clauses with the same
functions MLflow's ``SqlAlchemyStore`` uses, over the same tables: the page of ids
comes back in exactly the order MLflow's SQL store gives. The caller materialises
the page from the indexed documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from mlflow_plugin.index.mlflow_internals import (
    SearchExperimentsUtils,
    SearchUtils,
    SqlDataset,
    SqlExperiment,
    SqlInput,
    SqlInputTag,
    SqlLatestMetric,
    SqlParam,
    SqlRun,
    SqlTag,
    _DatasetSummary,
    _get_search_experiments_filter_clauses,
    _get_search_experiments_order_by_clauses,
    _get_sqlalchemy_filter_clauses,
)
from mlflow_plugin.index.schema import IndexedDocument

__all__ = ["dataset_summaries", "document_bodies", "search_experiment_ids", "search_run_ids"]

_MAX_DATASET_SUMMARIES = 1000


def _next_token(offset: int, max_results: int | None, fetched: int) -> str | None:
    if max_results is None or fetched <= max_results:
        return None
    token: str = SearchUtils.create_page_token(offset + max_results)
    return token


def _order_by_clauses(
    order_by: Sequence[str] | None,
) -> tuple[list[Any], list[Any], list[tuple[Any, Any]]]:
    """MLflow's run ordering (``_get_orderby_clauses``), joined differently.

    MLflow joins each sorted-on metric, param or tag as a filtered subquery; SQLite
    materialises it and scans it once per matching run (seconds at 10,000 runs). Here
    the table itself is joined with the key in the ON clause, which its primary key
    (key, run_uuid) answers. The ordering is the same: missing values last, NaN
    metrics after numbers, then start time (newest first) and run id.
    """
    columns: list[Any] = []
    clauses: list[Any] = []
    joins: list[tuple[Any, Any]] = []
    observed: set[tuple[str, str]] = set()
    for number, text in enumerate(order_by or [], start=1):
        key_type, key, ascending = SearchUtils.parse_order_by_for_search_runs(text)
        key = SearchUtils.translate_key_alias(key)
        is_metric = False
        if SearchUtils.is_string_attribute(key_type, key, "=") or SearchUtils.is_numeric_attribute(
            key_type, key, "="
        ):
            value = getattr(SqlRun, SqlRun.get_attribute_name(key))
        else:
            entity: Any
            if SearchUtils.is_metric(key_type, "="):
                entity, is_metric = SqlLatestMetric, True
            elif SearchUtils.is_tag(key_type, "="):
                entity = SqlTag
            elif SearchUtils.is_param(key_type, "="):
                entity = SqlParam
            else:
                raise MlflowException(
                    f"Invalid identifier type '{key_type}'", error_code=INVALID_PARAMETER_VALUE
                )
            joined = aliased(entity, name=f"order_{number}")
            joins.append((joined, and_(joined.run_uuid == SqlRun.run_uuid, joined.key == key)))
            value = joined.value
        if is_metric:
            missing_last = case((joined.is_nan == true(), 1), (value.is_(None), 2), else_=0)
        else:
            missing_last = case((value.is_(None), 1), else_=0)
        label = missing_last.label(f"clause_{number}")
        columns += [label, value]
        if (key_type, key) in observed:
            raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
        observed.add((key_type, key))
        clauses += [label, value if ascending else value.desc()]
    if (SearchUtils._ATTRIBUTE_IDENTIFIER, "start_time") not in observed:
        clauses.append(SqlRun.start_time.desc())
    clauses.append(SqlRun.run_uuid)
    return columns, clauses, joins


def _effective_stage(experiment: Any) -> ColumnElement[str]:
    """A run's effective lifecycle stage (``format.run_stage``) in SQL, over the run's row
    and its experiment's (outer-joined as ``experiment``; no row: the run's own stage).

    The rows hold the experiment's deletion mark in ``last_update_time`` and a run's
    ``restored_during`` in ``deleted_time`` while it is active (``rows.run_rows``).
    """
    deleted = LifecycleStage.DELETED
    covered = and_(
        experiment.lifecycle_stage == deleted,
        or_(
            SqlRun.deleted_time.is_(None),
            SqlRun.deleted_time != func.coalesce(experiment.last_update_time, 0),
        ),
    )
    return case(
        (or_(SqlRun.lifecycle_stage == deleted, covered), deleted),
        else_=LifecycleStage.ACTIVE,
    )


def search_run_ids(
    session: Session,
    experiment_ids: Sequence[str],
    filter_string: str | None,
    view_type: int,
    max_results: int | None,
    order_by: Sequence[str] | None,
    page_token: str | None,
) -> tuple[list[str], str | None]:
    """One page of run ids in MLflow's order, and the next page's token."""
    dialect = session.get_bind().dialect.name
    parsed = SearchUtils.parse_search_filter(filter_string)
    order_columns, order_clauses, sorting_joins = _order_by_clauses(order_by)
    attribute_filters, non_attribute_filters, dataset_filters = _get_sqlalchemy_filter_clauses(
        parsed, session, dialect
    )
    offset = SearchUtils.parse_start_offset_from_page_token(page_token)
    # The whole row, as MLflow selects it: every ORDER BY column is then in the DISTINCT
    # select list, which PostgreSQL requires.
    statement = select(SqlRun, *order_columns)
    for subquery in non_attribute_filters:
        statement = statement.join(subquery)
    for subquery in dataset_filters:
        statement = statement.join(subquery, SqlRun.run_uuid == subquery.c.destination_id)
    # Outer joins: a run without the sorted-on metric, param or tag still belongs to the page.
    for table, condition in sorting_joins:
        statement = statement.outerjoin(table, condition)
    # A deleted experiment's runs are deleted with it (``format.run_stage``).
    experiment = aliased(SqlExperiment, name="run_experiment")
    statement = statement.outerjoin(experiment, experiment.experiment_id == SqlRun.experiment_id)
    statement = (
        statement.distinct()
        .where(
            SqlRun.experiment_id.in_([int(e) for e in experiment_ids]),
            _effective_stage(experiment).in_(LifecycleStage.view_type_to_stages(view_type)),
            *attribute_filters,
        )
        .order_by(*order_clauses)
        .offset(offset)
    )
    if max_results is not None:
        statement = statement.limit(max_results + 1)
    run_ids = [run.run_uuid for run in session.execute(statement).scalars()]
    token = _next_token(offset, max_results, len(run_ids))
    return (run_ids[:max_results] if max_results is not None else run_ids), token


def search_experiment_ids(
    session: Session,
    view_type: int,
    max_results: int,
    filter_string: str | None,
    order_by: Sequence[str] | None,
    page_token: str | None,
) -> tuple[list[str], str | None]:
    """One page of experiment ids in MLflow's order, and the next page's token."""
    dialect = session.get_bind().dialect.name
    parsed = SearchExperimentsUtils.parse_search_filter(filter_string)
    attribute_filters, non_attribute_filters = _get_search_experiments_filter_clauses(
        parsed, dialect
    )
    offset = SearchUtils.parse_start_offset_from_page_token(page_token)
    statement: Any = (
        reduce(lambda s, f: s.join(f), non_attribute_filters, select(SqlExperiment.experiment_id))
        .where(
            *attribute_filters,
            SqlExperiment.lifecycle_stage.in_(LifecycleStage.view_type_to_stages(view_type)),
        )
        .order_by(*_get_search_experiments_order_by_clauses(order_by))
        .offset(offset)
        .limit(max_results + 1)
    )
    ids = [str(row[0]) for row in session.execute(statement)]
    token = _next_token(offset, max_results, len(ids))
    return ids[:max_results], token


def document_bodies(
    session: Session, kind: str, entity_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """The key and indexed text of the given runs or experiments, by id (unusable ones
    left out)."""
    bodies: dict[str, tuple[str, str]] = {}
    for start in range(0, len(entity_ids), 500):
        # The kind is compared here, not in SQL: given ``kind = ?``, SQLite's planner
        # prefers the (kind, experiment_id) index and reads every document of the kind
        # (seconds at 100,000 runs) instead of looking each id up.
        rows = session.execute(
            select(
                IndexedDocument.entity_id,
                IndexedDocument.kind,
                IndexedDocument.key,
                IndexedDocument.body,
            ).where(
                IndexedDocument.entity_id.in_(entity_ids[start : start + 500]),
                IndexedDocument.body != "",
            )
        )
        bodies.update({entity_id: (key, body) for entity_id, k, key, body in rows if k == kind})
    return bodies


def dataset_summaries(session: Session, experiment_ids: Sequence[str]) -> list[_DatasetSummary]:
    """The datasets the experiments' runs used, with their context (MLflow's query)."""
    rows: Any = session.execute(
        select(SqlDataset.experiment_id, SqlDataset.name, SqlDataset.digest, SqlInputTag.value)
        .select_from(SqlDataset)
        .distinct()
        .join(SqlInput, SqlInput.source_id == SqlDataset.dataset_uuid)
        .join(
            SqlInputTag,
            and_(
                SqlInput.input_uuid == SqlInputTag.input_uuid,
                SqlInputTag.name == MLFLOW_DATASET_CONTEXT,
            ),
            isouter=True,
        )
        .where(SqlDataset.experiment_id.in_([int(e) for e in experiment_ids]))
        .limit(_MAX_DATASET_SUMMARIES)
    )
    return [
        _DatasetSummary(experiment_id=str(e), name=n, digest=d, context=c) for e, n, d, c in rows
    ]

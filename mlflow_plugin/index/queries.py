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
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.store.tracking.dbmodels.models import (
    SqlDataset,
    SqlExperiment,
    SqlInput,
    SqlInputTag,
    SqlRun,
)
from mlflow.store.tracking.sqlalchemy_store import (
    _get_orderby_clauses,
    _get_search_experiments_filter_clauses,
    _get_search_experiments_order_by_clauses,
    _get_sqlalchemy_filter_clauses,
)
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from mlflow_plugin.index.schema import IndexedDocument

__all__ = ["dataset_summaries", "document_bodies", "search_experiment_ids", "search_run_ids"]

_MAX_DATASET_SUMMARIES = 1000


def _next_token(offset: int, max_results: int | None, fetched: int) -> str | None:
    if max_results is None or fetched <= max_results:
        return None
    token: str = SearchUtils.create_page_token(offset + max_results)
    return token


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
    order_columns, order_clauses, sorting_joins = _get_orderby_clauses(order_by, session)
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
    for subquery in sorting_joins:
        statement = statement.outerjoin(subquery)
    statement = (
        statement.distinct()
        .where(
            SqlRun.experiment_id.in_([int(e) for e in experiment_ids]),
            SqlRun.lifecycle_stage.in_(LifecycleStage.view_type_to_stages(view_type)),
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


def document_bodies(session: Session, kind: str, entity_ids: Sequence[str]) -> dict[str, str]:
    """The indexed text of the given runs or experiments, by id (unusable ones left out)."""
    bodies: dict[str, str] = {}
    for start in range(0, len(entity_ids), 500):
        rows = session.execute(
            select(IndexedDocument.entity_id, IndexedDocument.body).where(
                IndexedDocument.kind == kind,
                IndexedDocument.entity_id.in_(entity_ids[start : start + 500]),
                IndexedDocument.body != "",
            )
        )
        bodies.update({entity_id: body for entity_id, body in rows})
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

"""Every MLflow name the index relies on that is not MLflow's public API, in one place.

The index mirrors documents into MLflow's own SQL tables so that MLflow's filter and
order-by translation runs unchanged on them; that ties it to MLflow internals, which
may change in any release. Each one is imported here only, with what it is used for;
``tests/index/test_mlflow_internals.py`` checks that every one still exists with the
shape used here (call parameters, table columns) and names the MLflow version and the
name when one does not: the first place to look after an MLflow upgrade.
"""

from __future__ import annotations

# What ``_search_datasets`` returns to MLflow's server (the UI's dataset dropdown).
from mlflow.entities.dataset_summary import _DatasetSummary

# The declarative base of MLflow's tables: the index creates, drops and queries them
# through its metadata.
from mlflow.store.db.base_sql_model import Base as MlflowBase

# MLflow's tracking tables, which the index fills from run and experiment documents
# (``rows``, ``sync``) and which MLflow's filter translation queries (``queries``).
from mlflow.store.tracking.dbmodels.models import (
    SqlDataset,  # datasets named by runs' inputs (``_search_datasets``, dataset filters)
    SqlExperiment,  # experiments (search_experiments, the run's experiment filter)
    SqlExperimentTag,  # experiment tags (``tags.x`` in search_experiments)
    SqlInput,  # run -> dataset edges (dataset filters in search_runs)
    SqlInputTag,  # tags of those edges (the dataset's context)
    SqlLatestMetric,  # the latest value per metric (``metrics.x`` filters and order-by)
    SqlParam,  # run params (``params.x``)
    SqlRun,  # runs (attribute filters and order-by, ``get_attribute_name``)
    SqlTag,  # run tags (``tags.x``)
)

# MLflow's translation of a parsed search_runs filter into SQLAlchemy clauses.
from mlflow.store.tracking.sqlalchemy_store import (
    _get_search_experiments_filter_clauses,  # search_experiments' filter -> clauses
    _get_search_experiments_order_by_clauses,  # search_experiments' order_by -> clauses
    _get_sqlalchemy_filter_clauses,  # search_runs' filter -> (attribute, other, dataset)
)

# Filter and order-by parsing, page tokens, key aliases (``queries``); its private
# ``_ATTRIBUTE_IDENTIFIER`` names the attribute prefix of an order-by key.
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils

__all__ = [
    "MlflowBase",
    "SearchExperimentsUtils",
    "SearchUtils",
    "SqlDataset",
    "SqlExperiment",
    "SqlExperimentTag",
    "SqlInput",
    "SqlInputTag",
    "SqlLatestMetric",
    "SqlParam",
    "SqlRun",
    "SqlTag",
    "_DatasetSummary",
    "_get_search_experiments_filter_clauses",
    "_get_search_experiments_order_by_clauses",
    "_get_sqlalchemy_filter_clauses",
]

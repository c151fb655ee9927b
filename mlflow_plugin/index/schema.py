"""The index's tables: MLflow's own run and experiment tables, plus the mirror's bookkeeping.

Runs and experiments are mirrored into the tables of MLflow's SQL store
(``mlflow.store.tracking.dbmodels``), so the filter and order-by translation that
MLflow's ``SqlAlchemyStore`` applies can be applied here unchanged: a search through
the index answers what MLflow's own SQL store answers for the same data. The index
creates copies of those tables without their foreign keys (``INDEX_MLFLOW_TABLES``):
the bucket, not the index, owns integrity, and a sync mirrors documents in whatever
order they come (a run before its experiment, an experiment re-mirrored under its
indexed runs), which PostgreSQL, always enforcing foreign keys, would refuse. The
copies also hold each constraint once: MLflow's migrations append copies of the ``runs``
table's named checks to its model when a process opens a ``sqlite:///`` store, which
PostgreSQL would refuse (``check constraint "source_type" already exists``) and which
would change the tables' digest from one process to another. On PostgreSQL their text
columns collate as "C" (by code point, as SQLite compares), whatever the database's
default: ordered searches and string comparisons then answer as on SQLite. Two
tables of ours sit beside them: the stored text of every mirrored document with the ETag it
was read at (what a sync compares and what a search returns), and the index's
version and root.
"""

from __future__ import annotations

import functools
import hashlib

from sqlalchemy import Enum, ForeignKeyConstraint, Index, MetaData, String, Table, Text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

from mlflow_plugin.format.version import FORMAT_VERSION
from mlflow_plugin.index.mlflow_internals import (
    MlflowBase,
    SqlDataset,
    SqlExperiment,
    SqlExperimentTag,
    SqlInput,
    SqlInputTag,
    SqlLatestMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)

__all__ = [
    "INDEX_MLFLOW_METADATA",
    "INDEX_MLFLOW_TABLES",
    "INDEX_VERSION",
    "MLFLOW_TABLES",
    "IndexBase",
    "IndexMeta",
    "IndexedDocument",
    "MlflowBase",
    "index_stamp",
    "mlflow_tables_digest",
]

#: Bump when the tables or what is mirrored into them change: an index of another
#: version is dropped and rebuilt from the bucket. 2: documents are checked against the
#: format's schema before they are mirrored (an index of 1 may hold damaged ones).
#: 3: MLflow's tables are created without foreign keys. 4: the scopes' listing times and
#: the change journal's cursor (``index.state``). 5: the write generation, which every
#: process writing the index must count (``IndexDatabase.write``).
INDEX_VERSION = 5

MLFLOW_TABLES: list[Table] = [
    model.__table__
    for model in (
        SqlExperiment,
        SqlExperimentTag,
        SqlRun,
        SqlTag,
        SqlParam,
        SqlLatestMetric,
        SqlDataset,
        SqlInput,
        SqlInputTag,
    )
]


def _index_copy(table: Table, metadata: MetaData) -> Table:
    """``table`` without foreign keys, and with each of its constraints once."""
    copy = table.to_metadata(metadata)
    kept: set[tuple[str, str]] = set()
    for constraint in list(copy.constraints):
        # A check is the same constraint as another of its name, or of its text if unnamed.
        text = constraint.name or getattr(constraint, "sqltext", "")
        same = (type(constraint).__name__, str(text))
        if isinstance(constraint, ForeignKeyConstraint) or same in kept:
            copy.constraints.discard(constraint)
        kept.add(same)
    for column in copy.columns:
        if isinstance(column.type, String) and not isinstance(column.type, Enum):
            by_code_point = String(column.type.length, collation="C")
            column.type = column.type.with_variant(by_code_point, "postgresql")
    copy.foreign_keys.clear()
    for column in copy.columns:
        column.foreign_keys.clear()
    return copy


#: The index's copies of ``MLFLOW_TABLES``: same names, columns, keys and indexes, no
#: foreign keys. Only their DDL differs; queries go through MLflow's own models.
INDEX_MLFLOW_METADATA = MetaData()
INDEX_MLFLOW_TABLES: list[Table] = [
    _index_copy(table, INDEX_MLFLOW_METADATA) for table in MLFLOW_TABLES
]


@functools.cache
def mlflow_tables_digest() -> str:
    """A digest of the definitions of MLflow's tables that the index borrows.

    An MLflow upgrade that changes them (a new column, constraint or index) changes the
    digest, so an index file created under the old MLflow is rebuilt, never queried with
    the new models. Compiled for SQLite whatever the database: only a change counts.
    The index's copies are compiled, their lines sorted: the same whatever MLflow appended
    to its models, in whatever order the copies hold their constraints.
    """
    dialect = sqlite.dialect()
    parts = []
    for table in INDEX_MLFLOW_TABLES:
        lines = str(CreateTable(table).compile(dialect=dialect)).splitlines()
        parts.append("\n".join(sorted(line.strip().rstrip(",") for line in lines)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)))
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def index_stamp() -> str:
    """The version an index records: ours, the bucket format's and MLflow's tables'.

    The bucket's format version counts too: documents of another format may mirror
    differently.
    """
    return f"{INDEX_VERSION}.{FORMAT_VERSION}.{mlflow_tables_digest()}"


class IndexBase(DeclarativeBase):
    pass


class IndexedDocument(IndexBase):
    """A document as last read from the bucket, with the ETag of that read."""

    __tablename__ = "bucket_documents"
    __table_args__ = (Index("bucket_documents_kind_experiment", "kind", "experiment_id"),)

    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "run" or "experiment"
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    experiment_id: Mapped[str] = mapped_column(String(32))
    etag: Mapped[str] = mapped_column(String(128))
    # The stored text, or "" for a document that could not be mirrored (kept so that an
    # unchanged corrupt document is not fetched again on every sync).
    body: Mapped[str] = mapped_column(Text)


class IndexMeta(IndexBase):
    """``version`` and ``root``: an index of another version or root is rebuilt."""

    __tablename__ = "bucket_index_meta"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

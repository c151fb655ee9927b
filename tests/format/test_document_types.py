"""The typed documents and the schema's field tables name the same fields, kind by kind."""

from __future__ import annotations

import pytest

from mlflow_plugin.format import schema
from mlflow_plugin.format.document_types import DOCUMENT_TYPES, NESTED_TYPES
from mlflow_plugin.format.schema import DOCUMENT_SCHEMAS, NESTED_TABLES, Field


def _keys(fields: tuple[Field, ...]) -> tuple[set[str], set[str]]:
    return (
        {field.name for field in fields if field.required},
        {field.name for field in fields if not field.required},
    )


def test_every_stored_kind_and_nested_object_has_a_type() -> None:
    assert set(DOCUMENT_TYPES) == {kind.kind for kind in DOCUMENT_SCHEMAS}
    assert set(NESTED_TYPES) == set(NESTED_TABLES)


@pytest.mark.parametrize("table", DOCUMENT_SCHEMAS, ids=lambda table: table.kind)
def test_a_document_types_keys_are_its_tables_fields(table: schema.DocumentSchema) -> None:
    typed = DOCUMENT_TYPES[table.kind]
    required, optional = _keys(table.fields)
    assert set(typed.__required_keys__) == required  # type: ignore[attr-defined]
    assert set(typed.__optional_keys__) == optional  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(NESTED_TABLES))
def test_a_nested_types_keys_are_its_tables_fields(name: str) -> None:
    typed = NESTED_TYPES[name]
    required, optional = _keys(NESTED_TABLES[name])
    assert set(typed.__required_keys__) == required  # type: ignore[attr-defined]
    assert set(typed.__optional_keys__) == optional  # type: ignore[attr-defined]


def test_every_field_says_what_it_means() -> None:
    tables = [table.fields for table in DOCUMENT_SCHEMAS] + list(NESTED_TABLES.values())
    assert [f.name for fields in tables for f in fields if not f.meaning] == []


def test_the_lifecycle_constants_are_the_stored_stages() -> None:
    assert (schema.ACTIVE, schema.DELETED) == ("active", "deleted")
    assert list(schema.LIFECYCLE_STAGE(schema.ACTIVE, "x")) == []
    assert list(schema.LIFECYCLE_STAGE("archived", "x")) != []

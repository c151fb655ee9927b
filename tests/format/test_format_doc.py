"""docs/FORMAT.md is normative: its field tables are the schema's, rendered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlflow_plugin.format import protocol_doc
from mlflow_plugin.format.run_batches import WRITER_RETENTION_MS
from mlflow_plugin.format.schema import DOCUMENT_SCHEMAS, RUN, Field, integer
from mlflow_plugin.format.version import FORMAT_VERSION

PAGE = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"


def _tables(page: str) -> str:
    start = page.index(protocol_doc.BEGIN) + len(protocol_doc.BEGIN)
    return page[start : page.index(protocol_doc.END)].strip("\n")


def test_the_pages_field_tables_are_the_schemas() -> None:
    rendered = protocol_doc.render_field_tables()
    assert _tables(PAGE.read_text()) == rendered, (
        f"docs/FORMAT.md's field tables differ from format/schema.py; run: "
        f"{protocol_doc.REGENERATE}"
    )


def test_a_field_added_to_the_schema_changes_the_rendering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = protocol_doc.render_field_tables()

    def with_run_fields(fields: tuple[Field, ...]) -> None:
        run = dataclasses.replace(RUN, fields=fields)
        schemas = tuple(run if s is RUN else s for s in DOCUMENT_SCHEMAS)
        monkeypatch.setattr(protocol_doc, "DOCUMENT_SCHEMAS", schemas)

    with_run_fields((*RUN.fields, Field("x", integer, meaning="new")))
    with pytest.raises(KeyError, match="'x'"):  # the typed document must name it too
        protocol_doc.render_field_tables()
    with_run_fields(RUN.fields[:-2])
    assert protocol_doc.render_field_tables() != before


def test_rewriting_the_page_changes_only_the_tables(tmp_path: Path) -> None:
    page = tmp_path / "FORMAT.md"
    original = PAGE.read_text()
    page.write_text(original.replace("| `run_id` |", "| `stale` |", 1))
    assert protocol_doc.main(["--write", str(page)]) == 0
    assert page.read_text() == original


def test_the_page_names_every_key_pattern_and_the_current_version() -> None:
    text = PAGE.read_text()
    for schema in DOCUMENT_SCHEMAS:
        assert protocol_doc._key_text(schema.key_pattern.pattern) in text
    assert "experiments/<experiment_id>/metrics/<run_id>/<segment>.parquet" in text
    assert f'"version": {FORMAT_VERSION}' in text
    assert f"**{WRITER_RETENTION_MS // 86_400_000} days**" in text

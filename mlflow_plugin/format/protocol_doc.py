"""The field tables of ``docs/FORMAT.md``, rendered from the schema and the typed documents.

FORMAT.md is normative; its tables must say what the reader checks. So they are not
written by hand: this module renders them from ``format.schema`` (fields, whether
required, meaning) and ``format.document_types`` (types), and a test fails when the
page differs, naming the command that rewrites it::

    .venv/bin/python -m mlflow_plugin.format.protocol_doc --write docs/FORMAT.md
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from mlflow_plugin.format.document_types import DOCUMENT_TYPES, NESTED_TYPES, StoredClock
from mlflow_plugin.format.schema import DOCUMENT_SCHEMAS, NESTED_TABLES, Field

__all__ = [
    "BEGIN",
    "END",
    "REGENERATE",
    "main",
    "render_field_tables",
    "replace_field_tables",
]

BEGIN = "<!-- field tables: generated from mlflow_plugin/format/schema.py, do not edit -->"
END = "<!-- end of the generated field tables -->"
REGENERATE = ".venv/bin/python -m mlflow_plugin.format.protocol_doc --write docs/FORMAT.md"

_NAMES = {typed: name for name, typed in NESTED_TYPES.items()}
_SCALARS = {str: "string", int: "integer", float: "number", type(None): "null"}


def _type_text(annotation: Any) -> str:
    """A type as FORMAT.md spells it (``list of`` *segment entry*, ``string or null``)."""
    if annotation == StoredClock:
        return "clock"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if annotation in _NAMES:
        return f"*{_NAMES[annotation]}*"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(arg) for arg in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"object of {_type_text(args[1])}"
    raise TypeError(f"no spelling for {annotation!r}")


def _key_text(pattern: str) -> str:
    """A key pattern as FORMAT.md spells it: ``experiments/<experiment_id>/experiment.json``."""
    named = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", pattern)
    return named.replace("\\", "")


def _table(fields: tuple[Field, ...], typed: type) -> list[str]:
    hints = typing.get_type_hints(typed)
    lines = ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    for field in fields:
        required = "yes" if field.required else "no"
        meaning = field.meaning.replace("|", "\\|")
        kind = _type_text(hints[field.name])
        lines.append(f"| `{field.name}` | {kind} | {required} | {meaning} |")
    return lines


def render_field_tables() -> str:
    """The Markdown of every document's and nested object's field table."""
    lines: list[str] = []
    for schema in DOCUMENT_SCHEMAS:
        lines += [f"#### {schema.kind}", "", f"`{_key_text(schema.key_pattern.pattern)}`", ""]
        lines += [*_table(schema.fields, DOCUMENT_TYPES[schema.kind]), ""]
    lines += ["Objects nested in documents:", ""]
    for name, fields in NESTED_TABLES.items():
        lines += [f"#### {name}", "", *_table(fields, NESTED_TYPES[name]), ""]
    return "\n".join(lines).rstrip("\n")


def replace_field_tables(page: str) -> str:
    """``page`` with the text between ``BEGIN`` and ``END`` rendered afresh."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return f"{page[:start]}\n{render_field_tables()}\n{page[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print or rewrite FORMAT.md's field tables.")
    parser.add_argument("--write", type=Path, help="rewrite the tables in this page")
    args = parser.parse_args(argv)
    if args.write is None:
        print(render_field_tables())
    else:
        args.write.write_text(replace_field_tables(args.write.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

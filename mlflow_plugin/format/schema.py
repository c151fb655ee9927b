"""What every stored document must look like: one declarative field table per kind.

A document read from the bucket is checked against the table of its kind (found from its
key) before anything uses it. One that fails is *damaged*: ``CorruptObject`` names the key
and what is wrong, so a reader can leave it out of a listing, or answer a get with an
error naming it, instead of failing deep inside with a ``KeyError`` or passing a wrongly
typed value on to the query index or the server.

The rules, the same for every kind:

- a field a writer always writes must be present, with its type (``Field(required=True)``);
  a field older writers did not write may be absent, but when present it is checked;
- text is a ``str`` that UTF-8 can encode (no lone surrogates, which JSON's ``\\udc80``
  escapes can carry and which SQLite and every HTTP answer refuse);
- an integer is a JSON integer (never ``true``/``false``) within a signed 64-bit range;
- a document's identity fields agree with its key (a run document copied over another
  run's key is damaged, not the other run);
- fields the table does not name are accepted and kept: a newer writer may add one.

>>> check_document("experiments/1/experiment.json", {"experiment_id": "1"})  # doctest: +SKIP
Traceback (most recent call last):
CorruptObject: damaged experiment document 'experiments/1/experiment.json': 'name' is missing...
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow_plugin.format.keys import FORMAT_KEY, is_valid_id
from mlflow_plugin.objectstore.errors import CorruptObject

if TYPE_CHECKING:  # documents.py checks documents with this module: no import at run time
    from mlflow_plugin.format.documents import Document

__all__ = [
    "ACTIVE",
    "DELETED",
    "DOCUMENT_SCHEMAS",
    "DocumentSchema",
    "Field",
    "check_document",
    "document_problems",
    "schema_of_key",
]

#: ``check(value, where)`` yields what is wrong with ``value`` (``where`` names it).
Check = Callable[[Any, str], Iterator[str]]

_INT64 = 2**63
_MAX_PROBLEMS = 5  # enough to say what is wrong; a garbage document would list thousands


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


# -- value checks --------------------------------------------------------------------------


def text(value: Any, where: str) -> Iterator[str]:
    if not isinstance(value, str):
        yield f"{where} is not text: {_shown(value)}"
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        yield f"{where} holds text UTF-8 cannot encode (a lone surrogate)"


def identifier(value: Any, where: str) -> Iterator[str]:
    """An id that can be part of a key (letters, digits, ``-``, ``_``)."""
    if not is_valid_id(value):
        yield f"{where} is not a valid id: {_shown(value)}"


def integer(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        yield f"{where} is not a 64-bit integer: {_shown(value)}"


def number(value: Any, where: str) -> Iterator[str]:
    """A float (NaN and infinities included), or an integer a float can hold."""
    if isinstance(value, float):
        return
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        yield f"{where} is not a number: {_shown(value)}"


def anything(value: Any, where: str) -> Iterator[str]:
    yield from ()


def optional(check: Check) -> Check:
    """``check``, or JSON ``null``."""

    def checked(value: Any, where: str) -> Iterator[str]:
        if value is not None:
            yield from check(value, where)

    return checked


def one_of(*allowed: object) -> Check:
    def checked(value: Any, where: str) -> Iterator[str]:
        # Type too: True == 1, and 1 must not pass for a status string.
        if not any(type(value) is type(a) and value == a for a in allowed):
            yield f"{where} is not one of {list(allowed)}: {_shown(value)}"

    return checked


def either(*checks: Check) -> Check:
    def checked(value: Any, where: str) -> Iterator[str]:
        failures = [list(check(value, where)) for check in checks]
        if all(failures):
            yield failures[0][0]

    return checked


def mapping(values: Check, keys: Check = text) -> Check:
    """A JSON object whose names pass ``keys`` and whose values pass ``values``."""

    def checked(value: Any, where: str) -> Iterator[str]:
        if not isinstance(value, dict):
            yield f"{where} is not an object: {_shown(value)}"
            return
        for name, item in value.items():
            yield from keys(name, f"a name in {where}")
            yield from values(item, f"{where}[{_shown(name)}]")

    return checked


def list_of(items: Check) -> Check:
    def checked(value: Any, where: str) -> Iterator[str]:
        if not isinstance(value, list):
            yield f"{where} is not a list: {_shown(value)}"
            return
        for position, item in enumerate(value):
            yield from items(item, f"{where}[{position}]")

    return checked


@dataclass(frozen=True)
class Field:
    """One named field of a document (or of an object inside one)."""

    name: str
    check: Check
    required: bool = True


def record(fields: Sequence[Field]) -> Check:
    """A JSON object with these fields; others are accepted (a newer writer's)."""

    def checked(value: Any, where: str) -> Iterator[str]:
        if not isinstance(value, dict):
            yield f"{where} is not an object: {_shown(value)}"
            return
        for field in fields:
            inner = f"{where}.{field.name}" if where else repr(field.name)
            if field.name not in value:
                if field.required:
                    yield f"{inner} is missing"
                continue
            yield from field.check(value[field.name], inner)

    return checked


def together(check: Check, *names: str) -> Check:
    """``check``, and the named fields all set (not null) or all unset."""

    def checked(value: Any, where: str) -> Iterator[str]:
        found = list(check(value, where))
        yield from found
        if not found and len({value.get(name) is None for name in names}) > 1:
            yield f"{where} sets some of {list(names)} but not all"

    return checked


TEXT_MAP = mapping(text)
OPTIONAL_TEXT = optional(text)
OPTIONAL_INTEGER = optional(integer)
#: The lifecycle stages of experiments, runs and logged models, as stored.
ACTIVE = "active"
DELETED = "deleted"
LIFECYCLE_STAGE = one_of(ACTIVE, DELETED)

# -- the documents ---------------------------------------------------------------------------


def _same_as_key(field: str) -> Callable[[Document, dict[str, str]], Iterator[str]]:
    def agrees(doc: Document, parts: dict[str, str]) -> Iterator[str]:
        if str(doc.get(field)) != parts[field]:
            yield f"{field!r} is {_shown(doc.get(field))}, but the key names {parts[field]!r}"

    return agrees


def _all_of(
    *rules: Callable[[Document, dict[str, str]], Iterator[str]],
) -> Callable[[Document, dict[str, str]], Iterator[str]]:
    def agrees(doc: Document, parts: dict[str, str]) -> Iterator[str]:
        for rule in rules:
            yield from rule(doc, parts)

    return agrees


def _name_digest(doc: Document, parts: dict[str, str]) -> Iterator[str]:
    digest = hashlib.sha256(doc["name"].encode("utf-8")).hexdigest()
    if digest != parts["digest"]:
        yield f"the name {_shown(doc['name'])} is not the one the key is made from"


def _version_number(doc: Document, parts: dict[str, str]) -> Iterator[str]:
    if doc["version"] != int(parts["version"]):
        yield f"'version' is {doc['version']}, but the key names {int(parts['version'])}"


def _nothing_to_agree(doc: Document, parts: dict[str, str]) -> Iterator[str]:
    yield from ()


@dataclass(frozen=True)
class DocumentSchema:
    """A document kind: where it lives, its fields, and how its key and fields agree."""

    kind: str
    key_pattern: re.Pattern[str]
    fields: tuple[Field, ...]
    agrees_with_key: Callable[[Document, dict[str, str]], Iterator[str]] = _nothing_to_agree

    def is_key(self, key: str) -> bool:
        """Whether ``key`` is where a document of this kind lives."""
        return self.key_pattern.fullmatch(key) is not None

    def problems(self, doc: Any, parts: dict[str, str]) -> Iterator[str]:
        found = list(_first(record(self.fields)(doc, ""), _MAX_PROBLEMS))
        yield from found
        if not found:  # identity fields are typed now
            yield from self.agrees_with_key(doc, parts)


def _first(problems: Iterator[str], limit: int) -> Iterator[str]:
    for count, problem in enumerate(problems):
        if count == limit:
            yield "..."
            return
        yield problem


_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
_SEGMENT = record(
    [
        Field("name", identifier),
        Field("keys", list_of(text)),
        Field("rows", integer),
        Field("min_step", integer),
        Field("max_step", integer),
    ]
)
_LATEST_METRIC = record(
    [Field("value", number), Field("timestamp", integer), Field("step", integer)]
)
_DATASET_INPUT = record(
    [
        Field(
            "dataset",
            record(
                [
                    Field("name", text),
                    Field("digest", text),
                    Field("source_type", text),
                    Field("source", text),
                    Field("schema", OPTIONAL_TEXT, required=False),
                    Field("profile", OPTIONAL_TEXT, required=False),
                ]
            ),
        ),
        Field("tags", TEXT_MAP, required=False),
    ]
)
_MODEL_OUTPUT = record([Field("model_id", text), Field("step", integer)])
_MODEL_METRIC = together(
    record(
        [
            Field("key", text),
            Field("value", number),
            Field("timestamp", integer),
            Field("step", integer),
            Field("dataset_name", OPTIONAL_TEXT, required=False),
            Field("dataset_digest", OPTIONAL_TEXT, required=False),
            Field("run_id", OPTIONAL_TEXT, required=False),
        ]
    ),
    "dataset_name",
    "dataset_digest",
)

#: MLflow's run statuses, logged-model statuses, model-version stages and statuses, as stored.
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
LOGGED_MODEL_STATUSES = (0, 1, 2, 3)  # UNSPECIFIED, PENDING, READY, FAILED
VERSION_STAGES = ("None", "Staging", "Production", "Archived", "Deleted_Internal")
VERSION_STATUSES = ("PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY")

EXPERIMENT = DocumentSchema(
    "experiment",
    re.compile(rf"experiments/(?P<experiment_id>{_ID})/experiment\.json"),
    (
        Field("experiment_id", identifier),
        Field("name", text),
        Field("artifact_location", text),
        Field("lifecycle_stage", LIFECYCLE_STAGE),
        Field("creation_time", OPTIONAL_INTEGER, required=False),
        Field("last_update_time", OPTIONAL_INTEGER, required=False),
        Field("tags", TEXT_MAP),
        Field("pending_name", OPTIONAL_TEXT, required=False),  # a rename under way
    ),
    _same_as_key("experiment_id"),
)
RUN = DocumentSchema(
    "run",
    re.compile(rf"experiments/(?P<experiment_id>{_ID})/runs/(?P<run_id>{_ID})\.json"),
    (
        Field("run_id", identifier),
        Field("experiment_id", identifier),
        Field("run_name", OPTIONAL_TEXT, required=False),
        Field("user_id", OPTIONAL_TEXT, required=False),
        Field("status", one_of(*RUN_STATUSES)),
        Field("start_time", integer),  # MLflow's RunInfo refuses a run without one
        Field("end_time", OPTIONAL_INTEGER, required=False),
        Field("lifecycle_stage", LIFECYCLE_STAGE),
        Field("deleted_time", OPTIONAL_INTEGER, required=False),
        Field("artifact_uri", OPTIONAL_TEXT, required=False),
        Field("params", TEXT_MAP),
        Field("tags", TEXT_MAP),
        Field("latest_metrics", mapping(_LATEST_METRIC)),
        Field("segments", list_of(_SEGMENT)),
        Field("inputs", list_of(_DATASET_INPUT), required=False),
        Field("model_inputs", list_of(text), required=False),
        Field("model_outputs", list_of(_MODEL_OUTPUT), required=False),
        # The last batch sequence each writer applied (``format.run_batches``): every
        # buffered upload compares it, so a wrongly typed value is damage like any other.
        Field("writers", mapping(integer, keys=identifier), required=False),
    ),
    _all_of(_same_as_key("run_id"), _same_as_key("experiment_id")),
)
RUN_LOCATION = DocumentSchema(
    "run location",
    re.compile(rf"run-locations/(?P<run_id>{_ID})\.json"),
    (Field("experiment_id", either(identifier, integer)),),
)
EXPERIMENT_NAME_CLAIM = DocumentSchema(
    "experiment name claim",
    re.compile(r"experiment-names/(?P<digest>[0-9a-f]{64})\.json"),
    (
        Field("name", text),
        Field("experiment_id", identifier),
        Field("claimed_at", integer, required=False),
    ),
    _name_digest,
)
LOGGED_MODEL = DocumentSchema(
    "logged model",
    re.compile(rf"models/(?P<model_id>{_ID})\.json"),
    (
        Field("model_id", identifier),
        Field("experiment_id", identifier),
        Field("name", text),
        Field("artifact_location", text),
        Field("creation_timestamp", integer),
        Field("last_updated_timestamp", integer),
        Field("model_type", OPTIONAL_TEXT, required=False),
        Field("source_run_id", OPTIONAL_TEXT, required=False),
        Field("status", one_of(*LOGGED_MODEL_STATUSES)),
        Field("status_message", OPTIONAL_TEXT, required=False),
        Field("lifecycle_stage", LIFECYCLE_STAGE),
        Field("tags", TEXT_MAP),
        Field("params", TEXT_MAP),
        Field("metrics", list_of(_MODEL_METRIC)),
    ),
    _same_as_key("model_id"),
)
REGISTERED_MODEL = DocumentSchema(
    "registered model",
    re.compile(rf"registry/models/(?P<model_key>{_ID})/model\.json"),
    (
        Field("model_key", identifier),
        Field("name", text),
        Field("creation_timestamp", integer),
        Field("last_updated_timestamp", integer),
        Field("description", OPTIONAL_TEXT, required=False),
        Field("tags", TEXT_MAP),
        Field("aliases", mapping(integer)),
        Field("deployment_job_id", OPTIONAL_TEXT, required=False),
        Field("pending_name", OPTIONAL_TEXT, required=False),  # a rename under way
    ),
    _same_as_key("model_key"),
)
MODEL_VERSION = DocumentSchema(
    "model version",
    re.compile(rf"registry/models/(?P<model_key>{_ID})/versions/(?P<version>[0-9]{{10}})\.json"),
    (
        Field("version", integer),
        Field("creation_timestamp", integer),
        Field("last_updated_timestamp", integer),
        Field("description", OPTIONAL_TEXT, required=False),
        Field("user_id", OPTIONAL_TEXT, required=False),
        Field("current_stage", one_of(*VERSION_STAGES)),
        Field("source", OPTIONAL_TEXT, required=False),
        Field("storage_location", OPTIONAL_TEXT, required=False),
        Field("run_id", OPTIONAL_TEXT, required=False),
        Field("run_link", OPTIONAL_TEXT, required=False),
        Field("status", one_of(*VERSION_STATUSES)),
        Field("status_message", OPTIONAL_TEXT, required=False),
        Field("tags", TEXT_MAP),
        Field("model_id", OPTIONAL_TEXT, required=False),
    ),
    _version_number,
)
REGISTERED_MODEL_NAME_CLAIM = DocumentSchema(
    "registered model name claim",
    re.compile(r"registry/names/(?P<digest>[0-9a-f]{64})\.json"),
    (
        Field("name", text),
        Field("model_key", identifier),
        Field("claimed_at", integer, required=False),
    ),
    _name_digest,
)


def _positive(value: Any, where: str) -> Iterator[str]:
    yield from integer(value, where)
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        yield f"{where} is not a positive integer: {value}"


FORMAT = DocumentSchema(
    "format",
    re.compile(re.escape(FORMAT_KEY)),
    (
        Field("format", one_of("mlflow-bucket")),
        Field("version", _positive),
        Field("root_id", text, required=False),
        Field("created_by", text, required=False),
        Field(
            "migrations",
            list_of(
                record(
                    [
                        Field("from", integer),
                        Field("to", integer),
                        Field("by", text),
                        Field("at", integer),
                    ]
                )
            ),
            required=False,
        ),
    ),
)

DOCUMENT_SCHEMAS: tuple[DocumentSchema, ...] = (
    FORMAT,
    EXPERIMENT_NAME_CLAIM,
    EXPERIMENT,
    RUN,
    RUN_LOCATION,
    LOGGED_MODEL,
    REGISTERED_MODEL_NAME_CLAIM,
    REGISTERED_MODEL,
    MODEL_VERSION,
)


def schema_of_key(key: str) -> tuple[DocumentSchema, dict[str, str]] | None:
    """The schema of the document stored under ``key``, with the parts the key names."""
    for schema in DOCUMENT_SCHEMAS:
        match = schema.key_pattern.fullmatch(key)
        if match is not None:
            return schema, match.groupdict()
    return None


def document_problems(key: str, doc: Any) -> list[str]:
    """What is wrong with ``doc`` as the document stored under ``key`` (empty: nothing)."""
    found = schema_of_key(key)
    if found is None:
        return [] if isinstance(doc, dict) else ["a document must be a JSON object"]
    schema, parts = found
    return list(schema.problems(doc, parts))


def check_document(key: str, doc: Any, where: str = "") -> Document:
    """``doc`` if it is a well-formed document for ``key``; else ``CorruptObject`` naming it.

    ``where`` (the store's location) is added to the message when given.
    """
    problems = document_problems(key, doc)
    if problems:
        found = schema_of_key(key)
        kind = found[0].kind if found is not None else "stored"
        place = f" in {where}" if where else ""
        raise CorruptObject(f"damaged {kind} document {key!r}{place}: {'; '.join(problems)}")
    checked: Document = doc
    return checked

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

The tables are the runtime half of each document's type: ``format.document_types``
declares the same fields as ``TypedDict``s for the type checker (a test keeps the two
equal), and ``docs/FORMAT.md``'s field tables are rendered from these (``protocol_doc``).

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
    "DATASET_FIELDS",
    "DATASET_INPUT_FIELDS",
    "DELETED",
    "DOCUMENT_SCHEMAS",
    "EXPERIMENT",
    "EXPERIMENT_NAME_CLAIM",
    "FORMAT",
    "LATEST_METRIC_FIELDS",
    "LIFECYCLE_STAGE",
    "LOGGED_MODEL",
    "LOGGED_MODEL_STATUSES",
    "MIGRATION_FIELDS",
    "MODEL_METRIC_FIELDS",
    "MODEL_OUTPUT_FIELDS",
    "MODEL_VERSION",
    "NESTED_TABLES",
    "OPTIONAL_INTEGER",
    "OPTIONAL_TEXT",
    "REGISTERED_MODEL",
    "REGISTERED_MODEL_NAME_CLAIM",
    "RUN",
    "RUN_LOCATION",
    "RUN_STATUSES",
    "SEGMENT_ENTRY_FIELDS",
    "TEXT_MAP",
    "VERSION_STAGES",
    "VERSION_STATUSES",
    "Check",
    "DocumentSchema",
    "Field",
    "anything",
    "array",
    "check_document",
    "document_problems",
    "either",
    "identifier",
    "integer",
    "list_of",
    "logical_clock",
    "mapping",
    "number",
    "one_of",
    "optional",
    "record",
    "schema_of_key",
    "text",
    "together",
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
    #: What the field means, for ``docs/FORMAT.md`` (``format.protocol_doc``).
    meaning: str = ""


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


def array(what: str, *items: Check) -> Check:
    """A JSON array of ``len(items)`` values, each passing its check (``what`` names it)."""

    def checked(value: Any, where: str) -> Iterator[str]:
        if not isinstance(value, list) or len(value) != len(items):
            yield f"{where} is not {what}: {value!r:.60}"
            return
        for position, (item, check) in enumerate(zip(value, items, strict=True)):
            yield from check(item, f"{where}[{position}]")

    return checked


#: A logical clock ``[acknowledged_us, writer_id, counter]`` (``format.run_batches``).
logical_clock = array("a clock [microseconds, writer, counter]", integer, text, integer)


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

SEGMENT_ENTRY_FIELDS = (
    Field("name", identifier, meaning="the segment's name; its object is `<name>.parquet`"),
    Field("keys", list_of(text), meaning="the metric keys it holds"),
    Field("rows", integer, meaning="how many points it holds"),
    Field("min_step", integer, meaning="the smallest step in it"),
    Field("max_step", integer, meaning="the greatest step in it"),
)
LATEST_METRIC_FIELDS = (
    Field("value", number, meaning='the value (NaN and infinities as `{"$float": ...}`)'),
    Field("timestamp", integer, meaning="milliseconds since the epoch"),
    Field("step", integer, meaning="the step"),
)
DATASET_FIELDS = (
    Field("name", text, meaning="MLflow's dataset name"),
    Field("digest", text, meaning="MLflow's dataset digest"),
    Field("source_type", text, meaning="MLflow's dataset source type"),
    Field("source", text, meaning="MLflow's dataset source (JSON text)"),
    Field("schema", OPTIONAL_TEXT, required=False, meaning="MLflow's dataset schema (JSON text)"),
    Field("profile", OPTIONAL_TEXT, required=False, meaning="MLflow's dataset profile (JSON text)"),
)
DATASET_INPUT_FIELDS = (
    Field("dataset", record(DATASET_FIELDS), meaning="the dataset (table *dataset*)"),
    Field("tags", TEXT_MAP, required=False, meaning="the input's tags (`mlflow.data.context`...)"),
)
MODEL_OUTPUT_FIELDS = (
    Field("model_id", text, meaning="a logged model the run produced"),
    Field("step", integer, meaning="the step at which it was logged"),
)
MODEL_METRIC_FIELDS = (
    Field("key", text, meaning="the metric's key"),
    Field("value", number, meaning="its value"),
    Field("timestamp", integer, meaning="milliseconds since the epoch"),
    Field("step", integer, meaning="the step"),
    Field("dataset_name", OPTIONAL_TEXT, required=False, meaning="set together with the digest"),
    Field("dataset_digest", OPTIONAL_TEXT, required=False, meaning="set together with the name"),
    Field("run_id", OPTIONAL_TEXT, required=False, meaning="the run that logged it"),
)
MIGRATION_FIELDS = (
    Field("from", integer, meaning="the version migrated from"),
    Field("to", integer, meaning="the version migrated to"),
    Field("by", text, meaning="the plugin that migrated it (`mlflow-bucket X.Y.Z`)"),
    Field("at", integer, meaning="when, in milliseconds since the epoch"),
)
_SEGMENT = record(SEGMENT_ENTRY_FIELDS)
_LATEST_METRIC = record(LATEST_METRIC_FIELDS)
_DATASET_INPUT = record(DATASET_INPUT_FIELDS)
_MODEL_OUTPUT = record(MODEL_OUTPUT_FIELDS)
_MODEL_METRIC = together(record(MODEL_METRIC_FIELDS), "dataset_name", "dataset_digest")

#: The objects nested inside documents, by name: rendered in ``docs/FORMAT.md`` too.
NESTED_TABLES: dict[str, tuple[Field, ...]] = {
    "migration": MIGRATION_FIELDS,
    "segment entry": SEGMENT_ENTRY_FIELDS,
    "latest metric": LATEST_METRIC_FIELDS,
    "dataset input": DATASET_INPUT_FIELDS,
    "dataset": DATASET_FIELDS,
    "model output": MODEL_OUTPUT_FIELDS,
    "model metric": MODEL_METRIC_FIELDS,
}

#: MLflow's run statuses, logged-model statuses, model-version stages and statuses, as stored.
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
LOGGED_MODEL_STATUSES = (0, 1, 2, 3)  # UNSPECIFIED, PENDING, READY, FAILED
VERSION_STAGES = ("None", "Staging", "Production", "Archived", "Deleted_Internal")
VERSION_STATUSES = ("PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY")

_MS = "milliseconds since the epoch"
_TAGS = Field("tags", TEXT_MAP, meaning="tags, key to value")
_LIFECYCLE = Field("lifecycle_stage", LIFECYCLE_STAGE, meaning="`active` or `deleted` (soft)")
_PENDING_NAME = Field(
    "pending_name",
    OPTIONAL_TEXT,
    required=False,
    meaning="a rename under way (the name-claim protocol)",
)

EXPERIMENT = DocumentSchema(
    "experiment",
    re.compile(rf"experiments/(?P<experiment_id>{_ID})/experiment\.json"),
    (
        Field("experiment_id", identifier, meaning="the id, as in the key"),
        Field("name", text, meaning="the name (unique: claimed in `experiment-names/`)"),
        Field("artifact_location", text, meaning="the root of its runs' artifacts (a URI)"),
        _LIFECYCLE,
        Field("creation_time", OPTIONAL_INTEGER, required=False, meaning=_MS),
        Field("last_update_time", OPTIONAL_INTEGER, required=False, meaning=_MS),
        _TAGS,
        _PENDING_NAME,
    ),
    _same_as_key("experiment_id"),
)
RUN = DocumentSchema(
    "run",
    re.compile(rf"experiments/(?P<experiment_id>{_ID})/runs/(?P<run_id>{_ID})\.json"),
    (
        Field("run_id", identifier, meaning="the id, as in the key"),
        Field("experiment_id", identifier, meaning="its experiment, as in the key"),
        Field(
            "run_name", OPTIONAL_TEXT, required=False, meaning="follows the `mlflow.runName` tag"
        ),
        Field("user_id", OPTIONAL_TEXT, required=False, meaning="who created it"),
        Field("status", one_of(*RUN_STATUSES), meaning="MLflow's run status"),
        # MLflow's RunInfo refuses a run without a start time.
        Field("start_time", integer, meaning=_MS),
        Field("end_time", OPTIONAL_INTEGER, required=False, meaning=_MS),
        _LIFECYCLE,
        Field("deleted_time", OPTIONAL_INTEGER, required=False, meaning=f"{_MS}, while deleted"),
        Field("artifact_uri", OPTIONAL_TEXT, required=False, meaning="where its artifacts live"),
        Field("params", TEXT_MAP, meaning="params, key to value (immutable once logged)"),
        _TAGS,
        Field(
            "latest_metrics",
            mapping(_LATEST_METRIC),
            meaning="per metric key, the *latest metric*: the greatest (step, timestamp, value)",
        ),
        Field(
            "segments",
            list_of(_SEGMENT),
            meaning="the manifest: the *segment entries* of its metric history",
        ),
        Field("inputs", list_of(_DATASET_INPUT), required=False, meaning="*dataset inputs*"),
        Field("model_inputs", list_of(text), required=False, meaning="ids of logged models used"),
        Field("model_outputs", list_of(_MODEL_OUTPUT), required=False, meaning="*model outputs*"),
        # Every buffered upload compares it, so a wrongly typed value is damage like any other.
        Field(
            "writers",
            mapping(integer, keys=identifier),
            required=False,
            meaning="writer id to the last batch sequence it applied",
        ),
        Field(
            "tag_clocks",
            mapping(logical_clock),
            required=False,
            meaning="tag key to the clock of its value, or of its deletion (format 3)",
        ),
        Field(
            "status_clock",
            optional(logical_clock),
            required=False,
            meaning="the clock of the status and end time (format 3)",
        ),
        Field(
            "writer_times",
            mapping(integer, keys=identifier),
            required=False,
            meaning=(
                "writer id to when it was last heard from "
                "(ms: its newest seal time, at most the applier's clock)"
            ),
        ),
        Field(
            "writers_watermark",
            integer,
            required=False,
            meaning="the newest `writer_times` value of a writer dropped from `writers` (ms)",
        ),
        Field(
            "restored_during",
            OPTIONAL_INTEGER,
            required=False,
            meaning=(
                "the `last_update_time` of its experiment's deletion during which the run "
                "was restored by itself: active despite that deletion"
            ),
        ),
    ),
    _all_of(_same_as_key("run_id"), _same_as_key("experiment_id")),
)
RUN_LOCATION = DocumentSchema(
    "run location",
    re.compile(rf"run-locations/(?P<run_id>{_ID})\.json"),
    (
        Field(
            "experiment_id",
            either(identifier, integer),
            meaning="the experiment the run is in (immutable)",
        ),
    ),
)
_CLAIMED_AT = Field(
    "claimed_at", integer, required=False, meaning=f"{_MS}; informational, never read"
)
EXPERIMENT_NAME_CLAIM = DocumentSchema(
    "experiment name claim",
    re.compile(r"experiment-names/(?P<digest>[0-9a-f]{64})\.json"),
    (
        Field("name", text, meaning="the name; the key is its SHA-256"),
        Field("experiment_id", identifier, meaning="the claim's target"),
        _CLAIMED_AT,
    ),
    _name_digest,
)
LOGGED_MODEL = DocumentSchema(
    "logged model",
    re.compile(rf"models/(?P<model_id>{_ID})\.json"),
    (
        Field("model_id", identifier, meaning="the id, as in the key"),
        Field("experiment_id", identifier, meaning="its experiment"),
        Field("name", text, meaning="its name (not unique)"),
        Field("artifact_location", text, meaning="where its files live"),
        Field("creation_timestamp", integer, meaning=_MS),
        Field("last_updated_timestamp", integer, meaning=_MS),
        Field("model_type", OPTIONAL_TEXT, required=False, meaning="MLflow's model type"),
        Field("source_run_id", OPTIONAL_TEXT, required=False, meaning="the run that logged it"),
        Field(
            "status",
            one_of(*LOGGED_MODEL_STATUSES),
            meaning="0 unspecified, 1 pending, 2 ready, 3 failed",
        ),
        Field("status_message", OPTIONAL_TEXT, required=False, meaning="why it failed"),
        _LIFECYCLE,
        _TAGS,
        Field("params", TEXT_MAP, meaning="params, key to value"),
        Field("metrics", list_of(_MODEL_METRIC), meaning="*model metrics*"),
    ),
    _same_as_key("model_id"),
)
REGISTERED_MODEL = DocumentSchema(
    "registered model",
    re.compile(rf"registry/models/(?P<model_key>{_ID})/model\.json"),
    (
        Field("model_key", identifier, meaning="the folder's key, as in the key"),
        Field("name", text, meaning="the name (unique: claimed in `registry/names/`)"),
        Field("creation_timestamp", integer, meaning=_MS),
        Field("last_updated_timestamp", integer, meaning=_MS),
        Field("description", OPTIONAL_TEXT, required=False, meaning="free text"),
        _TAGS,
        Field("aliases", mapping(integer), meaning="alias to version number"),
        Field(
            "deployment_job_id", OPTIONAL_TEXT, required=False, meaning="MLflow's deployment job"
        ),
        _PENDING_NAME,
    ),
    _same_as_key("model_key"),
)
MODEL_VERSION = DocumentSchema(
    "model version",
    re.compile(rf"registry/models/(?P<model_key>{_ID})/versions/(?P<version>[0-9]{{10}})\.json"),
    (
        Field("version", integer, meaning="the number, as in the key"),
        Field("creation_timestamp", integer, meaning=_MS),
        Field("last_updated_timestamp", integer, meaning=_MS),
        Field("description", OPTIONAL_TEXT, required=False, meaning="free text"),
        Field("user_id", OPTIONAL_TEXT, required=False, meaning="who created it"),
        Field("current_stage", one_of(*VERSION_STAGES), meaning="MLflow's stage"),
        Field("source", OPTIONAL_TEXT, required=False, meaning="the model's source URI"),
        Field("storage_location", OPTIONAL_TEXT, required=False, meaning="where its files live"),
        Field("run_id", OPTIONAL_TEXT, required=False, meaning="the run that produced it"),
        Field("run_link", OPTIONAL_TEXT, required=False, meaning="a link to that run"),
        Field("status", one_of(*VERSION_STATUSES), meaning="MLflow's version status"),
        Field("status_message", OPTIONAL_TEXT, required=False, meaning="why it failed"),
        _TAGS,
        Field("model_id", OPTIONAL_TEXT, required=False, meaning="the logged model it registers"),
    ),
    _version_number,
)
REGISTERED_MODEL_NAME_CLAIM = DocumentSchema(
    "registered model name claim",
    re.compile(r"registry/names/(?P<digest>[0-9a-f]{64})\.json"),
    (
        Field("name", text, meaning="the name; the key is its SHA-256"),
        Field("model_key", identifier, meaning="the claim's target"),
        _CLAIMED_AT,
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
        Field("format", one_of("mlflow-bucket"), meaning="always `mlflow-bucket`"),
        Field("version", _positive, meaning="the format version (below)"),
        Field("root_id", text, required=False, meaning="random, minted once (version 2)"),
        Field("created_by", text, required=False, meaning="the plugin that created the root"),
        Field(
            "migrations",
            list_of(record(MIGRATION_FIELDS)),
            required=False,
            meaning="the *migrations* applied, oldest first",
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

"""The differential part of the corpus: hostile input through ``MlflowClient``, on every store.

Each case runs on MLflow's ``SqlAlchemyStore`` (``sqlite:///``, the reference) and on the
bucket store (folder and moto S3). Cases that change the store (``WRITES``) share a
populated store per backend with the other cases of their input class; read-only cases
(``QUERIES``: filters, page tokens, unknown ids) share one populated store per backend.

A case returns ``{"call": outcome, ...}``. Normally the whole normalised result must equal
sqlite's. Where sqlite has no sensible answer (a raw Python exception, an HTTP 500, or an
accident of SQL such as a negative OFFSET meaning none), the case carries a ``Divergence``
pinning what sqlite does and what the bucket store does instead, and why; only the heads
of the two ``call`` outcomes are compared then.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Metric

from tests.hostile.corpus import OK, T0, World, error, outcome, register

Action = Callable[[World], dict[str, object]]


def wrong(value: object) -> Any:
    """A value of the wrong type, handed to MLflow's client on purpose."""
    return value


@dataclass(frozen=True)
class Divergence:
    """sqlite's answer (head of the ``call`` outcome), the bucket store's, and why they differ."""

    sqlite: tuple[object, ...]
    bucket: tuple[object, ...]
    why: str


@dataclass(frozen=True)
class InputCase:
    name: str
    input_class: str
    group: str  # cases of a group share one store per backend, in definition order
    action: Action
    divergence: Divergence | None = None


CASES: dict[str, InputCase] = {}
WRITES, QUERIES = "writes", "queries"


def _add(
    kind: str,
    name: str,
    input_class: str,
    action: Action,
    divergence: Divergence | None = None,
) -> None:
    register(name, input_class)
    group = input_class if kind == WRITES else QUERIES
    CASES[name] = InputCase(name, input_class, group, action, divergence)


# Answers of sqlite that are not answers: the reason each divergence gives.
SQLITE_500 = "sqlite answers INTERNAL_ERROR (an HTTP 500) for malformed input; we refuse it"
SQLITE_RAW = "sqlite lets a raw Python exception out of the store; we refuse the input"
SQLITE_LEAK = "sqlite leaks a database binding error as BAD_REQUEST; the id names no run"
NEGATIVE_OFFSET = "sqlite reads a negative OFFSET as none; a forged negative offset is refused"

# -- names and keys -------------------------------------------------------------------------

HOSTILE_STRINGS = {
    "dotdot": "..",
    "traversal": "../../etc/passwd",
    "slash": "a/b",
    "leading_slash": "/abs",
    "nul": "a\x00b",
    "newline": "a\nb",
    "trailing_newline": "loss\n",
    "control": "a\x07\x1bb",
    "long_unicode": ("é漢🙂" * 3334)[:10_000],
    "emoji_rtl": "🔥\u202eevil\u202c שלום",
    "backslash": "..\\..\\w",
    "encoded": "%2e%2e%2f",
    "empty": "",
    "blank": "   ",
}


def _experiment_name(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.create_experiment, text)
        return {"call": call, "read": outcome(w.client.get_experiment_by_name, text)}

    return act


def _run_name(text: str) -> Action:
    def create(w: World) -> object:
        run = w.client.get_run(w.client.create_run(w.experiment_id, run_name=text).info.run_id)
        name = run.info.run_name
        # No name (or a blank one) gets a random one: only its presence is comparable.
        return {
            "name": name if text.strip() else bool(name),
            "tag_matches": run.data.tags.get("mlflow.runName") == name,
        }

    def act(w: World) -> dict[str, object]:
        return {"call": outcome(create, w)}

    return act


def _run_tag_key(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.set_tag, w.run_id, text, "v")
        return {"call": call, "read": outcome(w.client.get_run, w.run_id)}

    return act


def _param_key(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.log_param, w.run_id, text, "v")
        return {"call": call, "read": outcome(w.client.get_run, w.run_id)}

    return act


def _metric_key(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.log_metric, w.run_id, text, 1.5, timestamp=T0, step=3)
        return {"call": call, "read": outcome(w.client.get_metric_history, w.run_id, text)}

    return act


def _experiment_tag_key(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.set_experiment_tag, w.experiment_id, text, "v")
        return {"call": call, "read": outcome(w.client.get_experiment, w.experiment_id)}

    return act


def _registered_model_name(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.create_registered_model, text)
        return {"call": call, "read": outcome(w.client.get_registered_model, text)}

    return act


def _logged_model_name(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        return {"call": outcome(w.client.create_logged_model, w.experiment_id, name=text)}

    return act


def _model_version_tag_key(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.set_model_version_tag, w.model_name, "1", text, "v")
        return {"call": call, "read": outcome(w.client.get_model_version, w.model_name, "1")}

    return act


def _alias(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.set_registered_model_alias, w.model_name, text, "1")
        return {"call": call, "read": outcome(w.client.get_registered_model, w.model_name)}

    return act


def _logged_model_tag_key(text: str) -> Action:
    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.set_logged_model_tags, w.logged_model_id, {text: "v"})
        return {"call": call, "read": outcome(w.client.get_logged_model, w.logged_model_id)}

    return act


NAME_TARGETS: dict[str, Callable[[str], Action]] = {
    "experiment_name": _experiment_name,
    "run_name": _run_name,
    "run_tag_key": _run_tag_key,
    "param_key": _param_key,
    "metric_key": _metric_key,
    "experiment_tag_key": _experiment_tag_key,
    "registered_model_name": _registered_model_name,
    "logged_model_name": _logged_model_name,
    "model_version_tag_key": _model_version_tag_key,
    "registered_model_alias": _alias,
    "logged_model_tag_key": _logged_model_tag_key,
}

for _target, _make in NAME_TARGETS.items():
    for _label, _text in HOSTILE_STRINGS.items():
        _add(WRITES, f"{_target}__{_label}", "names and keys", _make(_text))


# -- huge and odd values --------------------------------------------------------------------


def _call_and_read(call: Callable[[World], object], read: Callable[[World], object]) -> Action:
    def act(w: World) -> dict[str, object]:
        return {"call": outcome(call, w), "read": outcome(read, w)}

    return act


def _run(w: World) -> object:
    return w.client.get_run(w.run_id)


_MB = 1_000_000
VALUE_CASES: dict[str, Action] = {
    "param_value_6001_chars": _call_and_read(
        lambda w: w.client.log_param(w.run_id, "p6001", "x" * 6001), _run
    ),
    "param_value_1mb": _call_and_read(
        lambda w: w.client.log_param(w.run_id, "p1mb", "x" * _MB), _run
    ),
    "param_value_nul": _call_and_read(
        lambda w: w.client.log_param(w.run_id, "nul", "a\x00b"), _run
    ),
    "param_value_emoji_rtl": _call_and_read(
        lambda w: w.client.log_param(w.run_id, "u", "🔥\u202eevil שלום"), _run
    ),
    "tag_value_8001_chars": _call_and_read(
        lambda w: w.client.set_tag(w.run_id, "t8001", "x" * 8001), _run
    ),
    "tag_value_1mb": _call_and_read(lambda w: w.client.set_tag(w.run_id, "t1mb", "x" * _MB), _run),
    "tag_value_control_chars": _call_and_read(
        lambda w: w.client.set_tag(w.run_id, "ctl", "a\x00\x07\x1b\nb"), _run
    ),
    "run_name_10k_chars": _call_and_read(
        lambda w: w.client.set_tag(w.run_id, "mlflow.runName", "r" * 10_000), _run
    ),
    "experiment_tag_value_20001_chars": _call_and_read(
        lambda w: w.client.set_experiment_tag(w.experiment_id, "big", "x" * 20_001),
        lambda w: w.client.get_experiment(w.experiment_id),
    ),
    "experiment_name_501_chars": _call_and_read(
        lambda w: w.client.create_experiment("e" * 501),
        lambda w: w.client.get_experiment_by_name("e" * 501),
    ),
    "logged_model_param_6001_chars": _call_and_read(
        lambda w: w.client.log_model_params(w.logged_model_id, {"big": "x" * 6001}),
        lambda w: w.client.get_logged_model(w.logged_model_id),
    ),
    "registered_model_tag_value_100001_chars": _call_and_read(
        lambda w: w.client.set_registered_model_tag(w.model_name, "big", "x" * 100_001),
        lambda w: w.client.get_registered_model(w.model_name),
    ),
    "registered_model_description_1mb": _call_and_read(
        lambda w: w.client.update_registered_model(w.model_name, description="d" * _MB),
        lambda w: w.client.get_registered_model(w.model_name),
    ),
    "model_version_description_1mb": _call_and_read(
        lambda w: w.client.update_model_version(w.model_name, "1", description="d" * _MB),
        lambda w: w.client.get_model_version(w.model_name, "1"),
    ),
    "model_version_source_traversal": _call_and_read(
        lambda w: w.client.create_model_version(w.model_name, "../../../etc/passwd"),
        lambda w: w.client.get_model_version(w.model_name, "2"),
    ),
    "registered_model_name_10k_chars": _call_and_read(
        lambda w: w.client.create_registered_model("m" * 10_000),
        lambda w: w.client.get_registered_model("m" * 10_000),
    ),
}
for _name, _action in VALUE_CASES.items():
    _add(WRITES, _name, "huge and odd values", _action)


# -- metric values, steps and timestamps ----------------------------------------------------


_metric_keys = (f"v{i}" for i in itertools.count())  # a key per case: histories stay apart


def _metric(value: object = 1.0, step: object = 0, timestamp: object = T0) -> Action:
    key = next(_metric_keys)

    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.log_metric, w.run_id, key, value, timestamp=timestamp, step=step)
        return {
            "call": call,
            "history": outcome(w.client.get_metric_history, w.run_id, key),
            "latest": outcome(lambda: w.client.get_run(w.run_id).data.metrics.get(key)),
        }

    return act


def _batch(values: list[tuple[float, int, int]]) -> Action:
    key = next(_metric_keys)
    metrics = [Metric(key, value, timestamp, step) for value, timestamp, step in values]

    def act(w: World) -> dict[str, object]:
        call = outcome(w.client.log_batch, w.run_id, metrics=metrics)
        return {"call": call, "history": outcome(w.client.get_metric_history, w.run_id, key)}

    return act


SQLITE_INT64 = Divergence(
    sqlite=error("INTERNAL_ERROR"),
    bucket=error("INVALID_PARAMETER_VALUE"),
    why="sqlite cannot bind an integer beyond 64 bits and answers a 500; it is refused",
)
METRIC_CASES: dict[str, tuple[Action, Divergence | None]] = {
    "metric_value_nan": (_metric(float("nan")), None),
    "metric_value_inf": (_metric(float("inf")), None),
    "metric_value_minus_inf": (_metric(float("-inf")), None),
    "metric_value_negative_zero": (_metric(-0.0), None),
    "metric_value_none": (_metric(None), None),
    "metric_value_numeric_string": (_metric("1.5"), None),
    "metric_value_string": (_metric("abc"), None),
    "metric_value_bool": (_metric(True), None),
    "metric_value_list": (_metric([1.0]), None),
    "metric_value_huge_int": (_metric(2**64), None),
    "metric_step_negative": (_metric(step=-1), None),
    "metric_step_int64_min": (_metric(step=-(2**63)), None),
    "metric_step_int64_max": (_metric(step=2**63 - 1), None),
    "metric_step_2_pow_63": (_metric(step=2**63), SQLITE_INT64),
    "metric_step_2_pow_64": (_metric(step=2**64), SQLITE_INT64),
    "metric_step_below_int64": (_metric(step=-(2**63) - 1), SQLITE_INT64),
    "metric_step_fraction": (
        _metric(step=1.5),
        Divergence(
            OK,
            OK,
            "sqlite keeps 1.5 in an integer column (SQLite's dynamic typing); the bucket "
            "store keeps the step as a 64-bit integer (1), as other databases round it",
        ),
    ),
    "metric_step_whole_float": (_metric(step=2.0), None),
    "metric_step_infinite": (
        _metric(step=float("inf")),
        Divergence(
            OK,
            error("INVALID_PARAMETER_VALUE"),
            "sqlite keeps inf in an integer column; a step is a 64-bit integer",
        ),
    ),
    "metric_step_string": (_metric(step="3"), None),
    "metric_timestamp_negative": (_metric(timestamp=-1), None),
    "metric_timestamp_zero": (_metric(timestamp=0), None),
    "metric_timestamp_int64_max": (_metric(timestamp=2**63 - 1), None),
    "metric_timestamp_2_pow_63": (_metric(timestamp=2**63), SQLITE_INT64),
    "metric_timestamp_2_pow_64": (_metric(timestamp=2**64), SQLITE_INT64),
    "metric_timestamp_string": (_metric(timestamp="now"), None),
    "batch_nan_and_infinities": (
        _batch([(x, T0, i) for i, x in enumerate([float("nan"), float("inf"), -1e308])]),
        None,
    ),
    "batch_duplicate_points": (_batch([(1.0, T0, 1)] * 3), None),
    "batch_1001_metrics": (_batch([(1.0, T0, i) for i in range(1001)]), None),
    "batch_huge_step_among_good_ones": (_batch([(1.0, T0, 1), (2.0, T0, 2**64)]), SQLITE_INT64),
}
for _name, (_action, _divergence) in METRIC_CASES.items():
    _add(WRITES, _name, "metric values, steps and timestamps", _action, _divergence)


# -- wrong types ----------------------------------------------------------------------------


def _call(fn: Callable[[World], object]) -> Action:
    def act(w: World) -> dict[str, object]:
        return {"call": outcome(fn, w)}

    return act


TYPE_CASES: dict[str, tuple[Action, Divergence | None]] = {
    "create_experiment_int_name": (_call(lambda w: w.client.create_experiment(wrong(123))), None),
    "create_experiment_list_name": (
        _call(lambda w: w.client.create_experiment(wrong(["a"]))),
        None,
    ),
    "create_experiment_tags_not_dict": (
        _call(lambda w: w.client.create_experiment("e", tags=wrong([("k", "v")]))),
        None,
    ),
    "set_tag_list_key": (
        _call(lambda w: w.client.set_tag(w.run_id, wrong(["k"]), "v")),
        Divergence(error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500),
    ),
    "set_tag_int_key": (
        _call(lambda w: w.client.set_tag(w.run_id, wrong(5), "v")),
        Divergence(error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500),
    ),
    "log_param_int_key": (
        _call(lambda w: w.client.log_param(w.run_id, wrong(5), "v")),
        Divergence(
            error("raw, from MLflow", "TypeError"), error("INVALID_PARAMETER_VALUE"), SQLITE_RAW
        ),
    ),
    "log_param_dict_value": (_call(lambda w: w.client.log_param(w.run_id, "d", {"a": 1})), None),
    "set_experiment_tag_dict_value": (
        _call(lambda w: w.client.set_experiment_tag(w.experiment_id, "k", {"a": 1})),
        None,
    ),
    "log_batch_dicts_for_metrics": (
        _call(lambda w: w.client.log_batch(w.run_id, metrics=wrong([{"key": "a"}]))),
        None,
    ),
    "create_registered_model_int_name": (
        _call(lambda w: w.client.create_registered_model(wrong(123))),
        Divergence(
            error("raw, from MLflow", "AttributeError"),
            error("INVALID_PARAMETER_VALUE"),
            SQLITE_RAW,
        ),
    ),
    "create_model_version_int_source": (
        _call(lambda w: w.client.create_model_version(w.model_name, wrong(5), w.run_id)),
        Divergence(
            error("raw, from MLflow", "AttributeError"),
            error("INVALID_PARAMETER_VALUE"),
            SQLITE_RAW,
        ),
    ),
    "registered_model_alias_version_like": (
        _call(lambda w: w.client.set_registered_model_alias(w.model_name, "v1", "1")),
        None,
    ),
    "create_run_list_experiment_id": (
        _call(lambda w: w.client.create_run(wrong(["0"]))),
        None,
    ),
    "create_run_empty_experiment_id": (
        _call(lambda w: w.client.create_run("", start_time=T0, run_name="r")),
        Divergence(
            error("BAD_REQUEST"),
            OK,
            "sqlite leaks a foreign-key failure; an empty id means the default experiment",
        ),
    ),
    "create_run_experiment_id_with_spaces": (
        _call(lambda w: w.client.create_run(f" {w.experiment_id} ", start_time=T0, run_name="r")),
        None,
    ),
}
for _name, (_action, _divergence) in TYPE_CASES.items():
    _add(WRITES, _name, "wrong types", _action, _divergence)


# -- hostile ids through calls that change state (each on a fresh store) -------------------

RUN_IDS: dict[str, Any] = {
    "traversal": "../x",
    "encoded": "%2e%2e",
    "long": "a" * 10_000,
    "empty": "",
    "dot": ".",
    "nul": "a\x00",
    "unknown": "0" * 32,
    "int": 123,
    "list": ["a"],
}
_LIST_RUN_ID = Divergence(error("BAD_REQUEST"), error("RESOURCE_DOES_NOT_EXIST"), SQLITE_LEAK)
# log_batch checks the id's format: sqlite runs MLflow's regex on a non-string and lets the
# TypeError out.
_BATCH_RUN_ID = Divergence(
    error("raw, from MLflow", "TypeError"), error("INVALID_PARAMETER_VALUE"), SQLITE_RAW
)


def _run_id_case(fn: Callable[[World, Any], object]) -> Callable[[Any], Action]:
    def make(run_id: Any) -> Action:
        return _call(lambda w: fn(w, run_id))

    return make


RUN_ID_WRITES: dict[str, Callable[[Any], Action]] = {
    "delete_run": _run_id_case(lambda w, r: w.client.delete_run(r)),
    "restore_run": _run_id_case(lambda w, r: w.client.restore_run(r)),
    "log_metric_to_run": _run_id_case(lambda w, r: w.client.log_metric(r, "m", 1.0)),
    "set_tag_on_run": _run_id_case(lambda w, r: w.client.set_tag(r, "k", "v")),
    "log_batch_to_run": _run_id_case(
        lambda w, r: w.client.log_batch(r, metrics=[Metric("m", 1.0, T0, 0)])
    ),
    "terminate_run": _run_id_case(lambda w, r: w.client.set_terminated(r)),
}
for _entry, _make_case in RUN_ID_WRITES.items():
    for _label, _run_id in RUN_IDS.items():
        _divergence = None
        if _entry == "log_batch_to_run" and _label in ("int", "list"):
            _divergence = _BATCH_RUN_ID
        elif _label == "list":
            _divergence = _LIST_RUN_ID
        _add(WRITES, f"{_entry}__{_label}", "ill-formed ids", _make_case(_run_id), _divergence)


# -- malformed filters and order_by (read only) ---------------------------------------------

FILTERS = {
    "dangling_comparator": "metrics.x >",
    "unterminated_quote": "params.a = 'x",
    "two_bare_words": "foo bar",
    "unknown_attribute": "attributes.bogus = 1",
    "unterminated_backtick": "tags.`x = 'y'",
    "string_for_number": "metrics.x > 'abc'",
    "sql_injection": "params.a = 'x'; DROP TABLE runs; --",
    "empty_in_list": "attributes.run_id IN ()",
    "huge_literal": "params.a = '" + "x" * 10_000 + "'",
    "nul_in_literal": "params.a = 'a\x00b'",
    "or_clause": "params.a = '1' OR params.b = '2'",
    "parenthesised": "(params.a = '1')",
    "number_overflow": "metrics.x > 1e999",
}


def _search(kind: str, **kwargs: Any) -> Action:
    def act(w: World) -> dict[str, object]:
        c = w.client
        calls: dict[str, Callable[[], object]] = {
            "runs": lambda: c.search_runs([w.experiment_id], **kwargs),
            "experiments": lambda: c.search_experiments(**kwargs),
            "registered_models": lambda: c.search_registered_models(**kwargs),
            "model_versions": lambda: c.search_model_versions(**kwargs),
            "logged_models": lambda: c.search_logged_models([w.experiment_id], **kwargs),
            "metric_history": lambda: _history_page(w, **kwargs),
        }
        return {"call": outcome(calls[kind])}

    return act


def _history_page(w: World, **kwargs: Any) -> object:
    """One page of metric history as the REST handler asks for it (the client has no token)."""
    store = w.client._tracking_client.store
    return store.get_metric_history(w.sentinel_run_id, "loss", max_results=1, **kwargs)


SEARCHES = ("runs", "experiments", "registered_models", "model_versions", "logged_models")
_FILTER_DIVERGENCES = {
    ("logged_models", "unknown_attribute"): Divergence(
        error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500
    ),
    ("logged_models", "string_for_number"): Divergence(
        error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500
    ),
    ("logged_models", "empty_in_list"): Divergence(
        error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500
    ),
}
_OVERFLOW = "sqlite overflows on an integer beyond 64 bits (a 500); nothing has that id"
for _kind in SEARCHES:
    for _label, _filter in FILTERS.items():
        _add(
            QUERIES,
            f"search_{_kind}_filter__{_label}",
            "malformed filters",
            _search(_kind, filter_string=_filter),
            _FILTER_DIVERGENCES.get((_kind, _label)),
        )

ORDER_BYS: dict[str, list[Any]] = {
    "unknown_key": ["foo"],
    "bad_direction": ["metrics.x UP"],
    "empty_clause": [""],
    "injection": ["params.a; DROP TABLE runs"],
    "three_words": ["a b c"],
}
for _kind in ("runs", "experiments", "registered_models", "model_versions"):
    for _label, _order in ORDER_BYS.items():
        _add(
            QUERIES,
            f"search_{_kind}_order_by__{_label}",
            "malformed order_by",
            _search(_kind, order_by=_order),
        )
MODEL_ORDER_BYS: dict[str, list[Any]] = {
    "unknown_field": [{"field_name": "bogus"}],
    "no_field_name": [{"ascending": True}],
    "string_clause": ["name"],
}
for _label, _model_order in MODEL_ORDER_BYS.items():
    _add(
        QUERIES,
        f"search_logged_models_order_by__{_label}",
        "malformed order_by",
        _search("logged_models", order_by=_model_order),
        None
        if _label == "unknown_field"
        else Divergence(error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500),
    )


# -- forged page tokens ----------------------------------------------------------------------


def _token(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


TOKENS = {
    "garbage": "!!!!",
    "not_json": "Zm9v",
    "json_list": _token([1]),
    "negative_offset": _token({"offset": -1}),
    "huge_offset": _token({"offset": 10**12}),
    "offset_beyond_int64": _token({"offset": 2**70}),
    "offset_is_object": _token({"offset": {"a": 1}}),
    "empty_object": _token({}),
    "non_ascii": "é漢🙂",
}
_TOKEN_500 = Divergence(error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500)
_TOKEN_RAW = Divergence(
    error("raw, from MLflow", "AttributeError"), error("INVALID_PARAMETER_VALUE"), SQLITE_RAW
)
_TOKEN_RAW_TYPE = Divergence(
    error("raw, from MLflow", "TypeError"), error("INVALID_PARAMETER_VALUE"), SQLITE_RAW
)
_TOKEN_RAW_VALUE = Divergence(
    error("raw, from MLflow", "ValueError"), error("INVALID_PARAMETER_VALUE"), SQLITE_RAW
)
_NEGATIVE = Divergence(OK, error("INVALID_PARAMETER_VALUE"), NEGATIVE_OFFSET)


def _token_divergence(kind: str, label: str) -> Divergence | None:
    registry = kind in ("registered_models", "model_versions")
    if kind == "logged_models":
        # sqlite decodes logged-model tokens with a stricter class (it wants experiment ids).
        return {"json_list": _TOKEN_RAW}.get(label)
    if label == "non_ascii":
        return _TOKEN_RAW_VALUE if registry else _TOKEN_500
    if label == "json_list":
        return _TOKEN_RAW if registry else _TOKEN_500
    if label == "offset_is_object":
        return _TOKEN_RAW_TYPE if registry else _TOKEN_500
    if label == "offset_beyond_int64":
        return _TOKEN_500
    if label == "negative_offset":
        return _NEGATIVE
    return None


for _kind in (*SEARCHES, "metric_history"):
    for _label, _page_token in TOKENS.items():
        _add(
            QUERIES,
            f"search_{_kind}_page_token__{_label}",
            "forged page tokens",
            _search(_kind, page_token=_page_token),
            _token_divergence(_kind, _label),
        )


# -- unknown and ill-formed ids, read only ---------------------------------------------------


def _get_run(run_id: Any) -> Action:
    return _call(lambda w: w.client.get_run(run_id))


def _history(run_id: Any) -> Action:
    return _call(lambda w: w.client.get_metric_history(run_id, "m"))


for _label, _run_id in RUN_IDS.items():
    _add(QUERIES, f"get_run__{_label}", "ill-formed ids", _get_run(_run_id))
    _add(
        QUERIES,
        f"get_metric_history__{_label}",
        "ill-formed ids",
        _history(_run_id),
        Divergence(error("BAD_REQUEST"), OK, SQLITE_LEAK) if _label == "list" else None,
    )

EXPERIMENT_IDS: dict[str, Any] = {
    "traversal": "../1",
    "empty": "",
    "negative": "-1",
    "exponent": "1e3",
    "hex": "0x1",
    "huge": "9" * 40,
    "nul": "1\x00",
    "list": ["1"],
}
for _label, _experiment_id in EXPERIMENT_IDS.items():
    _add(
        QUERIES,
        f"get_experiment__{_label}",
        "ill-formed ids",
        _call(lambda w, e=_experiment_id: w.client.get_experiment(e)),  # type: ignore[misc]
        {
            "empty": Divergence(
                OK, error("INVALID_PARAMETER_VALUE"), "sqlite reads '' as experiment 0"
            ),
            "huge": Divergence(
                error("INTERNAL_ERROR"), error("RESOURCE_DOES_NOT_EXIST"), _OVERFLOW
            ),
        }.get(_label),
    )
    _add(
        QUERIES,
        f"search_runs_experiment_id__{_label}",
        "ill-formed ids",
        _call(lambda w, e=_experiment_id: w.client.search_runs([e])),  # type: ignore[misc]
        Divergence(error("INTERNAL_ERROR"), OK, _OVERFLOW) if _label == "huge" else None,
    )

MODEL_IDS = {"traversal": "../m", "long": "m-" + "x" * 10_000, "empty": "", "nul": "m-\x00"}
for _label, _model_id in MODEL_IDS.items():
    _add(
        QUERIES,
        f"get_logged_model__{_label}",
        "ill-formed ids",
        _call(lambda w, m=_model_id: w.client.get_logged_model(m)),  # type: ignore[misc]
    )

VERSIONS: dict[str, Any] = {
    "traversal": "../1",
    "negative": "-1",
    "fraction": "1.5",
    "word": "abc",
    "huge": "9" * 30,
    "list": ["1"],
}
for _label, _version in VERSIONS.items():
    _add(
        QUERIES,
        f"get_model_version__{_label}",
        "ill-formed ids",
        _call(lambda w, v=_version: w.client.get_model_version(w.model_name, v)),  # type: ignore[misc]
        {
            "list": Divergence(
                error("INTERNAL_ERROR"), error("INVALID_PARAMETER_VALUE"), SQLITE_500
            ),
            "huge": Divergence(
                error("INTERNAL_ERROR"), error("RESOURCE_DOES_NOT_EXIST"), _OVERFLOW
            ),
        }.get(_label),
    )
_add(
    QUERIES,
    "get_registered_model__traversal",
    "ill-formed ids",
    _call(lambda w: w.client.get_registered_model("../../registry/names")),
)
_add(
    QUERIES,
    "search_runs_max_results_string",
    "wrong types",
    _call(lambda w: w.client.search_runs([w.experiment_id], max_results=wrong("10"))),
    Divergence(
        error("raw, from MLflow", "TypeError"), error("INVALID_PARAMETER_VALUE"), SQLITE_RAW
    ),
)
_add(
    QUERIES,
    "search_runs_max_results_huge",
    "wrong types",
    _call(lambda w: w.client.search_runs([w.experiment_id], max_results=10**9)),
)
_add(
    QUERIES,
    "search_runs_experiment_ids_string",
    "wrong types",
    _call(lambda w: w.client.search_runs(wrong(w.experiment_id))),
)
_add(
    QUERIES,
    "search_experiments_unknown_view_type",
    "wrong types",
    _call(lambda w: w.client.search_experiments(view_type=7)),
)

"""In-memory search over registered models and model versions, with the SQL store's rules.

MLflow's ``SearchModelUtils`` / ``SearchModelVersionUtils`` parse the filter grammar;
which attributes, comparators and order-by keys are accepted, how prompts are hidden,
and how ties are broken follow ``SqlAlchemyStore`` (the reference), since the in-memory
helpers MLflow ships for its file store are laxer than the SQL store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import (
    SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
)
from mlflow.utils.search_utils import SearchModelUtils, SearchModelVersionUtils, SearchUtils

from mlflow_plugin.page_tokens import offset_from_page_token, page

__all__ = [
    "DEFAULT_VERSION_ORDER",
    "Clause",
    "SearchQuery",
    "check_model_search_args",
    "check_version_search_args",
    "is_prompt_model",
    "search_models",
    "search_versions",
]

T = TypeVar("T")
Clause = dict[str, Any]

DEFAULT_VERSION_ORDER = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
_STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_TAG_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def check_model_search_args(max_results: int) -> None:
    if max_results > SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD:
        raise _invalid(
            "Invalid value for request parameter max_results. It must be at most "
            f"{SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD}, but got value {max_results}"
        )


def check_version_search_args(max_results: object) -> None:
    if not isinstance(max_results, int) or max_results < 1:
        raise _invalid(
            f"Invalid value for max_results. It must be a positive integer, but got {max_results}"
        )
    if max_results > SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD:
        raise _invalid(
            "Invalid value for request parameter max_results. It must be at most "
            f"{SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD}, but got value {max_results}"
        )


def is_prompt_model(tags: dict[str, str]) -> bool:
    return tags.get(IS_PROMPT_TAG_KEY) == "true"


def _is_querying_prompt(clauses: list[Clause]) -> bool:
    """The SQL store's rule: only an explicit prompt-tag clause lets prompts through."""
    for clause in clauses:
        if clause["type"] != "tag" or clause["key"] != IS_PROMPT_TAG_KEY:
            continue
        value = str(clause["value"]).lower()
        return (clause["comparator"] == "=" and value == "true") or (
            clause["comparator"] == "!=" and value == "false"
        )
    return False


def _compare(lhs: object, comparator: str, value: Any) -> bool:
    if lhs is None:  # SQL: NULL never matches, and a missing tag is a failed join
        return False
    if comparator == "IN":
        return lhs in value
    if comparator == "NOT IN":
        return lhs not in value
    return bool(SearchUtils.get_comparison_func(comparator)(lhs, value))


def _tag_clause(clause: Clause) -> Clause:
    if clause["comparator"] not in _TAG_COMPARATORS:
        raise _invalid(f"Invalid comparator for tag: {clause['comparator']}")
    return clause


def _model_clauses(filter_string: str | None) -> list[Clause]:
    clauses: list[Clause] = SearchModelUtils.parse_search_filter(filter_string)
    for clause in clauses:
        if clause["type"] == "attribute":
            if clause["key"] != "name":
                raise _invalid(f"Invalid attribute name: {clause['key']}")
            if clause["comparator"] not in _STRING_COMPARATORS:
                raise _invalid(f"Invalid comparator for attribute: {clause['comparator']}")
        elif clause["type"] == "tag":
            _tag_clause(clause)
        else:
            raise _invalid(f"Invalid token type: {clause['type']}")
    return clauses


def _version_clauses(filter_string: str | None) -> list[Clause]:
    clauses: list[Clause] = SearchModelVersionUtils.parse_search_filter(filter_string)
    for clause in clauses:
        key, comparator, value = clause["key"], clause["comparator"], clause["value"]
        if clause["type"] == "tag":
            _tag_clause(clause)
            continue
        if clause["type"] != "attribute":
            raise _invalid(f"Invalid token type: {clause['type']}")
        if key not in SearchModelVersionUtils.VALID_SEARCH_ATTRIBUTE_KEYS:
            raise _invalid(f"Invalid attribute name: {key}")
        if key in SearchModelVersionUtils.NUMERIC_ATTRIBUTES:
            if comparator not in SearchModelVersionUtils.VALID_NUMERIC_ATTRIBUTE_COMPARATORS:
                raise _invalid(f"Invalid comparator for attribute {key}: {comparator}")
            if isinstance(value, float):
                raise _invalid(f"Invalid value for numeric attribute '{key}': {value!r}")
            try:
                clause["value"] = int(value)
            except (TypeError, ValueError):
                raise _invalid(f"Invalid value for numeric attribute '{key}': {value!r}") from None
        elif comparator not in SearchModelVersionUtils.VALID_STRING_ATTRIBUTE_COMPARATORS or (
            comparator in ("IN", "NOT IN") and key not in ("run_id", "name")
        ):
            raise _invalid(f"Invalid comparator for attribute: {comparator}")
    return clauses


def _without_prompt_clauses(clauses: list[Clause]) -> tuple[list[Clause], bool]:
    """(clauses to apply, whether prompts are wanted) as the SQL store decides it."""
    if _is_querying_prompt(clauses):
        return clauses, True
    kept = [c for c in clauses if not (c["type"] == "tag" and c["key"] == IS_PROMPT_TAG_KEY)]
    return kept, False


def _sorted(items: Iterable[T], keys: list[tuple[Callable[[T], Any], bool]]) -> list[T]:
    """Sort by several keys, each ascending or descending (stable passes, last key first)."""
    result = list(items)
    for getter, ascending in reversed(keys):
        result.sort(key=getter, reverse=not ascending)
    return result


class SearchQuery(NamedTuple):
    """What a registry search asks for, ``max_results`` already defaulted and checked."""

    filter_string: str | None
    max_results: int
    order_by: list[str] | None
    page_token: str | None

    def paged(self, items: list[T]) -> PagedList[T]:
        """The page of ``items`` this query asks for, with the next page's token."""
        return PagedList(*page(items, self.page_token, self.max_results))


def _model_order(order_by: list[str] | None) -> list[tuple[Callable[[RegisteredModel], Any], bool]]:
    keys: list[tuple[Callable[[RegisteredModel], Any], bool]] = []
    seen: set[str] = set()
    for clause in order_by or []:
        token, ascending = SearchUtils.parse_order_by_for_search_registered_models(clause)
        field = "name" if token == "name" else "last_updated_timestamp"
        if field in seen:
            raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
        seen.add(field)
        keys.append((_attribute(field), ascending))
    if "name" not in seen:
        keys.append((_attribute("name"), True))
    return keys


def _version_order(order_by: list[str]) -> list[tuple[Callable[[ModelVersion], Any], bool]]:
    keys: list[tuple[Callable[[ModelVersion], Any], bool]] = []
    seen: set[str] = set()
    for clause in order_by:
        _, key, ascending = SearchModelVersionUtils.parse_order_by_for_search_model_versions(clause)
        if key not in SearchModelVersionUtils.VALID_ORDER_BY_ATTRIBUTE_KEYS:
            raise _invalid(
                f"Invalid order by key '{key}' specified. Valid keys are "
                f"{SearchModelVersionUtils.VALID_ORDER_BY_ATTRIBUTE_KEYS}"
            )
        field = "version" if key == "version_number" else key
        if field in seen:
            raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
        seen.add(field)
        keys.append((_version_number if field == "version" else _attribute(field), ascending))
    if "name" not in seen:
        keys.append((_attribute("name"), True))
    if "version" not in seen:
        keys.append((_version_number, False))
    return keys


def _attribute(name: str) -> Callable[[Any], Any]:
    return lambda entity: getattr(entity, name)


def _version_number(mv: ModelVersion) -> int:
    return int(mv.version)


def search_models(models: list[RegisteredModel], query: SearchQuery) -> PagedList[RegisteredModel]:
    """Filter, order and page registered models (all tags visible, prompts hidden by default)."""
    clauses, want_prompts = _without_prompt_clauses(_model_clauses(query.filter_string))
    order = _model_order(query.order_by)
    offset_from_page_token(query.page_token)  # a bad token fails first

    def matches(model: RegisteredModel) -> bool:
        tags: dict[str, str] = model._tags
        if not want_prompts and is_prompt_model(tags):
            return False
        for clause in clauses:
            lhs = model.name if clause["type"] == "attribute" else tags.get(clause["key"])
            if not _compare(lhs, clause["comparator"], clause["value"]):
                return False
        return True

    return query.paged(_sorted(filter(matches, models), order))


def search_versions(
    versions: list[ModelVersion], prompt_model_names: set[str], query: SearchQuery
) -> PagedList[ModelVersion]:
    """Filter, order and page live model versions; ``prompt_model_names`` are hidden by default."""
    clauses, want_prompts = _without_prompt_clauses(_version_clauses(query.filter_string))
    order = _version_order(query.order_by or DEFAULT_VERSION_ORDER)
    offset_from_page_token(query.page_token)

    def attribute(mv: ModelVersion, key: str) -> object:
        if key == "version_number":
            return int(mv.version)
        return getattr(mv, "source" if key == "source_path" else key)

    def matches(mv: ModelVersion) -> bool:
        if not want_prompts and mv.name in prompt_model_names:
            return False
        for clause in clauses:
            if clause["type"] == "attribute":
                lhs = attribute(mv, clause["key"])
            else:
                lhs = mv.tags.get(clause["key"])
            if not _compare(lhs, clause["comparator"], clause["value"]):
                return False
        return True

    return query.paged(_sorted(filter(matches, versions), order))

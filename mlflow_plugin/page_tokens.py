"""Page tokens as MLflow's stores spell them, checked: a forged token is a clear error.

MLflow's tokens are base64 JSON (``{"offset": N}``; logged-model searches also carry
the experiment ids, filter and order they were made for). MLflow's own parsers let
some forged tokens through as raw ``AttributeError``/``TypeError``/``ValueError``
(a JSON list, a non-ASCII string, an offset that is a dict); the SQL store turns
those into HTTP 500s. Here every malformed token, and a negative offset, is
``INVALID_PARAMETER_VALUE``. An offset past the end is a valid, empty page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.search_utils import SearchLoggedModelsPaginationToken, SearchUtils

__all__ = ["logged_model_page", "offset_from_page_token", "page"]

T = TypeVar("T")


def _invalid(page_token: object, why: str) -> MlflowException:
    shown = repr(page_token)
    shown = shown if len(shown) <= 100 else shown[:100] + "..."
    return MlflowException(f"Invalid page token {shown}: {why}", INVALID_PARAMETER_VALUE)


def _checked_offset(page_token: object, offset: object) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**63:
        raise _invalid(
            page_token, f"the offset must be a non-negative 64-bit integer, not {offset!r}"
        )
    return offset


def offset_from_page_token(page_token: str | None) -> int:
    """The offset a ``{"offset": N}`` token names (0 for no token), or INVALID_PARAMETER_VALUE.

    >>> offset_from_page_token(SearchUtils.create_page_token(20))
    20
    """
    try:
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
    except MlflowException:
        raise
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise _invalid(page_token, str(exc)) from None
    return _checked_offset(page_token, offset)


def page(
    items: Sequence[T], page_token: str | None, max_results: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` and the token of the next (None on the last page)."""
    offset = offset_from_page_token(page_token)
    end = offset + max_results
    # Bytes, as MLflow's SQL store hands them out.
    next_token = SearchUtils.create_page_token(end) if end < len(items) else None
    return list(items[offset:end]), next_token


def logged_model_page(
    items: Sequence[T],
    page_token: str | None,
    max_results: int,
    experiment_ids: list[str],
    filter_string: str | None,
    order_by: list[dict[str, Any]] | None,
) -> tuple[list[T], str | None]:
    """A page of a logged-model search, with the SQL store's token (tied to its query)."""
    offset = 0
    if page_token:
        try:
            token = SearchLoggedModelsPaginationToken.decode(page_token)
        except MlflowException:
            raise
        except (AttributeError, TypeError, ValueError) as exc:
            raise _invalid(page_token, str(exc)) from None
        token.validate(experiment_ids, filter_string, order_by)
        offset = _checked_offset(page_token, token.offset)
    end = offset + max_results
    next_token = None
    if end < len(items):
        next_token = SearchLoggedModelsPaginationToken(
            experiment_ids=experiment_ids,
            filter_string=filter_string,
            order_by=order_by,
            offset=end,
        ).encode()
    return list(items[offset:end]), next_token

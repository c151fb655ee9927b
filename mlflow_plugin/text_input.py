"""Text a caller hands a store must be storable as UTF-8: one check shared by every adapter.

Python represents the bytes of a non-UTF-8 file name as lone surrogates
(``surrogateescape``), and MLflow copies the script's name into the
``mlflow.source.name`` tag. Such a string has no UTF-8 spelling: stored as JSON it
would come back as text no SQL index or JSON encoder accepts, and break every listing
that meets it. MLflow's SQL store refuses it when it writes; the bucket stores refuse
it at the call, before anything is buffered or written.

>>> check_text("tag value", "train.py")
>>> check_text("tag value", "train\\udcff.py")
Traceback (most recent call last):
...
mlflow.exceptions.MlflowException: Invalid tag value 'train\\udcff.py': ...
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

__all__ = ["check_entries", "check_text", "check_texts", "is_storable_text"]


def is_storable_text(value: object) -> bool:
    """False only for a string that cannot be encoded as UTF-8 (a lone surrogate)."""
    if not isinstance(value, str) or value.isascii():  # the common case costs one C call
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse(what: str, value: str) -> MlflowException:
    return MlflowException(
        f"Invalid {what} {value!r}: it is not valid Unicode text (a lone surrogate, as "
        "Python makes of a file name that is not UTF-8) and cannot be stored as UTF-8",
        INVALID_PARAMETER_VALUE,
    )


def check_text(what: str, value: object) -> None:
    """Raise MLflow's INVALID_PARAMETER_VALUE if ``value`` is a string with no UTF-8 form."""
    if not is_storable_text(value):
        raise _refuse(what, str(value))


def check_texts(what: str, values: Iterable[object]) -> None:
    """``check_text`` for each value (``None`` and non-strings pass: other checks own types)."""
    for value in values:
        if not is_storable_text(value):
            raise _refuse(what, str(value))


def check_entries(what: str, entries: Iterable[Any] | None) -> None:
    """``check_text`` for the key and value of every tag or param (anything with both)."""
    for entry in entries or ():
        check_text(f"{what} key", entry.key)
        check_text(f"{what} value", entry.value)

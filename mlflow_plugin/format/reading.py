"""Reading documents for a listing: one gone or damaged document never fails the others.

A listing (search runs, logged models, registered models) lists keys, then reads each
document. Between the two a document may be deleted, and any document may be damaged
(``CorruptObject``: not JSON, or failing its kind's schema). Either way it is left out:
a damaged one with a warning that names its key, so an operator can find it.

>>> doc = read_listed(store, "models/m-0123.json")  # doctest: +SKIP
>>> doc is None  # gone, or damaged and named in a warning  # doctest: +SKIP
"""

from __future__ import annotations

import logging

from mlflow_plugin.format.documents import Document, read_or_none
from mlflow_plugin.objectstore import ObjectStore
from mlflow_plugin.objectstore.errors import CorruptObject

__all__ = ["read_listed"]

_log = logging.getLogger(__name__)


def read_listed(store: ObjectStore, key: str, left_out_of: str = "the listing") -> Document | None:
    """The document under ``key``; None if it is gone, or damaged (with a warning).

    ``left_out_of`` names what the damaged document is left out of, for the warning.
    """
    try:
        found = read_or_none(store, key)
    except CorruptObject as exc:
        _log.warning("left out of %s: %s", left_out_of, exc)
        return None
    return None if found is None else found[0]

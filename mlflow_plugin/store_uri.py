"""A store URI as users write it: the root's location plus the options the layers read.

``objectstore`` parses the location and reads only the addressing options
(``endpoint_url``, ``region``); the other options travel in the same query and are
read, and their values validated, by the layer they configure (``tracking/settings.py``
for the write path, the query index and the local caches). This module names them
all, so that every entry point (tracking and registry stores, artifact repository,
command line) refuses a name nobody reads instead of silently ignoring a typo.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import unquote, unquote_plus, urlsplit

from mlflow_plugin.objectstore.uri import ADDRESSING_OPTIONS, StoreLocation
from mlflow_plugin.objectstore.uri import parse_store_uri as parse_location

__all__ = ["INDEX_OPTIONS", "STORE_URI_OPTIONS", "WRITE_PATH_OPTIONS", "parse_store_uri"]

#: Read by the tracking store's write path (``tracking/settings.py``).
WRITE_PATH_OPTIONS: dict[str, str] = {
    "flush_interval": "seconds between uploads of buffered metrics (tracking store)",
    "flush_points": "buffered metric points that trigger an upload (tracking store)",
    "spool": "true/false: keep buffered writes on local disk until uploaded (tracking store)",
    "spool_dir": "folder for the local spool (tracking store)",
}

#: Read for the query index and the local caches (``tracking/settings.py``).
INDEX_OPTIONS: dict[str, str] = {
    "index": "SQLAlchemy URL of the query index (default: a SQLite file in the user cache)",
    "index_staleness": "seconds a search may answer from the index before re-listing the bucket",
    "cache_max_bytes": "size bound of the local metric caches, e.g. 2G (default 1 GiB)",
}

#: Every option a store URI may carry, with what it means.
STORE_URI_OPTIONS: dict[str, str] = {**ADDRESSING_OPTIONS, **WRITE_PATH_OPTIONS, **INDEX_OPTIONS}


def parse_store_uri(uri: str) -> StoreLocation:
    """Parse a store URI given by a user; refuse an option no layer reads.

    >>> parse_store_uri("bucket+s3://my-bucket/team?flush_interval=2").option("flush_interval")
    '2'
    """
    location = parse_location(uri)
    location.check_option_names(STORE_URI_OPTIONS)
    index = _index_url_as_written(uri)
    if index is None:
        return location
    options = tuple((k, index if k == "index" else v) for k, v in location.options)
    return replace(location, options=options)


def _index_url_as_written(uri: str) -> str | None:
    """The ``index`` option percent-decoded only: a ``+`` in it stays a ``+``.

    A query is decoded as a form, where ``+`` stands for a space; but a database URL's
    ``+`` names its driver (``postgresql+psycopg://``), as the README writes it, and no
    URL has a space there. A percent-encoded ``%2B`` decodes to ``+`` as well.

    >>> _index_url_as_written("bucket+file:/r?index=postgresql+psycopg://db/index")
    'postgresql+psycopg://db/index'
    """
    for pair in urlsplit(uri).query.split("&"):
        name, _, value = pair.partition("=")
        if unquote_plus(name) == "index":  # the name as the form decoding read it
            return unquote(value)
    return None

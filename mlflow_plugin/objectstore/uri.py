"""Store URIs: ``bucket+s3://BUCKET[/PREFIX][?endpoint_url=...&region=...]`` and
``bucket+file:///ABS/PATH`` (or relative: ``bucket+file:./mlruns-bucket``).

The S3 endpoint is chosen by, in order: the URI's ``endpoint_url``, then
``MLFLOW_S3_ENDPOINT_URL``, then ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
then boto3's default (AWS). Credentials come only from boto3's standard chain
(environment, profile, role): a URI that carries a secret, in the query or as
``user:password@``, is refused, so it never ends up in a log or a run's
artifact URI.

Options of the upper layers (flush interval, index URL...) also travel in the
query. This module reads only its own (``ADDRESSING_OPTIONS``) and keeps the others
as they came; the layers that read an option validate its value, and
``StoreLocation.check_option_names`` refuses a name no layer reads (a typo is an
error, not a silently ignored setting: see ``mlflow_plugin.store_uri``).
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from mlflow_plugin.objectstore.base import ObjectStore, check_prefix
from mlflow_plugin.objectstore.errors import InvalidKey, InvalidStoreUri

__all__ = [
    "ADDRESSING_OPTIONS",
    "FILE_SCHEME",
    "S3_SCHEME",
    "SCHEMES",
    "StoreLocation",
    "open_object_store",
    "parse_store_uri",
    "root_identity",
]

S3_SCHEME = "bucket+s3"
FILE_SCHEME = "bucket+file"
SCHEMES = (S3_SCHEME, FILE_SCHEME)

#: The query options this layer reads: where the root is, with what they mean.
ADDRESSING_OPTIONS: dict[str, str] = {
    "endpoint_url": "S3 endpoint, e.g. http://127.0.0.1:9000 (MinIO, SeaweedFS, Ceph, R2...)",
    "region": "S3 region used to sign requests",
}

_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|access[_-]?key|credential|signature|session", re.IGNORECASE
)
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")
_ENDPOINT_ENV = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URI: where the root is, and the options that came with it."""

    scheme: str
    bucket: str = ""  # S3 only
    prefix: str = ""  # S3 key prefix, no leading or trailing "/"
    path: str = ""  # local root folder, absolute
    options: tuple[tuple[str, str], ...] = field(default=())

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)

    def check_option_names(self, known: Mapping[str, str]) -> None:
        """Refuse an option that is neither an addressing option nor in ``known``.

        >>> parse_store_uri("bucket+file:/r?flush_intervall=3").check_option_names({})
        Traceback (most recent call last):
        ...
        mlflow_plugin.objectstore.errors.InvalidStoreUri: unknown store URI option 'flush_intervall' (known: endpoint_url, region)
        """  # noqa: E501
        accepted = {**ADDRESSING_OPTIONS, **known}
        for name, _ in self.options:
            if name not in accepted:
                names = ", ".join(sorted(accepted))
                raise InvalidStoreUri(f"unknown store URI option {name!r} (known: {names})")

    @property
    def is_s3(self) -> bool:
        return self.scheme == S3_SCHEME

    def endpoint_url(self) -> str | None:
        """The S3 endpoint by the documented precedence (read when the store opens)."""
        explicit = self.option("endpoint_url")
        if explicit:
            return explicit
        for name in _ENDPOINT_ENV:
            if os.environ.get(name):
                return os.environ[name]
        return None

    def region(self) -> str | None:
        region = self.option("region") or os.environ.get("AWS_REGION")
        region = region or os.environ.get("AWS_DEFAULT_REGION")
        if region is None and self.endpoint_url():
            return "us-east-1"  # custom endpoints still need a region to sign requests
        return region

    def join(self, *segments: str) -> StoreLocation:
        """The location of a sub-folder, e.g. ``location.join("artifacts", "1")``."""
        relative = "/".join(s.strip("/") for s in segments if s.strip("/"))
        if not relative:
            return self
        try:
            check_prefix(relative + "/")
        except InvalidKey as exc:
            raise InvalidStoreUri(str(exc)) from exc
        if self.is_s3:
            return replace(self, prefix=posixpath.join(self.prefix, relative).strip("/"))
        return replace(self, path=posixpath.join(self.path, relative))

    def addressing_only(self) -> StoreLocation:
        """This location with only the options that say where it is (endpoint, region):
        what a URI stored for others to read (an artifact location) should carry."""
        kept = tuple((k, v) for k, v in self.options if k in ("endpoint_url", "region"))
        return replace(self, options=kept)

    def to_uri(self) -> str:
        query = f"?{urlencode(self.options)}" if self.options else ""
        if self.is_s3:
            prefix = f"/{quote(self.prefix)}" if self.prefix else ""
            return f"{S3_SCHEME}://{self.bucket}{prefix}{query}"
        return f"{FILE_SCHEME}://{quote(self.path)}{query}"

    def __str__(self) -> str:
        return self.to_uri()


def _parse_options(uri: str, query: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidStoreUri(f"malformed query in store URI {uri!r}: {exc}") from exc
    seen: dict[str, str] = {}
    for name, value in pairs:
        if _SECRET_NAME.search(name):
            raise InvalidStoreUri(
                f"store URI option {name!r} looks like a credential; credentials are read only "
                "from boto3's standard chain (AWS_* environment variables, a profile or a role), "
                "never from the URI"
            )
        if name in seen:
            raise InvalidStoreUri(f"store URI option {name!r} is given twice")
        seen[name] = value
    return tuple(sorted(seen.items()))


def parse_store_uri(uri: str) -> StoreLocation:
    """Parse a ``bucket+s3://`` or ``bucket+file:`` URI; raise ``InvalidStoreUri`` if unsafe.

    Options other than ``ADDRESSING_OPTIONS`` are kept unread, for the layers above.

    >>> parse_store_uri("bucket+s3://my-bucket/team?region=eu-west-1").prefix
    'team'
    """
    if not isinstance(uri, str):
        raise InvalidStoreUri(f"a store URI must be a string, got {uri!r}")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidStoreUri(f"store URI {uri!r} must start with bucket+s3:// or bucket+file:")
    if parts.fragment:
        raise InvalidStoreUri(f"store URI {uri!r} must not have a #fragment")
    if "@" in parts.netloc:
        raise InvalidStoreUri(
            "store URI carries user info ('...@'); credentials are read only from boto3's "
            "standard chain (AWS_* environment variables, a profile or a role), never from the URI"
        )
    options = _parse_options(uri, parts.query)
    path = unquote(parts.path)
    if scheme == S3_SCHEME:
        bucket = parts.netloc
        if not _BUCKET_NAME.match(bucket):
            raise InvalidStoreUri(f"store URI {uri!r} has no valid bucket name")
        prefix = path.strip("/")
        if prefix:
            try:
                check_prefix(prefix + "/")
            except InvalidKey as exc:
                raise InvalidStoreUri(f"store URI {uri!r}: {exc}") from exc
        return StoreLocation(scheme=scheme, bucket=bucket, prefix=prefix, options=options)
    if parts.netloc not in ("", "localhost"):
        raise InvalidStoreUri(f"store URI {uri!r} names a host; use bucket+file:///absolute/path")
    if not path or "\x00" in path:
        raise InvalidStoreUri(f"store URI {uri!r} has no usable path")
    # ".." only as a relative path's leading steps (bucket+file:../shared/mlruns); anywhere
    # else, decoded from %2e%2e included, it would climb out of a folder MLflow appended a
    # user's artifact path to.
    segments = path.split("/")
    leading = len(segments) - len(list(itertools.dropwhile(lambda s: s == "..", segments)))
    if ".." in segments[leading:]:
        raise InvalidStoreUri(f"store URI {uri!r}: its path must not climb with '..'")
    return StoreLocation(scheme=scheme, path=os.path.abspath(path), options=options)


def open_object_store(location: StoreLocation | str) -> ObjectStore:
    """Open the object store rooted at ``location`` (a URI or a parsed location)."""
    if isinstance(location, str):
        location = parse_store_uri(location)
    if location.is_s3:
        from mlflow_plugin.objectstore.s3 import S3ClientSettings, S3ObjectStore

        settings = S3ClientSettings(endpoint_url=location.endpoint_url(), region=location.region())
        return S3ObjectStore(location.bucket, location.prefix, settings)
    from mlflow_plugin.objectstore.local import LocalObjectStore

    return LocalObjectStore(location.path)


def root_identity(location: StoreLocation) -> str:
    """The root a spool or an index belongs to: scheme, bucket or folder, prefix and endpoint.

    Write-path options (flush interval, spool folder...) are left out, so a process
    configured differently (or ``sync``) still finds what another one left.
    """
    endpoint = location.endpoint_url() if location.is_s3 else None
    kept = tuple((k, v) for k, v in location.options if k == "endpoint_url")
    return replace(location, options=kept).to_uri() + (f" @ {endpoint}" if endpoint else "")

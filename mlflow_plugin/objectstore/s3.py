"""S3 (and S3-compatible endpoints) through boto3: the only module that imports it.

One botocore client per endpoint configuration, shared by every store and thread
of the process (botocore clients are thread-safe; creating one costs tens of
milliseconds). Retries are botocore's "standard" mode. Conditional writes use
``IfNoneMatch="*"`` and ``IfMatch=<etag>`` on ``PutObject``; large uploads and
downloads go through boto3's transfer manager (parallel multipart).

Every botocore failure is translated here, once, into the package's error tree.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import io
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import boto3
import botocore.config
import botocore.exceptions
import botocore.retries.quota
import botocore.retries.standard
import botocore.session
import botocore.utils
from boto3.s3.transfer import TransferConfig

from mlflow_plugin.objectstore.backoff import Backoff
from mlflow_plugin.objectstore.base import (
    DirectoryListing,
    ObjectInfo,
    ObjectStore,
    StoredObject,
    check_folder_prefix,
    check_key,
    check_prefix,
)
from mlflow_plugin.objectstore.errors import (
    AccessDenied,
    AlreadyExists,
    NotFound,
    ObjectStoreError,
    PreconditionFailed,
    StorageUnavailable,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MULTIPART_CHUNK_SIZE",
    "MULTIPART_THRESHOLD",
    "S3ClientSettings",
    "S3ObjectStore",
    "parse_s3_timestamp",
    "s3_client",
]

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK_SIZE = 16 * 1024 * 1024
_TRANSFER_CONCURRENCY = 8
# AWS answers 409 ConditionalRequestConflict while another conditional write to the
# same key is in flight; the outcome is unknown until it finishes, so wait and retry.
_CONFLICT_RETRIES = 5
_CONFLICT_BACKOFF = Backoff(first=0.05, ceiling=0.4)
# User metadata (x-amz-meta-put-token) that tells our own conditional write from another's.
_PUT_TOKEN = "put-token"

_ACCESS_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "403",
}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


@dataclass(frozen=True)
class S3ClientSettings:
    """What identifies a client: the endpoint and region (credentials come from boto3's chain)."""

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


_clients: dict[S3ClientSettings, S3Client] = {}
_clients_lock = threading.Lock()


class _UnlimitedRetryQuota(botocore.retries.quota.RetryQuota):
    """botocore's retry budget, never spent (see ``_retry_without_budget``)."""

    def acquire(self, capacity_amount: int) -> bool:
        return True

    def release(self, capacity_amount: int) -> None:
        return None


def _retry_without_budget(client: S3Client, settings: S3ClientSettings) -> None:
    """Give this client standard-mode retries that have no retry budget.

    botocore's standard mode keeps a retry budget per client (500 tokens, 14 taken by
    each retried error and given back only when that retry succeeds). Under a steady
    error rate it runs dry, and from then on the first transient error of every
    request is final: a fifth of requests failing drained it within a minute in the
    torture tests, and creates and parameter writes then failed although one retry
    would have saved them. Attempts per request stay bounded by ``max_attempts``.
    The handler botocore registered on this client is swapped for one built the same
    way but for the budget; nothing process-wide changes, so clients created meanwhile
    by other threads (MLflow's own S3 repository) keep botocore's defaults.
    """
    service = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{service}"  # the id botocore registers its handler under
    adapter = botocore.retries.standard.RetryEventAdapter()
    throttling = botocore.retries.standard.ThrottlingErrorDetector(adapter)
    handler = botocore.retries.standard.RetryHandler(
        retry_policy=botocore.retries.standard.RetryPolicy(
            # The client's config gives ``max_attempts`` retries (botocore's meaning of the
            # key there); the checker counts attempts, the first one included.
            retry_checker=botocore.retries.standard.StandardRetryConditions(
                max_attempts=settings.max_attempts + 1
            ),
            retry_backoff=botocore.retries.standard.ExponentialBackoff(
                service_name=service,
                throttling_detector=throttling,
            ),
        ),
        retry_event_adapter=adapter,
        # The stubs say RetryQuota; botocore's own register_retry_handler passes a checker.
        retry_quota=botocore.retries.standard.RetryQuotaChecker(  # type: ignore[arg-type]
            _UnlimitedRetryQuota(), throttling
        ),
        service_name=service,
    )
    events = client.meta.events
    events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    # A needs-retry handler answers the delay (or None); the stubs type handlers as -> None.
    events.register(
        f"needs-retry.{service}",
        handler.needs_retry,  # type: ignore[arg-type]
        unique_id=unique_id,
    )


# The two shapes S3 endpoints send: listings' ISO 8601 with a zone, headers' RFC 1123.
_ISO_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_HTTP_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} (GMT|[+-]\d{4})",
    re.ASCII,
)


def parse_s3_timestamp(value: Any) -> datetime.datetime:
    """A timestamp of an S3 answer, as botocore parses it, without its general parser
    (dateutil's), which took about three quarters of the CPU of a 1,000-key listing.
    Only the two shapes S3 sends are read here (``2026-12-08T01:47:44.000Z`` in listings,
    ``Tue, 08 Dec 2026 01:47:44 GMT`` in headers); anything else is botocore's to read."""
    parsed = None
    # A shape it cannot read (hour 24 ...) gets botocore's error, in botocore's words.
    with contextlib.suppress(ValueError):
        if isinstance(value, str) and _ISO_TIMESTAMP.fullmatch(value):
            parsed = datetime.datetime.fromisoformat(value)
        elif isinstance(value, str) and _HTTP_DATE.fullmatch(value):
            parsed = email.utils.parsedate_to_datetime(value)
    if parsed is None or parsed.tzinfo is None:  # -0000 reads as "zone unknown"
        return botocore.utils.parse_timestamp(value)
    return parsed


def s3_client(settings: S3ClientSettings) -> S3Client:
    """Return the process-wide client for ``settings``, creating it once."""
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            config = botocore.config.Config(
                retries={"max_attempts": settings.max_attempts, "mode": "standard"},
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                max_pool_connections=32,
                # Custom endpoints (MinIO, SeaweedFS, Ceph...) expect path-style addressing.
                s3={"addressing_style": "path"} if settings.endpoint_url else None,
            )
            # A session per client: boto3's default session is not thread-safe to share.
            core_session = botocore.session.get_session()
            core_session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=parse_s3_timestamp
            )
            session = boto3.session.Session(botocore_session=core_session)
            client = session.client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                config=config,
            )
            _retry_without_budget(client, settings)
            _clients[settings] = client
        return client


class _StillConflicting(PreconditionFailed):
    """409 ConditionalRequestConflict after every retry: another write is still in flight."""


def _retry_attempts(exc: botocore.exceptions.ClientError) -> int:
    """How many times botocore retried before this answer (lost answers among them)."""
    return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)


def _error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status)


class S3ObjectStore(ObjectStore):
    """Objects under ``s3://bucket/prefix``.

    >>> store = S3ObjectStore("my-bucket", "team/project")  # doctest: +SKIP
    >>> store.put_if_absent("_format.json", b"{}")  # doctest: +SKIP
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        settings: S3ClientSettings | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.settings = settings or S3ClientSettings()
        self.location = f"s3://{bucket}/{self.prefix}"
        if self.settings.endpoint_url:
            self.location += f" at {self.settings.endpoint_url}"
        self._client = s3_client(self.settings)
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK_SIZE,
            max_concurrency=_TRANSFER_CONCURRENCY,
        )

    @property
    def bucket_location(self) -> str:
        where = f"s3://{self.bucket}"
        return f"{where} at {self.settings.endpoint_url}" if self.settings.endpoint_url else where

    @property
    def client(self) -> S3Client:
        return self._client

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) :]

    # -- the one translation boundary -------------------------------------------------

    def _raise(self, exc: Exception, key: str, action: str) -> NoReturn:
        where = f"{key!r} in {self.location}"
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status = _error_code(exc)
            if code == "NoSuchBucket":
                raise NotFound(f"bucket {self.bucket!r} does not exist ({self.location})") from exc
            if code in _MISSING_CODES or status == 404:
                raise NotFound(f"no object {where}") from exc
            if code == "PreconditionFailed" or status == 412:
                raise PreconditionFailed(f"{action} {where}: precondition failed") from exc
            if code in _ACCESS_CODES or status == 403:
                raise AccessDenied(f"{action} {where}: access denied ({code})") from exc
            if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "RequestTimeout"}:
                raise StorageUnavailable(f"{action} {where}: endpoint failing ({code})") from exc
            raise ObjectStoreError(f"{action} {where}: {code or status}: {exc}") from exc
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            raise AccessDenied(
                f"{action} {where}: no AWS credentials found (environment, profile or role)"
            ) from exc
        if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
            raise StorageUnavailable(f"{action} {where}: endpoint unreachable: {exc}") from exc
        raise exc

    def _call(self, action: str, key: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(Bucket=self.bucket, **kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            self._raise(exc, key, action)

    # -- the interface ---------------------------------------------------------------

    def get(self, key: str) -> StoredObject:
        full = self._full(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            data = response["Body"].read()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            self._raise(exc, key, "reading")
        return StoredObject(data=data, etag=response["ETag"])

    def head(self, key: str) -> ObjectInfo:
        response = self._call("reading", key, "head_object", Key=self._full(key))
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=response["ETag"],
            last_modified=response["LastModified"].timestamp(),
        )

    def put(self, key: str, data: bytes) -> str:
        full = self._full(key)
        if len(data) < MULTIPART_THRESHOLD:
            return str(self._call("writing", key, "put_object", Key=full, Body=data)["ETag"])
        try:
            self._client.upload_fileobj(io.BytesIO(data), self.bucket, full, Config=self._transfer)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            self._raise(exc, key, "writing")
        return self.head(key).etag

    def _conditional_put(self, key: str, data: bytes, **condition: Any) -> str:
        """PutObject with a condition; a retry that meets this very write counts as success.

        botocore retries a request whose answer was lost (a reset, a 5xx after the write
        landed); the retry then fails its own condition (412), or AWS answers 409 while
        the first attempt is still in flight. So every conditional write carries a random
        token in its metadata, and a condition failure after any retry reads the token
        back: our token means our write is the one stored.
        """
        full = self._full(key)
        token = uuid.uuid4().hex
        retried = False
        for attempt in range(_CONFLICT_RETRIES):
            try:
                response = self._client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=data,
                    Metadata={_PUT_TOKEN: token},
                    **condition,
                )
                return str(response["ETag"])
            except botocore.exceptions.ClientError as exc:
                _, status = _error_code(exc)
                retried = retried or attempt > 0 or _retry_attempts(exc) > 0
                if status == 409 and attempt + 1 < _CONFLICT_RETRIES:
                    _CONFLICT_BACKOFF.sleep(attempt)
                    continue
                if status in (409, 412) and retried:
                    landed = self._etag_if_written_by(key, token)
                    if landed is not None:
                        return landed
                if status == 409:
                    # Still conflicting: nothing of ours is stored. What is, the caller decides.
                    raise _StillConflicting(f"concurrent conditional write to {key!r}") from exc
                self._raise(exc, key, "writing")
            except (botocore.exceptions.BotoCoreError, OSError) as exc:
                self._raise(exc, key, "writing")
        raise AssertionError("unreachable")

    def _etag_if_written_by(self, key: str, token: str) -> str | None:
        """The object's ETag if the write carrying ``token`` is the version stored now."""
        try:
            response = self._call("reading", key, "head_object", Key=self._full(key))
        except NotFound:
            return None
        if response.get("Metadata", {}).get(_PUT_TOKEN) != token:
            return None
        return str(response["ETag"])

    def put_if_absent(self, key: str, data: bytes) -> str:
        try:
            return self._conditional_put(key, data, IfNoneMatch="*")
        except _StillConflicting as exc:
            if not self.exists(key):  # 409 says "in flight", not "taken": the outcome is unknown
                raise StorageUnavailable(
                    f"writing {key!r} in {self.location}: concurrent conditional writes kept "
                    f"conflicting after {_CONFLICT_RETRIES} tries"
                ) from exc
            raise AlreadyExists(f"object {key!r} already exists in {self.location}") from exc
        except PreconditionFailed as exc:
            raise AlreadyExists(f"object {key!r} already exists in {self.location}") from exc

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        try:
            return self._conditional_put(key, data, IfMatch=etag)
        except PreconditionFailed:
            # AWS and moto answer 404 for a missing key, SeaweedFS 412: report both alike.
            self.head(key)
            raise

    def delete(self, key: str) -> None:
        self._call("deleting", key, "delete_object", Key=self._full(key))

    def _pages(self, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, **extra
            ):
                yield dict(page)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            self._raise(exc, prefix, "listing")

    def _object_info(self, entry: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key=self._relative(entry["Key"]),
            size=int(entry["Size"]),
            etag=entry["ETag"],
            last_modified=entry["LastModified"].timestamp(),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        # S3 lists in key order, but some compatible servers (SeaweedFS) list folder by
        # folder ("a/x" before "a-b"); sorting the whole listing keeps the promise.
        found = [
            self._object_info(entry)
            for page in self._pages(prefix)
            for entry in page.get("Contents", [])
            if not entry["Key"].endswith("/")  # folder markers written by consoles and tools
        ]
        yield from sorted(found, key=lambda info: info.key)

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        check_prefix(start_after)
        found = [
            self._object_info(entry)
            for page in self._pages(prefix, StartAfter=self.prefix + start_after)
            for entry in page.get("Contents", [])
            if not entry["Key"].endswith("/")
        ]
        # Sorted and filtered again, as ``list``: not every server orders (or honours
        # StartAfter) exactly as AWS does.
        yield from sorted(
            (info for info in found if info.key > start_after), key=lambda info: info.key
        )

    def list_dir(self, prefix: str = "") -> DirectoryListing:
        check_folder_prefix(prefix)
        result = DirectoryListing()
        for page in self._pages(prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                result.folders.append(self._relative(common["Prefix"]))
            for entry in page.get("Contents", []):
                if not entry["Key"].endswith("/"):
                    result.objects.append(self._object_info(entry))
        return result

    def put_file(self, key: str, path: str | os.PathLike[str]) -> str:
        full = self._full(key)
        try:
            self._client.upload_file(os.fspath(path), self.bucket, full, Config=self._transfer)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            self._raise(exc, key, "uploading")
        return self.head(key).etag

    def get_file(self, key: str, path: str | os.PathLike[str]) -> None:
        full = self._full(key)
        target = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        try:
            # download_file writes to a temp name and renames it into place.
            self._client.download_file(self.bucket, full, target, Config=self._transfer)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            self._raise(exc, key, "downloading")

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        keys = [
            {"Key": entry["Key"]}
            for page in self._pages(prefix)
            for entry in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys a call
            response = self._call(
                "deleting",
                prefix,
                "delete_objects",
                Delete={"Objects": keys[start : start + 1000], "Quiet": True},
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise ObjectStoreError(
                    f"deleting under {prefix!r} in {self.location}: {len(response['Errors'])} "
                    f"objects not deleted, e.g. {first.get('Key')!r}: {first.get('Code')}"
                )
        return len(keys)

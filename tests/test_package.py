"""The installed package: entry points, public names, URI parsing."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import mlflow_plugin.objectstore as objectstore
from mlflow_plugin.artifacts import BucketArtifactRepository
from mlflow_plugin.objectstore import InvalidStoreUri
from mlflow_plugin.store_uri import parse_store_uri

SCHEMES = {"bucket+s3", "bucket+file"}


@pytest.mark.parametrize("group", ["mlflow.tracking_store", "mlflow.artifact_repository"])
def test_entry_points_register_both_schemes(group: str) -> None:
    names = {ep.name for ep in entry_points(group=group) if ep.value.startswith("mlflow_plugin.")}
    assert names == SCHEMES


@pytest.mark.parametrize("uri", ["bucket+s3://bucket/prefix", "bucket+file:///tmp/bucket-root"])
def test_mlflow_resolves_our_artifact_repository(uri: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    assert isinstance(get_artifact_repository(uri), BucketArtifactRepository)


def test_objectstore_public_names_are_pinned() -> None:
    assert sorted(objectstore.__all__) == sorted(
        [
            "ADDRESSING_OPTIONS", "SCHEMES", "AccessDenied", "AlreadyExists",
            "ConditionalWritesUnsupported", "DirectoryListing", "InvalidKey", "InvalidStoreUri",
            "LocalObjectStore", "MemoryObjectStore", "NotFound", "ObjectInfo", "ObjectStore",
            "ObjectStoreError", "PreconditionFailed", "StorageUnavailable", "StoreLocation",
            "StoredObject", "check_conditional_writes", "check_conditional_writes_once",
            "check_folder_prefix", "check_key", "check_prefix", "open_object_store",
            "parse_store_uri",
        ]
    )  # fmt: skip


def test_s3_uri_parts_and_round_trip() -> None:
    location = parse_store_uri(
        "bucket+s3://my-bucket/team/proj?region=eu-west-1&endpoint_url=http://h:9000"
    )
    assert (location.bucket, location.prefix) == ("my-bucket", "team/proj")
    assert location.endpoint_url() == "http://h:9000"
    assert location.region() == "eu-west-1"
    assert parse_store_uri(location.to_uri()) == location
    assert location.join("artifacts", "7").prefix == "team/proj/artifacts/7"


def test_relative_file_uri_becomes_absolute(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    assert parse_store_uri("bucket+file:./mlruns-bucket").path == f"{tmp_path}/mlruns-bucket"
    assert parse_store_uri("bucket+file:///abs/path").path == "/abs/path"


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://aws-generic")
    assert parse_store_uri("bucket+s3://bucket").endpoint_url() == "http://aws-generic"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://aws-s3")
    assert parse_store_uri("bucket+s3://bucket").endpoint_url() == "http://aws-s3"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://mlflow-s3")
    assert parse_store_uri("bucket+s3://bucket").endpoint_url() == "http://mlflow-s3"
    assert parse_store_uri("bucket+s3://bucket?endpoint_url=http://q").endpoint_url() == "http://q"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/prefix",
        "bucket+gs://bucket",
        "bucket+s3://",
        "bucket+s3://x",
        "bucket+s3://bucket/../up",
        "bucket+s3://bucket/p?aws_secret_access_key=hunter2",
        "bucket+s3://bucket/p?session_token=hunter2",
        "bucket+s3://key:hunter2@bucket/p",
        "bucket+s3://bucket/p?region=a&region=b",
        "bucket+s3://bucket/p?unknown=1",
        "bucket+s3://bucket/p#frag",
        "bucket+file://remote-host/path",
        "bucket+file:",
    ],
)
def test_bad_uris_are_refused_without_echoing_secrets(uri: str) -> None:
    with pytest.raises(InvalidStoreUri) as raised:
        parse_store_uri(uri)
    assert "hunter2" not in str(raised.value)

"""Artifact paths that try to leave the artifact root, through ``MlflowClient``, on both schemes.

``log_artifact``, ``log_artifacts``, ``list_artifacts`` and ``download_artifacts`` get each
hostile path. A path that could escape (``..`` segments, absolute, backslashes, control
characters, the local store's reserved names) is INVALID_PARAMETER_VALUE before anything is
written; a path that only looks odd (``%2e%2e``, a one-dot leader) is a literal name and stays
inside. After every case: nothing outside the store root changed, nothing inside it changed
but the run's own artifacts, and the download folder's parent holds nothing new.

A bucket written by someone hostile is covered too: an S3 listing with ``..`` or empty
segments, and a symbolic link planted in a folder store, never lead a download or an upload
out of its folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import uuid4

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_plugin.objectstore import parse_store_uri
from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client
from tests.hostile.corpus import raised_in_plugin, register
from tests.hostile.guards import folder_snapshot, outside_root_unchanged, root_keys
from tests.servers import S3Endpoint

OUTSIDE = "{outside}"  # replaced by a folder beside the store root, inside the snapshot

ESCAPING = {
    "parent": "../escape",
    "grandparent": "../../escape",
    "inner_parent": "sub/../../escape",
    "deep_parent": "a/b/../../../../../escape",
    "trailing_parent": "a/..",
    "dot_then_parent": "./../escape",
    "absolute": "/tmp/mlflow-bucket-escape",
    "absolute_beside_root": OUTSIDE,
    "backslash_parent": "..\\escape",
    "backslash_inner": "a\\..\\..\\escape",
    "nul": "a\x00b",
    "newline": "a\nb",
    "reserved_name": ".mlflow-bucket-tmp-x",
    "segment_over_255_bytes": "s" * 300,
}
LITERAL = {
    "encoded_dots": "%2e%2e/literal",
    "encoded_slash": "..%2fliteral",
    "one_dot_leaders": "\u2024\u2024/literal",
    "dots_in_name": "a..b/c...d",
}
# MLflow downloads a path through a runs:/ URI built by concatenation: its folder becomes
# the artifact root URI, whose path is percent-decoded. "%2e%2e" uploads and lists as a
# literal name, but downloads as the ".." it decodes to, which is refused.
DECODED_BY_DOWNLOAD = {"encoded_dots"}
OPERATIONS = ("log_artifact", "log_artifacts", "list_artifacts", "download_artifacts")

for _operation in OPERATIONS:
    for _label in (*ESCAPING, *LITERAL):
        for _backend in ("bucket_file", "bucket_s3"):
            register(f"artifact_{_operation}__{_label}__{_backend}", "artifact paths")


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/store/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return (
        f"bucket+s3://{moto.shared_bucket}/hostile-artifacts/{uuid4().hex}?endpoint_url={moto.url}"
    )


@pytest.fixture
def client(store_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=store_uri)


@pytest.fixture
def run_id(client: MlflowClient) -> str:
    run_id: str = client.create_run("0").info.run_id
    return run_id


def _artifact_prefix(client: MlflowClient, run_id: str) -> str:
    """The run's artifact folder as a key prefix under the store root."""
    artifact_uri = client.get_run(run_id).info.artifact_uri
    store_uri = client._tracking_client.tracking_uri
    artifacts = parse_store_uri(artifact_uri)
    root = parse_store_uri(store_uri)
    if artifacts.is_s3:
        return artifacts.prefix[len(root.prefix) :].strip("/") + "/"
    return os.path.relpath(artifacts.path, root.path) + "/"


def _act(client: MlflowClient, run_id: str, operation: str, path: str, work: Path) -> None:
    source = work / "source"
    source.mkdir(exist_ok=True)
    (source / "file.txt").write_text("payload")
    if operation == "log_artifact":
        client.log_artifact(run_id, str(source / "file.txt"), artifact_path=path)
    elif operation == "log_artifacts":
        client.log_artifacts(run_id, str(source), artifact_path=path)
    elif operation == "list_artifacts":
        client.list_artifacts(run_id, path)
    else:
        destination = work / "download"
        destination.mkdir(exist_ok=True)
        client.download_artifacts(run_id, path, str(destination))


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("label", sorted(ESCAPING))
def test_escaping_artifact_path_is_refused(
    label: str,
    operation: str,
    client: MlflowClient,
    run_id: str,
    store_uri: str,
    tmp_path: Path,
) -> None:
    path = ESCAPING[label].replace(OUTSIDE, str(tmp_path / "store" / "outside"))
    work = tmp_path / "work"
    work.mkdir()
    inside_before = root_keys(store_uri)
    work_before = folder_snapshot(tmp_path, tmp_path / "store")
    with outside_root_unchanged(store_uri), pytest.raises(MlflowException) as raised:
        _act(client, run_id, operation, path, work)
    if operation != "download_artifacts":
        assert raised.value.error_code == "INVALID_PARAMETER_VALUE", raised.value.message
    else:
        # MLflow's client turns the path into a runs:/ URI first: an absolute path names
        # another "run" (RESOURCE_DOES_NOT_EXIST) or a malformed URI (its INTERNAL_ERROR).
        allowed = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}
        if not raised_in_plugin(raised.value):
            allowed.add("INTERNAL_ERROR")
        assert raised.value.error_code in allowed, raised.value.message
    assert root_keys(store_uri) == inside_before
    added = set(folder_snapshot(tmp_path, tmp_path / "store")) - set(work_before)
    assert added <= {"work/source/file.txt"}, added  # nothing downloaded anywhere


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("label", sorted(LITERAL))
def test_odd_but_literal_artifact_path_stays_inside(
    label: str,
    operation: str,
    client: MlflowClient,
    run_id: str,
    store_uri: str,
    tmp_path: Path,
) -> None:
    path = LITERAL[label]
    work = tmp_path / "work"
    work.mkdir()
    inside_before = root_keys(store_uri)
    if operation in ("list_artifacts", "download_artifacts"):
        # Something to list and fetch under that literal name.
        _act(client, run_id, "log_artifact", path, work)
        inside_before = root_keys(store_uri)
    if operation == "download_artifacts" and label in DECODED_BY_DOWNLOAD:
        with outside_root_unchanged(store_uri), pytest.raises(MlflowException) as raised:
            _act(client, run_id, operation, path, work)
        assert raised.value.error_code == "INVALID_PARAMETER_VALUE", raised.value.message
        assert not (work / "download").exists() or not any((work / "download").iterdir())
        return
    with outside_root_unchanged(store_uri):
        _act(client, run_id, operation, path, work)
    added = root_keys(store_uri) - inside_before
    prefix = _artifact_prefix(client, run_id)
    assert all(key.startswith(prefix) for key in added), added
    if operation.startswith("log"):
        assert f"{prefix}{path}/file.txt" in added
    if operation == "list_artifacts":
        assert [info.path for info in client.list_artifacts(run_id, path)] == [f"{path}/file.txt"]
    if operation == "download_artifacts":
        # MLflow downloads the folder itself into the destination: <dst>/<last segment>/...
        downloaded = work / "download" / path.rsplit("/", 1)[-1] / "file.txt"
        assert downloaded.read_text() == "payload"


def test_hostile_s3_listing_never_leads_a_download_out(moto_s3: S3Endpoint, tmp_path: Path) -> None:
    """Objects planted with ``..`` and empty segments under a run's artifacts: download fails
    with a clear error, and nothing is written outside the destination folder."""
    uri = f"bucket+s3://{moto_s3.shared_bucket}/hostile-listing/{uuid4().hex}"
    uri += f"?endpoint_url={moto_s3.url}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run("0").info.run_id
    location = parse_store_uri(uri)
    prefix = f"{location.prefix}/{_artifact_prefix(client, run_id)}"
    s3 = s3_client(S3ClientSettings(endpoint_url=moto_s3.url, region="us-east-1"))
    for planted in ("../../../../evil.txt", "ok/../../evil.txt", "/evil.txt", "a//evil.txt"):
        s3.put_object(Bucket=location.bucket, Key=prefix + planted, Body=b"evil")
    destination = tmp_path / "deep" / "download"
    destination.mkdir(parents=True)
    with pytest.raises(MlflowException) as raised:
        client.download_artifacts(run_id, "", str(destination))
    assert not raised_in_plugin(raised.value) or raised.value.error_code != "INTERNAL_ERROR"
    everything = folder_snapshot(tmp_path, tmp_path / "none")
    assert all(not name.endswith("evil.txt") for name in everything), everything


def test_symlink_planted_in_a_folder_store_is_not_followed(tmp_path: Path) -> None:
    """A link inside the root (someone with write access to a shared folder) pointing outside
    it: uploads through it are refused, reads through it too, listings do not show it."""
    root = tmp_path / "root"
    client = MlflowClient(tracking_uri=f"bucket+file://{root}")
    run_id = client.create_run("0").info.run_id
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    artifacts = root / _artifact_prefix(client, run_id)
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "link").symlink_to(outside, target_is_directory=True)
    (artifacts / "file-link").symlink_to(outside / "secret.txt")
    source = tmp_path / "file.txt"
    source.write_text("payload")
    before = folder_snapshot(outside, tmp_path / "none")

    for attempt in (
        lambda: client.log_artifact(run_id, str(source), artifact_path="link"),
        lambda: client.list_artifacts(run_id, "link"),
        lambda: client.download_artifacts(run_id, "link/secret.txt", str(tmp_path)),
        lambda: client.download_artifacts(run_id, "file-link", str(tmp_path)),
    ):
        with pytest.raises(MlflowException) as raised:
            attempt()
        assert raised.value.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert folder_snapshot(outside, tmp_path / "none") == before
    assert [info.path for info in client.list_artifacts(run_id)] == []
    assert not (tmp_path / "secret.txt").exists() and not (tmp_path / "file-link").exists()

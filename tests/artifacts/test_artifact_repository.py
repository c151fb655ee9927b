"""The artifact repository driven through MLflow's public API, on every backend.

Runs are tracked in MLflow's own ``sqlite:///`` store; only their artifacts live on
the bucket (the experiment's artifact location is a ``bucket+`` URI), so these
tests exercise exactly the path MLflow's client takes to our repository.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from mlflow_plugin.artifacts import BucketArtifactRepository
from tests.servers import S3Endpoint

LARGE_FILE_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def tracking_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"


@pytest.fixture(params=["file", "moto", "seaweedfs"])
def artifact_root(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh artifact location on each backend.

    moto's endpoint travels in the URI's query; SeaweedFS's comes from
    MLFLOW_S3_ENDPOINT_URL, so both ways of naming an endpoint are exercised.
    """
    if request.param == "file":
        return f"bucket+file://{tmp_path / 'bucket'}"
    endpoint: S3Endpoint = request.getfixturevalue(f"{request.param}_s3")
    prefix = f"artifact-tests/{uuid.uuid4().hex}"
    if request.param == "moto":
        return f"bucket+s3://{endpoint.shared_bucket}/{prefix}?endpoint_url={endpoint.url}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint.url)
    return f"bucket+s3://{endpoint.shared_bucket}/{prefix}"


@pytest.fixture
def run(tracking_db: str, artifact_root: str) -> Iterator[mlflow.ActiveRun]:
    mlflow.set_tracking_uri(tracking_db)
    experiment_id = mlflow.create_experiment(
        f"artifacts-{uuid.uuid4().hex}", artifact_location=artifact_root
    )
    with mlflow.start_run(experiment_id=experiment_id) as active:
        yield active


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _repo(run: mlflow.ActiveRun) -> BucketArtifactRepository:
    repo = get_artifact_repository(run.info.artifact_uri)
    assert isinstance(repo, BucketArtifactRepository)
    return repo


def test_log_artifact_lists_with_size_and_downloads(run: mlflow.ActiveRun, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello bucket")
    mlflow.log_artifact(str(source))
    mlflow.log_artifact(str(source), artifact_path="docs/v1")

    client = MlflowClient()
    root = client.list_artifacts(run.info.run_id)
    assert [(f.path, f.is_dir, f.file_size) for f in root] == [
        ("docs", True, None),
        ("notes.txt", False, 12),
    ]
    assert [(f.path, f.file_size) for f in client.list_artifacts(run.info.run_id, "docs/v1")] == [
        ("docs/v1/notes.txt", 12)
    ]
    assert client.list_artifacts(run.info.run_id, "notes.txt") == []  # a file has no children

    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="docs/v1/notes.txt"
    )
    assert Path(local).read_text() == "hello bucket"


def test_log_artifacts_keeps_nested_tree_and_empty_files(
    run: mlflow.ActiveRun, tmp_path: Path
) -> None:
    source = tmp_path / "outputs"
    (source / "a" / "b" / "c").mkdir(parents=True)
    (source / "top.json").write_text('{"k": 1}')
    (source / "a" / "empty.bin").write_bytes(b"")
    (source / "a" / "b" / "c" / "deep.txt").write_text("deep")
    (source / "a" / "b" / "ünïcødé name.txt").write_text("unicode")
    mlflow.log_artifacts(str(source), artifact_path="run-output")

    client = MlflowClient()
    listing = client.list_artifacts(run.info.run_id, "run-output/a")
    assert [(f.path, f.is_dir, f.file_size) for f in listing] == [
        ("run-output/a/b", True, None),
        ("run-output/a/empty.bin", False, 0),
    ]
    target = tmp_path / "download"
    target.mkdir()
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="run-output", dst_path=str(target)
    )
    assert _tree(Path(local)) == _tree(source)

    everything = tmp_path / "everything"
    everything.mkdir()
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(everything))
    assert _tree(everything / "run-output") == _tree(source)


def test_log_dict_text_and_image(run: mlflow.ActiveRun) -> None:
    mlflow.log_dict({"lr": 0.1, "layers": [1, 2]}, "config/config.json")
    mlflow.log_text("line one\n", "logs/out.txt")
    image = (np.arange(12 * 16 * 3) % 255).astype(np.uint8).reshape(12, 16, 3)
    mlflow.log_image(image, "images/sample.png")
    mlflow.log_image(image, key="histogram", step=3)

    run_id = run.info.run_id
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/config.json") == {
        "lr": 0.1,
        "layers": [1, 2],
    }
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/logs/out.txt") == "line one\n"
    loaded = np.asarray(mlflow.artifacts.load_image(f"runs:/{run_id}/images/sample.png"))
    assert np.array_equal(loaded, image)
    stepped = [f.path for f in MlflowClient().list_artifacts(run_id, "images")]
    assert any(path.startswith("images/histogram+step+3+") for path in stepped), stepped


def test_large_file_round_trips(run: mlflow.ActiveRun, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(LARGE_FILE_BYTES))
    mlflow.log_artifact(str(source), artifact_path="checkpoints")

    (entry,) = MlflowClient().list_artifacts(run.info.run_id, "checkpoints")
    assert entry.file_size == LARGE_FILE_BYTES
    (tmp_path / "dl").mkdir()
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="checkpoints/weights.bin",
        dst_path=str(tmp_path / "dl"),
    )
    assert (
        hashlib.sha256(Path(local).read_bytes()).digest()
        == hashlib.sha256(source.read_bytes()).digest()
    )
    store = _repo(run).object_store
    if store.location.startswith("s3://"):
        assert "-" in store.head("checkpoints/weights.bin").etag  # uploaded in parts


def test_delete_artifacts_removes_file_or_folder(run: mlflow.ActiveRun, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    for folder in ("keep", "drop", "drop/inner"):
        mlflow.log_artifact(str(source), artifact_path=folder)
    mlflow.log_artifact(str(source))
    repo = _repo(run)
    repo.delete_artifacts("drop")
    repo.delete_artifacts("f.txt")
    # SeaweedFS keeps an emptied folder as a listed prefix, so compare the files themselves.
    assert [info.key for info in repo.object_store.list("")] == ["keep/f.txt"]
    assert "keep" in [f.path for f in repo.list_artifacts()]
    repo.delete_artifacts()
    assert list(repo.object_store.list("")) == []


ESCAPING_PATHS = ["../evil", "../../etc", "/absolute", "a/../../evil", "nul\x00dir", "back\\slash"]


@pytest.mark.parametrize("artifact_path", ESCAPING_PATHS)
def test_escaping_artifact_paths_are_refused_and_write_nothing(
    run: mlflow.ActiveRun, artifact_root: str, tmp_path: Path, artifact_path: str
) -> None:
    source = tmp_path / "payload.txt"
    source.write_text("should never be stored")
    outside_before = _tree(tmp_path)
    with pytest.raises(MlflowException) as raised:
        mlflow.log_artifact(str(source), artifact_path=artifact_path)
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException):
        mlflow.log_text("should never be stored", f"{artifact_path}/evil.txt")
    with pytest.raises(MlflowException):
        mlflow.log_artifacts(str(tmp_path), artifact_path=artifact_path)
    with pytest.raises(MlflowException):
        MlflowClient().list_artifacts(run.info.run_id, artifact_path)
    assert MlflowClient().list_artifacts(run.info.run_id) == []
    assert _tree(tmp_path) == outside_before  # nothing was written anywhere on disk


def test_a_bad_name_inside_log_artifacts_uploads_nothing(
    run: mlflow.ActiveRun, tmp_path: Path
) -> None:
    source = tmp_path / "mixed"
    source.mkdir()
    (source / "fine.txt").write_text("ok")
    (source / "bad\nname.txt").write_text("control character")
    with pytest.raises(MlflowException):
        mlflow.log_artifacts(str(source))
    assert MlflowClient().list_artifacts(run.info.run_id) == []


def test_missing_artifact_is_resource_does_not_exist(run: mlflow.ActiveRun, tmp_path: Path) -> None:
    with pytest.raises(MlflowException) as raised:
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="missing.txt", dst_path=str(tmp_path)
        )
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_one_repository_serves_many_threads(run: mlflow.ActiveRun, tmp_path: Path) -> None:
    repo = _repo(run)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            path = tmp_path / f"file-{i}.txt"
            path.write_text("x" * (i + 1))
            repo.log_artifact(str(path), artifact_path=f"thread-{i % 4}")
            repo.list_artifacts(f"thread-{i % 4}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sizes = {f.path: f.file_size for d in range(4) for f in repo.list_artifacts(f"thread-{d}")}
    assert sizes == {f"thread-{i % 4}/file-{i}.txt": i + 1 for i in range(24)}


@pytest.mark.parametrize(
    "uri",
    [
        "bucket+s3://bucket/p?aws_secret_access_key=hunter2",
        "bucket+s3://AKIA:hunter2@bucket/p",
        "bucket+s3://bucket/p?endpoint=typo",
        "bucket+s3://b/p",
        "bucket+s3://bucket/a/../b",
        "bucket+file://otherhost/path",
    ],
)
def test_bad_artifact_uris_are_refused_clearly(uri: str) -> None:
    with pytest.raises(MlflowException) as raised:
        get_artifact_repository(uri)
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "hunter2" not in str(raised.value)

"""``doctor``: a store that works passes; one that ignores conditional writes fails with 1,
and so does a mistyped folder or bucket, which doctor must not create."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import mlflow_plugin.objectstore as objectstore
from mlflow_plugin.cli import main
from mlflow_plugin.objectstore import ObjectStore, StoreLocation
from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client
from tests.cli.conftest import Cli
from tests.servers import S3Endpoint


def test_doctor_passes_on_moto(cli: Cli, moto_uri: str, moto_s3: S3Endpoint) -> None:
    result = cli("doctor", moto_uri)
    assert result.returncode == 0, result.stderr
    assert f"endpoint:  {moto_s3.url}" in result.stdout
    assert "reachable: yes" in result.stdout
    assert "conditional writes (If-None-Match, If-Match): honoured" in result.stdout


def test_doctor_passes_on_a_folder_and_quiet_prints_nothing(
    cli: Cli, file_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()  # an empty folder: a store the first client initialises
    result = cli("doctor", "--quiet", file_uri)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def _strip_conditions(request: Any, **_: Any) -> None:
    # What an old S3-compatible server does: accept the request, ignore the condition.
    for header in ("If-None-Match", "If-Match"):
        if header in request.headers:
            del request.headers[header]


def test_doctor_reports_an_endpoint_that_ignores_conditional_writes(
    moto_s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_open = objectstore.open_object_store
    opened: list[Any] = []

    def open_ignoring_conditions(location: StoreLocation | str) -> ObjectStore:
        store = real_open(location)
        store.client.meta.events.register("before-send.s3.PutObject", _strip_conditions)  # type: ignore[attr-defined]
        opened.append(store)
        return store

    monkeypatch.setattr(objectstore, "open_object_store", open_ignoring_conditions)
    # A region of its own: botocore clients are shared per settings, and the hook must
    # reach no other test's client.
    uri = f"bucket+s3://{moto_s3.shared_bucket}/doctor?endpoint_url={moto_s3.url}&region=eu-north-1"
    try:
        code = main(["doctor", uri])
    finally:
        for store in opened:
            store.client.meta.events.unregister("before-send.s3.PutObject", _strip_conditions)
    captured = capsys.readouterr()
    assert code == 1
    assert "reachable: yes" in captured.out
    assert "honoured" not in captured.out
    assert captured.err.startswith("error: conditional writes are not honoured:")
    assert "If-None-Match" in captured.err
    assert list(opened[0].list("")) == []  # the probe cleaned up after itself


def test_doctor_refuses_a_folder_that_does_not_exist_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["doctor", "bucket+file:./mlruns-buckt"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith(f"error: no folder at {tmp_path / 'mlruns-buckt'}:")
    assert list(tmp_path.iterdir()) == []


def test_doctor_refuses_a_bucket_that_does_not_exist_and_creates_nothing(
    moto_s3: S3Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"mistyped-{uuid.uuid4().hex[:12]}"
    code = main(["doctor", f"bucket+s3://{bucket}/team?endpoint_url={moto_s3.url}"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("error: store not reachable:")
    client = s3_client(S3ClientSettings(endpoint_url=moto_s3.url, region="us-east-1"))
    assert bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]

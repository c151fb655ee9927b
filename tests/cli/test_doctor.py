"""``doctor``: a store that works passes; one that ignores conditional writes fails with 1."""

from __future__ import annotations

from typing import Any

import pytest

import mlflow_plugin.objectstore as objectstore
from mlflow_plugin.cli import main
from mlflow_plugin.objectstore import ObjectStore, StoreLocation
from tests.cli.conftest import Cli
from tests.servers import S3Endpoint


def test_doctor_passes_on_moto(cli: Cli, moto_uri: str, moto_s3: S3Endpoint) -> None:
    result = cli("doctor", moto_uri)
    assert result.returncode == 0, result.stderr
    assert f"endpoint:  {moto_s3.url}" in result.stdout
    assert "reachable: yes" in result.stdout
    assert "conditional writes (If-None-Match, If-Match): honoured" in result.stdout


def test_doctor_passes_on_a_folder_and_quiet_prints_nothing(cli: Cli, file_uri: str) -> None:
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

"""The README's quickstart script logs a PyTorch run and a second process reads all of it back."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.processes import run_python
from tests.servers import S3Endpoint

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


@pytest.fixture(params=["bucket+file", "bucket+s3"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket+file":
        return f"bucket+file://{tmp_path}/store"
    moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
    prefix = f"quickstart/{uuid.uuid4().hex}"
    return f"bucket+s3://{moto_s3.shared_bucket}/{prefix}?endpoint_url={moto_s3.url}"


def test_quickstart_logs_a_run_and_a_second_process_reads_it_back(
    tracking_uri: str, tmp_path: Path
) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    result = run_python([str(QUICKSTART)], env=env, cwd=tmp_path)
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"
    assert result.returncode == 0, output

    lines = result.stdout.splitlines()
    assert any(line.startswith("logged run ") for line in lines), output
    assert "params: 4, tags: 2/2" in lines, output
    for key in ("loss", "grad_norm", "lr"):
        assert f"metric {key}: 1000 points, steps 0..999" in lines, output
    assert any(line.startswith("artifact notes/summary.txt: 'final loss") for line in lines), output
    assert any(
        line.startswith("model m-") and line.endswith("READY): forward -> (3, 1)") for line in lines
    ), output
    assert lines[-1] == "read back: OK", output

"""docker/: what can be checked without a Docker engine.

The compose file's structure and secrets, the image's install line, and then the real
thing: the ``create-bucket`` service's command and the Dockerfile's ``CMD``, run exactly
as written (outside Docker, with the compose environment) against a real SeaweedFS
server, must give a store the REST API answers on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.cli.conftest import REPO
from tests.servers import S3Endpoint, free_port, serving

DOCKER = REPO / "docker"
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", re.IGNORECASE)


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _dotenv(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def _dockerfile() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    instructions: list[str] = []
    pending = ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            instructions.append(" ".join(pending.split()))
            pending = ""
    return instructions


def _instruction(name: str) -> list[str]:
    return [i[len(name) + 1 :] for i in _dockerfile() if i.startswith(name + " ")]


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in _instruction("ENV"):
        env.update(pair.split("=", 1) for pair in shlex.split(instruction))
    return env


def _interpolate(value: str, shell: Mapping[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, from ``shell``."""

    def replace(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        if shell.get(name):
            return shell[name]
        assert kind != "?", f"compose requires {name}: {default}"
        return default or ""

    return _VARIABLE.sub(replace, value)


def test_compose_file_defines_the_stack() -> None:
    services = _compose()["services"]
    assert set(services) == {"seaweedfs", "create-bucket", "mlflow"}
    mlflow, create = services["mlflow"], services["create-bucket"]
    assert mlflow["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert create["image"] == mlflow["image"]
    assert mlflow["ports"] == ["${MLFLOW_PORT:-5000}:5000"]
    assert mlflow["depends_on"] == {
        "create-bucket": {"condition": "service_completed_successfully"}
    }
    assert create["depends_on"] == {"seaweedfs": {"condition": "service_started"}}
    assert create["restart"] == "no"
    for service in (mlflow, create):
        env = service["environment"]
        assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_BUCKET"} <= set(env)
    # The S3 gateway requires the same credentials the clients are given.
    assert (
        services["seaweedfs"]["environment"]["AWS_SECRET_ACCESS_KEY"]
        == (mlflow["environment"]["AWS_SECRET_ACCESS_KEY"])
    )
    assert "-s3" in services["seaweedfs"]["command"]


def test_secrets_come_only_from_the_environment_and_env_example_defines_them() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    example = _dotenv(DOCKER / ".env.example")
    for service in _compose()["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if _SECRET_NAME.search(name):
                assert _VARIABLE.fullmatch(str(value)), f"{name} must be a ${{...}} reference"
    referenced = {match.group(1) for match in _VARIABLE.finditer(text)}
    required = {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) == "?"}
    assert required == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert referenced - {"SEAWEEDFS_IMAGE"} <= set(example)
    assert "dev" in example["AWS_SECRET_ACCESS_KEY"]  # an obviously-development value


def test_the_image_installs_the_package_pinned_and_without_torch() -> None:
    assert _instruction("FROM") == ["python:3.11-slim"]
    installs = [i for i in _instruction("RUN") if "pip install" in i]
    assert len(installs) == 1
    assert "-c constraints.txt ." in installs[0]
    assert "[" not in installs[0] and "torch" not in installs[0]
    assert "COPY docker/create_bucket.py ./docker/create_bucket.py" in _dockerfile()
    assert _dockerfile().index("WORKDIR /app") < _dockerfile().index(
        "COPY docker/create_bucket.py ./docker/create_bucket.py"
    )


def _service_env(service: str, shell: Mapping[str, str], s3_url: str) -> dict[str, str]:
    """What the container sees: the image's ENV, then the service's resolved environment."""
    env = {**os.environ, **_image_env()}
    for name, value in _compose()["services"][service]["environment"].items():
        env[name] = _interpolate(str(value), shell).replace("http://seaweedfs:8333", s3_url)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def test_the_images_commands_serve_a_bucket_store_on_seaweedfs(
    seaweedfs_s3: S3Endpoint, tmp_path: Path
) -> None:
    # The shell compose would read docker/.env from: the test's credentials, a new bucket.
    shell = {
        **os.environ,
        "MLFLOW_BUCKET": f"docker-{uuid.uuid4().hex[:12]}",
        "MLFLOW_BUCKET_PREFIX": "tracking",
        "MLFLOW_WORKERS": "1",
    }
    services = _compose()["services"]

    create = services["create-bucket"]["command"]
    assert create == ["python", "/app/docker/create_bucket.py"]
    setup = subprocess.run(
        [sys.executable, str(REPO / "docker" / "create_bucket.py")],
        env=_service_env("create-bucket", shell, seaweedfs_s3.url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert f"created bucket {shell['MLFLOW_BUCKET']}" in setup.stdout
    assert "conditional writes (If-None-Match, If-Match): honoured" in setup.stdout

    (cmd,) = _instruction("CMD")
    command = json.loads(cmd)
    assert command[:2] == ["/bin/sh", "-c"]
    assert command[2].startswith('exec mlflow server --backend-store-uri "bucket+s3://')
    assert "--host 0.0.0.0" in command[2]
    env = _service_env("mlflow", shell, seaweedfs_s3.url)
    env["MLFLOW_PORT"] = str(free_port())  # the image's 5000 may be taken on this machine
    with serving(
        command,
        f"http://127.0.0.1:{env['MLFLOW_PORT']}",
        log_path=tmp_path / "server.log",
        env=env,
        cwd=tmp_path,
        name="the image's CMD",
    ) as server:
        url = server.url
        api = f"{url}/api/2.0/mlflow"
        found = requests.post(f"{api}/experiments/search", json={"max_results": 10}, timeout=30)
        assert found.status_code == 200, found.text
        assert [e["name"] for e in found.json()["experiments"]] == ["Default"]
        created = requests.post(f"{api}/experiments/create", json={"name": "docker"}, timeout=30)
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        run = requests.post(f"{api}/runs/create", json={"experiment_id": experiment_id}, timeout=30)
        assert run.status_code == 200, run.text
        run_id = run.json()["run"]["info"]["run_id"]
        # Artifacts go through the server (--artifacts-destination) into the same bucket.
        uploaded = requests.put(
            f"{url}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/hello.txt",
            data=b"hello",
            timeout=30,
        )
        assert uploaded.status_code == 200, uploaded.text

    from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client

    client = s3_client(S3ClientSettings(endpoint_url=seaweedfs_s3.url, region="us-east-1"))
    listed = client.list_objects_v2(Bucket=shell["MLFLOW_BUCKET"], Prefix="tracking/")
    stored = {entry["Key"] for entry in listed.get("Contents", [])}
    assert f"tracking/experiments/{experiment_id}/experiment.json" in stored
    assert f"tracking/experiments/{experiment_id}/runs/{run_id}.json" in stored
    assert f"tracking/artifacts/{experiment_id}/{run_id}/artifacts/hello.txt" in stored

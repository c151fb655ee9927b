"""Credentials never leave boto3: not into documents, artifacts, the spool, logs or messages.

A realistic session runs in fresh interpreters with distinctive fake credentials in the
environment (moto accepts any): an experiment, runs, params, metrics, tags, artifacts, a
logged model, failing calls whose messages are printed, a writer killed before it uploaded
(so its spool stays on disk), ``sync`` and ``doctor``. MLflow's and this package's loggers run
at DEBUG. Then every object in the bucket, every file of the spool and every captured line
of output is searched for the secrets, raw and URL-encoded: there must be no hit.

botocore's own DEBUG logging prints request headers (the access key id in
``Authorization``, the session token in ``X-Amz-Security-Token``); it stays at INFO here,
and SECURITY.md says that turning it to DEBUG is the user's call and risk.

Also here: a store URI that carries a secret is refused without echoing it, and TLS
certificates are verified by default, with ``AWS_CA_BUNDLE`` as the way to trust a
private CA.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus
from uuid import uuid4

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_plugin.objectstore import parse_store_uri
from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client
from tests.hostile.corpus import register
from tests.processes import run_python
from tests.servers import S3Endpoint

ACCESS_KEY_ID = "AKIAHOSTILE7EXAMPLEQ"
SECRET_ACCESS_KEY = "hostile/Secret+Key/wJalrXUtnFEMI7K7MDENGbPxRfiCYzEXAMPLE"
SESSION_TOKEN = "HostileSessionToken//FwoGZXIvYXdzEXAMPLEtoken+with/slashes=="
SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)

for _name in ("session_objects_spool_and_output", "secret_in_uri", "tls_verified_by_default"):
    register(f"credentials_{_name}", "credentials")

SESSION = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
for name in ("botocore", "boto3", "urllib3", "s3transfer"):
    logging.getLogger(name).setLevel(logging.INFO)  # their DEBUG prints headers: the user's call

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

uri = sys.argv[1]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
mlflow.set_experiment("credentials")
with mlflow.start_run(run_name="session") as run:
    mlflow.log_params({"lr": "0.01", "optimizer": "adam"})
    for step in range(50):
        mlflow.log_metrics({"loss": 1 / (step + 1), "acc": step / 50}, step=step)
    mlflow.set_tag("team", "vision")
    mlflow.log_text("notes", "notes.txt")
    mlflow.log_dict({"layers": [4, 2]}, "config.json")

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
    try:
        mlflow.log_param("lr", "0.5")  # changing a param is refused: an error message
    except MlflowException as exc:
        print("refused:", exc.message)
client = MlflowClient()
secret_uri = uri + "&aws_secret_access_key=" + os.environ["AWS_SECRET_ACCESS_KEY"]
for call in (
    lambda: client.get_run("0" * 32),
    lambda: client.get_experiment("../1"),
    lambda: client.search_runs(["1"], filter_string="metrics.x >"),
    lambda: MlflowClient(tracking_uri=secret_uri).search_experiments(),
):
    try:
        call()
    except MlflowException as exc:
        print("error:", exc.error_code, exc.message)
print("run", run.info.run_id, client.get_run(run.info.run_id).data.metrics)

# A writer killed before it uploaded: its spool stays on disk for `sync`.
with mlflow.start_run(run_name="killed") as killed:
    mlflow.log_metrics({"loss": 0.5}, step=1)
    mlflow.set_tag("state", "spooled")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
"""


@pytest.fixture
def secret_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))
    }
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN=SESSION_TOKEN,
        AWS_DEFAULT_REGION="us-east-1",
        MLFLOW_BUCKET_SPOOL_DIR=str(tmp_path / "spool"),
        MLFLOW_BUCKET_FLUSH_INTERVAL="3600",  # nothing uploads before the kill but what must
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    return env


def hits(text: str, where: str) -> list[str]:
    found = []
    for secret in SECRETS:
        for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
            if spelling in text:
                found.append(f"{where}: {secret[:8]}...")
    return found


def test_a_session_leaves_no_credential_anywhere(
    moto_s3: S3Endpoint, tmp_path: Path, secret_env: dict[str, str]
) -> None:
    bucket = moto_s3.create_bucket("credentials")
    uri = f"bucket+s3://{bucket}/team?endpoint_url={moto_s3.url}"
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    outputs = {"session": run_python([str(script), uri], env=secret_env, cwd=tmp_path)}
    assert outputs["session"].returncode == 0, outputs["session"].stderr[-3000:]
    assert "refused:" in outputs["session"].stdout and "error:" in outputs["session"].stdout
    assert "looks like a credential" in outputs["session"].stdout  # the secret URI was refused
    spool_files = [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" and p.stat().st_size for p in spool_files), spool_files
    spooled = {str(p): p.read_bytes().decode("utf-8", "replace") for p in spool_files}
    for command in (["sync", uri], ["doctor", uri]):
        outputs[command[0]] = run_python(
            ["-m", "mlflow_plugin", *command], env=secret_env, cwd=tmp_path
        )
        assert outputs[command[0]].returncode == 0, outputs[command[0]].stderr[-3000:]

    client = s3_client(S3ClientSettings(endpoint_url=moto_s3.url, region="us-east-1"))
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            data = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = data.decode("utf-8", "replace")
    assert any(key.endswith("MLmodel") for key in objects), sorted(objects)  # the model is there
    assert any("/metrics/" in key for key in objects)  # and the spooled metrics after sync

    found: list[str] = []
    for name, result in outputs.items():
        found += hits(result.stdout, f"{name} stdout") + hits(result.stderr, f"{name} stderr")
    for key, text in objects.items():
        found += hits(key, f"object key {key}") + hits(text, f"object {key}")
    for path, text in spooled.items():
        found += hits(text, f"spool file {path}")
    assert "DEBUG" in outputs["session"].stderr  # the loggers did run at DEBUG
    assert found == []


@pytest.mark.parametrize(
    "uri",
    [
        f"bucket+s3://bucket/p?aws_secret_access_key={quote_plus(SECRET_ACCESS_KEY)}",
        f"bucket+s3://bucket/p?aws_session_token={quote_plus(SESSION_TOKEN)}",
        f"bucket+s3://bucket/p?password={quote_plus(SECRET_ACCESS_KEY)}",
        f"bucket+s3://{ACCESS_KEY_ID}:{quote(SECRET_ACCESS_KEY, safe='')}@bucket/p",
        f"bucket+file:///tmp/x?token={quote_plus(SESSION_TOKEN)}",
    ],
)
def test_a_uri_carrying_a_secret_is_refused_without_echoing_it(
    uri: str, tmp_path: Path, secret_env: dict[str, str]
) -> None:
    with pytest.raises(MlflowException) as raised:
        MlflowClient(tracking_uri=uri).search_experiments()
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert hits(str(raised.value), "message") == []
    doctor = run_python(["-m", "mlflow_plugin", "doctor", uri], env=secret_env, cwd=tmp_path)
    assert doctor.returncode == 2
    assert hits(doctor.stdout + doctor.stderr, "doctor") == []


# -- TLS --------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (a private CA of one), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlflow-bucket test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _NotFound(http.server.BaseHTTPRequestHandler):
    """Answers every request 404 with an empty body: enough for a TLS handshake to matter."""

    def _answer(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def https_endpoint(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert_path, key_path = _self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_path
    finally:
        server.shutdown()
        server.server_close()


def test_tls_certificates_are_verified_and_aws_ca_bundle_trusts_a_private_ca(
    https_endpoint: tuple[str, Path], tmp_path: Path, secret_env: dict[str, str]
) -> None:
    url, ca = https_endpoint
    uri = f"bucket+s3://bucket-{uuid4().hex[:8]}/p?endpoint_url={url}"
    assert parse_store_uri(uri).endpoint_url() == url
    untrusted = run_python(["-m", "mlflow_plugin", "doctor", uri], env=secret_env, cwd=tmp_path)
    assert untrusted.returncode == 1
    assert "reachable: yes" not in untrusted.stdout
    assert "certificate" in (untrusted.stdout + untrusted.stderr).lower()
    trusted = run_python(
        ["-m", "mlflow_plugin", "doctor", uri],
        env={**secret_env, "AWS_CA_BUNDLE": str(ca)},
        cwd=tmp_path,
    )
    answered = (trusted.stdout + trusted.stderr).lower()
    # The handshake passed: whatever the fake endpoint then said, it was not about TLS.
    assert "certificate" not in answered and "ssl" not in answered, answered
    assert "reachable: yes" in answered or "_format.json" in answered, answered

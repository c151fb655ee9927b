"""``sync``: what a writer that died with buffered metrics left in its spool is uploaded, once."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from mlflow import MlflowClient

from tests.cli.conftest import Cli, cli_env
from tests.processes import run_forked_python
from tests.servers import S3Endpoint

DYING_WRITER = textwrap.dedent(
    """
    import os, sys
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri, run_id = sys.argv[1:3]
    client = MlflowClient(uri)
    points = [Metric("loss", 1.0 / (s + 1), 1000 + s, s) for s in range(50)]
    client.log_batch(run_id, metrics=points)
    os._exit(0)  # dies with everything buffered: no flush, no exit hooks
    """
)


def test_sync_uploads_a_dead_writers_spool_once(
    cli: Cli, moto_s3: S3Endpoint, tmp_path: Path
) -> None:
    root = f"bucket+s3://{moto_s3.shared_bucket}/sync/{uuid.uuid4().hex}"
    query = f"?endpoint_url={moto_s3.url}&spool_dir={tmp_path / 'spool'}&flush_interval=3600"
    uri = root + query
    # The reader has no spool, so it cannot replay the dead writer's on its own.
    reader = MlflowClient(f"{root}?endpoint_url={moto_s3.url}&spool=false")
    run_id = reader.create_run(reader.create_experiment("sync")).info.run_id

    writer = run_forked_python(DYING_WRITER, uri, run_id, env=cli_env(), timeout=120)
    assert writer.returncode == 0, writer.stderr
    assert reader.get_metric_history(run_id, "loss") == []

    result = cli("sync", uri)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "replayed 0 sealed batches and 1 buffered log calls\n"
    history = reader.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (s, 1000 + s, 1.0 / (s + 1)) for s in range(50)
    ]

    again = cli("sync", uri)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "replayed 0 sealed batches and 0 buffered log calls\n"
    assert len(reader.get_metric_history(run_id, "loss")) == 50

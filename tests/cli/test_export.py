"""``export``: a run's full metric history to Parquet and CSV, read back and compared."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from tests.cli.conftest import Cli

# Keys with a slash, a NaN, negative and repeated steps: what real histories hold.
POINTS = [
    *(Metric("Loss/train", 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(300)),
    *(Metric("accuracy", s / 10, 1_700_000_100_000 + s, s * 10) for s in range(10)),
    Metric("accuracy", float("nan"), 1_700_000_200_000, 100),
    Metric("lr", 0.1, 1_700_000_000_000, -1),
    Metric("lr", 0.05, 1_700_000_000_500, -1),
]


def _log(uri: str) -> tuple[str, str]:
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("export")).info.run_id
    client.log_batch(run_id, metrics=POINTS)
    client.set_terminated(run_id)  # flushes: the CLI is another process
    return uri, run_id


@pytest.fixture(params=["file", "moto"])
def logged(request: pytest.FixtureRequest) -> tuple[str, str]:
    return _log(request.getfixturevalue(f"{request.param}_uri"))


@pytest.fixture
def logged_in_folder(file_uri: str) -> tuple[str, str]:
    return _log(file_uri)


def _expected(uri: str, run_id: str, keys: list[str]) -> list[tuple[str, int, int, float]]:
    client = MlflowClient(uri)
    return [
        (m.key, m.step, m.timestamp, m.value)
        for key in keys
        for m in client.get_metric_history(run_id, key)
    ]


def _same(
    rows: list[tuple[str, int, int, float]], expected: list[tuple[str, int, int, float]]
) -> bool:
    def normal(row: tuple[str, int, int, float]) -> tuple[object, ...]:
        return (*row[:3], "nan" if math.isnan(row[3]) else row[3])

    return [normal(r) for r in rows] == [normal(r) for r in expected]


def test_export_to_parquet_holds_every_point(
    cli: Cli, logged: tuple[str, str], tmp_path: Path
) -> None:
    uri, run_id = logged
    output = tmp_path / "metrics.parquet"
    result = cli("export", uri, run_id, "--format", "parquet", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {len(POINTS)} rows to {output} (parquet)\n"
    table = pq.read_table(output)
    assert table.column_names == ["key", "step", "timestamp", "value"]
    assert [str(t) for t in table.schema.types] == ["string", "int64", "int64", "double"]
    columns = table.to_pydict()
    rows = list(
        zip(columns["key"], columns["step"], columns["timestamp"], columns["value"], strict=True)
    )
    assert _same(rows, _expected(uri, run_id, ["Loss/train", "accuracy", "lr"]))


def test_export_to_csv_with_chosen_metrics(
    cli: Cli, logged_in_folder: tuple[str, str], tmp_path: Path
) -> None:
    uri, run_id = logged_in_folder
    output = tmp_path / "metrics.csv"
    result = cli(
        "export", uri, run_id, "--format", "csv", "-o", str(output), "--metric", "lr",
        "--metric", "accuracy", "--quiet",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    with output.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["key", "step", "timestamp", "value"]
        rows = [(r["key"], int(r["step"]), int(r["timestamp"]), float(r["value"])) for r in reader]
    assert _same(rows, _expected(uri, run_id, ["lr", "accuracy"]))
    assert len(rows) == 13


def test_export_of_a_metric_the_run_never_logged_fails(
    cli_process: Cli, logged_in_folder: tuple[str, str], tmp_path: Path
) -> None:
    uri, run_id = logged_in_folder
    output = tmp_path / "x.csv"
    result = cli_process(
        "export", uri, run_id, "--format", "csv", "-o", str(output), "--metric", "loss"
    )
    assert result.returncode == 1
    assert result.stderr == f"error: run {run_id} has no metric 'loss'\n"
    assert not output.exists()

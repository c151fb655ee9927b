"""The command line's contract: every command has --help, bad usage exits 2, bad URIs are
refused with a clear message, failures exit 1."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_plugin.cli import COMMANDS, build_parser, main
from tests.cli.conftest import Cli, cli_env
from tests.servers import S3Endpoint


def _registered() -> list[str]:
    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    return list(subparsers.choices)  # type: ignore[attr-defined]


COMMAND_NAMES = _registered()
URI = "bucket+file:///tmp/does-not-matter"


def test_every_command_is_registered_from_its_module() -> None:
    assert {"doctor", "sync", "gc", "import-tensorboard", "export"} <= set(COMMAND_NAMES)
    assert len(COMMAND_NAMES) == len(COMMANDS)
    assert all(callable(m.add_parser) and callable(m.run) for m in COMMANDS)


@pytest.mark.parametrize("command", [[], *([name] for name in COMMAND_NAMES)])
def test_help_exits_0_and_documents_the_exit_codes(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: mlflow-bucket")
    assert "exit codes:" in result.stdout
    assert "2  usage error" in result.stdout


def test_the_console_script_runs_the_same_main() -> None:
    script = Path(sys.executable).parent / "mlflow-bucket"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=cli_env(), check=False
    )
    assert result.returncode == 0, result.stderr
    assert "import-tensorboard" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["gc"],
        ["gc", URI, "--older-than", "soon"],
        ["gc", URI, "--grace-hours", "-1"],
        ["doctor", URI, "--bogus"],
        ["export", URI, "0123"],
        ["export", URI, "0123", "--format", "xlsx", "--output", "out.xlsx"],
        ["import-tensorboard", "runs"],
    ],
)
def test_bad_arguments_exit_2_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "usage: mlflow-bucket" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://bucket/prefix", "must start with bucket+s3:// or bucket+file:"),
        ("bucket+s3://b", "no valid bucket name"),
        ("bucket+s3://bucket/p?aws_secret_access_key=hunter2", "looks like a credential"),
        ("bucket+s3://bucket/p?flush_intervall=3", "unknown store URI option"),
    ],
)
def test_a_malformed_uri_exits_2_with_the_reason(cli_process: Cli, uri: str, reason: str) -> None:
    result = cli_process("doctor", uri)
    assert result.returncode == 2
    assert reason in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_bucket_exits_1_with_a_clear_message(
    cli_process: Cli, moto_s3: S3Endpoint
) -> None:
    result = cli_process("doctor", f"bucket+s3://no-such-bucket-here/p?endpoint_url={moto_s3.url}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: store not reachable:")
    assert "no-such-bucket-here" in result.stderr
    assert "Traceback" not in result.stderr


def test_gc_refuses_a_location_that_holds_no_store(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "not-a-store" / "experiments").mkdir(parents=True)
    result = cli("gc", f"bucket+file://{tmp_path / 'not-a-store'}")
    assert result.returncode == 1
    assert "holds no mlflow-bucket store (_format.json is missing)" in result.stderr


def test_an_unknown_run_exits_1(cli_process: Cli, file_uri: str, tmp_path: Path) -> None:
    result = cli_process("export", file_uri, "0" * 32, "--format", "csv", "--output", "x.csv")
    assert result.returncode == 1
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr


def _stderr_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (exit code, what it drew)."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "mlflow_plugin", *args],
            env=cli_env(),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            timeout=120,
            check=False,
        )
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal side is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    return process.returncode, drawn.decode()


def test_progress_is_drawn_on_a_terminal_only_and_not_when_quiet(
    cli: Cli, file_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    MlflowClient(file_uri).create_experiment("progress")
    code, drawn = _stderr_on_a_terminal(["gc", "--dry-run", file_uri], tmp_path)
    assert code == 0
    assert "scanning experiments [" in drawn and "] 2/2" in drawn
    assert _stderr_on_a_terminal(["gc", "--dry-run", "--quiet", file_uri], tmp_path) == (0, "")
    piped = cli("gc", "--dry-run", file_uri)  # stderr is a pipe here
    assert (piped.returncode, piped.stderr) == (0, "")

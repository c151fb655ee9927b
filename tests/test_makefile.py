"""The Makefile refuses a Python older than constraints.txt needs, in one line, before a venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A Python that reports 3.10.12: the Makefile only asks $(PYTHON) -c for its version.
FAKE_PYTHON_310 = f"""#!{sys.executable}
import sys
sys.version_info = (3, 10, 12, "final", 0)
exec(sys.argv[2])
"""


def _make(python: str, venv: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(REPO), *flags, "install", f"PYTHON={python}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_3_10_is_refused_in_one_line_before_the_venv_is_made(tmp_path: Path) -> None:
    fake = tmp_path / "python3.10"
    fake.write_text(FAKE_PYTHON_310)
    fake.chmod(0o755)
    result = _make(str(fake), tmp_path / "venv")
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert "Python 3.11 or newer is required, found 3.10.12" in line
    assert not (tmp_path / "venv").exists()


def test_a_missing_python_is_refused_in_one_line(tmp_path: Path) -> None:
    result = _make(str(tmp_path / "no-python"), tmp_path / "venv")
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert "Python 3.11 or newer is required, found no working" in line
    assert not (tmp_path / "venv").exists()


def test_this_python_passes_the_check(tmp_path: Path) -> None:
    assert sys.version_info >= (3, 11)
    result = _make(sys.executable, tmp_path / "venv", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"{sys.executable} -m venv {tmp_path / 'venv'}" in result.stdout

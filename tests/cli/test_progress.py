"""The progress line: click's bar on stderr, at most ten redraws a second, the last step always."""

from __future__ import annotations

import io
import itertools

import pytest

from mlflow_plugin.cli import common
from mlflow_plugin.cli.common import Output, Progress


class Terminal(io.StringIO):
    """A terminal whose drawing can be read back."""

    def isatty(self) -> bool:
        return True


def _clock(monkeypatch: pytest.MonkeyPatch, step_s: float) -> None:
    """``time.monotonic`` as the bar reads it: ``step_s`` seconds pass between two reads."""
    ticks = itertools.count()
    monkeypatch.setattr(common.time, "monotonic", lambda: 1000.0 + step_s * next(ticks))


def _draw(label: str, total: int, *, enabled: bool = True) -> str:
    terminal = Terminal()
    with Progress(enabled, terminal) as progress:
        for done in range(1, total + 1):
            progress(label, done, total)
    return terminal.getvalue()


def test_a_burst_of_updates_draws_the_first_and_the_last_step_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock(monkeypatch, step_s=0.0)
    drawn = _draw("scanning experiments", 500)
    assert drawn.count("scanning experiments [") == 2
    assert "] 1/500" in drawn and "] 500/500" in drawn


def test_updates_over_one_second_are_drawn_about_ten_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock(monkeypatch, step_s=0.001)  # 1,000 updates in one second
    assert 2 <= _draw("importing", 1000).count("importing [") <= 12


def test_a_new_label_starts_a_new_bar() -> None:
    terminal = Terminal()
    with Progress(True, terminal) as progress:
        progress("reading metrics", 1, 1)
        progress("writing", 1, 2)
        progress("writing", 2, 2)
    drawn = terminal.getvalue()
    assert "reading metrics [" in drawn and "] 1/1" in drawn
    assert "writing [" in drawn and "] 2/2" in drawn


def test_nothing_is_drawn_when_disabled() -> None:
    assert _draw("importing", 3, enabled=False) == ""


def test_quiet_output_or_a_stderr_that_is_no_terminal_disables_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not Output(quiet=True).progress().enabled
    assert not Output().progress().enabled  # captured stderr is no terminal

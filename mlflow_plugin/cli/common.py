"""What every command shares: exit codes, the parser, the URI argument, output and progress.

A command is a ``Command``: its name, help, description, own arguments and body.
The body gets the parsed arguments and an ``Output``; it reports failure by raising
``CommandFailed`` (exit 1) or ``UsageError`` (exit 2), and ``main`` prints the
message. Informational output goes to stdout and is silenced by ``--quiet``; errors
always go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Argument",
    "Command",
    "CommandFailed",
    "Output",
    "Progress",
    "UsageError",
    "argument",
    "human_bytes",
    "non_negative",
    "store_uri",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  problems found, or the operation failed
  2  usage error: bad arguments or a malformed store URI"""


class CommandFailed(Exception):
    """The operation failed or found problems: printed as ``error: ...``, exit 1."""


class UsageError(Exception):
    """The arguments make no sense together: printed as ``error: ...``, exit 2."""


def store_uri(value: str) -> str:
    """argparse ``type=`` for a store URI: a malformed one is a usage error (exit 2)."""
    from mlflow_plugin.objectstore import InvalidStoreUri
    from mlflow_plugin.store_uri import parse_store_uri

    try:
        parse_store_uri(value)
    except InvalidStoreUri as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def non_negative(value: str) -> float:
    """argparse ``type=`` for a number of days or hours: a negative one is a usage error."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return number


@dataclass(frozen=True)
class Argument:
    """One argument of a command: the words of ``parser.add_argument``, kept until then."""

    names: tuple[str, ...]
    options: dict[str, Any]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(*self.names, **self.options)


def argument(*names: str, **options: Any) -> Argument:
    """``argument("--keep", action="store_true", help="...")``, as ``add_argument`` takes it."""
    return Argument(names, options)


@dataclass(frozen=True)
class Command:
    """One sub-command: what it is called and says, the arguments of its own, its body.

    Every command takes the store URI (after the ``before_uri`` arguments, before the
    others) and ``-q/--quiet``, and shows the exit codes in its help::

        COMMAND = Command(
            "hello",
            help="say hello",
            description="Say hello to a store.",
            body=lambda args, out: out.info(f"hello {args.uri}") or EXIT_OK,
        )
    """

    name: str
    help: str
    #: Paragraphs separated by a blank line; each is wrapped to the terminal's 79 columns.
    description: str
    #: Does the work with the parsed arguments; returns the exit code.
    body: Callable[[argparse.Namespace, Output], int]
    arguments: tuple[Argument, ...] = ()
    before_uri: tuple[Argument, ...] = ()

    def add_parser(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Register the command's parser, with ``run`` as what ``main`` calls."""
        parser = subparsers.add_parser(
            self.name,
            help=self.help,
            # Raw formatting keeps the exit-code table; paragraphs are wrapped here instead.
            description="\n\n".join(textwrap.fill(p, 79) for p in self.description.split("\n\n")),
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument(
            "-q", "--quiet", action="store_true", help="print nothing but errors; no progress bar"
        )
        uri = argument(
            "uri", metavar="URI", type=store_uri, help="store URI, e.g. bucket+s3://my-bucket/team"
        )
        for each in (*self.before_uri, uri, *self.arguments):
            each.add_to(parser)
        parser.set_defaults(run=self.run)

    def run(self, args: argparse.Namespace) -> int:
        """Run the body with an ``Output`` that honours ``--quiet``."""
        return self.body(args, Output(args.quiet))


class Output:
    """stdout for results (silent with ``--quiet``), stderr for errors and progress."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)

    def error(self, text: str) -> None:
        """A line on stderr, printed even with ``--quiet``."""
        print(text, file=sys.stderr, flush=True)

    def progress(self) -> Progress:
        return Progress(enabled=not self.quiet and sys.stderr.isatty())


class Progress:
    """``progress(label, done, total)`` drawn as click's progress bar on stderr.

    Drawn only when enabled (stderr is a terminal and ``--quiet`` was not given), so
    logs and pipes stay clean; redrawn at most ten times a second (click redraws on
    every update), the last step always. A new label or total starts a new bar.
    """

    _INTERVAL_S = 0.1

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream
        self._bar: ProgressBar[int] | None = None
        self._label = ""
        self._last = 0.0

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        bar = self._bar
        if bar is None or label != self._label or total != bar.length:
            self.close()
            bar = self._bar = self._new_bar(label, total)
        elif done < total and now - self._last < self._INTERVAL_S:
            return
        self._last = now
        bar.update(done - bar.pos)

    def _new_bar(self, label: str, total: int) -> ProgressBar[int]:
        import click  # installed with MLflow; imported only when a bar is drawn

        self._label = label
        return click.progressbar(
            length=total,
            label=label,
            file=self._stream or sys.stderr,
            bar_template="%(label)s [%(bar)s] %(info)s",
            show_pos=True,
            show_percent=False,
            show_eta=False,
            width=24,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def human_bytes(size: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")

"""What every command shares: exit codes, the URI argument, output and the progress line.

A command reports failure by raising ``CommandFailed`` (exit 1) or ``UsageError``
(exit 2); ``main`` prints the message. Informational output goes to stdout and is
silenced by ``--quiet``; errors always go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Protocol, TextIO

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Command",
    "CommandFailed",
    "Output",
    "Progress",
    "UsageError",
    "add_command_parser",
    "add_uri_argument",
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


class Command(Protocol):
    """A command module: ``add_parser`` registers it, ``run`` does the work."""

    def add_parser(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the command's parser (with ``add_command_parser``)."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return an exit code."""


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


def add_command_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    description: str,
    run: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A sub-command parser with the shared epilog, ``--quiet`` and ``run`` as its default."""
    parser = subparsers.add_parser(
        name,
        help=help,
        # Raw formatting keeps the exit-code table; paragraphs are wrapped here instead.
        description="\n\n".join(textwrap.fill(p, 79) for p in description.split("\n\n")),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors; no progress bar"
    )
    parser.set_defaults(run=run)
    return parser


def add_uri_argument(parser: argparse.ArgumentParser) -> None:
    """The positional store URI every command takes (checked, never echoing a secret)."""
    parser.add_argument(
        "uri", metavar="URI", type=store_uri, help="store URI, e.g. bucket+s3://my-bucket/team"
    )


class Output:
    """stdout for results (silent with ``--quiet``), stderr for errors and progress."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)

    def progress(self) -> Progress:
        return Progress(enabled=not self.quiet and sys.stderr.isatty(), stream=sys.stderr)


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second.

    Called as ``progress(label, done, total)``; drawn only when enabled (stderr is a
    terminal and ``--quiet`` was not given), so logs and pipes stay clean.
    """

    _WIDTH = 24

    def __init__(self, enabled: bool, stream: TextIO) -> None:
        self.enabled = enabled
        self._stream = stream
        self._last = 0.0
        self._drawn = False

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        if total > 0:
            filled = self._WIDTH * min(done, total) // total
            bar = "#" * filled + "-" * (self._WIDTH - filled)
            line = f"{label} [{bar}] {done}/{total}"
        else:
            line = f"{label} {done}"
        self._stream.write(f"\r\x1b[K{line}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False

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

"""The ``camwidgets`` command: ``explain`` an image from the shell, serve the ``demo`` in Voila.

Every subcommand lives in its own module with an ``add_parser(subparsers)`` function (see
:data:`COMMANDS`). User errors (a missing file, an unknown class, a model file that holds only
weights) end in one line on stderr and exit status 2; set ``CAMWIDGETS_DEBUG=1`` to see the
traceback instead.

Example:
    >>> from camwidgets.cli import main
    >>> main(["explain", "--seed", "1", "--top", "2"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from camwidgets.cli.errors import UsageError

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

#: The subcommands, by module. Each module defines ``add_parser(subparsers) -> None``, which adds
#: one parser with ``subparsers.add_parser(...)`` and sets ``run`` as a default on it: a callable
#: taking the parsed ``argparse.Namespace`` and returning the exit status. Keep module imports
#: cheap (import torch inside ``run``): ``camwidgets --help`` imports them all.
#: To add a command, add its module here.
COMMANDS: tuple[str, ...] = (
    "camwidgets.cli.explain",
    "camwidgets.cli.demo",
    "camwidgets.audit.command",
)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``camwidgets`` parser with every registered subcommand."""
    from camwidgets import __version__

    parser = _Parser(
        prog="camwidgets",
        description="See why a convolutional network decides what it decides (Grad-CAM).",
    )
    parser.add_argument("--version", action="version", version=f"camwidgets {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``camwidgets`` command line and return its exit status.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 for a usage error (reported on stderr in one line), 130 after Ctrl+C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and argument errors (already printed)
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except (UsageError, ValueError, TypeError, OSError) as err:
        # The engine and the file system report bad input as these; anything else is a bug and
        # keeps its traceback.
        if os.environ.get("CAMWIDGETS_DEBUG"):
            raise
        _print_error(parser.prog, args.command, err)
        return EXIT_USAGE
    return code


def _print_error(prog: str, command: str, err: BaseException) -> None:
    """One line on stderr: what went wrong, never a traceback."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        message = f"{err.filename}: {err.strerror}"
    else:
        message = str(err) or type(err).__name__
    message = " ".join(message.split())  # one line, whatever the message held
    print(f"{prog} {command}: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())

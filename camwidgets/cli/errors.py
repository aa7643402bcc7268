"""The one error type the command line turns into a one-line message and exit status 2."""

from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for (a path, an option, a model file), not a bug.

    ``camwidgets.cli.main`` prints ``camwidgets: error: <message>`` on stderr and returns 2.
    """

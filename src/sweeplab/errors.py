"""Errors a user can fix, each explained in one line, and the two helpers every message uses.

A leaf module (standard library only): every layer raises these, and the entry points turn them into
``<prog>: error: <message>`` and exit code 2 without a traceback.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input (a config value, a file, a run dir); the message is one line and names the culprit."""


class ConfigError(UserError):
    """A config problem: the key, its closest valid spelling, the value and its allowed range."""


class DataError(UserError):
    """Bad input data: names the file (and line) at fault."""


class RestoreError(UserError):
    """A run dir or checkpoint that cannot be used."""


class RunDirError(UserError):
    """A run or sweep dir that cannot be written: taken by another process, or it already holds a run."""


def did_you_mean(name: str, options: Iterable[str], cutoff: float = 0.5) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""``."""
    match = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=cutoff)
    return f" (did you mean '{match[0]}'?)" if match else ""


def first_line(e: BaseException) -> str:
    """The first non-blank line of an exception's message (its type's name when it has none)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, like every other sweeplab error (argparse adds the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")

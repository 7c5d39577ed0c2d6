"""Errors that the command line turns into exit codes.

`BadInput` is for anything the user can fix (a missing root, a malformed list line, an unknown strategy): the CLI
prints its one-paragraph message and exits with code 2, without a traceback unless `--debug` is given. Every other
exception is a bug or an environment failure and exits with code 1.
"""

from __future__ import annotations


class BadInput(Exception):
    """A user-fixable problem; the message names the file, field or value at fault."""


class NonFiniteLoss(RuntimeError):
    """Training produced NaN or Inf; the last good checkpoint is kept."""

"""Errors that reach the user.

Every avlab error carries the message (what is wrong, naming the file, field
or stream) and a ``hint`` (how to fix it). The CLI prints both on one red line
and exits with ``exit_code``; library callers catch the built-in base class.
"""

from __future__ import annotations

__all__ = [
    "AvlabError",
    "OutputError",
    "SessionError",
    "StreamNotFoundError",
    "StreamLostError",
]


class AvlabError(Exception):
    """Base of all errors avlab shows to a user.

    Parameters
    ----------
    message : str
        What is wrong; names the file, field or stream.
    hint : str
        How to fix it.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # keep the hint when the error crosses a process boundary (worker pools)
        return (type(self), (self.message, self.hint))


class StreamNotFoundError(AvlabError, LookupError):
    """A requested LSL stream is not visible."""

    exit_code = 3


class StreamLostError(AvlabError, RuntimeError):
    """A stream stopped delivering data and did not come back."""

    exit_code = 4


class OutputError(AvlabError, OSError):
    """The output location cannot be written (missing, read-only, full)."""

    exit_code = 5


class SessionError(AvlabError, ValueError):
    """A session folder or file is missing, corrupt or not an avlab session."""

    exit_code = 6

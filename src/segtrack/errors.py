"""Errors raised for bad user input.

Every error that reaches a user names the input and what is wrong with it, in one line.
The CLI catches :class:`SegtrackError` and prints ``segtrack: error: <message>`` (exit 2)
instead of a traceback.
"""

from __future__ import annotations


class SegtrackError(Exception):
    """Base class of all errors segtrack raises on purpose."""


class InputError(SegtrackError, ValueError):
    """An input given by the user (file, mask, box, option) is unusable."""


class UnknownMethodError(InputError, KeyError):
    """The requested tracking method is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""

"""The error hierarchy. Every error embconv raises on purpose is an EmbconvError whose
``exit_code`` is the CLI's documented exit status (design.md §4)."""

from __future__ import annotations


class EmbconvError(Exception):
    """Base class. ``str(err)`` is one line that names the file and what is wrong."""

    exit_code = 3

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class UnsafeInputError(EmbconvError):
    """The input names something embconv refuses to touch (exit 1)."""

    exit_code = 1


class UsageError(EmbconvError):
    """The command line or API call is wrong (exit 2)."""

    exit_code = 2


class UnreadableInputError(EmbconvError):
    """The input is unreadable, corrupt, unsupported or inconsistent (exit 3)."""

    exit_code = 3


class ResourceLimitError(UnreadableInputError):
    """The input asks for more memory, depth or entries than a stated limit allows (exit 3)."""


class VerificationError(EmbconvError):
    """A written output does not match its source (exit 4)."""

    exit_code = 4


class OutputError(EmbconvError):
    """An output could not be written (exit 5)."""

    exit_code = 5

"""embconv: fastai learners of every generation → labelled embedding tables, read safely
without fastai or torch."""

from __future__ import annotations

from .errors import (
    EmbconvError,
    OutputError,
    ResourceLimitError,
    UnreadableInputError,
    UnsafeInputError,
    UsageError,
    VerificationError,
)
from .pickle import open_model_file
from .pickle import scan_file as scan

__version__ = "0.1.0"

__all__ = [
    "EmbconvError", "OutputError", "ResourceLimitError", "UnreadableInputError", "UnsafeInputError",
    "UsageError", "VerificationError", "__version__", "open_model_file", "scan",
]

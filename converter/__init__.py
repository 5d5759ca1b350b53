"""embconv: fastai learners of every generation → labelled embedding tables, read safely
without fastai or torch."""

from __future__ import annotations

from .api import convert, load, read_output, save
from .errors import (
    EmbconvError,
    OutputError,
    ResourceLimitError,
    UnreadableInputError,
    UnsafeInputError,
    UsageError,
    VerificationError,
)
from .ir import EmbeddingModel, EmbeddingTable, Vocabulary
from .pickle import open_model_file
from .pickle import scan_file as scan

__version__ = "0.1.0"

__all__ = [
    "EmbconvError", "EmbeddingModel", "EmbeddingTable", "OutputError", "ResourceLimitError",
    "UnreadableInputError", "UnsafeInputError", "UsageError", "VerificationError", "Vocabulary",
    "__version__", "convert", "load", "open_model_file", "read_output", "save", "scan",
]

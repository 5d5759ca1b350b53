"""embconv: fastai learners of every generation → labelled embedding tables, read safely
without fastai or torch."""

from __future__ import annotations

from .api import (
    Verified,
    convert,
    encode,
    encode_file,
    inspect_tensors,
    is_output,
    load,
    read_output,
    save,
    scan,
    similar,
    verify,
)
from .errors import (
    EmbconvError,
    OutputError,
    ResourceLimitError,
    UnreadableInputError,
    UnsafeInputError,
    UsageError,
    VerificationError,
)
from .ir import EmbeddingModel, EmbeddingTable, ModelWarning, Vocabulary
from .pickle import open_model_file

__version__ = "0.1.0"

__all__ = [
    "EmbconvError", "EmbeddingModel", "EmbeddingTable", "ModelWarning", "OutputError", "ResourceLimitError",
    "UnreadableInputError", "UnsafeInputError", "UsageError", "VerificationError", "Verified", "Vocabulary",
    "__version__", "convert", "encode", "encode_file", "inspect_tensors", "is_output", "load", "open_model_file", "read_output", "save",
    "scan", "similar", "verify",
]

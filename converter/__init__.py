"""embconv: fastai learners of every generation → labelled embedding tables, read safely
without fastai or torch."""

from __future__ import annotations

from . import _startup  # noqa: F401 - first: the embconv program's start-up signal handlers (see there)
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
from .gensim_keys import decode_key, load_keyed_vectors
from .ir import EmbeddingModel, EmbeddingTable, ModelWarning, Vocabulary
from .pickle import open_model_file
from .writers.onnx import onnx_feed

__version__ = "0.1.0"

__all__ = [
    "EmbconvError", "EmbeddingModel", "EmbeddingTable", "ModelWarning", "OutputError", "ResourceLimitError",
    "UnreadableInputError", "UnsafeInputError", "UsageError", "VerificationError", "Verified", "Vocabulary",
    "__version__", "convert", "decode_key", "encode", "encode_file", "inspect_tensors", "is_output", "load", "load_keyed_vectors", "onnx_feed", "open_model_file", "read_output", "save",
    "scan", "similar", "verify",
]

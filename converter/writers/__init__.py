"""Output formats, one module each, registered in one place (in the manner of meshio).

Each format module declares its :class:`Format` (name, suffixes, sniff, write, read, holds …)
and registers itself when imported below; the interface is described in registry.py. Adding a
format is one new module and one import line here. Saving (staging, verification, commit) is
``converter.saving``; verification is ``converter.verify``.

Formats: ``safetensors`` (.safetensors), ``onnx`` (.onnx, plus .onnx.data above 512 MiB),
``word2vec-text`` (.vec, .txt) and ``word2vec-binary`` (.bin). word2vec holds one table per
file: a model with several tables is written as ``<stem>.<table><suffix>`` per table (e.g.
``out.vec`` → ``out.userId.vec`` and ``out.title.vec``), each with its sidecar
``<file>.manifest.json``; a one-table model is written to the path as given.
"""

from __future__ import annotations

from .registry import (
    FORMATS,
    Format,
    LastStep,
    Progress,
    format_for,
    format_names,
    plan,
    read_output,
    register,
    sniff,
)

# Each import registers its formats, in this order: the order FORMATS lists them and sniffing asks them in.
# isort: off
from . import safetensors  # noqa: F401
from . import onnx  # noqa: F401
from . import word2vec  # noqa: F401
from . import parquet  # noqa: F401
# isort: on

__all__ = ["FORMATS", "Format", "LastStep", "Progress", "format_for", "format_names", "plan", "read_output",
           "register", "sniff"]

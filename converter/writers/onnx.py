"""ONNX writer and reader.

Graph (pins: ``ir_version`` 8, default-domain opset 13, ``ai.onnx.ml`` opset 2 — all loaded by
onnxruntime >= 1.10 and accepted by ``onnx.checker`` full checks). For every table ``<t>``:

* initializers ``<t>.weight`` [rows, dim] and ``<t>.bias`` [rows] (float32 unless asked);
* input ``<t>.index`` int64 [N] → ``Gather`` → output ``<t>.vectors`` [N, dim];
* where the table has a vocabulary: input ``<t>.id`` string [N] → ``ai.onnx.ml.LabelEncoder``
  (keys = the tokens in row order, values = row numbers; a duplicated token maps to its first
  row; an unseen id gives -1) → ``<t>.row`` → ``Gather`` → output ``<t>.vectors_by_id`` [N, dim],
  and output ``<t>.found`` bool [N] (``row >= 0``: the id is one of the vocabulary's tokens,
  compared as exact strings; the ``#na#`` token itself is found). An unseen id maps to the
  vocabulary's unknown (``#na#``) row where it has one (``Where(found, row, unknown row)``);
  where it has none, the unseen id's row of ``vectors_by_id`` is all NaN (the row is clamped to 0
  for the Gather and then replaced by NaN with ``Where``), so an unseen id can never pass as a
  vector. (Files written before ``found`` existed have no such output and their LabelEncoder's
  default is the unknown row; they read back the same.)
* a ``collab-dot`` model whose user and item tables both have a vocabulary and a bias gets an
  output ``rating`` [N] from ``<user>.id`` and ``<item>.id``, fastai's forward:
  ``dot(u, i) + u_bias + i_bias``, then ``sigmoid(x) * (hi - lo) + lo`` when ``y_range`` is set
  (computed in float32; NaN for an unseen id of a table without unknown row). ids are paired
  position by position up to the shorter of the two inputs.

Every input is optional: each is also an initializer holding an empty tensor, i.e. an
overridable default (IR >= 4), so a caller feeds only what it needs (onnxruntime lists them
under ``get_overridable_initializers()`` and logs a warning about it at load). Nothing else is
fed: outputs of unfed inputs are empty.

``metadata_props``: ``embconv.manifest`` (the manifest without token lists; the tokens are the
LabelEncoder's keys) and ``embconv.layout`` = ``"1"``.

The file is streamed: the small graph is serialised by onnx, and each table is appended as an
extra ``graph.initializer`` entry (protobuf merges repeated occurrences of a message field), its
``raw_data`` written in row chunks. When the tables exceed about 2 GiB (or ``external_data=True``)
they go to ``<name>.onnx.data`` beside the model instead (4096-byte aligned offsets,
``location`` relative), and the model file stays small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..chunks import output_dtype
from ..ir import EmbeddingModel
from .registry import Format, Progress, register

IR_VERSION = 8
OPSET = 13
ML_OPSET = 2
LAYOUT = "1"
EXTERNAL_THRESHOLD = (2 << 30) - (256 << 20)
ALIGN = 4096


def data_path(path: Path) -> Path:
    """The external data file of an ONNX model file."""
    return path.with_name(path.name + ".data")


def needs_external(model: EmbeddingModel, dtype: str = "float32") -> bool:
    """True when the tables are too big for one protobuf (about 2 GiB)."""
    size = output_dtype(dtype).itemsize
    return sum(t.rows * (t.dim + (1 if t.bias_source is not None else 0)) for t in model.tables.values()) * size \
        > EXTERNAL_THRESHOLD


def extra_files(model: EmbeddingModel, path: Path, options: dict) -> list[Path]:
    """The external data file, where the tables go there (``external_data``, else by size)."""
    ext = options.get("external_data")
    if ext is None:
        ext = needs_external(model, options.get("dtype", "float32"))
    return [data_path(path)] if ext else []


def sniff(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) looks like ONNX: a ModelProto starts with
    ir_version (field 1, varint), as onnx and every exporter write it."""
    return len(head) >= 2 and head[0] == 0x08 and 3 <= head[1] <= 20


def write(model: EmbeddingModel, path: Path, *, dtype: str = "float32", progress: Progress | None = None,
          drop_unknown: bool = False, external_data: bool | None = None, **options: Any) -> None:
    """Write ``model`` as ONNX to ``path`` (plus ``path.data`` when external data is used)."""
    from . import _onnx_impl

    _onnx_impl.write(model, path, dtype=dtype, progress=progress, drop_unknown=drop_unknown,
                     external_data=external_data, **options)


def read(path: Path) -> EmbeddingModel:
    """Read an embconv ONNX model back into the IR."""
    from . import _onnx_impl

    return _onnx_impl.read(path)


def check(path: Path) -> None:
    """onnx.checker full check (shape inference included)."""
    from . import _onnx_impl

    _onnx_impl.check(path)


FORMAT = register(Format(
    name="onnx",
    suffixes=(".onnx",),
    sniff=sniff,
    write=write,
    read=read,
    extra_files=extra_files,
    check=check,
    load_hint="onnxruntime.InferenceSession('{path}')  (inputs <table>.index / <table>.id)",
))

__all__ = ["FORMAT", "check", "data_path", "extra_files", "needs_external", "read", "sniff", "write"]

"""ONNX writer and reader.

Graph (pins: ``ir_version`` 8, default-domain opset 13, ``ai.onnx.ml`` opset 2 — all loaded by
onnxruntime >= 1.10 and accepted by ``onnx.checker`` full checks). For every table ``<t>``:

* initializers ``<t>.weight`` [rows, dim] and ``<t>.bias`` [rows] (float32 unless asked);
* input ``<t>.index`` int64 [N] → ``Gather`` → output ``<t>.vectors`` [N, dim] (and
  ``<t>.biases`` [N] where the table has a bias);
* where the table has a vocabulary: input ``<t>.id`` string [M] → ``ai.onnx.ml.LabelEncoder``
  (keys = the tokens in row order, values = row numbers; a duplicated token maps to its first
  row; an unseen id gives -1) → ``<t>.row`` → ``Gather`` → output ``<t>.vectors_by_id`` [M, dim]
  (and ``<t>.biases_by_id`` [M] where the table has a bias), and output ``<t>.found`` bool [M]
  (``row >= 0``: the id is one of the vocabulary's tokens, compared as exact strings; the
  ``#na#`` token itself is found). An unseen id maps to the vocabulary's unknown (``#na#``) row
  where it has one (``Where(found, row, unknown row)``); where it has none, the unseen id's row of
  ``vectors_by_id`` (and its ``biases_by_id``) is NaN (the row is clamped to 0 for the Gather and
  then replaced by NaN with ``Where``), so an unseen id can never pass as a vector. (Files
  written before ``found`` existed have no such output and their LabelEncoder's default is the
  unknown row; they read back the same.)
* a ``collab-dot`` model whose user and item tables both have a bias gets the output
  ``rating_by_index`` [N] from ``<user>.index`` and ``<item>.index``, and where both also have a
  vocabulary, ``rating`` [M] from ``<user>.id`` and ``<item>.id``: fastai's forward, ``dot(u, i) + u_bias + i_bias``, then
  ``sigmoid(x) * (hi - lo) + lo`` when ``y_range`` is set (computed in float32; NaN for an unseen
  id of a table without unknown row), pairs taken position by position. The user and item inputs
  of a pair must have the same length: different non-empty lengths make the run fail (an
  onnxruntime error naming both inputs), never a truncated list. An empty input means "not fed":
  the pair's rating is then empty (onnxruntime runs every node whatever outputs are asked for, so
  a caller after one table's vectors feeds the other tables' inputs empty).

Inputs are plain graph inputs (layout 2): ``session.get_inputs()`` lists them, onnxruntime loads
the model without a warning (no input is an overridable initializer, and every initializer is
used by a node), and every input must be fed — an unused one takes an empty array
(``np.zeros(0, np.int64)`` for ``.index``, ``np.array([], dtype=object)`` for ``.id``);
:func:`onnx_feed` fills them in. Layout 1 (embconv 0.1.0 and before: every input also an initializer
holding an empty default, no ``biases``/``rating_by_index`` outputs) still reads back.

``metadata_props``: ``embconv.manifest`` (the manifest without token lists; the tokens are the
LabelEncoder's keys) and ``embconv.layout`` = ``"2"``.

The file is streamed: the small graph is serialised by onnx, and each table is appended as an
extra ``graph.initializer`` entry (protobuf merges repeated occurrences of a message field), its
``raw_data`` written in row chunks. When the tables exceed 512 MiB (or ``external_data=True``)
they go to ``<name>.onnx.data`` beside the model instead (4096-byte aligned offsets,
``location`` relative), and the model file stays small: onnx.checker and a reader parse an inline
model whole, at about 2.6 times its size in memory (690 MB for a 256 MiB table, against 190 MB
with external data), and protobuf cannot hold 2 GiB. ``external_data=False`` forces one file.
Reading external data follows the reference loaders' rules (spec §8): ``location`` is a relative
path inside the model's folder, without ``..``, symlinks or several hard links, naming a regular
file (opened with ``O_NOFOLLOW``/``O_NONBLOCK``, so a FIFO never blocks), and ``offset`` and
``length`` are decimal integers within it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..chunks import output_dtype
from ..ir import EmbeddingModel
from .registry import Format, Progress, register

IR_VERSION = 8
OPSET = 13
ML_OPSET = 2
LAYOUT = "2"
# inline models are parsed whole by onnx.checker and readers (~2.6 x their size in memory):
# above this, external data (protobuf's own limit is 2 GiB)
EXTERNAL_THRESHOLD = 512 << 20
ALIGN = 4096


def data_path(path: Path) -> Path:
    """The external data file of an ONNX model file."""
    return path.with_name(path.name + ".data")


def needs_external(model: EmbeddingModel, dtype: str = "float32") -> bool:
    """True when the tables are above ``EXTERNAL_THRESHOLD`` (512 MiB): external data by default."""
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


def onnx_feed(session: Any, feeds: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, np.ndarray]:
    """The input feed for ``session.run`` with every input of an embconv ONNX model: the ones in
    ``feeds`` (or keyword arguments, for names that are identifiers) as arrays of the right type,
    and every other input of the session as an empty array — ONNX needs each graph input fed.

    ``session`` is an ``onnxruntime.InferenceSession`` (anything with ``get_inputs()`` giving
    ``.name`` and ``.type``). A ``.index`` value becomes int64 (integers only); an ``.id`` value
    becomes a string array (an ``int`` id such as a user number becomes ``str(id)``, the form the
    vocabulary holds). Values must be one-dimensional; an unknown name is a KeyError listing the
    inputs::

        s = onnxruntime.InferenceSession("out.onnx")
        s.run(["title.vectors_by_id"], onnx_feed(s, {"title.id": ["Jaws (1975)"]}))
    """
    given = dict(feeds or {}, **more)
    inputs = {i.name: i.type for i in session.get_inputs()}
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        raise KeyError(f"no input {', '.join(map(repr, unknown))} in this model; its inputs: {', '.join(inputs)}")
    out: dict[str, np.ndarray] = {}
    for name, kind in inputs.items():
        value = given.get(name)
        if kind == "tensor(string)":
            a = np.array([], dtype=object) if value is None else np.asarray(value, dtype=object)
            if a.ndim == 1:
                a = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in a.tolist()],
                             dtype=object)
        elif kind == "tensor(int64)":
            a = np.zeros(0, dtype=np.int64) if value is None else np.asarray(value)
            if a.size == 0:
                a = a.astype(np.int64)
            elif a.dtype.kind not in "iu":
                raise TypeError(f"input {name!r} takes integer row numbers, not {a.dtype}")
            a = a.astype(np.int64, copy=False)
        else:
            raise TypeError(f"input {name!r} has type {kind}, which onnx_feed does not know")
        if a.ndim != 1:
            raise ValueError(f"input {name!r} takes a one-dimensional list, not an array of shape {a.shape}")
        out[name] = a
    return out


FORMAT = register(Format(
    name="onnx",
    suffixes=(".onnx",),
    sniff=sniff,
    write=write,
    read=read,
    extra_files=extra_files,
    check=check,
    load_hint="onnxruntime.InferenceSession('{path}')  (inputs <table>.index / <table>.id, all fed: "
              "converter.writers.onnx.onnx_feed(session, {{...}}) fills the unused ones with empty arrays)",
))

__all__ = ["FORMAT", "check", "data_path", "extra_files", "needs_external", "onnx_feed", "read", "sniff", "write"]

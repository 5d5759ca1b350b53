"""Embedding tables as pandas DataFrames (``EmbeddingTable.to_frame``, ``EmbeddingModel.to_frames``).

pandas is part of the data extra (``pip install 'embconv[data]'``) and is imported only when a
frame is asked for, never when ``converter`` is imported.

The frame of a table:

* **index**: the tokens' string forms (as ``Vocabulary.strings``, the labels every output
  writes), named after the table; duplicate labels (fastai's ``xxfake`` padding) stay duplicate,
  one row each, so row *i* of the frame is row *i* of the table (``df.iloc[i]``). An unlabelled
  table (no vocabulary) is indexed by the row number (int64 ``RangeIndex``).
* **vector**: ``vector="columns"`` (the default) gives one float32 column per dimension, named by
  the ints ``0 … dim-1`` (one 2-D block: ``df[list(range(dim))].to_numpy()`` is the matrix);
  ``vector="list"`` gives one column ``vector`` whose cells are float32 numpy arrays of length
  ``dim`` — what pandas itself gives for embconv's Parquet ``vector`` column, so
  ``np.stack(df["vector"])`` is the matrix.
* **bias**: float32, only where the table has a bias.
* **is_unknown**: bool, True only on the vocabulary's unknown (``#na#``/NaN) row.

Values are the table's, exactly, as float32 (float16 and bfloat16 widen exactly; float64 would
round — fastai tables are float32 or narrower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    from .ir import EmbeddingModel, EmbeddingTable

VECTOR_LAYOUTS = ("columns", "list")
CHUNK_BYTES = 16 << 20


def require_pandas(what: str = "to_frame") -> Any:
    """The pandas module, or UsageError naming the extra that brings it."""
    try:
        import pandas
    except ImportError:
        raise UsageError(f"{what} needs the data extra: pip install 'embconv[data]'") from None
    return pandas


def _weights_f32(table: EmbeddingTable) -> np.ndarray:
    """The whole weight as a fresh, writable float32 (rows, dim) array, filled chunk by chunk
    (a memory-mapped source is read once, never copied in its own dtype first)."""
    out = np.empty((table.rows, table.dim), dtype=np.float32)
    step = max(1, CHUNK_BYTES // (4 * max(1, table.dim)))
    for start, chunk in table.row_chunks(step):
        out[start : start + len(chunk)] = np.asarray(chunk).reshape(len(chunk), table.dim)
    return out


def table_frame(table: EmbeddingTable, vector: str = "columns") -> Any:
    """``table`` as a pandas DataFrame (layout in this module's docstring)."""
    pd = require_pandas("to_frame")
    if vector not in VECTOR_LAYOUTS:
        raise ValueError(f"vector must be one of {', '.join(map(repr, VECTOR_LAYOUTS))}, got {vector!r}")
    rows = table.rows
    if table.vocab is not None:
        if len(table.vocab) != rows:
            raise ValueError(f"table {table.name!r}: vocabulary has {len(table.vocab)} tokens, weight {rows} rows")
        index = pd.Index(list(table.vocab.strings), name=table.name)
    else:
        index = pd.RangeIndex(rows, name=table.name)
    weights = _weights_f32(table)
    if vector == "columns":
        frame = pd.DataFrame(weights, index=index, columns=pd.RangeIndex(table.dim), copy=False)
    else:
        cells = np.empty(rows, dtype=object)
        cells[:] = list(weights)  # row views of the one block: no copy per row
        frame = pd.DataFrame({"vector": cells}, index=index, copy=False)
    extra: dict[str, np.ndarray] = {}
    bias = table.bias
    if bias is not None:
        if len(bias) != rows:
            raise ValueError(f"table {table.name!r}: bias has {len(bias)} rows, weight {rows}")
        extra["bias"] = np.array(bias, dtype=np.float32)
    unknown = np.zeros(rows, dtype=bool)
    if table.vocab is not None and table.vocab.unknown_index is not None and 0 <= table.vocab.unknown_index < rows:
        unknown[table.vocab.unknown_index] = True
    extra["is_unknown"] = unknown
    for name, values in extra.items():
        frame[name] = values
    return frame


def model_frames(model: EmbeddingModel, vector: str = "columns") -> dict[str, Any]:
    """Every table of ``model`` as a DataFrame (``table_frame``), by table name, in order."""
    require_pandas("to_frames")
    return {name: table_frame(t, vector=vector) for name, t in model.tables.items()}


__all__ = ["VECTOR_LAYOUTS", "model_frames", "require_pandas", "table_frame"]

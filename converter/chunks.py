"""Output dtypes and row chunks: what writers and verification share (neither owns it).

A table is never materialised whole: writers stream it and verification compares it a chunk of
about :data:`CHUNK_BYTES` at a time, so memory stays bounded whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .errors import UsageError
from .ir import EmbeddingTable
from .mapped import release

#: Output dtypes a writer may be asked for (little-endian on disk).
OUTPUT_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "float64": np.dtype("<f8"),
}

CHUNK_BYTES = 16 << 20


def output_dtype(dtype: str) -> np.dtype:
    """The numpy dtype for an output dtype name (UsageError for anything else)."""
    try:
        return OUTPUT_DTYPES[dtype]
    except KeyError:
        raise UsageError(f"unsupported output dtype {dtype!r}; choose one of {', '.join(OUTPUT_DTYPES)}") from None


def convert(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as C-contiguous little-endian ``dtype`` (no copy when it already is)."""
    return np.ascontiguousarray(array, dtype=dtype)


def chunk_rows(dim: int, itemsize: int, budget: int = CHUNK_BYTES) -> int:
    """How many rows of ``dim`` values fit a chunk of about ``budget`` bytes (at least 1)."""
    return max(1, budget // max(1, dim * itemsize))


def weight_rows_as(table: EmbeddingTable, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
    """Rows ``start:stop`` of a table's weight as C-contiguous ``dtype``: a TensorRef converts
    them as it reads them from the file (``rows_as``); other sources give their rows, converted."""
    rows_as = getattr(table.weight_source, "rows_as", None)
    if rows_as is None:
        return convert(table.weight_rows(start, stop), dtype)
    a = rows_as(start, stop, dtype)
    return a.reshape(-1, table.dim) if a.ndim != 2 else a


def weight_chunks(table: EmbeddingTable, dtype: np.dtype, budget: int = CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, converted rows) of a table's weight, chunk by chunk: only one chunk of the
    source is read (and converted) at a time — from the source file with ``pread``, or its
    mapped pages are released after use — so memory stays bounded whatever the table's size."""
    itemsize = max(dtype.itemsize, table.weight_itemsize)
    step = chunk_rows(table.dim, itemsize, budget)
    direct = getattr(table.weight_source, "rows_as", None) is not None
    for start in range(0, table.rows, step):
        if direct:
            yield start, weight_rows_as(table, start, start + step, dtype)
            continue
        src = table.weight_rows(start, start + step)
        out = convert(src, dtype)
        yield start, out
        release(src)
        if out is not src:
            del out


def bias_length(table: EmbeddingTable) -> int:
    """How many values a table's bias holds (0 without one), without reading it."""
    if table.bias_source is None:
        return 0
    return int(np.prod(table.bias_source.shape, dtype=np.int64))


def bias_rows(table: EmbeddingTable, start: int, stop: int) -> np.ndarray:
    """Values ``start:stop`` of a table's bias (like ``table.bias[start:stop]``), reading just
    those where the source can: a TensorRef reads them from the file with ``pread`` (a file
    that shrinks meanwhile is an error, never a SIGBUS)."""
    src = table.bias_source
    if src is None:
        raise ValueError(f"table {table.name!r} has no bias")
    shape = tuple(src.shape)
    rows = getattr(src, "rows", None)
    if rows is not None and shape and int(np.prod(shape[1:], dtype=np.int64)) == 1:  # (n,), (n, 1)
        return np.asarray(rows(start, stop)).reshape(-1)
    b = table.bias
    assert b is not None
    return b[start:stop]


def bias_chunks(table: EmbeddingTable, dtype: np.dtype, budget: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """A table's bias (rows,) converted to ``dtype``, chunk by chunk (see :func:`weight_chunks`)."""
    n = bias_length(table)
    step = max(1, budget // 8)
    for start in range(0, n, step):
        src = bias_rows(table, start, start + step)
        yield convert(src, dtype)
        release(src)


__all__ = ["CHUNK_BYTES", "OUTPUT_DTYPES", "bias_chunks", "bias_length", "bias_rows", "chunk_rows", "convert",
           "output_dtype", "weight_chunks", "weight_rows_as"]

"""Helpers shared by the writers: output dtypes, row chunking, progress, manifests of outputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..ir import EmbeddingModel, EmbeddingTable, SourceInfo

#: ``progress(done, total)``: rows written so far over rows to write (all tables of one save).
Progress = Callable[[int, int], None]

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


def weight_chunks(table: EmbeddingTable, dtype: np.dtype, budget: int = CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, converted rows) of a table's weight, chunk by chunk (bounded extra memory)."""
    w = table.weight
    step = chunk_rows(table.dim, max(dtype.itemsize, w.dtype.itemsize), budget)
    for start in range(0, table.rows, step):
        yield start, convert(w[start : start + step], dtype)


def bias_array(table: EmbeddingTable, dtype: np.dtype) -> np.ndarray | None:
    b = table.bias
    return None if b is None else convert(b, dtype)


class ProgressCounter:
    """Counts rows across tables and reports to an optional ``progress`` callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def add(self, rows: int) -> None:
        self.done += rows
        if self.progress is not None:
            self.progress(self.done, self.total)


def output_source(model: EmbeddingModel, path: str | os.PathLike, container: str) -> SourceInfo:
    """SourceInfo describing an embconv output file read back (generation and model class kept)."""
    p = Path(path)
    return SourceInfo(path=str(p), size=p.stat().st_size if p.exists() else 0,
                      generation=model.source.generation, artifact="embconv-output", container=container,
                      model_class=model.source.model_class)

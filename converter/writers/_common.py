"""Helpers shared by the writers: streaming a weight into a file, progress, manifests of outputs read back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..chunks import weight_chunks
from ..errors import UnreadableInputError
from ..ir import EmbeddingModel, EmbeddingTable, SourceInfo, model_from_manifest
from .registry import Progress


def write_weight(f: BinaryIO, table: EmbeddingTable, dtype: np.dtype, counter: ProgressCounter | None = None) -> int:
    """Write a table's weight to ``f`` as ``dtype``, row after row; return the bytes written.
    Where the source file already holds exactly those bytes (same dtype, contiguous), the
    kernel copies them file to file (``copy_file_range``): no page passes through this process,
    which is as fast as ``cp``. Otherwise chunks are read, converted and written."""
    span = table.weight_file_span(dtype)
    if span is not None:
        copied = _copy_span(f, span, table.dim * dtype.itemsize, counter)
        if copied is not None:
            return copied
    n = 0
    for _start, chunk in weight_chunks(table, dtype):
        f.write(chunk.data.cast("B"))
        n += chunk.nbytes
        if counter is not None:
            counter.add(len(chunk))
    return n


_COPY_PIECE = 64 << 20


def _copy_span(f: BinaryIO, span: tuple[str, int, int, tuple[int, ...]], row_bytes: int,
               counter: ProgressCounter | None) -> int | None:
    """Copy ``span`` of a source file to the end of ``f`` in the kernel; None (and nothing
    written) where the platform or file system cannot, or the path no longer names the file
    that was read, so the caller streams instead."""
    path, offset, nbytes, identity = span
    if not hasattr(os, "copy_file_range") or row_bytes <= 0:
        return None
    f.flush()
    pos = f.tell()
    piece = max(row_bytes, _COPY_PIECE // row_bytes * row_bytes)  # whole rows, for progress
    done = 0
    try:
        with open(path, "rb") as src:
            st = os.fstat(src.fileno())
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != tuple(identity):
                raise OSError("the source path names another file now")
            while done < nbytes:
                k = os.copy_file_range(src.fileno(), f.fileno(), min(piece, nbytes - done), offset + done, pos + done)
                if k <= 0:
                    raise OSError("the source file ended early")
                if counter is not None:
                    counter.add((done + k) // row_bytes - done // row_bytes)
                done += k
    except OSError:  # EXDEV, ENOSYS, EINVAL …: start again the ordinary way
        if counter is not None:
            counter.add(-(done // row_bytes))
        f.seek(pos)
        f.truncate()
        return None
    f.seek(pos + nbytes)
    return nbytes


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


def check_manifest(manifest: Any, path: str | os.PathLike, what: str = "embconv.manifest") -> dict:
    """``manifest`` if it has the structure readers rely on (design.md §2), else
    UnreadableInputError naming what is off: a damaged output fails in one clear line."""
    def bad(message: str) -> None:
        raise UnreadableInputError(f"{what} is inconsistent: {message}", path=str(path))

    if not isinstance(manifest, dict):
        bad("not a JSON object")
    source = manifest.get("source")
    if not isinstance(source, dict) or not all(isinstance(source.get(k), str)
                                               for k in ("path", "generation", "artifact", "container")):
        bad("source lacks path, generation, artifact or container")
    if not isinstance(source.get("size"), int):
        bad("source.size is not an integer")
    if not isinstance(manifest.get("model", {}), dict) or not isinstance(manifest.get("warnings", []), list):
        bad("model or warnings have the wrong type")
    tables = manifest.get("tables")
    if not isinstance(tables, list):
        bad("tables is not a list")
    names: set[str] = set()
    for t in tables:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("role"), str):
            bad("a table lacks its name or role")
        if t["name"] in names:
            bad(f"table {t['name']!r} is listed twice")
        names.add(t["name"])
        vocab = t.get("vocab")
        if vocab is not None and (not isinstance(vocab, dict) or not isinstance(vocab.get("unknown_index"), (int, type(None)))):
            bad(f"table {t['name']!r}: vocab is malformed")
        if not isinstance(t.get("tied_keys", []), list) or not isinstance(t.get("weight_key", ""), str):
            bad(f"table {t['name']!r}: weight_key or tied_keys have the wrong type")
    return manifest


def model_from_output(manifest: dict, arrays: dict, tokens: dict, path: str | os.PathLike, container: str,
                      what: str = "embconv.manifest") -> EmbeddingModel:
    """The IR of an output file read back: its embedded manifest plus the arrays and tokens the
    reader found; ``source`` describes the output file (generation and model class kept)."""
    try:
        model = model_from_manifest(manifest, arrays, tokens)
    except (KeyError, TypeError, ValueError) as e:
        raise UnreadableInputError(f"{what} is inconsistent: {e}", path=str(path)) from e
    p = Path(path)
    model.source = SourceInfo(path=str(p), size=p.stat().st_size if p.exists() else 0,
                              generation=model.source.generation, artifact="embconv-output",
                              container=container, model_class=model.source.model_class)
    return model

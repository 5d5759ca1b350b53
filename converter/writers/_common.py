"""Helpers shared by the writers: streaming a weight into a file, progress, manifests of outputs read back."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..chunks import weight_chunks
from ..errors import ResourceLimitError, UnreadableInputError
from ..hashing import changed_error
from ..ir import (
    EmbeddingModel,
    EmbeddingTable,
    ManifestError,
    SourceInfo,
    model_from_manifest,
    validate_manifest,
)
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
            st = os.fstat(src.fileno())  # written to meanwhile: the copy may mix two versions
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != tuple(identity):
                raise changed_error(path, (*identity, 0), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, 0))
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


class _JSONRefusal(ValueError):
    """What strict JSON refuses: a duplicate key, NaN or an infinity."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _JSONRefusal(f"the key {key[:60]!r} occurs twice in one object")
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise _JSONRefusal(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JSONRefusal(f"the number {text[:40]} is out of range")
    return value


def parse_json(raw: str | bytes, path: str | os.PathLike, what: str) -> Any:
    """``raw`` parsed as strict JSON (RFC 8259: no NaN or infinities, no number that overflows
    to one, no key twice in an object; UTF-8), or UnreadableInputError naming ``what``: so is
    an integer of more digits than Python converts, and nesting deeper than the interpreter's
    recursion limit (ResourceLimitError). Every JSON an embconv output holds is read here."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                          parse_float=_finite_float)
    except RecursionError:
        raise ResourceLimitError(f"{what} nests too deeply (limit)", path=str(path)) from None
    except (ValueError, TypeError) as e:  # JSONDecodeError, UnicodeDecodeError, the int digit limit, refusals
        raise UnreadableInputError(f"{what} is not JSON: {str(e)[:200]}", path=str(path)) from None


def check_manifest(manifest: Any, path: str | os.PathLike, what: str = "embconv.manifest") -> dict:
    """``manifest`` if it has the shape schemas/manifest.schema.json gives it
    (``ir.validate_manifest``), else UnreadableInputError naming what is off: a damaged output
    fails in one clear line."""
    try:
        return validate_manifest(manifest)
    except ManifestError as e:
        raise UnreadableInputError(f"{what} is inconsistent: {e}", path=str(path)) from None


def read_manifest(raw: Any, path: str | os.PathLike, what: str = "embconv.manifest") -> dict:
    """The manifest in ``raw``, the JSON text an output stores (a str or UTF-8 bytes), parsed
    strictly (:func:`parse_json`) and checked (:func:`check_manifest`); UnreadableInputError
    when it is not text, not JSON or not a manifest."""
    if not isinstance(raw, (str, bytes)):
        raise UnreadableInputError(f"{what} is not a string of JSON but {type(raw).__name__}", path=str(path))
    return check_manifest(parse_json(raw, path, what), path, what)


def _recorded_source_sha256(recorded: SourceInfo) -> str | None:
    """The sha256 a manifest names for the model file an output was converted from; None when
    it was converted from another embconv output (whose hash ``verify`` cannot link to a model)."""
    sha = recorded._sha256
    return sha if isinstance(sha, str) and recorded.artifact != "embconv-output" else None


def model_from_output(manifest: dict, arrays: dict, tokens: dict, path: str | os.PathLike, container: str,
                      what: str = "embconv.manifest") -> EmbeddingModel:
    """The IR of an output file read back: its embedded manifest plus the arrays and tokens the
    reader found; ``source`` describes the output file (generation and model class kept)."""
    try:
        model = model_from_manifest(manifest, arrays, tokens)
    except (KeyError, TypeError, ValueError) as e:
        raise UnreadableInputError(f"{what} is inconsistent: {str(e)[:300]}", path=str(path)) from e
    p = Path(path)
    model.source = SourceInfo(path=str(p), size=p.stat().st_size if p.exists() else 0,
                              generation=model.source.generation, artifact="embconv-output",
                              container=container, model_class=model.source.model_class,
                              recorded_sha256=_recorded_source_sha256(model.source))
    return model

"""Prove that an output holds exactly what the model holds (exit 4 when it does not).

The one home of verification: a format hands over what its files hold (``Format.read`` and
``Format.holds``), and this module compares. ``verify_models`` compares two models;
``verify_output`` an output file with the model it was written from."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .chunks import CHUNK_BYTES, bias_length, bias_rows, chunk_rows, output_dtype, weight_rows_as
from .errors import VerificationError
from .ir import EmbeddingModel, EmbeddingTable, SourceInfo
from .lazy import encoded
from .mapped import release
from .writers import sniff

#: ``progress(table, done, rows)`` while a table is compared.
TableProgress = Callable[[str, int, int], None]

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_SOURCE_PIECE = 1 << 20  # bytes of source rows compared at a time (fits the CPU cache)


def _first_bad_row(exp: np.ndarray, act: np.ndarray) -> int | None:
    """Index of the first row whose bits differ (NaN equals NaN, whatever its payload)."""
    u = _UINT[exp.dtype.itemsize]
    if np.array_equal(exp.view(u), act.view(u)):  # the usual case: identical bits, one pass
        return None
    diff = exp.view(u) != act.view(u)
    if exp.dtype.kind == "f":
        diff &= ~(np.isnan(exp) & np.isnan(act))
    if diff.ndim > 1:
        diff = diff.reshape(diff.shape[0], -1).any(axis=1)
    bad = np.flatnonzero(diff)
    return int(bad[0]) if bad.size else None


def _compare_table(e: EmbeddingTable, a: EmbeddingTable, dtype: np.dtype, where: str | None,
                   progress: TableProgress | None = None) -> None:
    """Compare one table chunk by chunk: only a chunk of each side is materialised at a time
    and the mapped pages of both are released after it, so memory stays bounded.
    ``progress(table, rows_done, rows)`` is called after each chunk (weights, then tokens)."""
    name = e.name
    exp_rows = e.rows

    def tick(done: int) -> None:
        if progress is not None:
            progress(name, done, exp_rows)

    if (a.rows, a.dim) != (exp_rows, e.dim):
        raise VerificationError(f"table {name!r}: shape {a.rows}x{a.dim}, expected {exp_rows}x{e.dim}", path=where)
    step = chunk_rows(e.dim, 8, CHUNK_BYTES)
    # The source side is read (pread, see TensorRef.rows_as) a cache-sized piece at a time and
    # compared at once: its bytes are then read from memory once, not written and read again.
    piece = chunk_rows(e.dim, dtype.itemsize, _SOURCE_PIECE) if hasattr(e.weight_source, "rows_as") else step
    for start in range(0, exp_rows, step):
        stop = min(exp_rows, start + step)
        act = np.ascontiguousarray(a.weight_rows(start, stop))
        if act.dtype != dtype:
            raise VerificationError(f"table {name!r}: weights are {act.dtype}, expected {dtype}", path=where)
        for lo in range(start, stop, piece):
            hi = min(stop, lo + piece)
            exp = weight_rows_as(e, lo, hi, dtype)  # read from the source file, converted
            bad = _first_bad_row(exp, act[lo - start : hi - start])
            release(exp)
            if bad is not None:
                raise VerificationError(f"table {name!r}: weights differ first at row {lo + bad}", path=where)
        release(act)
        tick(stop // 2 if e.vocab is not None and a.vocab is not None else stop)
    ab = a.bias
    if e.bias_source is not None:
        n = bias_length(e)
        if ab is None:
            raise VerificationError(f"table {name!r}: the bias is missing", path=where)
        if ab.shape != (n,) or ab.dtype != dtype:
            raise VerificationError(f"table {name!r}: bias is {ab.dtype}{list(ab.shape)}, expected "
                                    f"{dtype}{[n]}", path=where)
        bstep = CHUNK_BYTES // 8
        for start in range(0, n, bstep):
            es_, as_ = bias_rows(e, start, start + bstep), ab[start : start + bstep]
            bad = _first_bad_row(np.ascontiguousarray(es_, dtype=dtype), np.ascontiguousarray(as_))
            release(es_)
            release(as_)
            if bad is not None:
                raise VerificationError(f"table {name!r}: bias differs first at row {start + bad}", path=where)
    elif ab is not None:
        raise VerificationError(f"table {name!r}: has a bias the source does not have", path=where)
    if (e.vocab is None) != (a.vocab is None):
        raise VerificationError(f"table {name!r}: vocabulary {'missing' if a.vocab is None else 'unexpected'}",
                                path=where)
    if e.vocab is None or a.vocab is None:
        return
    if len(a.vocab.strings) != exp_rows:
        raise VerificationError(f"table {name!r}: {len(a.vocab)} tokens, expected {exp_rows}", path=where)
    vstep = 1 << 16
    for start in range(0, exp_rows, vstep):
        stop = min(exp_rows, start + vstep)
        # Compared as UTF-8 bytes + offsets (equal exactly when the strings are): a packed
        # vocabulary (sidecar, safetensors read-back) is then never decoded.
        e_bytes, e_offsets = encoded(e.vocab.strings, start, stop)
        a_bytes, a_offsets = encoded(a.vocab.strings, start, stop)
        if e_bytes == a_bytes and np.array_equal(e_offsets, a_offsets):
            tick((exp_rows + stop) // 2)
            continue
        es = list(e.vocab.strings[start:stop])
        got = list(a.vocab.strings[start:stop])
        i = next(i for i, (x, y) in enumerate(zip(es, got, strict=True)) if x != y)
        raise VerificationError(f"table {name!r}: token of row {start + i} is {got[i]!r}, expected {es[i]!r}",
                                path=where)
    if a.vocab.unknown_index != e.vocab.unknown_index:
        raise VerificationError(f"table {name!r}: unknown_index {a.vocab.unknown_index}, "
                                f"expected {e.vocab.unknown_index}",
                                path=where)


def verify_models(expected: EmbeddingModel, actual: EmbeddingModel, *, dtype: str = "float32",
                  progress: TableProgress | None = None) -> None:
    """Compare every table of ``expected`` with ``actual`` (read back from an output): names,
    shapes, weights and biases bit-exact after conversion to ``dtype`` (NaN equals NaN), tokens
    and unknown_index. ``expected`` is what the output should hold (a format's ``holds`` view
    of the source: word2vec has no biases, maybe no unknown row). Raises VerificationError
    (exit 4) naming the table and the first differing row or token. ``progress(table, done,
    rows)`` is called as each table is compared (weights count for half when there are tokens)."""
    where = actual.source.path if actual.source else None
    dt = output_dtype(dtype)
    if list(expected.tables) != list(actual.tables):
        raise VerificationError(f"tables {list(actual.tables)}, expected {list(expected.tables)}", path=where)
    for name, e in expected.tables.items():
        _compare_table(e, actual.tables[name], dt, where, progress)
    if actual.model.kind != expected.model.kind:
        raise VerificationError(f"model kind {actual.model.kind!r}, expected {expected.model.kind!r}", path=where)
    ey, ay = expected.model.y_range, actual.model.y_range
    if (ey is None) != (ay is None) or (ey is not None and ay is not None
                                        and tuple(map(float, ey)) != tuple(map(float, ay))):
        raise VerificationError(f"y_range {ay}, expected {ey}", path=where)
    if expected.source is not None:
        # The comparison was the last read of the source: it must still be the file first opened
        # (else what was compared is not what the manifest's hash describes). Exit 3 if not.
        expected.source.check_unchanged()


def verify_output(path: str | os.PathLike, expected: EmbeddingModel, *, dtype: str | None = None) -> None:
    """Prove that the output file ``path`` holds exactly what it should of ``expected`` (its
    source): the tables it holds, as its format holds them with the options the file records;
    ``dtype`` defaults to the one the file holds. When ``expected`` was read from a file, the
    sha256 the output's manifest records for its source must also be that file's (or, when that
    file is itself an embconv output, the one its own manifest records: both were converted from
    one file). VerificationError (exit 4) otherwise."""
    p = Path(path)
    fmt = sniff(p)
    actual = fmt.read(p)
    source = expected.source
    recorded = actual.source.recorded_sha256 if actual.source is not None else None
    hashed = recorded is not None and source is not None and os.path.isfile(source.path)
    if hashed and source._sha256 is None:
        source.start_sha256()  # overlaps with the comparison
    if fmt.one_table_per_file:
        missing = [n for n in actual.tables if n not in expected.tables]
        if missing:
            raise VerificationError(f"holds table {missing[0]!r}, which the source does not have", path=str(p))
        expected = expected.select(list(actual.tables))
    if dtype is None:
        dtype = str(next(iter(actual.tables.values())).weight_dtype)
    verify_models(fmt.holds(expected, fmt.options_of(p)), actual, dtype=dtype)
    if hashed:
        check_source_hash(str(p), recorded, source)


def check_source_hash(where: str, recorded: str | None, source: SourceInfo) -> None:
    """VerificationError (exit 4) unless ``recorded`` (the sha256 an output's manifest names for
    its source) is ``source``'s sha256, or the one ``source``'s own manifest records when it is
    an embconv output (a sibling converted from the same file)."""
    if recorded is None:
        return
    actual = source.sha256
    if recorded in (actual, source.recorded_sha256):
        return
    raise VerificationError(f"it was converted from another file: its manifest names source sha256 "
                            f"{str(recorded)[:12]}…, {source.path} has {actual[:12]}…", path=where)


__all__ = ["check_source_hash", "verify_models", "verify_output"]

"""Prove that an output holds exactly what the model holds (exit 4 when it does not).

The one home of verification: a format hands over what its files hold (``Format.read`` and
``Format.holds``), and this module compares. ``verify_models`` compares two models;
``verify_output`` an output file with the model it was written from."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .chunks import CHUNK_BYTES, chunk_rows, output_dtype
from .errors import VerificationError
from .ir import EmbeddingModel, EmbeddingTable
from .lazy import encoded
from .mapped import release
from .writers import sniff

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


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


def _compare_table(e: EmbeddingTable, a: EmbeddingTable, dtype: np.dtype, where: str | None) -> None:
    """Compare one table chunk by chunk: only a chunk of each side is materialised at a time
    and the mapped pages of both are released after it, so memory stays bounded."""
    name = e.name
    exp_rows = e.rows
    if (a.rows, a.dim) != (exp_rows, e.dim):
        raise VerificationError(f"table {name!r}: shape {a.rows}x{a.dim}, expected {exp_rows}x{e.dim}", path=where)
    step = chunk_rows(e.dim, 8, CHUNK_BYTES)
    for start in range(0, exp_rows, step):
        stop = min(exp_rows, start + step)
        src = e.weight_rows(start, stop)
        exp = np.ascontiguousarray(src, dtype=dtype)
        act = np.ascontiguousarray(a.weight_rows(start, stop))
        if act.dtype != dtype:
            raise VerificationError(f"table {name!r}: weights are {act.dtype}, expected {dtype}", path=where)
        bad = _first_bad_row(exp, act)
        release(src)
        release(act)
        if bad is not None:
            raise VerificationError(f"table {name!r}: weights differ first at row {start + bad}", path=where)
    eb, ab = e.bias, a.bias
    if eb is not None:
        if ab is None:
            raise VerificationError(f"table {name!r}: the bias is missing", path=where)
        if ab.shape != eb.shape or ab.dtype != dtype:
            raise VerificationError(f"table {name!r}: bias is {ab.dtype}{list(ab.shape)}, expected "
                                    f"{dtype}{list(eb.shape)}", path=where)
        bstep = CHUNK_BYTES // 8
        for start in range(0, len(eb), bstep):
            es_, as_ = eb[start : start + bstep], ab[start : start + bstep]
            bad = _first_bad_row(np.ascontiguousarray(es_, dtype=dtype), np.ascontiguousarray(as_))
            release(es_)
            release(as_)
            if bad is not None:
                raise VerificationError(f"table {name!r}: bias differs first at row {start + bad}", path=where)
    elif eb is None and ab is not None:
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


def verify_models(expected: EmbeddingModel, actual: EmbeddingModel, *, dtype: str = "float32") -> None:
    """Compare every table of ``expected`` with ``actual`` (read back from an output): names,
    shapes, weights and biases bit-exact after conversion to ``dtype`` (NaN equals NaN), tokens
    and unknown_index. ``expected`` is what the output should hold (a format's ``holds`` view
    of the source: word2vec has no biases, maybe no unknown row). Raises VerificationError
    (exit 4) naming the table and the first differing row or token."""
    where = actual.source.path if actual.source else None
    dt = output_dtype(dtype)
    if list(expected.tables) != list(actual.tables):
        raise VerificationError(f"tables {list(actual.tables)}, expected {list(expected.tables)}", path=where)
    for name, e in expected.tables.items():
        _compare_table(e, actual.tables[name], dt, where)
    if actual.model.kind != expected.model.kind:
        raise VerificationError(f"model kind {actual.model.kind!r}, expected {expected.model.kind!r}", path=where)
    ey, ay = expected.model.y_range, actual.model.y_range
    if (ey is None) != (ay is None) or (ey is not None and ay is not None
                                        and tuple(map(float, ey)) != tuple(map(float, ay))):
        raise VerificationError(f"y_range {ay}, expected {ey}", path=where)


def verify_output(path: str | os.PathLike, expected: EmbeddingModel, *, dtype: str | None = None) -> None:
    """Prove that the output file ``path`` holds exactly what it should of ``expected`` (its
    source): the tables it holds, as its format holds them with the options the file records;
    ``dtype`` defaults to the one the file holds. VerificationError (exit 4) otherwise."""
    p = Path(path)
    fmt = sniff(p)
    actual = fmt.read(p)
    if fmt.one_table_per_file:
        missing = [n for n in actual.tables if n not in expected.tables]
        if missing:
            raise VerificationError(f"holds table {missing[0]!r}, which the source does not have", path=str(p))
        expected = expected.select(list(actual.tables))
    if dtype is None:
        dtype = str(next(iter(actual.tables.values())).weight_dtype)
    verify_models(fmt.holds(expected, fmt.options_of(p)), actual, dtype=dtype)


__all__ = ["verify_models", "verify_output"]

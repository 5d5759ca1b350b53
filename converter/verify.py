"""Prove that an output holds exactly what the model holds (exit 4 when it does not)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import VerificationError
from .ir import EmbeddingModel, EmbeddingTable
from .writers._common import CHUNK_BYTES, chunk_rows, output_dtype, release

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_W2V = ("word2vec-text", "word2vec-binary")


def _first_bad_row(exp: np.ndarray, act: np.ndarray) -> int | None:
    """Index of the first row whose bits differ (NaN equals NaN, whatever its payload)."""
    u = _UINT[exp.dtype.itemsize]
    diff = exp.view(u) != act.view(u)
    if exp.dtype.kind == "f":
        diff &= ~(np.isnan(exp) & np.isnan(act))
    if diff.ndim > 1:
        diff = diff.reshape(diff.shape[0], -1).any(axis=1)
    bad = np.flatnonzero(diff)
    return int(bad[0]) if bad.size else None


def _compare_table(e: EmbeddingTable, a: EmbeddingTable, dtype: np.dtype, word2vec: bool, drop_unknown: bool,
                   where: str) -> None:
    """Compare one table chunk by chunk: only a chunk of each side is materialised at a time
    and the mapped pages of both are released after it, so memory stays bounded."""
    name = e.name
    keep: np.ndarray | None = None
    unk = e.vocab.unknown_index if e.vocab is not None else None
    if word2vec and drop_unknown and unk is not None:
        keep = np.delete(np.arange(e.rows, dtype=np.int64), unk)
    exp_rows = e.rows if keep is None else len(keep)
    if (a.rows, a.dim) != (exp_rows, e.dim):
        raise VerificationError(f"table {name!r}: shape {a.rows}x{a.dim}, expected {exp_rows}x{e.dim}", path=where)
    step = chunk_rows(e.dim, 8, CHUNK_BYTES)
    for start in range(0, exp_rows, step):
        stop = min(exp_rows, start + step)
        if keep is not None:
            idx = keep[start:stop]
            src = e.weight_rows(int(idx[0]), int(idx[-1]) + 1)
            exp = np.ascontiguousarray(src[idx - idx[0]], dtype=dtype)
        else:
            src = e.weight_rows(start, stop)
            exp = np.ascontiguousarray(src, dtype=dtype)
        act = np.ascontiguousarray(a.weight_rows(start, stop))
        if act.dtype != dtype:
            raise VerificationError(f"table {name!r}: weights are {act.dtype}, expected {dtype}", path=where)
        bad = _first_bad_row(exp, act)
        release(src)
        release(act)
        if bad is not None:
            row = start + bad if keep is None else int(keep[start + bad])
            raise VerificationError(f"table {name!r}: weights differ first at row {row}", path=where)
    eb, ab = e.bias, a.bias
    if eb is not None and not (word2vec and ab is None):
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
        if keep is None:
            es = list(e.vocab.strings[start:stop])
        else:
            es = [e.vocab.strings[i] for i in keep[start:stop].tolist()]
        got = list(a.vocab.strings[start:stop])
        if es != got:
            i = next(i for i, (x, y) in enumerate(zip(es, got, strict=True)) if x != y)
            row = start + i if keep is None else int(keep[start + i])
            raise VerificationError(f"table {name!r}: token of row {row} is {got[i]!r}, expected {es[i]!r}",
                                    path=where)
    exp_unk = None if keep is not None else unk
    if a.vocab.unknown_index != exp_unk:
        raise VerificationError(f"table {name!r}: unknown_index {a.vocab.unknown_index}, expected {exp_unk}",
                                path=where)


def verify_models(expected: EmbeddingModel, actual: EmbeddingModel, *, dtype: str = "float32",
                  drop_unknown: bool = False) -> None:
    """Compare every table of ``expected`` with ``actual`` (read back from an output): names,
    shapes, weights and biases bit-exact after conversion to ``dtype`` (NaN equals NaN), tokens
    and unknown_index. Tolerates the documented word2vec treatments (tokens are compared after
    read-back un-escaping; no bias; the unknown row left out with ``drop_unknown``). Raises
    VerificationError (exit 4) naming the table and the first differing row or token."""
    where = actual.source.path if actual.source else None
    dt = output_dtype(dtype)
    if list(expected.tables) != list(actual.tables):
        raise VerificationError(f"tables {list(actual.tables)}, expected {list(expected.tables)}", path=where)
    word2vec = actual.source.container in _W2V
    for name, e in expected.tables.items():
        _compare_table(e, actual.tables[name], dt, word2vec, drop_unknown, where)
    if actual.model.kind != expected.model.kind:
        raise VerificationError(f"model kind {actual.model.kind!r}, expected {expected.model.kind!r}", path=where)
    ey, ay = expected.model.y_range, actual.model.y_range
    if (ey is None) != (ay is None) or (ey is not None and tuple(map(float, ey)) != tuple(map(float, ay))):
        raise VerificationError(f"y_range {ay}, expected {ey}", path=where)


def verify_output(path: str | os.PathLike, expected_model: EmbeddingModel, *, dtype: str | None = None) -> None:
    """read_output(path) and verify_models against ``expected_model``. For a word2vec file the
    table it holds is compared (and its sidecar says whether the unknown row was dropped); the
    dtype defaults to the one the output holds."""
    from .writers import _w2v, read_output

    p = Path(path)
    actual = read_output(p)
    expected = expected_model
    drop = False
    if actual.source.container in _W2V:
        names = list(actual.tables)
        if any(n not in expected.tables for n in names):
            raise VerificationError(f"holds table {names[0]!r}, which the source does not have", path=str(p))
        expected = expected.select(names)
        side = _w2v.read_sidecar(p) or {}
        drop = bool(side.get("embconv.word2vec", {}).get("dropped_rows"))
    if dtype is None:
        first = next(iter(actual.tables.values()))
        dtype = str(first.weight_dtype)
    verify_models(expected, actual, dtype=dtype, drop_unknown=drop)

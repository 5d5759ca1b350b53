"""Fast, vectorised text formatting of float32 values for word2vec text files.

Every value is written as the shortest decimal (6–9 significant digits) that reads back to
the same float32 both when parsed straight to float32 and when parsed to float64 first and
then rounded (gensim's ``np.float32(str)``); the decimal is chosen strictly inside the float32
rounding interval, so both parse routes agree. Values with |v| in [1e-4, 999) and zeros take
the vectorised path (positional notation, e.g. ``-0.012573022``, ``2.0``); everything else
(tiny, huge, inf, nan) uses numpy's own shortest repr (``str(np.float32(v))``).

Method: the value is scaled exactly into float64, candidates with 6, 7, 8 and 9 significant
digits are checked against the exact midpoints to the neighbouring float32 values, and the
chosen decimal becomes an integer N = value × 10^12 whose digits are looked up four at a time
in byte tables into a fixed 20-byte field per value; suppressed digits are NUL bytes, removed
at the end with one ``bytes.translate``.

Values outside the fast range use numpy's shortest repr, except where that decimal reads back
differently through float64 (rare, e.g. ``7.038531e-26``): then 9 significant digits.

Fast path: where the ``orjson`` package is installed (a dependency of embconv; 130 KB, no
dependencies of its own), rows are formatted by orjson's numpy serializer, which writes each
float32 with Ryu's shortest round-trip algorithm (``0.1``, ``-0.012573022``), about 5× faster
than the numpy method. Ryu guarantees the direct float32 parse; for |v| in [1e-4, 999) and ±0
bench/check_float_roundtrip.py --fast-range checks *every* float32 through the float64 route
too (gensim's). Values outside that range (tiny, huge, inf, NaN — which JSON cannot hold) are
put in as a sentinel and replaced by the checked repr above (about 0.2% of the values of
typical embeddings, mostly |v| < 1e-4).

The lines are assembled with as few passes over the text as possible: one ``translate`` turns
orjson's ``[[v,v],[v,v]]`` into ``[[v v\\n [v v\\n\\n``, the positions of the ``[`` (and of
the ``e`` of each sentinel) are found with numpy, and one ``b"".join`` puts each key before the
slice of its row, with the checked reprs in place of the sentinels.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import numpy as np

orjson: ModuleType | None
try:  # the fast path (see the module docstring)
    import orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    orjson = None

_W = 20  # bytes per value field: [sign i2 i1 i0] [. f1 f2 f3] [f4..f7] [f8..f11] [f12 sep 0 0]
_SEP_BYTE = 17


def _table(entries: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(e.ljust(4, b"\0") for e in entries), dtype="<u4").copy()


def _int_entry(i: int, neg: bool) -> bytes:
    s = (b"-" if neg else b"") + str(i).encode()
    return s.rjust(4, b"\0")


_INTW = _table([_int_entry(i, neg) for neg in (False, True) for i in range(1000)])
_DOTW = _table([b"." + b"%03d" % i for i in range(1000)])
_TAB4 = _table([b"%04d" % i for i in range(10000)])
_LASTW = _table([b"%d " % d for d in range(10)])


def _tz6() -> np.ndarray:
    """Trailing zeros of every 6-digit group (6 for 0)."""
    t = np.zeros(10**6, dtype=np.int8)
    t[0] = 6
    for k in range(1, 6):
        t[:: 10**k] += 1
    return t


_TZ6 = _tz6()


def _masks() -> tuple[np.ndarray, ...]:
    """AND masks for words 1..4, indexed by the number of fraction digits kept (0..12)."""
    layout = ((None, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, None, None, None))  # fraction digit per byte
    out = []
    for word in layout:
        rows = [bytes(0xFF if (k is None or k <= f) else 0 for k in word) for f in range(13)]
        out.append(np.frombuffer(b"".join(rows), dtype="<u4").copy())
    return tuple(out)


_M1, _M2, _M3, _M4 = _masks()
_P10 = 10.0 ** np.arange(0, 23)
_CHUNK_VALUES = 1 << 16


def _format_block(vals: np.ndarray, dim: int) -> bytes:
    """Rows of ``dim`` float32 values → b'v v v\\n' per row (fields joined, rows newline-ended)."""
    n = vals.size
    bits = vals.view("<u4")
    neg = (bits >> 31).astype(np.int64)
    absbits = bits & np.uint32(0x7FFFFFFF)
    a32 = absbits.view("<f4")
    a = a32.astype(np.float64)
    zero = absbits == 0
    fast = ((a >= 1e-4) & (a < 999.0)) | zero
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.floor(np.log10(np.where(fast & ~zero, a, 1.0))).astype(np.int64)
        np.clip(x, -4, 2, out=x)
        s = 8 - x
        p10 = _P10[s]
        y = a * p10  # exact: 24-bit significand × 10^s with s <= 12
        hi = (a + (absbits + np.uint32(1)).view("<f4").astype(np.float64)) * 0.5
        lo = (a + (absbits - np.uint32(1)).view("<f4").astype(np.float64)) * 0.5
        m = np.rint(y)
        ok = (m / p10 > lo) & (m / p10 < hi)
        chosen = m
        for d in (10.0, 100.0, 1000.0):  # fewer digits win when they still round-trip
            md = np.rint(y / d) * d
            bk = md / p10
            okd = (bk > lo) & (bk < hi)
            chosen = np.where(okd, md, chosen)
            ok |= okd
    fast &= ok | zero
    chosen[~fast | zero] = 0.0
    big_n = (chosen * _P10[x + 4]).astype(np.int64)  # value × 10^12, exact (< 10^15)
    i_part = big_n // 10**12
    fr = big_n - i_part * 10**12
    g1 = fr // 10**9
    r = fr - g1 * 10**9
    g2 = r // 10**5
    r2 = r - g2 * 10**5
    g3 = r2 // 10
    g4 = r2 - g3 * 10
    low6 = fr % 10**6
    tz = np.where(low6 != 0, _TZ6[low6], 6 + _TZ6[fr // 10**6])
    keep = np.maximum(12 - tz.astype(np.int64), 1)
    np.clip(i_part, 0, 999, out=i_part)
    w = np.empty((n, 5), dtype="<u4")
    w[:, 0] = _INTW[neg * 1000 + i_part]
    w[:, 1] = _DOTW[g1] & _M1[keep]
    w[:, 2] = _TAB4[g2] & _M2[keep]
    w[:, 3] = _TAB4[g3] & _M3[keep]
    w[:, 4] = _LASTW[g4] & _M4[keep]
    b = w.view(np.uint8).reshape(n, _W)
    slow = np.flatnonzero(~fast)
    if slow.size:
        strs = [checked_repr(v) for v in vals[slow]]
        b[slow, :_SEP_BYTE] = np.array(strs, dtype=f"S{_SEP_BYTE}").view(np.uint8).reshape(-1, _SEP_BYTE)
        b[slow, _SEP_BYTE:] = 0
        b[slow, _SEP_BYTE] = ord(" ")
    b.reshape(-1, dim * _W)[:, (dim - 1) * _W + _SEP_BYTE] = ord("\n")
    return w.tobytes().translate(None, b"\0")


_SENTINEL = np.float32(9e37)  # orjson prints it as b"9e+37"; no value in the fast range prints an "e"
_SENTINEL_TEXT = b"9e+37"
_SENTINEL_ARR = np.frombuffer(_SENTINEL_TEXT, dtype=np.uint8)
# orjson's "[[v,v],[v,v]]" → "[[v v\n [v v\n\n": commas become spaces and each row's "]" its
# newline, in the one pass that is needed anyway; the rows are then cut out between the "["s.
_ORJSON_TO_TEXT = bytes.maketrans(b",]", b" \n")
_FAST_LO = int(np.float32(1e-4).view(np.uint32))  # |v| bits in [_FAST_LO, _FAST_HI): orjson's text
_FAST_HI = int(np.float32(999.0).view(np.uint32))


def checked_repr(v: np.float32) -> bytes:
    """One value outside the fast range: numpy's shortest repr, unless that decimal reads back
    differently through float64 (it happens: ``7.038531e-26`` → 7.0385313e-26 in gensim), then
    9 significant digits, which always round-trip by both routes (the 9-digit decimal is within
    5e-10 relative of the value, far inside its float32 rounding interval)."""
    s = str(v)
    if np.isfinite(v) and np.float32(float(s)).view(np.uint32) != np.float32(v).view(np.uint32):
        s = f"{float(v):.9g}"
    return s.encode("ascii")


def _checked_reprs(vals: np.ndarray) -> list[bytes]:
    """:func:`checked_repr` of each float32 value, with the float64 read-back done vectorised
    (the per-value numpy scalar calls were most of its cost)."""
    reps = [str(v).encode("ascii") for v in vals]  # numpy's shortest float32 repr
    back = np.array([float(r) for r in reps], dtype=np.float64).astype(np.float32)
    for i in np.flatnonzero((back.view(np.uint32) != vals.view(np.uint32)) & np.isfinite(vals)).tolist():
        reps[i] = f"{float(vals[i]):.9g}".encode("ascii")
    return reps


def _odd_mask(block: np.ndarray) -> np.ndarray:
    """Where a float32 value is outside orjson's proven range: not ±0 and |v| not in
    [float32(1e-4), 999) (NaN and inf included). On the bits: one subtraction with wrap-around."""
    absbits = block.reshape(-1).view("<u4") & np.uint32(0x7FFFFFFF)
    odd = (absbits - np.uint32(_FAST_LO)) >= np.uint32(_FAST_HI - _FAST_LO)
    odd &= absbits != 0
    return odd


def _orjson_lines(prefixes: list[bytes], block: np.ndarray) -> bytes | None:
    """``prefix + b'v v … v\\n'`` per row of C-contiguous float32 ``block`` (n >= 1, dim >= 1),
    all in one bytes object; None if orjson's text is not laid out as expected (never seen;
    the caller then takes the numpy path: values as exact, some written differently)."""
    n, dim = block.shape
    if len(prefixes) != n:  # (the sentinels' reprs are put among the keys below)
        raise ValueError(f"{len(prefixes)} keys for {n} rows")
    if orjson is None:
        return None
    odd = _odd_mask(block)
    idx = np.flatnonzero(odd)
    if idx.size:
        # orjson's output is proven exact for both parse routes only in the fast range (see the
        # module docstring); other values go in as a sentinel, replaced by their checked repr.
        work = block.reshape(-1).copy()
        work[idx] = _SENTINEL
        text = orjson.dumps(work.reshape(n, dim), option=orjson.OPT_SERIALIZE_NUMPY)
    else:
        text = orjson.dumps(block, option=orjson.OPT_SERIALIZE_NUMPY)
    text = text.translate(_ORJSON_TO_TEXT)
    arr = np.frombuffer(text, dtype=np.uint8)
    opens = np.flatnonzero(arr == 0x5B)  # b"[": the outer one, then one per row
    if opens.size != n + 1:
        return None
    # Row i is text[opens[i+1] + 1 : opens[i+2] - 1]: its values and newline, without the space
    # (was a comma) before the next row's "["; the last row ends before the outer "]".
    seg_s = opens[1:] + 1
    seg_e = np.empty(n, dtype=np.int64)
    seg_e[:-1] = opens[2:] - 1
    seg_e[-1] = arr.size - 1
    if idx.size:
        es = np.flatnonzero(arr == 0x65)  # b"e": only the sentinels print one
        if es.size != idx.size or not np.array_equal(arr[es[:, None] + np.arange(-1, 4)],
                                                      np.broadcast_to(_SENTINEL_ARR, (es.size, 5))):
            return None
        # Cut the rows at the sentinels too: a segment after a sentinel gets its repr in front.
        starts = np.concatenate([seg_s, es + 4])
        order = np.argsort(starts, kind="stable")
        seg_s = starts[order]
        seg_e = np.sort(np.concatenate([seg_e, es - 1]))
        pre = prefixes + _checked_reprs(block.reshape(-1)[idx])
        prefixes = [pre[i] for i in order.tolist()]
    mv = memoryview(text)
    parts: list[bytes | memoryview] = [b""] * (2 * len(prefixes))
    parts[0::2] = prefixes
    parts[1::2] = [mv[a:b] for a, b in zip(seg_s.tolist(), seg_e.tolist())]
    return b"".join(parts)


def _numpy_lines(prefixes: list[bytes], block: np.ndarray) -> bytes:
    """:func:`_orjson_lines` by the pure-numpy formatter (without orjson)."""
    lines = _format_block(block.reshape(-1), block.shape[1]).split(b"\n")
    lines.pop()  # after the final newline
    return b"".join([x for pair in zip(prefixes, lines, strict=True) for x in (pair[0], pair[1], b"\n")])


def _lines(prefixes: list[bytes], block: np.ndarray) -> bytes:
    if orjson is not None:
        text = _orjson_lines(prefixes, block)
        if text is not None:
            return text
    return _numpy_lines(prefixes, block)


def format_values(values: np.ndarray) -> bytes:
    """A 1-D float32 array as ``b'v v … v'`` (the same formatting as the rows of a file)."""
    v = np.ascontiguousarray(values, dtype="<f4").reshape(1, -1)
    return _lines([b""], v)[:-1] if v.size else b""


def iter_lines(tokens: list[bytes], rows: np.ndarray) -> Iterator[bytes]:
    """word2vec text lines ``token v1 … vd\\n`` for float32 ``rows`` (n, d >= 1) and escaped
    token bytes, yielded as byte blocks of about 64K values."""
    n, dim = rows.shape
    if n == 0:
        return
    step = max(1, _CHUNK_VALUES // dim)
    for start in range(0, n, step):
        vals = np.ascontiguousarray(rows[start : start + step], dtype="<f4")
        yield _lines([t + b" " for t in tokens[start : start + step]], vals)


def format_rows(tokens: list[bytes], rows: np.ndarray) -> bytes:
    """All lines of :func:`iter_lines` as one bytes object."""
    return b"".join(iter_lines(tokens, rows))

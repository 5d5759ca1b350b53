"""Exhaustive proof (not a test: it takes minutes to an hour) that the word2vec text formatter's output
reads back to the identical float32 by BOTH parse routes, for every finite float32:
straight to float32 (C ``strtof``, Rust, fastText) and through float64 then rounded
(Python ``float`` / ``np.float32(str)``, what gensim does).

    python bench/check_float_roundtrip.py --fast-range      # the orjson range, ~2 min on 2 cores
    python bench/check_float_roundtrip.py [--workers 2] [--step 16]   # all 2^32 (step 1: ~1 h)

``--step k`` checks every k-th bit pattern (1 = all 2^32). Prints the first failures, exits 1
on any."""

from __future__ import annotations

import argparse
import ctypes
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

_LIBC = ctypes.CDLL(None)
_LIBC.strtof.restype = ctypes.c_float
_LIBC.strtof.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]


def check_range(args: tuple[int, int, int, bool]) -> tuple[int, list[str]]:
    from converter.writers._floatfmt import format_values

    lo, hi, step, strtof_sample = args
    bad: list[str] = []
    block = 1 << 20
    n = 0
    for start in range(lo, hi, block * step):
        bits = np.arange(start, min(hi, start + block * step), step, dtype=np.uint64).astype(np.uint32)
        vals = bits.view(np.float32)
        vals = vals[np.isfinite(vals)]
        if not vals.size:
            continue
        text = format_values(vals)
        parts = text.split()
        via64 = np.array(parts, dtype=np.float64).astype(np.float32)  # Python/gensim route
        direct = np.fromstring(text, dtype=np.float32, sep=" ")  # noqa: NPY201 - numpy's text parser
        for got, route in ((via64, "float64->float32"), (direct, "numpy float32")):
            wrong = np.flatnonzero(got.view(np.uint32) != vals.view(np.uint32))
            for i in wrong[:5]:
                bad.append(f"{vals[i]!r} bits {vals.view(np.uint32)[i]:#010x} -> {parts[i]!r} -> {got[i]!r} ({route})")
        if strtof_sample:  # C strtof on a sample (slow through ctypes)
            for i in range(0, vals.size, 997):
                if np.float32(_LIBC.strtof(parts[i], None)).view(np.uint32) != vals.view(np.uint32)[i]:
                    bad.append(f"{vals[i]!r} -> {parts[i]!r} (strtof)")
        n += vals.size
    return n, bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--no-strtof", action="store_true")
    ap.add_argument("--fast-range", action="store_true",
                    help="only |v| in [1e-4, 999) (both signs): the values orjson formats (about 1 minute)")
    a = ap.parse_args()
    if a.fast_range:
        lo, hi = int(np.float32(1e-4).view(np.uint32)), int(np.float32(999).view(np.uint32))
        ranges = [(lo, hi), (lo | 0x80000000, hi | 0x80000000)]
    else:
        ranges = [(0, 1 << 32)]
    jobs = []
    for lo, hi in ranges:
        span = -(-(hi - lo) // 32)
        jobs += [(s, min(hi, s + span), a.step, not a.no_strtof) for s in range(lo, hi, span)]
    checked, bad = 0, []
    with ProcessPoolExecutor(a.workers) as ex:
        for n, b in ex.map(check_range, jobs):
            checked += n
            bad += b
            for line in b:
                print(line, flush=True)
    what = "in [1e-4, 999) and (-999, -1e-4]" if a.fast_range else "finite float32 values"
    print(f"{checked:,} {what} checked (step {a.step}): {'OK' if not bad else 'FAILED'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

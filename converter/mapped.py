"""Keeping the resident set small while streaming through memory-mapped files."""

from __future__ import annotations

import mmap

import numpy as np


def _mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The memory map an array's bytes live in (following numpy bases and memoryviews), or None."""
    base: object = arr
    for _ in range(64):
        if isinstance(base, mmap.mmap):
            return base
        if isinstance(base, memoryview):
            base = base.obj
        elif isinstance(base, np.ndarray):
            base = base.base
        else:
            return None
    return None


def release(arr: np.ndarray | None) -> None:
    """Tell the kernel this process is done with the pages of a memory-mapped array
    (``MADV_DONTNEED``). The file stays in the page cache and a later access simply maps it
    again, so this never changes a value; it keeps the pages a streaming pass has read from
    counting in the resident set, so peak RSS stays bounded by the chunk size instead of
    growing to the size of the mapped source or read-back file. A no-op for arrays that are
    not views of a map, and where the platform has no ``madvise``."""
    if arr is None or arr.size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
        return
    mm = _mapping(arr)
    if mm is None or mm.closed or not arr.flags.c_contiguous:
        return
    try:
        start = np.frombuffer(mm, dtype=np.uint8, count=1).ctypes.data
    except (ValueError, TypeError, BufferError):
        return
    lo = arr.ctypes.data - start
    hi = lo + arr.nbytes  # a C-contiguous array spans exactly its bytes
    lo -= lo % mmap.PAGESIZE
    if lo < 0 or hi > len(mm) or hi <= lo:
        return
    try:
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    except (OSError, ValueError):
        pass

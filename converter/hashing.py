"""The source file's sha256, computed in a background thread while the file is read."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future


def hash_in_background(path: str | os.PathLike) -> Future[str] | None:
    """A Future of ``file_sha256(path)`` computed in a thread (hashlib releases the GIL, so the
    ~1 s a GiB takes overlaps with loading), or None when ``path`` is not a file."""
    if not os.path.isfile(path):
        return None
    import concurrent.futures  # ~10 ms: only commands that write a manifest need it

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embconv-sha256")
    future = pool.submit(file_sha256, path)
    pool.shutdown(wait=False)
    return future


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The hex sha256 of a file's bytes, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()

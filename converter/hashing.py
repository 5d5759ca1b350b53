"""The source file's sha256, computed in a background thread while the file is read, and what
says the file is still the one that was hashed (its identity)."""

from __future__ import annotations

import hashlib
import os
from typing import IO, TYPE_CHECKING

from .errors import UnreadableInputError

if TYPE_CHECKING:
    from concurrent.futures import Future

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns): a file is the one that was read while
#: these are unchanged (a write changes the times, a replacement the device or inode).
Identity = tuple[int, int, int, int, int]

CHANGED = "the source changed while being read"


def identity_of(st: os.stat_result) -> Identity:
    """A file's identity from its ``stat``."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def changed_error(path: str | os.PathLike, was: tuple[int, ...] | None,
                  now: tuple[int, ...] | None) -> UnreadableInputError:
    """UnreadableInputError (exit 3) saying how the file at ``path`` changed since it was opened."""
    if now is None:
        how = "it was removed or renamed"
    elif was is not None and now[:2] != was[:2]:
        how = "the path names another file now"
    elif was is not None and now[2] != was[2]:
        how = f"it is now {now[2]:,} bytes, was {was[2]:,}"
    else:
        how = "it was modified"
    return UnreadableInputError(f"{CHANGED} ({how})", path=os.fsdecode(path))


class PendingHash:
    """``file_sha256(path)`` computed in a thread (hashlib releases the GIL, so the ~1 s a GiB
    takes overlaps with loading), and ``identity``: the file's identity when it was opened. The
    hash fails with "the source changed while being read" when the file changes while it is
    read."""

    def __init__(self, path: str | os.PathLike, identity: Identity, future: Future[str]) -> None:
        self.path = path
        self.identity = identity
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> str:
        return self._future.result()


def hash_in_background(path: str | os.PathLike) -> PendingHash | None:
    """The sha256 of the file ``path`` names, computed in a background thread (a
    :class:`PendingHash`), or None when ``path`` is not a file."""
    if not os.path.isfile(path):
        return None
    try:
        f = open(path, "rb")  # opened here, so ``identity`` is the file being hashed
    except OSError:
        return None  # the reader that opens it next says why
    import concurrent.futures  # ~10 ms: only commands that write a manifest need it
    import threading

    # A daemon thread, not a ThreadPoolExecutor (whose workers the interpreter joins at exit): an
    # interrupted run ends at once, and a second Ctrl-C never lands in threading._shutdown.
    try:
        start = identity_of(os.fstat(f.fileno()))
        future: Future[str] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                f.close()
                return
            try:
                future.set_result(_hash_open_file(path, f, start))
            except BaseException as e:
                future.set_exception(e)

        threading.Thread(target=run, name="embconv-sha256", daemon=True).start()
    except BaseException:
        f.close()
        raise
    return PendingHash(path, start, future)


def _hash_open_file(path: str | os.PathLike, f: IO[bytes], start: Identity) -> str:
    with f:
        digest = _sha256_of(f)
        now = identity_of(os.fstat(f.fileno()))
    if now != start:  # written to while hashed: the digest is of no version of the file
        raise changed_error(path, start, now)
    return digest


def _sha256_of(f: IO[bytes], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    while True:
        b = f.read(chunk)
        if not b:
            break
        h.update(b)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The hex sha256 of a file's bytes, read ``chunk`` bytes at a time."""
    with open(path, "rb") as f:
        return _sha256_of(f, chunk)


__all__ = ["CHANGED", "Identity", "PendingHash", "changed_error", "file_sha256", "hash_in_background", "identity_of"]

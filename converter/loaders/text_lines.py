"""A one-token-a-line text sidecar as a vocabulary that stays in its file.

A million-line sidecar held as Python strings costs ~60 bytes a row; even packed it grows with
the table. ``TextLines`` reads the file once to check it and to note where every 65,536th line
starts, then reads rows back on demand, a block at a time, so memory stays the same whatever the
vocabulary's size. Writers and verification ask for blocks as UTF-8 bytes + offsets
(``encoded``), which need no decoding at all.

Tokens are what ``f.read().split("\\n")`` gives (text opened with ``newline=""``), without a
final empty line, and with one ``\\r`` before the newline taken off (Windows line ends)."""

from __future__ import annotations

import codecs
import os

import numpy as np

from ..errors import UnreadableInputError
from ..lazy import ChunkedStrings

STEP = 1 << 16  # rows per index entry (and per block read back)
_SCAN = 16 << 20


class TextLines(ChunkedStrings):
    """The lines of a UTF-8 text file, read from the file on demand (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            st = os.stat(path)
            starts, n = self._index(path)
        except OSError as e:
            raise UnreadableInputError(f"{path}: cannot read: {e.strerror or e}") from None
        self._stamp = (st.st_size, st.st_mtime_ns)
        self._starts = starts  # byte where line k·STEP starts, and the file size at the end
        super().__init__(n, self._decode, STEP)

    @staticmethod
    def _index(path: str) -> tuple[np.ndarray, int]:
        """(the byte where every STEP-th line starts, then the file size; the number of lines),
        in one pass that also checks the UTF-8."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        marks = [0]
        newlines = 0
        size = 0
        last = b""
        with open(path, "rb") as f:
            while block := f.read(_SCAN):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as e:
                    raise UnreadableInputError(f"{path}: not UTF-8 text (byte {size + e.start}: {e.reason})") from None
                found = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
                # newline m is followed by line m + 1: keep the starts of lines STEP, 2·STEP, …
                first = (-newlines - 1) % STEP
                marks.extend((found[first::STEP] + size + 1).tolist())
                newlines += len(found)
                size += len(block)
                last = block[-1:]
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise UnreadableInputError(f"{path}: not UTF-8 text (it ends inside a character)") from None
        n = newlines if size == 0 or last == b"\n" else newlines + 1
        starts = [m for m in marks if m < size]  # a newline at the very end starts no line
        return np.array([*starts, size], dtype=np.int64), n

    def _block(self, k: int) -> bytes:
        """The bytes of lines k·STEP … (k+1)·STEP - 1, newlines included."""
        lo, hi = int(self._starts[k]), int(self._starts[k + 1])
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_size, st.st_mtime_ns) != self._stamp:
                raise UnreadableInputError(f"{self.path}: the file changed while it was read")
            data = os.pread(f.fileno(), hi - lo, lo)
        if len(data) != hi - lo:
            raise UnreadableInputError(f"{self.path}: the file changed while it was read")
        return data

    def _lines(self, k: int) -> list[str]:
        data = self._block(k)
        text = data.decode("utf-8")  # checked when the file was indexed
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines

    def _decode(self, start: int, stop: int) -> list[str]:
        out: list[str] = []
        for k in range(start // STEP, (stop - 1) // STEP + 1):
            lines = self._lines(k)
            out.extend(lines[max(start - k * STEP, 0) : min(stop - k * STEP, len(lines))])
        return out

    def encoded(self, start: int, stop: int) -> tuple[bytes, np.ndarray]:
        """(UTF-8 bytes of lines ``start:stop`` laid end to end, offsets from 0); a whole
        block is cut from the file without decoding it."""
        if start % STEP == 0 and stop == min(start + STEP, len(self)) and stop > start:
            data = self._block(start // STEP)
            if b"\r" not in data:
                ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
                if len(ends) < stop - start:  # the last line has no newline
                    ends = np.append(ends, len(data))
                offsets = np.zeros(stop - start + 1, dtype=np.int64)
                offsets[1:] = ends[: stop - start] - np.arange(stop - start)
                return data.translate(None, b"\n"), offsets
        lines = [s.encode("utf-8") for s in self._decode(start, stop)] if stop > start else []
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return b"".join(lines), offsets

    def __repr__(self) -> str:
        return f"TextLines({self.path!r}, {len(self)} lines)"

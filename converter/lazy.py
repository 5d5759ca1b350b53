"""Lazy values the IR holds: arrays handed over on demand, string sequences decoded a chunk at
a time, and views that leave one row out. Nothing here knows fastai or any output format."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .mapped import release


class ArraySource(Protocol):
    """Anything that can hand over its values as numpy: a TensorRef (lazy, memory-mapped), an
    ``InMemory`` array, a reader's lazy view. Optional extras that callers look up with
    ``getattr``: ``dtype``, ``rows(start, stop)`` (just those rows) and ``file_span()`` (where the
    bytes lie in the source file, for a file-to-file copy)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def to_numpy(self) -> np.ndarray: ...


class InMemory:
    """An ndarray dressed as an ArraySource (readers of embconv outputs, tests)."""

    def __init__(self, array: np.ndarray, dtype_name: str | None = None) -> None:
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.dtype_name = dtype_name or str(array.dtype)

    def to_numpy(self) -> np.ndarray:
        return self.array


class ChunkedStrings(Sequence):
    """A read-only sequence of ``n`` items made on demand, a chunk at a time, by
    ``fetch(start, stop)``. Readers of embconv outputs use it so that a vocabulary of millions of
    tokens read back for verification is never held whole in memory: indexing or slicing makes
    just those rows; iteration makes ``chunk`` rows at a time."""

    def __init__(self, n: int, fetch: Callable[[int, int], Any], chunk: int = 1 << 16) -> None:
        self._n = n
        self._fetch = fetch
        self.chunk = chunk

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            start, stop, step = i.indices(self._n)
            if step != 1:
                return self[start:stop][::step] if stop > start else []
            return self._fetch(start, stop) if stop > start else []
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._fetch(i, i + 1)[0]

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, self._n, self.chunk):
            yield from self._fetch(start, min(self._n, start + self.chunk))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != self._n:
            return False
        for start in range(0, self._n, self.chunk):
            stop = min(self._n, start + self.chunk)
            if list(self._fetch(start, stop)) != list(other[start:stop]):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._n} items)"


class PackedStrings(ChunkedStrings):
    """``n`` strings held as their UTF-8 bytes laid end to end (``utf8``, uint8) and ``n + 1``
    int64 ``offsets`` (string i is ``utf8[offsets[i]:offsets[i+1]]``): 8 bytes a row
    plus the text, where a list of Python strings costs ~60 bytes a row. Either array may be a
    memory map. Strings are decoded on demand, a chunk at a time; :func:`encoded` hands the
    bytes on without decoding, so writers and verification move them as bytes. The caller
    checks that the offsets tile ``utf8`` and that it decodes (``surrogatepass``)."""

    def __init__(self, utf8: np.ndarray, offsets: np.ndarray, chunk: int = 1 << 16) -> None:
        self.utf8 = utf8
        self.offsets = offsets
        super().__init__(len(offsets) - 1, self._decode, chunk)

    def _decode(self, start: int, stop: int) -> list[str]:
        raw, o = self.encoded(start, stop)
        text = raw.decode("utf-8", "surrogatepass")
        bounds = o.tolist()
        if len(text) == len(raw):  # ASCII: slice the decoded text directly
            return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        return [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds, bounds[1:], strict=False)]

    def encoded(self, start: int, stop: int) -> tuple[bytes, np.ndarray]:
        """(UTF-8 bytes of strings ``start:stop``, their ``stop - start + 1`` offsets from 0)."""
        window = self.offsets[start : stop + 1]
        o = np.array(window, dtype=np.int64)
        base = int(o[0])
        piece = self.utf8[base : int(o[-1])]
        data = piece.tobytes()
        release(window)  # mapped read-back: give the pages back once copied
        release(piece)
        return data, o - base

    def __repr__(self) -> str:
        return f"PackedStrings({len(self)} strings, {len(self.utf8)} bytes)"


class WithoutRow(ChunkedStrings):
    """``base`` with row ``row`` left out, read a slice at a time (a view: nothing is copied).

    ``base`` is either an ArraySource (a weight or bias: ``rows``/``to_numpy`` give arrays, so a
    view of a memory-mapped table stays memory-mapped) or a sequence of strings (a vocabulary:
    indexing, iteration and :func:`encoded` give strings or their bytes)."""

    def __init__(self, base: Any, row: int) -> None:
        self.base, self.row = base, row
        self._is_array: bool = base._is_array if isinstance(base, WithoutRow) else hasattr(base, "to_numpy")
        base_shape = tuple(base.shape) if self._is_array else (len(base),)
        n = int(base_shape[0])
        self.shape: tuple[int, ...] = (n - 1, *base_shape[1:])
        self.dtype = getattr(base, "dtype", None)
        super().__init__(n - 1, self.rows)

    def _around(self, start: int, stop: int) -> tuple[int, int]:
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(start, stop)
        return (start if start < self.row else start + 1), (stop if stop <= self.row else stop + 1)

    def rows(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of the view: an ndarray for an array base, a list of strings else."""
        lo, hi = self._around(start, stop)
        if self._is_array:
            base_rows = getattr(self.base, "rows", None)
            a = base_rows(lo, hi) if base_rows is not None else self.base.to_numpy()[lo:hi]
            return np.delete(a, self.row - lo, axis=0) if lo <= self.row < hi else a
        items = list(self.base[lo:hi])
        if lo <= self.row < hi:
            del items[self.row - lo]
        return items

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.rows(0, len(self)))

    def encoded(self, start: int, stop: int) -> tuple[bytes, np.ndarray]:
        """A vocabulary view's strings ``start:stop`` as UTF-8 bytes and offsets (see :func:`encoded`)."""
        lo, hi = self._around(start, stop)
        data, offsets = encoded(self.base, lo, hi)
        if lo <= self.row < hi:
            j = self.row - lo
            a, b = int(offsets[j]), int(offsets[j + 1])
            data = data[:a] + data[b:]
            offsets = np.concatenate((offsets[: j + 1], offsets[j + 2 :] - (b - a)))
        return data, offsets

    def __repr__(self) -> str:
        return f"WithoutRow({self.base!r}, row {self.row})"


def encoded(strings: Sequence[str], start: int, stop: int) -> tuple[bytes, np.ndarray]:
    """(UTF-8 bytes of ``strings[start:stop]`` laid end to end, ``stop - start + 1`` int64
    offsets from 0): how writers store a vocabulary and how verification compares two. Lone
    surrogates (old pickles) are kept with ``surrogatepass``, so equal strings ⇔ equal bytes
    and offsets."""
    own = getattr(strings, "encoded", None)  # packed or file-backed: bytes without decoding
    if own is not None:
        data, offsets = own(start, stop)
        return data, offsets
    chunk = list(strings[start:stop])
    joined = "".join(chunk).encode("utf-8", "surrogatepass")
    lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
    if len(joined) != int(lengths.sum()):  # not all ASCII: bytes != characters
        lengths = np.fromiter((len(s.encode("utf-8", "surrogatepass")) for s in chunk), dtype=np.int64,
                              count=len(chunk))
    offsets = np.zeros(len(chunk) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return joined, offsets

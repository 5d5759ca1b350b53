"""Lazy storages and tensors: references into the source file, materialised only on demand.

A ``TensorRef`` is what ``torch._utils._rebuild_tensor*`` would have produced, minus torch:
a storage, an element offset, a shape and a stride. Its geometry is checked against the
storage when it is made, so no later view can reach outside the storage's bytes.

Bytes that live in the source file's memory map are read with ``pread`` wherever a chunk is
asked for (``TensorRef.rows``): a file that shrinks while it is converted would otherwise kill
the process with SIGBUS at the first page past its new end (or make a ``write`` from the map
fail with EFAULT). A short read, or a file whose size or mtime differ from when it was opened,
is UnreadableInputError "the source changed while being read" (exit 3) instead."""

from __future__ import annotations

import mmap
import os
import weakref
from dataclasses import dataclass, field

import numpy as np

from ..errors import ResourceLimitError, UnreadableInputError
from ..hashing import CHANGED, changed_error


@dataclass(frozen=True)
class DType:
    """A torch dtype: its torch name, the numpy dtype of its stored bytes, and its size."""

    name: str
    numpy: str  # little-endian numpy spelling of the stored bytes; bfloat16 is stored as '<u2'
    itemsize: int


_DTYPES = [
    DType("float32", "<f4", 4),
    DType("float64", "<f8", 8),
    DType("float16", "<f2", 2),
    DType("bfloat16", "<u2", 2),
    DType("int64", "<i8", 8),
    DType("int32", "<i4", 4),
    DType("int16", "<i2", 2),
    DType("int8", "i1", 1),
    DType("uint8", "u1", 1),
    DType("uint16", "<u2", 2),
    DType("uint32", "<u4", 4),
    DType("uint64", "<u8", 8),
    DType("bool", "?", 1),
    DType("complex64", "<c8", 8),
    DType("complex128", "<c16", 16),
]
DTYPES: dict[str, DType] = {d.name: d for d in _DTYPES}

# torch.<X>Storage class name -> dtype (torch/storage.py _dtype_to_storage_type_map).
STORAGE_CLASSES: dict[str, str] = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}

# torch.<dtype> globals (used by _rebuild_tensor_v3) -> dtype name.
TORCH_DTYPE_GLOBALS: dict[str, str] = {
    **{d: d for d in DTYPES},
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
}

MAX_NDIM = 64

# What a storage's bytes can live in: the file's memory map, or bytes read from it.
Buffer = bytes | bytearray | memoryview | mmap.mmap

_PREADV = hasattr(os, "preadv")


class _SourceFile:
    """A descriptor of the file a memory map was made of, opened when the first storage is
    bound to that map (while the path still names that file): reads through it with ``pread``
    cannot fault, and ``fstat`` on it tells whether the file changed. Shared by every storage of
    the map; closed when the last of them is gone."""

    __slots__ = ("fd", "__weakref__")

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


_SOURCE_FILES: weakref.WeakKeyDictionary[mmap.mmap, _SourceFile] = weakref.WeakKeyDictionary()


def _source_file(mm: mmap.mmap, path: str) -> _SourceFile | None:
    found = _SOURCE_FILES.get(mm)
    if found is None and _PREADV:
        try:
            found = _SOURCE_FILES[mm] = _SourceFile(path)
        except (OSError, ValueError, TypeError):
            return None  # reads fall back to the map, checking the file's size first
    return found


@dataclass(eq=False)
class StorageRef:
    """One storage of the file: a dtype and an element count, bound to bytes once they are located."""

    key: str
    dtype: DType
    numel: int
    location: str
    byteorder: str = "little"
    origin: str | None = None  # the file it came from, for error messages
    # (st_dev, st_ino, st_size, st_mtime_ns) of that file when the bytes are its memory map:
    # lets a writer copy them from the file itself and be sure it is still the same file
    file_identity: tuple[int, int, int, int] | None = None
    _buffer: Buffer | None = field(default=None, repr=False)  # the buffer holding the bytes
    _byte_offset: int = 0
    _base: StorageRef | None = field(default=None, repr=False)  # legacy storage views
    _base_element_offset: int = 0
    _file: _SourceFile | None = field(default=None, repr=False)  # the mapped file, for pread

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def bind(self, buffer: Buffer, byte_offset: int, available: int) -> None:
        """Attach the bytes; ``available`` is how many bytes the container holds for it."""
        if available < self.nbytes:
            raise UnreadableInputError(
                f"storage {self.key!r} claims {self.numel} {self.dtype.name} elements "
                f"({self.nbytes} bytes) but the file holds only {available} bytes for it"
            )
        self._buffer = buffer
        self._byte_offset = byte_offset
        if isinstance(buffer, mmap.mmap) and self.origin is not None:
            self._file = _source_file(buffer, self.origin)

    @property
    def is_bound(self) -> bool:
        return self._buffer is not None or (self._base is not None and self._base.is_bound)

    def raw(self) -> np.ndarray:
        """The storage's elements as a read-only numpy array over the file (no copy)."""
        if self._base is not None:
            base = self._base.raw()
            return base[self._base_element_offset : self._base_element_offset + self.numel]
        if self._buffer is None:
            raise UnreadableInputError(f"storage {self.key!r} has no data in the file")
        dt = np.dtype(self.dtype.numpy)
        if self.byteorder == "big":
            dt = dt.newbyteorder(">")
        return np.frombuffer(self._buffer, dtype=dt, count=self.numel, offset=self._byte_offset)

    def _root(self) -> tuple[StorageRef, int]:
        """The storage that holds the bytes, and where this one starts in it (legacy views)."""
        storage, first = self, 0
        while storage._base is not None:
            first += storage._base_element_offset * storage._base.dtype.itemsize
            storage = storage._base
        return storage, first

    def _changed(self, now: os.stat_result | None) -> UnreadableInputError:
        was = self.file_identity
        return changed_error(self.origin or "?", (*was, 0) if was is not None else None,
                             (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns, 0) if now is not None else None)

    def _check_file(self, end: int) -> None:
        """Raise "the source changed while being read" unless the mapped file still holds bytes
        up to ``end`` (file offset) and, where its identity is known, is unchanged. Only for a
        storage that holds its bytes itself (``_root``)."""
        if not isinstance(self._buffer, mmap.mmap):
            return
        if self._file is not None and self.file_identity is not None:
            st = os.fstat(self._file.fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != tuple(self.file_identity):
                raise self._changed(st)
            return
        try:
            size = self._buffer.size()
        except (OSError, ValueError):
            return  # closed: numpy's view of it would say so
        if size < end:
            raise UnreadableInputError(f"{CHANGED} (it is now {size:,} bytes; the data reach byte {end:,})",
                                       path=self.origin)

    def check_mapped(self, first: int, nbytes: int) -> None:
        """Before a view of bytes ``first .. first+nbytes`` of this storage is handed out: the
        source file must still hold them (see ``_check_file``); a no-op for bytes in memory."""
        root, at = self._root()
        root._check_file(root._byte_offset + at + first + nbytes)

    def read_bytes(self, first: int, nbytes: int) -> np.ndarray | None:
        """Bytes ``first .. first+nbytes`` of this storage read from the source file with
        ``pread`` into a new uint8 array, or None when the storage's bytes are not (only) in
        the file: bytes in memory, or no descriptor (a view of the map is then safe to hand out
        once ``check_mapped`` has passed). UnreadableInputError "the source changed while being
        read" when the file is shorter than it was, or another size or mtime."""
        out = np.empty(nbytes, dtype=np.uint8)
        return out if self.read_into(first, out) else None

    def read_into(self, first: int, out: np.ndarray, *, check: bool = True) -> bool:
        """Fill the uint8 array ``out`` with the bytes from byte ``first`` of this storage,
        read with ``pread`` (see :meth:`read_bytes`); False, and nothing read, when they are not
        to be read from the file that way. ``check=False`` skips the ``fstat`` comparison (a
        caller reading one range in pieces checks once); a short read is always an error."""
        root, at = self._root()
        if not isinstance(root._buffer, mmap.mmap):
            return False
        offset = root._byte_offset + at + first
        nbytes = out.nbytes
        if root._file is None or root.file_identity is None:
            root._check_file(offset + nbytes)
            return False
        if check:
            root._check_file(offset + nbytes)
        view = memoryview(out.data).cast("B")
        done = 0
        try:
            while done < nbytes:
                k = os.preadv(root._file.fd, [view[done:]], offset + done)
                if k <= 0:
                    raise root._changed(os.fstat(root._file.fd))
                done += k
        except OSError as e:
            raise UnreadableInputError(f"cannot read: {e.strerror or e}", path=root.origin) from None
        return True


#: Bytes read at a time when rows are converted as they are read (``TensorRef.rows_as``): small
#: enough to stay in the CPU cache between the read and the conversion.
_PIECE_BYTES = 1 << 20


def _check_int_tuple(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > MAX_NDIM:
        raise UnreadableInputError(f"tensor {what} is not a tuple of at most {MAX_NDIM} integers")
    out = []
    for v in value:
        if type(v) is not int:
            raise UnreadableInputError(f"tensor {what} holds a non-integer {type(v).__name__}")
        out.append(v)
    return tuple(out)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


class TensorRef:
    """A tensor in the source file, not yet read: storage + offset + shape + stride (elements)."""

    __slots__ = ("storage", "storage_offset", "shape", "stride", "dtype", "subclass", "requires_grad")

    def __init__(self, storage: StorageRef, storage_offset: object, shape: object, stride: object,
                 dtype: DType | None = None) -> None:
        if not isinstance(storage, StorageRef):
            raise UnreadableInputError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
        if type(storage_offset) is not int:
            raise UnreadableInputError("tensor storage offset is not an integer")
        shape_t = _check_int_tuple(shape, "size")
        if stride is None:  # 0.1.10 tensors may omit it
            stride = contiguous_strides(shape_t)
        stride_t = _check_int_tuple(stride, "stride")
        if len(stride_t) != len(shape_t):
            raise UnreadableInputError(f"tensor has {len(shape_t)} sizes but {len(stride_t)} strides")
        if storage_offset < 0 or any(s < 0 for s in shape_t) or any(s < 0 for s in stride_t):
            raise UnreadableInputError(
                f"tensor geometry has a negative offset, size or stride "
                f"(offset {storage_offset}, size {shape_t}, stride {stride_t})"
            )
        numel = 1
        for s in shape_t:
            numel *= s
        if numel > 0:
            last = storage_offset + sum((s - 1) * st for s, st in zip(shape_t, stride_t))
            if last >= storage.numel:
                raise UnreadableInputError(
                    f"tensor of size {shape_t}, stride {stride_t} at offset {storage_offset} reaches element "
                    f"{last}, outside its storage {storage.key!r} of {storage.numel} elements"
                )
        # An empty tensor reads no bytes, so any non-negative offset is harmless (torch agrees).
        self.storage = storage
        self.storage_offset = storage_offset
        self.shape = shape_t
        self.stride = stride_t
        self.dtype = dtype or storage.dtype
        self.subclass: str | None = None
        self.requires_grad = False
        if self.dtype.itemsize != storage.dtype.itemsize and storage.dtype.name != "uint8":
            raise UnreadableInputError(f"dtype {self.dtype.name} does not fit a {storage.dtype.name} storage")
        if self.dtype is not storage.dtype:
            # _rebuild_tensor_v3: an untyped (byte) storage read as another dtype.
            if storage.numel % self.dtype.itemsize:
                raise UnreadableInputError(f"byte storage {storage.key!r} is not a whole number of {self.dtype.name}")
            if numel > 0 and (last + 1) * self.dtype.itemsize > storage.numel:
                raise UnreadableInputError(f"tensor reaches outside its byte storage {storage.key!r}")

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def is_contiguous(self) -> bool:
        expected = contiguous_strides(self.shape)
        return all(sz <= 1 or st == e for sz, st, e in zip(self.shape, self.stride, expected))

    def _elements(self) -> np.ndarray:
        raw = self.storage.raw()
        if self.dtype is not self.storage.dtype:
            dt = np.dtype(self.dtype.numpy)
            if self.storage.byteorder == "big":
                dt = dt.newbyteorder(">")
            raw = raw.view(dt)
        return raw

    def to_numpy(self, copy: bool = False) -> np.ndarray:
        """The tensor's values as a C-contiguous numpy array (a read-only view of the file when
        the tensor is contiguous and ``copy`` is false). bfloat16 is widened exactly to float32;
        big-endian data is converted to native order. The file is checked to still hold the
        bytes first (UnreadableInputError "the source changed while being read" otherwise)."""
        return self._values(read=False, copy=copy)

    def _values(self, *, read: bool, copy: bool = False) -> np.ndarray:
        if self.dtype.name.startswith("float8"):
            raise UnreadableInputError(f"{self.dtype.name} tensors are not supported", path=self.storage.origin)
        n = self.numel
        item = self.dtype.itemsize
        arr: np.ndarray | None = None
        if n and self.is_contiguous:
            first = self.storage_offset * item
            got = self.storage.read_bytes(first, n * item) if read else None
            if got is not None:  # a private copy, read with pread: nothing can fault later
                dt = np.dtype(self.dtype.numpy)
                arr = got.view(dt.newbyteorder(">") if self.storage.byteorder == "big" else dt).reshape(self.shape)
                copy = False
            elif not read:
                self.storage.check_mapped(first, n * item)
        elif n:
            span = (self.storage_offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride)) + 1) * item
            self.storage.check_mapped(0, span)
        if arr is None:
            raw = self._elements()
            if n == 0:
                arr = np.empty(self.shape, dtype=raw.dtype)
            elif self.is_contiguous:
                arr = raw[self.storage_offset : self.storage_offset + n].reshape(self.shape)
            else:
                ritem = raw.dtype.itemsize
                # Expanded (stride-0) tensors are bigger than their storage; a hostile one asks for
                # terabytes. Cap the copy at a generous multiple of what the file really holds.
                limit = 16 * self.storage.nbytes + (64 << 20)
                if n * ritem > limit:
                    raise ResourceLimitError(
                        f"tensor of size {list(self.shape)} would take {n * ritem:,} bytes from a storage of "
                        f"{self.storage.nbytes:,} bytes (limit {limit:,})", path=self.storage.origin
                    )
                base = raw[self.storage_offset :]
                arr = np.lib.stride_tricks.as_strided(
                    base, shape=self.shape, strides=tuple(s * ritem for s in self.stride), writeable=False
                )
                arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if self.dtype.name == "bfloat16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif copy:
            arr = np.array(arr, copy=True)
        return arr

    def rows(self, start: int, stop: int) -> np.ndarray:
        """``to_numpy()[start:stop]`` along the first dimension, reading and converting only
        those rows (streaming writers take a big table chunk by chunk this way). Rows of the
        source file are read with ``pread`` into a new array, never through the memory map, so
        a file truncated meanwhile is an UnreadableInputError, not a SIGBUS."""
        if not self.shape:
            return self.to_numpy()
        start, stop, _ = slice(start, stop).indices(self.shape[0])
        stop = max(start, stop)
        offset = self.storage_offset + start * self.stride[0] if stop > start else self.storage_offset
        sub = TensorRef(self.storage, offset, (stop - start, *self.shape[1:]), self.stride, self.dtype)
        return sub._values(read=True)

    def rows_as(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        """``rows(start, stop)`` converted to ``dtype`` (C-contiguous). Where the rows need a
        conversion, the file is read a small piece at a time into one buffer and each piece is
        converted straight into the result, so the source bytes pass through the CPU cache once
        (as they did when they were read through the memory map)."""
        dt = np.dtype(dtype)
        if (not self.shape or self.dtype.name == "bfloat16" or self.dtype.name.startswith("float8")
                or not self.is_contiguous):
            return np.ascontiguousarray(self.rows(start, stop), dtype=dt)
        stored = np.dtype(self.dtype.numpy)
        if self.storage.byteorder == "big":
            stored = stored.newbyteorder(">")
        if stored == dt:
            return self.rows(start, stop)  # nothing to convert: read straight into the result
        start, stop, _ = slice(start, stop).indices(self.shape[0])
        stop = max(start, stop)
        shape = (stop - start, *self.shape[1:])
        out = np.empty(shape, dtype=dt)
        n = out.size
        if n == 0:
            return out
        item = self.dtype.itemsize
        first = (self.storage_offset + start * self.stride[0]) * item
        piece = max(1, _PIECE_BYTES // item)
        buf = np.empty(min(n, piece) * item, dtype=np.uint8)
        flat = out.reshape(-1)
        for i in range(0, n, piece):
            m = min(piece, n - i)
            part = buf[: m * item]
            if not self.storage.read_into(first + i * item, part, check=i == 0):
                return np.ascontiguousarray(self.rows(start, stop), dtype=dt)  # bytes in memory
            flat[i : i + m] = part.view(stored)
        return out

    def file_span(self) -> tuple[str, int, int, tuple[int, int, int, int]] | None:
        """(path, byte offset, byte count, file identity) where the tensor's bytes lie in the
        source file, in order and as ``to_numpy()`` would give them (contiguous, little-endian,
        no widening), so a writer can copy them file to file; None when they do not."""
        if (not self.is_contiguous or self.storage.byteorder != "little" or self.dtype.name == "bfloat16"
                or self.dtype.name.startswith("float8") or self.numel == 0):
            return None
        storage, first = self.storage, self.storage_offset * self.dtype.itemsize
        while storage._base is not None:  # legacy storage views
            first += storage._base_element_offset * storage.dtype.itemsize
            storage = storage._base
        if not isinstance(storage._buffer, mmap.mmap) or storage.origin is None or storage.file_identity is None:
            return None  # bytes from elsewhere (a nested pickle), not the file itself
        return storage.origin, storage._byte_offset + first, self.nbytes, storage.file_identity

    def __repr__(self) -> str:
        return f"TensorRef({self.dtype.name}{list(self.shape)}, storage={self.storage.key!r}@{self.storage_offset})"

"""safetensors writer and reader.

Layout (embconv safetensors layout 1)
-------------------------------------
For every table ``<t>`` of the model:

``<t>.weight``          F32 (or the requested float dtype), shape ``[rows, dim]``
``<t>.bias``            same dtype, shape ``[rows]``; only where the table has a bias
``<t>.vocab.utf8``      U8, shape ``[nbytes]``: every token's UTF-8 bytes, concatenated in row order
``<t>.vocab.offsets``   I64, shape ``[rows + 1]``: token *i* is ``utf8[offsets[i]:offsets[i+1]]``;
                        ``offsets[0] == 0`` and ``offsets[rows] == nbytes``

The vocabulary tensors exist only where the table has a vocabulary. Because the tokens live in
tensors and not in the JSON header, a vocabulary of any size round-trips (the header is limited
to 100 MB). Tokens are the string forms of the vocabulary (``str()`` of ints/floats/bools, as
fastai prints them); a token that is not valid Unicode (a lone surrogate from an old pickle) is
encoded with ``surrogatepass``, so decode with ``errors="surrogatepass"`` (identical to strict
decoding for every valid token).

``__metadata__`` holds ``format: "pt"`` (what transformers checks), ``embconv.layout: "1"``, and
``embconv.manifest``: the manifest JSON (design.md §2) without the token lists.

A reader needs only the safetensors library::

    from safetensors import safe_open
    with safe_open("out.safetensors", framework="np") as f:
        w = f.get_tensor("userId.weight")
        b = bytes(f.get_tensor("userId.vocab.utf8"))
        o = f.get_tensor("userId.vocab.offsets").tolist()
        tokens = [b[o[i]:o[i + 1]].decode("utf-8", "surrogatepass") for i in range(len(o) - 1)]

The file is written by streaming (header, then each tensor in row chunks straight from the
source), tensors ordered as the safetensors writer orders them (descending element size, then
name), header padded with spaces to a multiple of 8, offsets contiguous from 0.
"""

from __future__ import annotations

import codecs
import json
import os
import secrets
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..chunks import bias_chunks, output_dtype
from ..errors import OutputError, UnreadableInputError
from ..ir import SCHEMA_VERSION, EmbeddingModel, EmbeddingTable
from ..lazy import InMemory, PackedStrings, encoded
from ..mapped import release
from ._common import (
    ProgressCounter,
    check_manifest,
    model_from_output,
    parse_json,
    read_manifest,
    write_weight,
)
from .registry import Format, LastStep, Progress, register

MAX_HEADER = 100_000_000
LAYOUT = "1"

_ST_DTYPES: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}


def st_dtype(dtype: np.dtype) -> str:
    """The safetensors dtype string of a (little-endian) numpy dtype."""
    for name, np_name in _ST_DTYPES.items():
        if np.dtype(np_name) == np.dtype(dtype):
            return name
    raise ValueError(f"no safetensors dtype for {dtype}")


def encode_vocab(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(utf8 bytes as uint8, int64 offsets of length rows+1) for a token list."""
    joined = "".join(strings).encode("utf-8", "surrogatepass")
    n = len(strings)
    char_lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    if len(joined) == int(char_lengths.sum()):  # all ASCII: bytes == characters
        lengths = char_lengths
    else:
        lengths = np.fromiter((len(s.encode("utf-8", "surrogatepass")) for s in strings), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(joined, dtype=np.uint8), offsets


_VOCAB_CHUNK = 1 << 16


def _vocab_pieces(strings: Sequence[str]) -> Iterator[tuple[bytes, np.ndarray]]:
    """(UTF-8 bytes, offsets from 0) of the tokens, ``_VOCAB_CHUNK`` at a time (a packed
    vocabulary hands its bytes on without decoding them)."""
    for start in range(0, len(strings), _VOCAB_CHUNK):
        yield encoded(strings, start, min(len(strings), start + _VOCAB_CHUNK))


def vocab_nbytes(strings: Sequence[str]) -> int:
    """Bytes of ``<t>.vocab.utf8`` for these tokens (one encoding pass, nothing kept)."""
    if isinstance(strings, PackedStrings):
        return int(strings.offsets[-1]) - int(strings.offsets[0])
    return sum(len(joined) for joined, _ in _vocab_pieces(strings))


def write_vocab_utf8(f: BinaryIO, strings: Sequence[str]) -> None:
    """Stream the ``<t>.vocab.utf8`` tensor: every token's UTF-8 bytes, in row order."""
    for joined, _ in _vocab_pieces(strings):
        f.write(joined)


def write_vocab_offsets(f: BinaryIO, strings: Sequence[str]) -> None:
    """Stream the ``<t>.vocab.offsets`` tensor: int64, rows + 1 values, starting at 0."""
    f.write(np.zeros(1, dtype="<i8").tobytes())
    base = 0
    for _, offsets in _vocab_pieces(strings):
        ends = offsets[1:] + base
        f.write(ends.astype("<i8", copy=False).tobytes())
        base += int(offsets[-1])


def decode_vocab(data: bytes, offsets: np.ndarray) -> list[str]:
    """The inverse of :func:`encode_vocab`."""
    o = offsets.tolist()
    if len(o) == 0 or o[0] != 0 or o[-1] != len(data) or any(a > b for a, b in zip(o, o[1:], strict=False)):
        raise ValueError("vocabulary offsets do not tile the token bytes")
    text = data.decode("utf-8", "surrogatepass")
    if len(text) == len(data):  # ASCII: slice the decoded text directly
        return [text[a:b] for a, b in zip(o, o[1:], strict=False)]
    return [data[a:b].decode("utf-8", "surrogatepass") for a, b in zip(o, o[1:], strict=False)]


def lazy_vocab(data: np.ndarray, offsets: np.ndarray) -> PackedStrings:
    """The tokens of memory-mapped vocabulary tensors as :class:`PackedStrings` that decode
    rows on demand. The offsets (tiling the bytes, never inside a character) and the UTF-8 are
    checked here in one chunked pass (ValueError / UnicodeDecodeError), so a corrupt vocabulary
    fails at read time and every token decodes later, but no token is kept."""
    n = len(offsets) - 1
    if data.ndim != 1 or offsets.ndim != 1 or n < 0:
        raise ValueError("vocabulary tensors are not 1-D")
    step = 1 << 20
    prev = 0
    for start in range(0, n + 1, step):
        o = np.asarray(offsets[start : start + step + 1])
        if start == 0 and int(o[0]) != 0:
            raise ValueError("vocabulary offsets do not start at 0")
        if len(o) > 1 and bool((np.diff(o) < 0).any()) or int(o[0]) < prev:
            raise ValueError("vocabulary offsets do not tile the token bytes")
        inner = o[(o > 0) & (o < len(data))]
        if inner.size and bool(((np.asarray(data[inner]) & 0xC0) == 0x80).any()):  # a continuation byte
            raise ValueError("a vocabulary offset splits a UTF-8 character")
        prev = int(o[-1])
        release(offsets[start : start + step + 1])
    if prev != len(data):
        raise ValueError("vocabulary offsets do not tile the token bytes")

    decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")  # every byte decodes
    for start in range(0, len(data), 16 << 20):
        piece = data[start : start + (16 << 20)]
        decoder.decode(piece.tobytes())
        release(piece)
    decoder.decode(b"", final=True)
    return PackedStrings(data, offsets)


class _Entry:
    def __init__(self, name: str, dtype: np.dtype, shape: tuple[int, ...], write: Callable[[BinaryIO], None]) -> None:
        self.name = name
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self.write = write


def write(model: EmbeddingModel, path: Path, *, dtype: str = "float32", progress: Progress | None = None,
          drop_unknown: bool = False, **options: Any) -> LastStep | None:
    """Write ``model`` to ``path`` in embconv safetensors layout 1 (see the module docstring).
    While the source's sha256 is still being computed, the header gets a stand-in and this
    returns the step that patches the real hash in; the caller runs it after verifying the
    tensors, so hashing overlaps both writing and verification."""
    out = output_dtype(dtype)
    counter = ProgressCounter(sum(t.rows for t in model.tables.values()), progress)
    entries: list[_Entry] = []
    for t in model.tables.values():
        def write_w(f: BinaryIO, t: EmbeddingTable = t) -> None:
            write_weight(f, t, out, counter)
        entries.append(_Entry(f"{t.name}.weight", out, (t.rows, t.dim), write_w))
        if t.bias_source is not None:
            bias_rows = int(np.prod(t.bias_source.shape, dtype=np.int64))
            if bias_rows != t.rows:
                raise OutputError(f"table {t.name!r}: bias has {bias_rows} rows, weight {t.rows}", path=str(path))

            def write_bias(f: BinaryIO, t: EmbeddingTable = t) -> None:
                for chunk in bias_chunks(t, out):
                    f.write(chunk.data.cast("B"))
            entries.append(_Entry(f"{t.name}.bias", out, (t.rows,), write_bias))
        if t.vocab is not None:
            if len(t.vocab) != t.rows:
                raise OutputError(f"table {t.name!r}: vocabulary has {len(t.vocab)} tokens, weight {t.rows} rows",
                                  path=str(path))
            strings = t.vocab.strings

            def write_utf8(f: BinaryIO, s: Sequence[str] = strings) -> None:
                write_vocab_utf8(f, s)

            def write_offsets(f: BinaryIO, s: Sequence[str] = strings) -> None:
                write_vocab_offsets(f, s)
            entries.append(_Entry(f"{t.name}.vocab.utf8", np.dtype("u1"), (vocab_nbytes(strings),), write_utf8))
            entries.append(_Entry(f"{t.name}.vocab.offsets", np.dtype("<i8"), (len(strings) + 1,), write_offsets))
    entries.sort(key=lambda e: (-e.dtype.itemsize, e.name))

    # The source's sha256 is still being computed in the background (a GiB takes ~0.6 s): write
    # a random stand-in of the same length now; the returned step patches the real hash in.
    stand_in = None if model.source.sha256_known else secrets.token_hex(32)
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "embconv.layout": LAYOUT,
                                               "embconv.manifest": model.manifest_json(include_tokens=False,
                                                                                      sha256=stand_in)}}
    pos = 0
    for e in entries:
        header[e.name] = {"dtype": st_dtype(e.dtype), "shape": list(e.shape), "data_offsets": [pos, pos + e.nbytes]}
        pos += e.nbytes
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    if len(raw) > MAX_HEADER:
        raise OutputError(f"safetensors header would be {len(raw)} bytes, above the 100 MB limit", path=str(path))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for e in entries:
            before = f.tell()
            e.write(f)
            if f.tell() - before != e.nbytes:
                raise OutputError(f"tensor {e.name!r}: wrote {f.tell() - before} bytes, expected {e.nbytes}",
                                  path=str(path))
    if stand_in is None:
        return None
    at = 8 + raw.index(stand_in.encode("ascii"))  # random: it occurs nowhere else

    def patch_source_hash() -> None:
        """Put the source's real sha256 where the stand-in is (waits for the hash)."""
        digest = model.source.sha256.encode("ascii")
        fd = os.open(path, os.O_RDWR)
        try:
            if os.pwrite(fd, digest, at) != len(digest) or os.pread(fd, len(digest), at) != digest:
                raise OutputError("could not write the source's sha256 into the header", path=str(path))
        finally:
            os.close(fd)
    return patch_source_hash


def sniff(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) looks like safetensors."""
    if len(head) < 9:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= MAX_HEADER and head[8:9] == b"{"


_INT64_MAX = (1 << 63) - 1
_FLOAT_DTYPES = ("F16", "F32", "F64")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_header(path: Path) -> tuple[dict, int]:
    """(validated header dict, byte offset of the data buffer). Checked as the safetensors
    library checks it, and more: strict JSON (no key twice, no NaN); ``__metadata__`` absent or
    an object of strings; every tensor an object with a known ``dtype``, a ``shape`` of
    non-negative integers (bools and floats are not) whose byte size fits in int64, and
    ``data_offsets`` two integers in order that match the shape, within the data section, the
    tensors tiling it without gap or overlap. UnreadableInputError naming the tensor otherwise."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UnreadableInputError("too short for safetensors", path=str(path))
        n = struct.unpack("<Q", head)[0]
        if n > MAX_HEADER or 8 + n > size:
            raise UnreadableInputError(f"safetensors header length {n} is impossible", path=str(path))
        header = parse_json(f.read(n), path, "safetensors header")
    if not isinstance(header, dict):
        raise UnreadableInputError("safetensors header is not an object", path=str(path))
    meta = header.get("__metadata__")
    if meta is None:  # absent, or null (the safetensors library reads that as no metadata)
        header["__metadata__"] = meta = {}
    if not isinstance(meta, dict):
        raise UnreadableInputError("safetensors __metadata__ is not an object of strings", path=str(path))
    for key, value in meta.items():
        if not isinstance(value, str):
            raise UnreadableInputError(f"safetensors __metadata__ {key[:60]!r} is {type(value).__name__}, "
                                       f"not a string", path=str(path))
    data_size = size - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        spans.append((*_entry_span(name, info, data_size, path), name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise UnreadableInputError(f"tensor {name!r}: offsets leave a gap or overlap", path=str(path))
        pos = end
    if pos != data_size:
        raise UnreadableInputError(f"file is {size} bytes, the header describes {8 + n + pos}", path=str(path))
    return header, 8 + n


def _entry_span(name: str, info: Any, data_size: int, path: Path) -> tuple[int, int]:
    """(begin, end) of a tensor's bytes in the data section, once its entry is checked."""
    def bad(message: str) -> UnreadableInputError:
        return UnreadableInputError(f"tensor {name[:80]!r}: {message}", path=str(path))

    if not isinstance(info, dict) or not all(k in info for k in ("dtype", "shape", "data_offsets")):
        raise bad("unsupported or malformed entry (not an object of dtype, shape and data_offsets)")
    if not isinstance(info["dtype"], str) or info["dtype"] not in _ST_DTYPES:
        raise bad(f"unsupported dtype {str(info['dtype'])[:20]!r}")
    shape, offsets = info["shape"], info["data_offsets"]
    if not isinstance(shape, list) or not all(_is_int(s) and 0 <= s <= _INT64_MAX for s in shape):
        raise bad("shape is not a list of non-negative integers")
    extent = np.dtype(_ST_DTYPES[info["dtype"]]).itemsize
    for s in shape:  # Python ints: no wrap-around; numpy refuses shapes whose non-zero sides overflow
        extent *= max(s, 1)
    if extent > _INT64_MAX:
        raise bad("shape is too large (its byte size overflows int64)")
    nbytes = 0 if 0 in shape else extent
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(x) for x in offsets):
        raise bad("data_offsets is not two integers")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise bad(f"data_offsets {begin}, {end} are out of order")
    if end > data_size:
        raise bad(f"data_offsets end at {end}, past the {data_size} bytes of data")
    if end - begin != nbytes:
        raise bad("data_offsets do not match its shape")
    return begin, end


def _tensor(path: Path, header: dict, base: int, name: str) -> np.ndarray:
    info = header[name]
    dt = np.dtype(_ST_DTYPES[info["dtype"]])
    shape = tuple(info["shape"])
    begin = info["data_offsets"][0]
    if begin == info["data_offsets"][1]:
        return np.zeros(shape, dtype=dt)
    return np.memmap(path, dtype=dt, mode="r", offset=base + begin, shape=shape)


def _expect(header: dict, name: str, dtypes: tuple[str, ...], shape: list[int] | None, ndim: int,
            path: Path) -> None:
    """UnreadableInputError unless tensor ``name`` has one of ``dtypes`` and ``ndim`` dimensions
    (and, when given, exactly ``shape``): what layout 1 says it is."""
    info = header[name]
    if info["dtype"] not in dtypes:
        raise UnreadableInputError(f"tensor {name!r} is {info['dtype']}, expected {' or '.join(dtypes)}",
                                   path=str(path))
    if len(info["shape"]) != ndim or (shape is not None and info["shape"] != shape):
        want = shape if shape is not None else f"{ndim}-D"
        raise UnreadableInputError(f"tensor {name!r} has shape {info['shape']}, expected {want}", path=str(path))


def read(path: Path) -> EmbeddingModel:
    """Read an embconv safetensors file back into the IR (arrays memory-mapped)."""
    header, base = read_header(path)
    meta = header.get("__metadata__", {})
    if meta.get("embconv.layout", LAYOUT) != LAYOUT:
        raise UnreadableInputError(f"embconv.layout {meta['embconv.layout'][:20]!r} is not one this embconv reads "
                                   f"({LAYOUT})", path=str(path))
    if "embconv.manifest" in meta:
        manifest = read_manifest(meta["embconv.manifest"], path)
    else:
        manifest = check_manifest(_manifest_from_tensors(header, path), path)
    arrays: dict[str, tuple[Any, Any]] = {}
    tokens: dict[str, Sequence[str]] = {}
    for t in manifest["tables"]:
        name = t["name"]
        if f"{name}.weight" not in header:
            raise UnreadableInputError(f"table {name!r}: tensor {name}.weight is missing", path=str(path))
        _expect(header, f"{name}.weight", _FLOAT_DTYPES, None, 2, path)
        w = _tensor(path, header, base, f"{name}.weight")
        rows = w.shape[0]
        b = None
        if f"{name}.bias" in header:
            _expect(header, f"{name}.bias", (header[f"{name}.weight"]["dtype"],), [rows], 1, path)
            b = _tensor(path, header, base, f"{name}.bias")
        arrays[name] = (InMemory(w), InMemory(b) if b is not None else None)
        if t["vocab"] is not None:
            if f"{name}.vocab.utf8" not in header or f"{name}.vocab.offsets" not in header:
                raise UnreadableInputError(f"table {name!r}: vocabulary tensors are missing", path=str(path))
            _expect(header, f"{name}.vocab.utf8", ("U8",), None, 1, path)
            _expect(header, f"{name}.vocab.offsets", ("I64",), [rows + 1], 1, path)
            try:
                data = _tensor(path, header, base, f"{name}.vocab.utf8")
                offsets = _tensor(path, header, base, f"{name}.vocab.offsets")
                tokens[name] = lazy_vocab(data, offsets)
            except (ValueError, UnicodeDecodeError) as e:
                raise UnreadableInputError(f"table {name!r}: vocabulary is corrupt: {e}", path=str(path)) from e
    return model_from_output(manifest, arrays, tokens, path, "safetensors")


def _manifest_from_tensors(header: dict, path: Path) -> dict:
    """A minimal manifest for a safetensors file embconv did not write: every 2-D floating-point
    ``X.weight`` (header already checked)."""
    from .. import __version__

    tables = []
    for name, info in header.items():
        if (name.endswith(".weight") and len(name) > len(".weight") and len(info["shape"]) == 2
                and info["dtype"] in _FLOAT_DTYPES):
            t = name[: -len(".weight")]
            vocab = {"size": info["shape"][0], "unknown_index": None, "source": "file"} \
                if f"{t}.vocab.utf8" in header else None
            tables.append({"name": t, "role": "category", "rows": info["shape"][0], "dim": info["shape"][1],
                           "dtype": str(np.dtype(_ST_DTYPES[info["dtype"]])), "weight_key": name,
                           "bias_key": f"{t}.bias" if f"{t}.bias" in header else None, "tied_keys": [],
                           "vocab": vocab})
    if not tables:
        raise UnreadableInputError("no embconv manifest and no 2-D '<table>.weight' tensor", path=str(path))
    # The source named here is replaced by the file itself on reading (model_from_output): the
    # hash is a stand-in that nothing reads.
    return {"schema_version": SCHEMA_VERSION, "embconv_version": __version__,
            "source": {"path": str(path), "sha256": "0" * 64, "size": path.stat().st_size, "generation": "unknown",
                       "artifact": "state-dict", "container": "safetensors", "model_class": None},
            "model": {"kind": "unknown", "y_range": None}, "tables": tables, "warnings": []}


FORMAT = register(Format(
    name="safetensors",
    suffixes=(".safetensors",),
    sniff=sniff,
    write=write,
    read=read,
    load_hint="safetensors.numpy.load_file('{path}')  (vocabulary: README, 'safetensors')",
    table_order=lambda model: sorted(model.tables, key=lambda n: f"{n}.weight"),  # tensors go in name order
))

__all__ = ["FORMAT", "decode_vocab", "encode_vocab", "read", "read_header", "sniff", "write"]

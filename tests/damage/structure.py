"""Where the structure of a model file lies, byte by byte, so damage can be aimed at it.

``layout(data)`` returns a :class:`Layout` of a *seed* file (a fixture, a real model or a
hostile-corpus file): every structural boundary (where truncation is interesting), every length
or count field (where a corrupt value is interesting) and the spans of the pickles inside.

* torch zip (spec §1.5): each local header (start, end of the fixed part, start and end of the
  payload), each central-directory entry (start, end of the fixed part, end), the EOCD; fields
  are the sizes, name/extra/comment lengths, offsets and entry counts of all three; the pickle
  is ``data.pkl``'s payload.
* torch legacy (spec §1.3): the ends of the five stacked pickles, then per storage blob its
  int64 element count (a field) and the end of its bytes.
* any pickle: every opcode boundary (``pickletools.genops`` offsets) and the argument of every
  length-prefixed opcode (BINUNICODE & co., LONG1/LONG4, FRAME), integer opcode (BININT* —
  numels, sizes, strides, offsets) and memo index.

Parsing is independent of the converter except for one thing: the element size of each legacy
storage, which only the main pickle knows; it is taken from ``open_model_file`` when the seed
opens (seeds that do not open simply have no blob layout)."""

from __future__ import annotations

import io
import pickletools
import struct
from dataclasses import dataclass, field

LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa850192e")

# opcode name -> (width of the length/value field right after the opcode byte, signed)
_SIZED = {
    "BINUNICODE": (4, False), "SHORT_BINUNICODE": (1, False), "BINUNICODE8": (8, False),
    "BINSTRING": (4, True), "SHORT_BINSTRING": (1, False), "BINBYTES": (4, False),
    "SHORT_BINBYTES": (1, False), "BINBYTES8": (8, False), "BYTEARRAY8": (8, False),
    "LONG1": (1, False), "LONG4": (4, True), "FRAME": (8, False),
}
_INTS = {"BININT": (4, True), "BININT1": (1, False), "BININT2": (2, False)}
_MEMO = {"BINPUT": (1, False), "LONG_BINPUT": (4, False), "BINGET": (1, False), "LONG_BINGET": (4, False)}
MAX_OPS = 20_000  # opcodes recorded per pickle (real exports have ~10^5; a sample is plenty)


@dataclass(frozen=True)
class Field:
    """A little-endian integer field of ``width`` bytes at ``offset``."""

    offset: int
    width: int
    signed: bool
    kind: str  # e.g. "zip.cd.csize", "legacy.count", "pickle.BINUNICODE", "pickle.int"

    def read(self, data: bytes | bytearray) -> int:
        return int.from_bytes(data[self.offset : self.offset + self.width], "little", signed=self.signed)

    def write(self, data: bytearray, value: int) -> None:
        bits = 8 * self.width
        value &= (1 << bits) - 1  # wrap into the field (negative values become two's complement)
        data[self.offset : self.offset + self.width] = value.to_bytes(self.width, "little")


@dataclass
class PickleSpan:
    start: int
    end: int  # one past STOP (or where parsing stopped)
    ops: list[int] = field(default_factory=list)  # absolute opcode offsets


@dataclass
class Layout:
    container: str  # "torch-zip" | "torch-legacy" | "pickle" | "other"
    size: int
    cuts: list[int] = field(default_factory=list)  # structural truncation points (file lengths)
    fields: list[Field] = field(default_factory=list)
    pickles: list[PickleSpan] = field(default_factory=list)
    cd_entries: list[tuple[int, int]] = field(default_factory=list)  # zip: (offset, length)
    eocd: int | None = None  # zip: offset of the EOCD record
    cd_offset: int | None = None
    blobs: list[tuple[int, int, int]] = field(default_factory=list)  # legacy: (count offset, data start, data end)

    def hot_offsets(self) -> list[int]:
        """Offsets worth flipping: field bytes and opcode bytes."""
        out = [f.offset + i for f in self.fields for i in range(f.width)]
        out += [op for p in self.pickles for op in p.ops]
        return out or [0]

    def fields_of(self, prefix: str) -> list[Field]:
        return [f for f in self.fields if f.kind.startswith(prefix)]


def pickle_span(data: bytes, start: int, end: int | None = None) -> PickleSpan:
    """Opcode offsets and fields of the pickle starting at ``start`` (genops stops at STOP)."""
    end = len(data) if end is None else end
    span = PickleSpan(start, start)
    stream = io.BytesIO(bytes(data[start:end]))
    try:
        for _op, _arg, pos in pickletools.genops(stream):
            if len(span.ops) < MAX_OPS:
                span.ops.append(start + pos)
            span.end = start + stream.tell()
    except Exception:  # noqa: BLE001 - a hostile seed may be malformed; keep what parsed
        pass
    return span


def _pickle_fields(data: bytes, span: PickleSpan) -> list[Field]:
    out = []
    for off in span.ops:
        code = data[off : off + 1]
        try:
            name = pickletools.code2op[code.decode("latin1")].name
        except KeyError:
            continue
        for table in (_SIZED, _INTS, _MEMO):
            if name in table:
                width, signed = table[name]
                kind = "pickle." + (name if table is _SIZED else "int" if table is _INTS else "memo")
                out.append(Field(off + 1, width, signed, kind))
    return out


def _zip_layout(data: bytes, lay: Layout) -> None:
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if at < 0:
        return
    lay.eocd = at
    lay.cuts += [at, at + 22]
    for off, width, kind in ((8, 2, "n_here"), (10, 2, "n_total"), (12, 4, "cd_size"),
                             (16, 4, "cd_offset"), (20, 2, "comment_len")):
        lay.fields.append(Field(at + off, width, False, f"zip.eocd.{kind}"))
    n_total, _cd_size, cd_offset = struct.unpack_from("<HII", data, at + 10)
    lay.cd_offset = cd_offset
    pos = cd_offset
    for _ in range(n_total):
        if data[pos : pos + 4] != b"PK\x01\x02":
            break
        method, csize, usize, nlen, xlen, clen = struct.unpack_from("<H8xIIHHH", data, pos + 10)
        (hoff,) = struct.unpack_from("<I", data, pos + 42)
        length = 46 + nlen + xlen + clen
        lay.cd_entries.append((pos, length))
        lay.cuts += [pos, pos + 46, pos + length]
        for off, width, kind in ((10, 2, "method"), (20, 4, "csize"), (24, 4, "usize"), (28, 2, "nlen"),
                                 (30, 2, "xlen"), (32, 2, "clen"), (42, 4, "hoff")):
            lay.fields.append(Field(pos + off, width, False, f"zip.cd.{kind}"))
        name = data[pos + 46 : pos + 46 + nlen]
        if data[hoff : hoff + 4] == b"PK\x03\x04":
            lnlen, lxlen = struct.unpack_from("<HH", data, hoff + 26)
            start = hoff + 30 + lnlen + lxlen
            lay.cuts += [hoff, hoff + 30, start, start + csize]
            for off, width, kind in ((8, 2, "method"), (18, 4, "csize"), (22, 4, "usize"), (26, 2, "nlen"),
                                     (28, 2, "xlen")):
                lay.fields.append(Field(hoff + off, width, False, f"zip.local.{kind}"))
            if name.endswith(b"data.pkl") and method == 0:
                span = pickle_span(data, start, start + csize)
                lay.pickles.append(span)
        pos += length


def _legacy_layout(data: bytes, lay: Layout, itemsizes: dict[str, int] | None) -> None:
    pos = 0
    for _ in range(5):
        span = pickle_span(data, pos)
        if span.end <= pos:
            return
        lay.pickles.append(span)
        lay.cuts.append(span.end)
        pos = span.end
    keys_span = lay.pickles[-1]
    keys = []
    stream = io.BytesIO(bytes(data[keys_span.start : keys_span.end]))
    for op, arg, _pos in pickletools.genops(stream):
        if isinstance(arg, str) and op.name in ("BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINSTRING",
                                                "SHORT_BINSTRING", "STRING"):
            keys.append(arg)
    if not itemsizes:
        return
    for key in keys:
        if pos + 8 > len(data) or key not in itemsizes:
            return
        (count,) = struct.unpack_from("<q", data, pos)
        lay.fields.append(Field(pos, 8, True, "legacy.count"))
        end = pos + 8 + count * itemsizes[key]
        lay.blobs.append((pos, pos + 8, end))
        lay.cuts += [pos, pos + 8, end]
        pos = end


def layout(data: bytes, itemsizes: dict[str, int] | None = None) -> Layout:
    """The layout of a seed. ``itemsizes`` (legacy storage key -> element size) enables the
    blob part of a legacy layout."""
    if data[:4] == b"PK\x03\x04":
        lay = Layout("torch-zip", len(data))
        _zip_layout(data, lay)
    elif data[: len(LEGACY_MAGIC)] == LEGACY_MAGIC:
        lay = Layout("torch-legacy", len(data))
        _legacy_layout(data, lay, itemsizes)
    elif data[:1] == b"\x80" or data[:1] in b"(]})cNIFLSV":
        lay = Layout("pickle", len(data))
        span = pickle_span(data, 0)
        lay.pickles.append(span)
        lay.cuts.append(span.end)
    else:
        lay = Layout("other", len(data))
    for span in lay.pickles:
        lay.cuts += span.ops
        lay.fields += _pickle_fields(data, span)
    lay.cuts = sorted({c for c in lay.cuts if 0 <= c <= len(data)})
    return lay


def legacy_itemsizes(path: str) -> dict[str, int] | None:
    """Storage key -> element size of a legacy file, from the converter (None if it fails)."""
    from converter.errors import EmbconvError
    from converter.pickle import open_model_file

    try:
        with open_model_file(path) as mf:
            return {k: s.dtype.itemsize for k, s in mf.storages.items() if s._base is None}
    except EmbconvError:
        return None

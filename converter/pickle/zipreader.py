"""A minimal, defensive reader of zip central directories, for torch's zip container.

torch writes every entry STORED with zero sizes in the local headers and the truth in the
central directory (spec §1.5), so entries are located from the central directory and their
payload offsets computed from the local header, as torch's own reader does. CRCs are not
checked (torch does not check them either). Limits: entry count, name length; compressed
entries, duplicate names and ``..`` components are refused."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import ResourceLimitError, UnreadableInputError

MAX_ENTRIES = 100_000
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


@dataclass(frozen=True)
class ZipEntry:
    name: str
    method: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int


def _u(fmt: str, buf: bytes | memoryview, off: int) -> tuple:
    try:
        return struct.unpack_from(fmt, buf, off)
    except struct.error:
        raise UnreadableInputError("zip structure is truncated") from None


def read_entries(buf: memoryview | bytes, info: dict | None = None) -> dict[str, ZipEntry]:
    """Name → entry for every entry of the zip in ``buf`` (the whole file). When ``info`` is
    given, ``info["end"]`` is set to where the archive ends (after the EOCD and its comment)."""
    size = len(buf)
    tail_start = max(0, size - (65535 + 22))
    tail = bytes(buf[tail_start:])
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        raise UnreadableInputError("zip end-of-central-directory record not found (truncated download?)")
    eocd = tail_start + at
    _, disk, cd_disk, n_here, n_total, cd_size, cd_offset, comment = _u("<4sHHHHIIH", buf, eocd)
    if info is not None:
        info["end"] = eocd + 22 + comment
    if disk != 0 or cd_disk != 0 or n_here != n_total:
        raise UnreadableInputError("multi-disk zip archives are not torch files")
    if n_total == 0xFFFF or cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF:
        loc = eocd - 20
        if loc < 0 or bytes(buf[loc : loc + 4]) != _EOCD64_LOCATOR:
            raise UnreadableInputError("zip64 locator missing")
        (eocd64_off,) = _u("<Q", buf, loc + 8)
        if eocd64_off + 56 > size or bytes(buf[eocd64_off : eocd64_off + 4]) != _EOCD64:
            raise UnreadableInputError("zip64 end record missing or outside the file")
        n_total, cd_size, cd_offset = _u("<QQQ", buf, eocd64_off + 32)
    if n_total > MAX_ENTRIES:
        raise ResourceLimitError(f"zip has {n_total:,} entries; torch files have a few (limit {MAX_ENTRIES:,})")
    if cd_offset + cd_size > size:
        raise UnreadableInputError("zip central directory lies outside the file (truncated download?)")
    entries: dict[str, ZipEntry] = {}
    pos = cd_offset
    for _ in range(n_total):
        if bytes(buf[pos : pos + 4]) != _CENTRAL:
            raise UnreadableInputError("zip central directory is corrupt")
        (_, _vm, _vn, flags, method, _t, _d, _crc, csize, usize, nlen, xlen, clen,
         _dstart, _iattr, _eattr, hoff) = _u("<4sHHHHHHIIIHHHHHII", buf, pos)
        name_b = bytes(buf[pos + 46 : pos + 46 + nlen])
        extra = bytes(buf[pos + 46 + nlen : pos + 46 + nlen + xlen])
        pos += 46 + nlen + xlen + clen
        if pos > cd_offset + cd_size:
            raise UnreadableInputError("zip central directory entry overruns the directory")
        if 0xFFFFFFFF in (csize, usize, hoff):
            usize, csize, hoff = _zip64_extra(extra, usize, csize, hoff)
        try:
            name = name_b.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            raise UnreadableInputError(f"zip entry name {name_b[:64]!r} is not valid UTF-8") from None
        if name in entries:
            raise UnreadableInputError(f"zip has two entries named {name!r}")
        if ".." in name.replace("\\", "/").split("/") or name.startswith("/"):
            raise UnreadableInputError(f"zip entry name {name!r} escapes its folder")
        if hoff + 30 > size or bytes(buf[hoff : hoff + 4]) != _LOCAL:
            raise UnreadableInputError(f"zip entry {name!r}: local header missing (corrupt or truncated)")
        lnlen, lxlen = _u("<HH", buf, hoff + 26)
        data_offset = hoff + 30 + lnlen + lxlen
        if data_offset + csize > size:
            raise UnreadableInputError(f"zip entry {name!r} runs past the end of the file (truncated download?)")
        entries[name] = ZipEntry(name, method, csize, usize, hoff, data_offset)
    return entries


def _zip64_extra(extra: bytes, usize: int, csize: int, hoff: int) -> tuple[int, int, int]:
    i = 0
    while i + 4 <= len(extra):
        hid, ln = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4 : i + 4 + ln]
        if hid == 0x0001:
            vals = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == 0xFFFFFFFF and vals:
                usize = vals.pop(0)
            if csize == 0xFFFFFFFF and vals:
                csize = vals.pop(0)
            if hoff == 0xFFFFFFFF and vals:
                hoff = vals.pop(0)
            return usize, csize, hoff
        i += 4 + ln
    raise UnreadableInputError("zip64 sizes missing from an entry")

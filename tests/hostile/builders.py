"""Hand assembly of pickle opcodes and torch containers, without torch.

Everything here returns ``bytes``. Opcode helpers are named after the pickle opcodes
(CPython Lib/pickle.py / pickletools); compose them by concatenation::

    proto(2) + global_("posix", "system") + unicode("touch x") + TUPLE1 + REDUCE + STOP

Container helpers follow /work/shared/spec/containers-and-outputs.md:

* ``make_legacy_file(main_pickle, storages)`` -- §1.3 "stacked pickles": magic pickle, protocol
  1001 pickle, sys_info pickle, main pickle, sorted key-list pickle, then per key an int64-LE
  element count and the raw bytes.
* ``make_zip_file(data_pkl, storages)`` -- §1.5: a STORED zip with ``archive/data.pkl``,
  ``archive/data/<key>``, ``archive/version`` (``3\\n``) and ``archive/byteorder`` (``little``).

``state_dict_pickle`` writes the protocol-2 state-dict pickle torch itself emits (§1.9 step 6).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# opcodes (bytes constants) ------------------------------------------------------------------
MARK = b"("
STOP = b"."
POP = b"0"
POP_MARK = b"1"
DUP = b"2"
NONE = b"N"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"
REDUCE = b"R"
BUILD = b"b"
NEWOBJ = b"\x81"
NEWOBJ_EX = b"\x92"
OBJ = b"o"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
BINPERSID = b"Q"
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
EMPTY_TUPLE = b")"
EMPTY_LIST = b"]"
EMPTY_DICT = b"}"
LIST = b"l"
DICT = b"d"
APPEND = b"a"
APPENDS = b"e"
SETITEM = b"s"
SETITEMS = b"u"

# the 15-byte legacy magic pickle and the protocol-1001 pickle (spec §1.3, verified bytes)
LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa850192e")
LEGACY_PROTOCOL = bytes.fromhex("80024de9032e")
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def global_(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0-3 spelling): ``c<module>\\n<name>\\n``."""
    return b"c" + module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n"


def inst(module: str, name: str) -> bytes:
    """INST: ``i<module>\\n<name>\\n``; the arguments are everything since the last MARK."""
    return b"i" + module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n"


def unicode(s: str) -> bytes:
    """BINUNICODE (4-byte length)."""
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def short_unicode(s: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    b = s.encode("utf-8")
    assert len(b) < 256
    return b"\x8c" + bytes([len(b)]) + b


def binbytes(b: bytes) -> bytes:
    """BINBYTES / SHORT_BINBYTES (protocol 3)."""
    if len(b) < 256:
        return b"C" + bytes([len(b)]) + b
    return b"B" + struct.pack("<I", len(b)) + b


def stack_global(module: str, name: str) -> bytes:
    """Protocol-4 STACK_GLOBAL fed by two SHORT_BINUNICODE strings, memoized like pickle does."""
    return short_unicode(module) + MEMOIZE + short_unicode(name) + MEMOIZE + STACK_GLOBAL


def int_(n: int) -> bytes:
    """The smallest integer opcode for ``n`` (BININT1 / BININT2 / BININT / LONG1)."""
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    nbytes = (n.bit_length() + 8) // 8
    data = n.to_bytes(nbytes, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def binfloat(x: float) -> bytes:
    """BINFLOAT (8-byte big-endian double)."""
    return b"G" + struct.pack(">d", x)


def binput(i: int) -> bytes:
    return b"q" + bytes([i]) if i < 256 else long_binput(i)


def long_binput(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def binget(i: int) -> bytes:
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


def ext1(code: int) -> bytes:
    return b"\x82" + bytes([code])


def tuple_(*items: bytes) -> bytes:
    """A tuple of already-encoded items (uses TUPLE1-3 / EMPTY_TUPLE where possible)."""
    if not items:
        return EMPTY_TUPLE
    if len(items) <= 3:
        return b"".join(items) + (TUPLE1, TUPLE2, TUPLE3)[len(items) - 1]
    return MARK + b"".join(items) + TUPLE


def list_(*items: bytes) -> bytes:
    out = EMPTY_LIST
    if items:
        out += MARK + b"".join(items) + APPENDS
    return out


def dict_(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    pairs = list(pairs)
    out = EMPTY_DICT
    if pairs:
        out += MARK + b"".join(k + v for k, v in pairs) + SETITEMS
    return out


def call(callable_: bytes, *args: bytes) -> bytes:
    """``callable(*args)`` via REDUCE."""
    return callable_ + tuple_(*args) + REDUCE


def obj(v) -> bytes:
    """Encode a small plain Python value (str/int/bool/None/tuple/list/dict) opcode by opcode."""
    if v is None:
        return NONE
    if v is True:
        return NEWTRUE
    if v is False:
        return NEWFALSE
    if isinstance(v, int):
        return int_(v)
    if isinstance(v, float):
        return binfloat(v)
    if isinstance(v, str):
        return unicode(v)
    if isinstance(v, tuple):
        return tuple_(*(obj(x) for x in v))
    if isinstance(v, list):
        return list_(*(obj(x) for x in v))
    if isinstance(v, dict):
        return dict_((obj(k), obj(x)) for k, x in v.items())
    raise TypeError(f"obj() does not encode {type(v).__name__}")


def pickle_of(v, protocol: int = 2) -> bytes:
    """A complete pickle (PROTO, value, STOP) of a plain value."""
    return proto(protocol) + obj(v) + STOP


# --------------------------------------------------------------------------------------------
# torch-shaped pickles ------------------------------------------------------------------------

ORDERED_DICT = global_("collections", "OrderedDict")


def ordered_dict_empty() -> bytes:
    """``OrderedDict()`` the way torch writes it: GLOBAL + EMPTY_TUPLE + REDUCE."""
    return ORDERED_DICT + EMPTY_TUPLE + REDUCE


@dataclass
class TensorSpec:
    """One tensor entry of a state dict (geometry in elements, as torch pickles it)."""

    name: str
    key: str  # storage key
    storage: str = "FloatStorage"  # torch.<X>Storage name
    numel: int = 0  # storage numel written in the persistent id
    offset: int = 0
    size: Sequence[int] = ()
    stride: Sequence[int] = ()
    location: str = "cpu"


def storage_pid(spec: TensorSpec, legacy: bool, storage_module: str = "torch") -> bytes:
    """``("storage", torch.<X>Storage, key, location, numel[, None])`` + BINPERSID."""
    fields = [
        unicode("storage"),
        global_(storage_module, spec.storage),
        unicode(spec.key),
        unicode(spec.location),
        int_(spec.numel),
    ]
    if legacy:
        fields.append(NONE)
    return tuple_(*fields) + BINPERSID


def rebuild_tensor(spec: TensorSpec, legacy: bool, rebuild: str = "v2") -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``
    (or the 4-argument ``_rebuild_tensor`` of torch <= 0.3 when ``rebuild == "v1"``)."""
    args = [
        storage_pid(spec, legacy),
        int_(spec.offset),
        obj(tuple(spec.size)),
        obj(tuple(spec.stride)),
    ]
    if rebuild == "v2":
        args += [NEWFALSE, ordered_dict_empty()]
        fn = global_("torch._utils", "_rebuild_tensor_v2")
    elif rebuild == "v1":
        fn = global_("torch._utils", "_rebuild_tensor")
    else:
        raise ValueError(rebuild)
    return fn + MARK + b"".join(args) + TUPLE + REDUCE


def state_dict_body(
    tensors: Sequence[TensorSpec], legacy: bool, rebuild: str = "v2", metadata: bool = True
) -> bytes:
    """The object part (no PROTO/STOP) of an OrderedDict state dict of tensors."""
    out = ordered_dict_empty()
    if tensors:
        out += MARK
        for t in tensors:
            out += unicode(t.name) + rebuild_tensor(t, legacy, rebuild)
        out += SETITEMS
    if metadata:
        # state_dict()._metadata, pickled as BUILD on the OrderedDict with a dict state
        meta = ordered_dict_empty() + MARK + unicode("") + dict_([(unicode("version"), int_(1))]) + SETITEMS
        out += dict_([(unicode("_metadata"), meta)]) + BUILD
    return out


def state_dict_pickle(
    tensors: Sequence[TensorSpec], legacy: bool, rebuild: str = "v2", metadata: bool = True
) -> bytes:
    return proto(2) + state_dict_body(tensors, legacy, rebuild, metadata) + STOP


# --------------------------------------------------------------------------------------------
# containers ---------------------------------------------------------------------------------

StorageData = "bytes | tuple[int, bytes] | numpy.ndarray"


def _count_and_bytes(value, default_itemsize: int = 1) -> tuple[int, bytes]:
    if isinstance(value, tuple):
        count, data = value
        return int(count), bytes(data)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) // default_itemsize, bytes(value)
    # a numpy array (imported lazily: the builders themselves need no numpy)
    return int(value.size), value.astype(value.dtype.newbyteorder("<")).tobytes(order="C")


def sys_info_pickle(little_endian: bool = True) -> bytes:
    return pickle_of(
        {
            "protocol_version": 1001,
            "little_endian": little_endian,
            "type_sizes": {"short": 2, "int": 4, "long": 4},
        }
    )


def make_legacy_file(
    main_pickle: bytes,
    storages: Mapping[str, object],
    *,
    magic: bytes = LEGACY_MAGIC,
    protocol: bytes = LEGACY_PROTOCOL,
    sys_info: bytes | None = None,
    keys_pickle: bytes | None = None,
    trailing: bytes = b"",
) -> bytes:
    """A torch "stacked pickles" file (spec §1.3).

    ``storages`` maps key -> raw bytes (count = len, i.e. a byte storage), ``(count, bytes)`` or a
    numpy array (count = size, bytes little-endian C order). Blobs are written in the order of
    the sorted key list (lexicographic, like torch); ``keys_pickle`` replaces that list pickle.
    """
    keys = sorted(storages)
    out = bytearray()
    out += magic
    out += protocol
    out += sys_info if sys_info is not None else sys_info_pickle()
    out += main_pickle
    out += keys_pickle if keys_pickle is not None else pickle_of(list(keys))
    for k in keys:
        count, data = _count_and_bytes(storages[k])
        out += struct.pack("<q", count)
        out += data
    out += trailing
    return bytes(out)


def make_zip_file(
    data_pkl: bytes,
    storages: Mapping[str, object],
    *,
    prefix: str = "archive",
    version: bytes | None = b"3\n",
    byteorder: bytes | None = b"little",
    extra_records: Mapping[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> bytes:
    """A torch zip checkpoint (spec §1.5), written with Python's zipfile, STORED.

    Records: ``<prefix>/data.pkl`` first, then ``<prefix>/byteorder``, ``<prefix>/data/<key>``
    per storage (raw bytes, no count prefix), ``<prefix>/version``, then ``extra_records``.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr(f"{prefix}/data.pkl", data_pkl)
        if byteorder is not None:
            zf.writestr(f"{prefix}/byteorder", byteorder)
        for k in storages:
            _, data = _count_and_bytes(storages[k])
            zf.writestr(f"{prefix}/data/{k}", data)
        if version is not None:
            zf.writestr(f"{prefix}/version", version)
        for name, data in (extra_records or {}).items():
            zf.writestr(f"{prefix}/{name}", data)
    return buf.getvalue()


def float32_bytes(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def int64_bytes(values: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(values)}q", *values)

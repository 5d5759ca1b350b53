"""Sniffing and reading torch's containers and plain pickles, by content, never by extension.

* torch zip (torch >= 1.6): ``<prefix>/data.pkl`` + ``<prefix>/data/<key>`` (spec §1.5);
* torch legacy stacked pickles (torch 0.1.10 – 1.5, and ``_use_new_zipfile_serialization=False``):
  magic, protocol 1001, sys_info, main pickle, key list, then count-prefixed blobs (spec §1.3);
* the pre-0.1.10 tar container: recognised and refused;
* plain pickles (protocols 0–5), e.g. fastai 1.0.40–1.0.41 exports whose storages are nested
  legacy containers inside ``torch.storage._load_from_bytes``.

Storages are bound to a read-only memory map of the file; nothing is copied here."""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import EmbconvError, ResourceLimitError, UnreadableInputError, UnsafeInputError
from .globals import AttrUse, GlobalUse, Resolver, TorchDType
from .stubs import GlobalStub
from .tensors import StorageRef, TensorRef
from .vm import Unpickler
from .walk import iter_tensors
from .zipreader import read_entries

LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa850192e")
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# First opcodes of protocol 0/1 pickles (no PROTO opcode): MARK, empty containers, GLOBAL, scalars.
_PICKLE0_START = set(b"(]})cNIFLSV")


@dataclass
class ModelFile:
    """An opened model file: its container, its object graph and what the pickle named."""

    path: str
    container: str  # "torch-zip" | "torch-legacy" | "pickle"
    root: Any
    size: int
    globals: list[GlobalUse] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    storages: dict[str, StorageRef] = field(default_factory=dict)
    _mmap: Any = None
    _file: Any = None

    def tensors(self) -> Iterator[tuple[str, TensorRef]]:
        """Every tensor with its path (see ``iter_tensors``); errors name this file."""
        try:
            yield from iter_tensors(self.root)
        except EmbconvError as e:
            raise type(e)(e.message, path=e.path or self.path) from None

    def close(self) -> None:
        """Release the file. Arrays already taken from it keep the mapping alive until freed."""
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:
                pass  # numpy views still use it; it closes when they go
            self._mmap = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sniff(head: bytes, size: int) -> str:
    """The container of a file from its first bytes: torch-zip, torch-legacy, torch-tar, pickle.
    Raises UnreadableInputError for anything else."""
    if size == 0:
        raise UnreadableInputError("the file is empty")
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if head[:4] in (b"PK\x05\x06", b"PK\x07\x08"):
        raise UnreadableInputError("an empty or spanned zip archive, not a model file")
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "torch-tar"
    if head[: len(LEGACY_MAGIC)] == LEGACY_MAGIC:
        return "torch-legacy"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if head[:1] and head[0] in _PICKLE0_START:
        return "pickle"
    if head[:8] == b"PYTORCH1":
        raise UnreadableInputError("a pre-release PyTorch archive (PYTORCH1), not supported")
    raise UnreadableInputError(
        "not a model file: no torch zip, torch legacy or pickle signature at its start"
    )


def _short_repr(obj: Any) -> str:
    """A bounded description of a value from the file, for messages: file data can be deep
    (repr would recurse), huge, or an integer too long for ``repr``."""
    if type(obj) is int:
        return repr(obj) if obj.bit_length() <= 64 else f"a {obj.bit_length()}-bit integer"
    if type(obj) in (bool, float) or obj is None:
        return repr(obj)
    if type(obj) in (str, bytes):
        return repr(obj[:60]) + ("…" if len(obj) > 60 else "")
    return f"a {type(obj).__name__}"


def _is_storage_tag(s: Any) -> bool:
    return isinstance(s, (str, bytes)) and (s == "storage" or s == b"storage")


class _Reader:
    """Reads one buffer (the file, or nested bytes) with one resolver."""

    def __init__(self, path: str, buf: Any, resolver: Resolver, depth: int = 0) -> None:
        self.path = path
        self.buf = buf
        self.resolver = resolver
        self.depth = depth
        self.storages: dict[str, StorageRef] = {}
        self.warnings: list[str] = []

    # -- persistent ids --------------------------------------------------------------------
    def _storage_pid(self, pid: Any, offset: int, fields: int) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == fields and _is_storage_tag(pid[0])):
            raise UnreadableInputError(f"malformed storage persistent id at byte {offset}")
        stype, key, location, numel = pid[1:5]
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if isinstance(location, bytes):
            location = location.decode("ascii", "replace")
        if not (isinstance(stype, TorchDType) and stype.storage and stype.dtype is not None):
            raise UnreadableInputError(f"storage persistent id at byte {offset} names no storage type")
        if not isinstance(key, str) or not isinstance(location, str) or type(numel) is not int or numel < 0:
            raise UnreadableInputError(f"storage persistent id at byte {offset} has ill-typed fields")
        existing = self.storages.get(key)
        if existing is not None:
            if existing.dtype is not stype.dtype or existing.numel != numel:
                raise UnreadableInputError(f"storage {key!r} is declared twice with different types or sizes")
            return existing
        storage = StorageRef(key, stype.dtype, numel, location, origin=self.path)
        self.storages[key] = storage
        return storage

    def _module_pid(self, pid: Any, offset: int) -> Any:
        # ('module', class, source_file, source_text): whole-module pickles of torch <= 1.5.
        # The source text is kept as a string and never compiled.
        if not (len(pid) == 4 and isinstance(pid[1], GlobalStub) and not pid[1].reconstructed):
            raise UnreadableInputError(f"malformed module persistent id at byte {offset}")
        return pid[1]

    def zip_pid(self, entries: dict, prefix: str, byteorder: str):
        def load(pid: Any, offset: int) -> Any:
            storage = self._storage_pid(pid, offset, 5)
            if not storage.is_bound:
                entry = entries.get(f"{prefix}data/{storage.key}")
                if entry is None:
                    raise UnreadableInputError(f"storage {storage.key!r} has no data/{storage.key} entry in the zip")
                if entry.method != 0:
                    raise UnreadableInputError(
                        f"zip entry {entry.name!r} is compressed; torch stores entries uncompressed"
                    )
                storage.byteorder = byteorder
                storage.bind(self.buf, entry.data_offset, entry.compressed_size)
            return storage
        return load

    def legacy_pid(self, pid: Any, offset: int) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] in ("module", b"module"):
            return self._module_pid(pid, offset)
        if not (isinstance(pid, tuple) and len(pid) == 6):
            raise UnreadableInputError(f"malformed legacy persistent id at byte {offset}")
        root = self._storage_pid(pid, offset, 6)
        view = pid[5]
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and type(view[1]) is int and type(view[2]) is int):
            raise UnreadableInputError(f"malformed storage view at byte {offset}")
        view_key, view_offset, view_numel = view
        if view_offset < 0 or view_numel < 0 or view_offset + view_numel > root.numel:
            raise UnreadableInputError(f"storage view {view_key!r} lies outside its storage {root.key!r}")
        sub = StorageRef(view_key, root.dtype, view_numel, root.location, origin=self.path,
                         _base=root, _base_element_offset=view_offset)
        return sub

    # -- containers ------------------------------------------------------------------------
    def read_zip(self) -> Any:
        info: dict = {}
        entries = read_entries(self.buf, info)
        if not entries:
            raise UnreadableInputError("the zip archive is empty")
        if info["end"] < len(self.buf):  # e.g. a second file appended: a polyglot smell
            self.warnings.append(f"{len(self.buf) - info['end']} bytes after the end of the zip archive were ignored")
        first = next(iter(entries))
        prefix = first.split("/", 1)[0] + "/" if "/" in first else ""
        if f"{prefix}constants.pkl" in entries:
            raise UnreadableInputError("a TorchScript archive, not a pickled model (not supported)")
        pkl = entries.get(f"{prefix}data.pkl")
        if pkl is None:
            raise UnreadableInputError("zip archive without data.pkl: not a torch file")
        if f"{prefix}version" not in entries and f"{prefix}.data/version" not in entries:
            raise UnreadableInputError("zip archive without a version record: not a torch file")
        if pkl.method != 0:
            raise UnreadableInputError("data.pkl is compressed; torch stores entries uncompressed")
        byteorder = "little"
        bo = entries.get(f"{prefix}byteorder")
        if bo is not None and bo.method == 0:
            value = bytes(self.buf[bo.data_offset : bo.data_offset + min(bo.compressed_size, 16)]).strip()
            if value not in (b"little", b"big"):
                raise UnreadableInputError(f"byteorder record says {value!r}")
            byteorder = value.decode()
        end = pkl.data_offset + pkl.compressed_size
        vm = Unpickler(self.buf, pkl.data_offset, self.resolver, self.zip_pid(entries, prefix, byteorder),
                       limit=end)
        root, stop = vm.load()
        if stop != end:
            self.warnings.append(f"{end - stop} bytes after the end of data.pkl were ignored")
        return root

    def _plain(self, pos: int, what: str) -> tuple[Any, int]:
        try:
            return Unpickler(self.buf, pos, self.resolver).load()
        except (UnsafeInputError, ResourceLimitError) as e:
            raise type(e)(f"{e.message} (in the legacy {what} pickle)") from None

    def read_legacy(self) -> Any:
        magic, pos = self._plain(0, "magic-number")
        if magic != LEGACY_MAGIC_NUMBER or type(magic) is not int:
            raise UnreadableInputError("invalid legacy magic number")
        proto, pos = self._plain(pos, "protocol")
        if proto != LEGACY_PROTOCOL or type(proto) is not int:
            raise UnreadableInputError(f"unsupported legacy protocol version {_short_repr(proto)}")
        sys_info, pos = self._plain(pos, "sys_info")
        if not isinstance(sys_info, dict):
            raise UnreadableInputError("legacy sys_info record is not a dict")
        if sys_info.get("little_endian", True) is not True:
            raise UnreadableInputError("big-endian legacy files are not supported")
        vm = Unpickler(self.buf, pos, self.resolver, self.legacy_pid)
        root, pos = vm.load()
        keys, pos = self._plain(pos, "storage-key list")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise UnreadableInputError("legacy storage-key list is not a list of strings")
        size = len(self.buf)
        seen: set[str] = set()
        for key in keys:
            storage = self.storages.get(key)
            if storage is None or key in seen:
                raise UnreadableInputError(f"legacy storage key {key!r} is not referenced once by the model pickle")
            seen.add(key)
            if pos + 8 > size:
                raise UnreadableInputError(f"legacy storage {key!r} is missing (file truncated)")
            (count,) = struct.unpack_from("<q", self.buf, pos)
            if count != storage.numel:
                raise UnreadableInputError(
                    f"legacy storage {key!r} holds {count} elements, the pickle says {storage.numel}"
                )
            storage.bind(self.buf, pos + 8, size - pos - 8)
            pos += 8 + storage.nbytes
        unbound = [k for k in self.storages if k not in seen and self.storages[k]._base is None]
        if unbound:
            raise UnreadableInputError(f"legacy storage {unbound[0]!r} is used but has no data in the file")
        if pos < size:
            self.warnings.append(
                f"{size - pos} bytes of trailing data after the last storage were ignored"
            )
        return root

    def read_pickle(self) -> Any:
        vm = Unpickler(self.buf, 0, self.resolver, None)
        root, stop = vm.load()
        if stop < len(self.buf):
            self.warnings.append(f"{len(self.buf) - stop} bytes after the pickle's STOP were ignored")
        return root


def _nested_loader(path: str, resolver_ref: list, depth: int):
    """torch.storage._load_from_bytes(b): b is a whole torch file holding one storage. torch runs
    it with ``torch.load``, so whatever pickle b starts with is run too (a non-zip file's first
    pickle is read before torch can tell it is not a legacy file): a plain pickle is therefore run
    here under the same rules (its dangerous globals are refused, exit 1; in a scan, listed as
    nested) before it is rejected as not a torch file. The Resolver refuses a nested
    ``_load_from_bytes`` inside nested bytes."""

    def load(data: bytes) -> Any:
        resolver = resolver_ref[0]
        try:
            container = sniff(data[:512], len(data))
        except UnreadableInputError as e:
            raise UnreadableInputError(f"torch.storage._load_from_bytes holds bytes that are not a torch file "
                                       f"({e.message})") from None
        reader = _Reader(path, data, resolver, depth + 1)
        if container == "torch-legacy":
            obj = reader.read_legacy()
        elif container == "torch-zip":
            obj = reader.read_zip()
        elif container == "pickle":
            Unpickler(data, 0, resolver).load()
            raise UnreadableInputError("torch.storage._load_from_bytes holds a plain pickle, not a torch file")
        else:
            raise UnreadableInputError(f"torch.storage._load_from_bytes holds a {container}, not a torch file")
        if not isinstance(obj, StorageRef):
            raise UnreadableInputError("torch.storage._load_from_bytes did not hold a storage")
        return obj

    return load


def read_buffer(path: str, buf: Any, *, record_only: bool = False, uses: list[GlobalUse] | None = None,
                attr_uses: list[AttrUse] | None = None,
                stops: list[str] | None = None) -> tuple[str, Any, Resolver, _Reader]:
    """Sniff and read ``buf``; returns (container, root object, resolver, reader). Every global
    met is appended to ``uses`` (when given) as it is met, every ``getattr`` on a value the
    pickle built to ``attr_uses``, and the reason a pickle run stopped before its end to
    ``stops``, so a caller sees them even on error."""
    head = bytes(buf[:512])
    container = sniff(head, len(buf))
    if container == "torch-tar":
        raise UnreadableInputError(
            "a torch <= 0.1.9 tar container (2017); not supported — load and re-save it with torch 0.3-1.x"
        )
    ref: list = [None]
    resolver = Resolver(_nested_loader(path, ref, 0), record_only=record_only)
    if uses is not None:
        resolver.uses = uses
    if attr_uses is not None:
        resolver.attr_uses = attr_uses
    if stops is not None:
        resolver.stops = stops
    ref[0] = resolver
    reader = _Reader(path, buf, resolver)
    if container == "torch-zip":
        root = reader.read_zip()
    elif container == "torch-legacy":
        root = reader.read_legacy()
    elif head[:1] == b"\x80":
        root = reader.read_pickle()
    else:
        try:
            root = reader.read_pickle()
        except UnsafeInputError:
            raise
        except EmbconvError as e:
            # Text that merely starts like a protocol-0 pickle (a CSV, a README…): not a pickle
            # that stopped early, unless it named a global before failing.
            if not resolver.uses:
                resolver.stops.clear()
            raise UnreadableInputError(
                f"not a model file: no torch zip or legacy signature, and not a pickle ({e.message})"
            ) from None
    return container, root, resolver, reader


def open_model_file(path: str | os.PathLike) -> ModelFile:
    """Open a torch/fastai file safely: sniff its container, run its pickle(s) in the restricted
    VM, and bind every storage to a read-only memory map. Raises ``UnsafeInputError`` (exit 1)
    or ``UnreadableInputError`` (exit 3) with the path in the message."""
    p = os.fspath(path)
    try:
        f = open(p, "rb")
    except OSError as e:
        raise UnreadableInputError(f"cannot open: {e.strerror}", path=p) from None
    try:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise UnreadableInputError("the file is empty")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except EmbconvError as e:
        f.close()
        raise type(e)(e.message, path=p) from None
    except (OSError, ValueError) as e:
        f.close()
        raise UnreadableInputError(f"cannot map the file: {e}", path=p) from None
    try:
        container, root, resolver, reader = read_buffer(p, mm)
    except EmbconvError as e:
        _close(mm, f)
        raise type(e)(e.message, path=p) from None
    except Exception:
        _close(mm, f)
        raise
    st = os.fstat(f.fileno())
    for storage in reader.storages.values():
        if storage._buffer is mm:
            storage.file_identity = file_identity(st)
    return ModelFile(p, container, root, size, resolver.uses, reader.warnings, reader.storages, mm, f)


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is still the one that was opened: device, inode, size, mtime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _close(mm: Any, f: Any) -> None:
    try:
        mm.close()
    except BufferError:
        pass
    f.close()

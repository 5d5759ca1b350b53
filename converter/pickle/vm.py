"""A pure-Python pickle virtual machine that never imports or calls what a pickle names.

Written from the opcode list of the pickle protocol (0–5) rather than by subclassing the C
unpickler, whose memo is an array an attacker can grow (spec §2.6). Every global goes through
``Resolver.find``; REDUCE/NEWOBJ only run embconv's own reconstructors or record a stub; BUILD
only touches objects this load created. Counts of objects, memo entries and MARK depth are
bounded (and memo indices, which a pickler counts from 0), so memory stays proportional to the
input."""

from __future__ import annotations

import codecs
import pickle as opcodes  # only its opcode byte constants (opcodes.MARK == b"("), never its unpickler
import struct
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import EmbconvError, ResourceLimitError, UnreadableInputError, UnsafeInputError
from .globals import DefaultDict, GlobalStub, PendingTensor, Resolver, dtype_setstate, ndarray_setstate
from .stubs import AttrStub, ObjectStub
from .tensors import TensorRef

MAX_OBJECTS = 50_000_000  # containers + elements created by one pickle
# The objects one pickle creates, in estimated bytes: MAX_OBJECTS alone let one-byte opcodes
# that each make an empty container (EMPTY_SET is 216 bytes) turn 50 MB into 10+ GB.
MAX_CREATED_BYTES = 512 << 20
_BOOKKEEPING = 128  # per created object: GC header, its id in ``created``, its slot in ``_keep``
_ELEMENT_BYTES = 16  # per element added to a list (a pointer, growth slack)
_ENTRY_BYTES = 64  # per dict or set entry (hash-table slots, growth slack)
MAX_MEMO = 20_000_000
MAX_MARK_DEPTH = 10_000
MAX_LONG_BYTES = 4096
# Tuples inside tuples: CPython hashes (and compares) nested tuples recursively in C, so a
# dict key or set member nested a million deep overflows the C stack (a crash, not an error).
MAX_TUPLE_DEPTH = 1_000


class Unpickler:
    """Run one pickle from ``data[start:]``. ``load()`` returns (object, end offset)."""

    def __init__(self, data: Any, start: int, resolver: Resolver,
                 persistent: Callable[[Any, int], Any] | None = None, *, base_offset: int = 0,
                 limit: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if limit is None else min(limit, len(data))
        self.resolver = resolver
        self.persistent = persistent
        self.base_offset = base_offset  # for error messages: where this buffer sits in the file
        self.created: set[int] = set()  # ids of objects this load created (BUILD targets)
        self._keep: list[Any] = []  # keeps created objects alive so ids stay unique
        self.n_objects = 0
        self.n_bytes = 0
        self.proto = 0
        self._tuple_depth: dict[int, int] = {}  # id -> nesting depth, for tuples deeper than 1

    # ---- reading -------------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise UnreadableInputError(
                f"pickle is truncated: needs {n} bytes at byte {self.base_offset + self.pos}, "
                f"{self.end - self.pos} left"
            )
        b = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return b

    def _unpack(self, st: struct.Struct) -> tuple:
        """``st`` unpacked at the current position (no copy of the bytes)."""
        pos = self.pos
        if pos + st.size > self.end:
            self._read(st.size)  # raises: truncated
        self.pos = pos + st.size
        return st.unpack_from(self.data, pos)

    def _readline(self) -> bytes:
        i = self.pos
        # Lines are short in real pickles (names, numbers); bound the search. Search in growing
        # windows: copying the whole 1 MiB bound for every short line made a file of many
        # protocol-0 lines take time proportional to lines × 1 MiB.
        stop = min(self.end, i + (1 << 20))
        data = self.data
        lo, width = i, 256
        while True:
            hi = min(stop, lo + width)
            j = bytes(data[lo:hi]).find(b"\n")
            if j >= 0:
                nl = lo + j
                break
            if hi >= stop:
                raise UnreadableInputError(
                    f"pickle is truncated: unterminated line at byte {self.base_offset + i}")
            lo, width = hi, width * 2
        self.pos = nl + 1
        return bytes(data[i:nl])

    def _count(self, n: int = 1, nbytes: int | None = None) -> None:
        self.n_objects += n
        self.n_bytes += n * _ELEMENT_BYTES if nbytes is None else nbytes
        if self.n_objects > MAX_OBJECTS:
            raise ResourceLimitError(f"pickle builds more than {MAX_OBJECTS:,} objects (limit)")
        if self.n_bytes > MAX_CREATED_BYTES:
            raise ResourceLimitError(
                f"pickle builds more than {MAX_CREATED_BYTES >> 20:,} MiB of objects (limit)")

    def _new(self, obj: Any) -> Any:
        if type(obj) is tuple:  # a reconstructor's result (torch.Size, builtins.tuple …)
            self.tuple_made(obj)
        self.created.add(id(obj))
        self._keep.append(obj)
        self._count(1, sys.getsizeof(obj, 64) + _BOOKKEEPING)
        return obj

    def tuple_made(self, t: tuple) -> tuple:
        """Record the nesting depth of a new tuple; refuse one nested past MAX_TUPLE_DEPTH."""
        depth = 1
        depths = self._tuple_depth
        for x in t:
            if type(x) is tuple:
                d = depths.get(id(x), 1) + 1
                if d > depth:
                    depth = d
        if depth > 1:
            if depth > MAX_TUPLE_DEPTH:
                raise ResourceLimitError(f"pickle nests tuples deeper than {MAX_TUPLE_DEPTH} (limit)")
            depths[id(t)] = depth
            self._keep.append(t)  # keeps the id unique while the table refers to it
        return t

    # ---- main loop -----------------------------------------------------------------------
    def load(self) -> tuple[Any, int]:
        try:
            return self._run()
        except EmbconvError as e:
            # The first failure inside a pickle is kept on the resolver: ``scan`` then knows it
            # stopped before the end and says "inconclusive", not "clean" or merely "unreadable".
            if not self.resolver.stops:
                self.resolver.stops.append(e.message)
            raise

    def _run(self) -> tuple[Any, int]:
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: dict[int, Any] = {}
        dispatch = _DISPATCH
        try:
            while True:
                op_pos = self.pos
                if self.pos >= self.end:
                    raise UnreadableInputError(
                        f"pickle is truncated: no STOP opcode before byte {self.base_offset + self.end}"
                    )
                code = self.data[self.pos]
                self.pos += 1
                handler = dispatch.get(code)
                if handler is None:
                    raise UnreadableInputError(
                        f"invalid pickle opcode 0x{code:02x} at byte {self.base_offset + op_pos}"
                    )
                if handler is _stop:
                    if metastack:
                        raise UnreadableInputError("pickle STOP inside an open MARK")
                    if len(stack) != 1:
                        raise UnreadableInputError(f"pickle STOP with {len(stack)} values on the stack")
                    return stack[0], self.pos
                r = handler(self, stack, metastack, memo, op_pos)
                if r is not None:  # MARK/POP_MARK replace the stack
                    stack = r
        except EmbconvError:
            raise
        except RecursionError:
            raise ResourceLimitError("pickle nests too deeply (limit)") from None
        except MemoryError:
            raise ResourceLimitError("pickle needs more memory than allowed (limit)") from None
        except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError,
                struct.error, UnicodeDecodeError) as e:
            raise UnreadableInputError(
                f"corrupt pickle near byte {self.base_offset + self.pos}: {type(e).__name__}: {e}"
            ) from None

    # ---- helpers used by handlers ---------------------------------------------------------
    def call(self, func: Any, args: Any, op_pos: int) -> Any:
        """REDUCE: embconv's own reconstructor, or a recorded stub — nothing else."""
        if not isinstance(args, tuple):
            raise UnreadableInputError(f"REDUCE arguments are not a tuple at byte {self.base_offset + op_pos}")
        if isinstance(func, GlobalStub):
            if func.impl is not None:
                self.resolver.at = self.base_offset + op_pos  # for messages of the reconstructor
                return self._new(func.impl(*args))
            if func.reconstructed:  # a dtype or storage tag is not callable
                raise UnreadableInputError(f"{func.qualname} called at byte {self.base_offset + op_pos}")
            return self._new(ObjectStub(func, args))
        if isinstance(func, AttrStub) or (isinstance(func, ObjectStub) and id(func) in self.created):
            # e.g. cloudpickle's ``_builtin_type('MethodType')(f, obj)``: the "callable" is
            # itself a stub's result; calling it only records another stub.
            return self._new(ObjectStub(func, args))
        raise UnsafeInputError(
            f"refused REDUCE at byte {self.base_offset + op_pos}: the callable is a "
            f"{type(func).__name__}, not a global"
        )

    def newobj(self, cls: Any, args: Any, kwargs: Any, op_pos: int) -> Any:
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise UnreadableInputError(f"NEWOBJ arguments malformed at byte {self.base_offset + op_pos}")
        if isinstance(cls, GlobalStub):
            if cls.new_impl is not None:
                return self._new(cls.new_impl(*args))
            if cls.reconstructed:
                raise UnsafeInputError(f"refused NEWOBJ of {cls.qualname} at byte {self.base_offset + op_pos}")
            return self._new(ObjectStub(cls, args, kwargs))
        if isinstance(cls, AttrStub) or (isinstance(cls, ObjectStub) and id(cls) in self.created):
            return self._new(ObjectStub(cls, args, kwargs))
        raise UnsafeInputError(
            f"refused NEWOBJ at byte {self.base_offset + op_pos}: the class is a {type(cls).__name__}"
        )

    def build(self, obj: Any, state: Any, op_pos: int) -> Any:
        if id(obj) not in self.created:
            raise UnsafeInputError(
                f"refused BUILD at byte {self.base_offset + op_pos} on a {type(obj).__name__} "
                "this pickle did not create"
            )
        if isinstance(obj, ObjectStub):
            if obj.state is None:
                obj.state = state
            else:
                obj.state = (obj.state, state)
            return obj
        if isinstance(obj, PendingTensor):
            if not (isinstance(state, tuple) and len(state) == 4) or obj.tensor is not None:
                raise UnreadableInputError("0.1.10 tensor state is not (storage, offset, size, stride)")
            storage, offset, size, stride = state
            obj.tensor = TensorRef(storage, offset, size, stride)
            return obj
        if isinstance(obj, TensorRef):
            # torch 0.3 Variable/Parameter BUILD state (requires_grad, volatile, hooks), or the
            # attribute dict of a tensor subclass: nothing to keep.
            return obj
        if isinstance(obj, np.ndarray):
            ndarray_setstate(obj, state)
            return obj
        if isinstance(obj, np.dtype):
            dtype_setstate(obj, state)
            return obj
        if isinstance(obj, (dict, list, set)):
            # OrderedDict._metadata (torch >= 0.4) and similar plain attributes.
            slots = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slots = state
            for part in (state, slots):
                if part is None:
                    continue
                if not isinstance(part, dict):
                    raise UnreadableInputError(f"BUILD state of a {type(obj).__name__} is not a dict")
                for k, v in part.items():
                    if not isinstance(k, str) or k.startswith("__"):
                        raise UnsafeInputError(f"refused BUILD setting attribute {k!r} at byte {op_pos}")
                    if not hasattr(obj, "__dict__"):
                        continue  # a plain dict/list has no attributes to set; state is dropped
                    obj.__dict__[k] = v
            return obj
        raise UnsafeInputError(
            f"refused BUILD at byte {self.base_offset + op_pos} on a {type(obj).__name__}"
        )

    def setitems(self, target: Any, pairs: Any, op_pos: int, n: int | None = None) -> None:
        """``target[k] = v`` for the (k, v) in ``pairs`` (an iterable of ``n`` pairs)."""
        n = len(pairs) if n is None else n
        if isinstance(target, dict):
            for k, v in pairs:
                target[k] = v
        elif isinstance(target, ObjectStub):
            if target.dictitems is None:
                target.dictitems = {}
            for k, v in pairs:
                target.dictitems[k] = v
        else:
            raise UnreadableInputError(
                f"SETITEM on a {type(target).__name__} at byte {self.base_offset + op_pos}"
            )
        self._count(n, n * _ENTRY_BYTES)

    def appends(self, target: Any, items: list, op_pos: int) -> None:
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, ObjectStub):
            if target.listitems is None:
                target.listitems = []
            target.listitems.extend(items)
        else:
            raise UnreadableInputError(f"APPEND on a {type(target).__name__} at byte {self.base_offset + op_pos}")
        self._count(len(items))

    def memo_put(self, memo: dict, index: int, value: Any) -> None:
        if index < 0:
            raise UnreadableInputError("negative memo index")
        if index >= MAX_MEMO:
            # A dict memo would not mind, but no pickler writes such an index (they count from 0)
            # and the C unpickler torch.load uses grows an array up to it (2**30 -> 8 GiB).
            raise ResourceLimitError(f"pickle memo index {index:,} is beyond the memo limit of {MAX_MEMO:,} (limit)")
        if index not in memo and len(memo) >= MAX_MEMO:
            raise ResourceLimitError(f"pickle memo exceeds {MAX_MEMO:,} entries (limit)")
        memo[index] = value


# ---- opcode handlers: (vm, stack, metastack, memo, op_pos) -> new stack or None --------------

_Handler = Callable[[Unpickler, list, list, dict, int], list | None]


def _pop_mark(vm: Unpickler, stack: list, metastack: list) -> tuple[list, list]:
    if not metastack:
        raise UnreadableInputError("pickle pops a MARK that was never pushed")
    items = stack
    return metastack.pop(), items


def _mark(vm, stack, metastack, memo, op):
    if len(metastack) >= MAX_MARK_DEPTH:
        raise ResourceLimitError(f"pickle nests MARKs deeper than {MAX_MARK_DEPTH} (limit)")
    metastack.append(stack)
    return []


def _stop(vm, stack, metastack, memo, op):  # handled in the loop
    raise AssertionError


def _pop(vm, stack, metastack, memo, op):
    if stack:
        stack.pop()
        return None
    new, _ = _pop_mark(vm, stack, metastack)
    return new


def _pop_mark_op(vm, stack, metastack, memo, op):
    new, _ = _pop_mark(vm, stack, metastack)
    return new


def _dup(vm, stack, metastack, memo, op):
    stack.append(stack[-1])


def _proto(vm, stack, metastack, memo, op):
    p = vm._read(1)[0]
    if p > 5:
        raise UnreadableInputError(f"unsupported pickle protocol {p}")
    vm.proto = p


def _frame(vm, stack, metastack, memo, op):
    (n,) = struct.unpack("<Q", vm._read(8))
    if n > vm.end - vm.pos:
        raise UnreadableInputError(f"pickle frame of {n} bytes runs past the end (truncated)")


def _push(value_fn):
    def handler(vm, stack, metastack, memo, op):
        stack.append(value_fn(vm))
    return handler


def _int_text(vm: Unpickler) -> Any:
    line = vm._readline()
    if line == b"00":
        return False
    if line == b"01":
        return True
    if len(line) > MAX_LONG_BYTES:
        raise ResourceLimitError("integer literal too long (limit)")
    return int(line)


def _long_text(vm: Unpickler) -> int:
    line = vm._readline()
    if len(line) > MAX_LONG_BYTES:
        raise ResourceLimitError("integer literal too long (limit)")
    if line.endswith(b"L"):
        line = line[:-1]
    return int(line)


def _long_n(size_fmt: str, size_len: int):
    def read(vm: Unpickler) -> int:
        n = struct.unpack(size_fmt, vm._read(size_len))[0]
        if n > MAX_LONG_BYTES:
            raise ResourceLimitError("integer literal too long (limit)")
        return int.from_bytes(vm._read(n), "little", signed=True)
    return read


def _string_text(vm: Unpickler) -> Any:
    data = vm._readline()
    if len(data) >= 2 and data[0] == data[-1] and data[0] in b"\"'":
        data = data[1:-1]
    else:
        raise UnreadableInputError("STRING opcode argument must be quoted")
    return _py2_str(codecs.escape_decode(data)[0])


def _py2_str(raw: bytes) -> str:
    # Python 2 ``str`` values, decoded as torch.load does (utf-8), latin-1 when that fails.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin1")


def _sized(size_fmt: str, size_len: int, kind: str):
    size = struct.Struct(size_fmt)

    def read(vm: Unpickler) -> Any:
        n = vm._unpack(size)[0]
        if kind == "str":  # the common case (every vocabulary token): decode straight from the buffer
            if n < 0 or vm.pos + n > vm.end:
                vm._read(n)  # raises: truncated
            raw = vm.data[vm.pos : vm.pos + n]
            vm.pos += n
            return str(raw, "utf-8", "surrogatepass")
        raw = vm._read(n)  # _read checks n against what is left before allocating
        if kind == "binstring":
            return _py2_str(raw)
        if kind == "bytearray":
            return bytearray(raw)
        return raw
    return read


def _unicode_text(vm: Unpickler) -> str:
    return vm._readline().decode("raw-unicode-escape")


def _float_text(vm: Unpickler) -> float:
    return float(vm._readline())


def _persid(vm, stack, metastack, memo, op):
    pid = vm._readline().decode("ascii")
    stack.append(_persistent(vm, pid, op))


def _binpersid(vm, stack, metastack, memo, op):
    pid = stack.pop()
    stack.append(_persistent(vm, pid, op))


def _persistent(vm: Unpickler, pid: Any, op: int) -> Any:
    if vm.persistent is None:
        raise UnsafeInputError(f"persistent id at byte {vm.base_offset + op} in a plain pickle")
    return vm.persistent(pid, vm.base_offset + op)


def _reduce(vm, stack, metastack, memo, op):
    args = stack.pop()
    func = stack[-1]
    stack[-1] = vm.call(func, args, op)


def _build(vm, stack, metastack, memo, op):
    state = stack.pop()
    vm.build(stack[-1], state, op)


def _global(vm, stack, metastack, memo, op):
    module = vm._readline().decode("utf-8")
    name = vm._readline().decode("utf-8")
    stack.append(vm.resolver.find(module, name, vm.base_offset + op))


def _stack_global(vm, stack, metastack, memo, op):
    name = stack.pop()
    module = stack.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise UnreadableInputError(f"STACK_GLOBAL with non-string names at byte {vm.base_offset + op}")
    stack.append(vm.resolver.find(module, name, vm.base_offset + op))


def _inst(vm, stack, metastack, memo, op):
    module = vm._readline().decode("utf-8", "replace")
    name = vm._readline().decode("utf-8", "replace")
    vm.resolver.uses.append(_refused_use(module, name, vm.base_offset + op, "INST calls a class",
                                         vm.resolver.nested_at))
    raise UnsafeInputError(f"refused INST opcode calling '{module}.{name}' at byte {vm.base_offset + op}")


def _obj(vm, stack, metastack, memo, op):
    raise UnsafeInputError(f"refused OBJ opcode (calls a class) at byte {vm.base_offset + op}")


def _ext(size: int):
    def handler(vm, stack, metastack, memo, op):
        vm._read(size)
        raise UnsafeInputError(
            f"refused EXT{size} opcode (copyreg extension registry) at byte {vm.base_offset + op}"
        )
    return handler


def _refused_use(module: str, name: str, offset: int, reason: str, nested_at: int | None = None):
    from .globals import GlobalUse
    return GlobalUse(module, name, "refused", offset, reason, nested_at=nested_at)


def _newobj(vm, stack, metastack, memo, op):
    args = stack.pop()
    cls = stack.pop()
    stack.append(vm.newobj(cls, args, {}, op))


def _newobj_ex(vm, stack, metastack, memo, op):
    kwargs = stack.pop()
    args = stack.pop()
    cls = stack.pop()
    stack.append(vm.newobj(cls, args, kwargs, op))


def _empty(factory):
    def handler(vm, stack, metastack, memo, op):
        stack.append(vm._new(factory()))
    return handler


def _tuple(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    t = tuple(items)
    vm._count(len(items), sys.getsizeof(t))
    new.append(vm.tuple_made(t))
    return new


def _tuple_n(n: int):
    def handler(vm, stack, metastack, memo, op):
        if len(stack) < n:
            raise UnreadableInputError(f"TUPLE{n} with {len(stack)} values on the stack")
        items = tuple(stack[len(stack) - n :]) if n else ()
        del stack[len(stack) - n :]
        vm._count(1, sys.getsizeof(items))
        stack.append(vm.tuple_made(items) if n else items)
    return handler


def _list(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    new.append(vm._new(list(items)))
    vm._count(len(items))
    return new


def _dict(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    if len(items) % 2:
        raise UnreadableInputError("DICT with an odd number of items")
    d = vm._new({})
    vm.setitems(d, zip(items[::2], items[1::2]), op, len(items) // 2)
    new.append(d)
    return new


def _frozenset(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    vm._count(len(items), 216 + len(items) * _ENTRY_BYTES)
    new.append(frozenset(items))
    return new


def _append(vm, stack, metastack, memo, op):
    value = stack.pop()
    vm.appends(stack[-1], [value], op)


def _appends(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    vm.appends(new[-1], items, op)
    return new


def _setitem(vm, stack, metastack, memo, op):
    value = stack.pop()
    key = stack.pop()
    vm.setitems(stack[-1], [(key, value)], op)


def _setitems(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    if len(items) % 2:
        raise UnreadableInputError("SETITEMS with an odd number of items")
    vm.setitems(new[-1], zip(items[::2], items[1::2]), op, len(items) // 2)
    return new


def _additems(vm, stack, metastack, memo, op):
    new, items = _pop_mark(vm, stack, metastack)
    target = new[-1]
    if not isinstance(target, set):
        raise UnreadableInputError("ADDITEMS on something that is not a set")
    target.update(items)
    vm._count(len(items), len(items) * _ENTRY_BYTES)
    return new


def _get_text(vm, stack, metastack, memo, op):
    stack.append(memo[int(vm._readline())])


def _get_n(fmt: str, size: int):
    def handler(vm, stack, metastack, memo, op):
        idx = struct.unpack(fmt, vm._read(size))[0]
        if idx not in memo:
            raise UnreadableInputError(f"memo index {idx} read before it was written")
        stack.append(memo[idx])
    return handler


def _put_text(vm, stack, metastack, memo, op):
    vm.memo_put(memo, int(vm._readline()), stack[-1])


def _put_n(fmt: str, size: int):
    index = struct.Struct(fmt)

    def handler(vm, stack, metastack, memo, op):
        vm.memo_put(memo, vm._unpack(index)[0], stack[-1])
    return handler


def _memoize(vm, stack, metastack, memo, op):
    vm.memo_put(memo, len(memo), stack[-1])


def _buffer_op(vm, stack, metastack, memo, op):
    raise UnreadableInputError(f"out-of-band pickle buffers are not supported (byte {vm.base_offset + op})")


def _readonly_buffer(vm, stack, metastack, memo, op):
    pass


_OPCODES: dict[bytes, _Handler] = {
    opcodes.MARK: _mark,
    opcodes.STOP: _stop,
    opcodes.POP: _pop,
    opcodes.POP_MARK: _pop_mark_op,
    opcodes.DUP: _dup,
    opcodes.FLOAT: _push(_float_text),
    opcodes.INT: _push(_int_text),
    opcodes.BININT: _push(lambda vm: struct.unpack("<i", vm._read(4))[0]),
    opcodes.BININT1: _push(lambda vm: vm._read(1)[0]),
    opcodes.LONG: _push(_long_text),
    opcodes.BININT2: _push(lambda vm: struct.unpack("<H", vm._read(2))[0]),
    opcodes.NONE: _push(lambda vm: None),
    opcodes.PERSID: _persid,
    opcodes.BINPERSID: _binpersid,
    opcodes.REDUCE: _reduce,
    opcodes.STRING: _push(_string_text),
    opcodes.BINSTRING: _push(_sized("<i", 4, "binstring")),
    opcodes.SHORT_BINSTRING: _push(_sized("<B", 1, "binstring")),
    opcodes.UNICODE: _push(_unicode_text),
    opcodes.BINUNICODE: _push(_sized("<I", 4, "str")),
    opcodes.APPEND: _append,
    opcodes.BUILD: _build,
    opcodes.GLOBAL: _global,
    opcodes.DICT: _dict,
    opcodes.EMPTY_DICT: _empty(dict),
    opcodes.APPENDS: _appends,
    opcodes.GET: _get_text,
    opcodes.BINGET: _get_n("<B", 1),
    opcodes.INST: _inst,
    opcodes.LONG_BINGET: _get_n("<I", 4),
    opcodes.LIST: _list,
    opcodes.EMPTY_LIST: _empty(list),
    opcodes.OBJ: _obj,
    opcodes.PUT: _put_text,
    opcodes.BINPUT: _put_n("<B", 1),
    opcodes.LONG_BINPUT: _put_n("<I", 4),
    opcodes.SETITEM: _setitem,
    opcodes.TUPLE: _tuple,
    opcodes.EMPTY_TUPLE: _tuple_n(0),
    opcodes.SETITEMS: _setitems,
    opcodes.BINFLOAT: _push(lambda vm: struct.unpack(">d", vm._read(8))[0]),
    opcodes.PROTO: _proto,
    opcodes.NEWOBJ: _newobj,
    opcodes.EXT1: _ext(1),
    opcodes.EXT2: _ext(2),
    opcodes.EXT4: _ext(4),
    opcodes.TUPLE1: _tuple_n(1),
    opcodes.TUPLE2: _tuple_n(2),
    opcodes.TUPLE3: _tuple_n(3),
    opcodes.NEWTRUE: _push(lambda vm: True),
    opcodes.NEWFALSE: _push(lambda vm: False),
    opcodes.LONG1: _push(_long_n("<B", 1)),
    opcodes.LONG4: _push(_long_n("<i", 4)),
    opcodes.BINBYTES: _push(_sized("<I", 4, "bytes")),
    opcodes.SHORT_BINBYTES: _push(_sized("<B", 1, "bytes")),
    opcodes.SHORT_BINUNICODE: _push(_sized("<B", 1, "str")),
    opcodes.BINUNICODE8: _push(_sized("<Q", 8, "str")),
    opcodes.BINBYTES8: _push(_sized("<Q", 8, "bytes")),
    opcodes.EMPTY_SET: _empty(set),
    opcodes.ADDITEMS: _additems,
    opcodes.FROZENSET: _frozenset,
    opcodes.NEWOBJ_EX: _newobj_ex,
    opcodes.STACK_GLOBAL: _stack_global,
    opcodes.MEMOIZE: _memoize,
    opcodes.FRAME: _frame,
    opcodes.BYTEARRAY8: _push(_sized("<Q", 8, "bytearray")),
    opcodes.NEXT_BUFFER: _buffer_op,
    opcodes.READONLY_BUFFER: _readonly_buffer,
}
# Keyed by the opcode's int value, as the loop reads it from the buffer: one dict lookup per opcode.
_DISPATCH: dict[int, _Handler] = {op[0]: handler for op, handler in _OPCODES.items()}

__all__ = ["Unpickler", "DefaultDict"]

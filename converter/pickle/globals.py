"""Which globals a pickle may name, and what each one becomes.

Three outcomes, decided by exact (module, name) pairs:

* **reconstructed** — a short allowlist of pure reconstructors that embconv implements itself
  (containers, tensors and storages, numpy arrays/scalars/dtypes, ``_codecs.encode`` …);
* **refused** — names that can run code, touch the system or nest another unpickler
  (``os``, ``subprocess``, ``builtins.eval``, ``operator.attrgetter`` …): loading stops with an
  ``UnsafeInputError`` naming the global and its byte offset;
* **stubbed** — everything else (fastai, pandas, torch.nn …) becomes an inert ``GlobalStub``.

``builtins.getattr`` (how pickle spells a bound method) is reconstructed by ``Resolver._getattr``:
on a stub or on plain data the pickle built (numpy arrays/scalars/dtypes, containers) it yields an
inert ``AttrStub``; on anything else, with a special name (``__x__``, ``__x``) on any receiver
(stubs included: ``getattr(Learner.__init__, '__globals__')`` is the classic way from a class to
``__builtins__``), or with a private name on real data, it is refused. Dotted global names that
walk through a special attribute (``Learner.__init__.__globals__``) are refused the same way.

Nothing here imports a module named by the file."""

from __future__ import annotations

import _compat_pickle
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnreadableInputError, UnsafeInputError
from .stubs import AttrStub, GlobalStub, ObjectStub, chain_name
from .tensors import DTYPES, STORAGE_CLASSES, TORCH_DTYPE_GLOBALS, DType, TensorRef

# --- refused -----------------------------------------------------------------------------------

# Whole modules (and their submodules) that have no business in a model file.
DENIED_MODULES = frozenset("""
os posix nt subprocess _posixsubprocess sys socket _socket shutil runpy pickle _pickle cPickle
pickletools pip pdb bdb pty asyncio ctypes _ctypes cffi webbrowser urllib urllib2
urllib3 requests http httplib ftplib smtplib telnetlib poplib imaplib nntplib xmlrpc importlib
pkgutil zipimport imp code codeop marshal multiprocessing threading _thread signal commands popen2
platform io _io tempfile glob fileinput mmap shelve dbm sqlite3 tarfile zipfile gzip bz2 lzma
operator _operator builtins.__import__ pkg_resources setuptools distutils site sysconfig
ensurepip venv trace tracemalloc cProfile profile timeit faulthandler gc weakref atexit
getpass syslog logging xml.sax xml.dom pyexpat _winapi msvcrt winreg _winreg resource fcntl
termios tty pwd grp crypt spwd readline rlcompleter ssl selectors select asyncore asynchat
socketserver wsgiref cgi cgitb smtpd uuid torch.hub torch.jit torch._dynamo torch._inductor
torch.package torch.utils._config_module torch.serialization torch.cuda.memory torch.ops torch._ops
torch._C torch.distributed torch.multiprocessing torch.utils.cpp_extension torch.utils.data
numpy.f2py numpy.testing numpy.distutils numpy.ctypeslib numpy.lib.npyio numpy.lib.format
numpy.lib.utils joblib jsonpickle yaml pandas.io pandas.read_pickle
""".split())

DENIED_NAMES = frozenset(
    tuple(pair.split(":"))
    for pair in """
builtins:eval builtins:exec builtins:execfile builtins:compile builtins:open builtins:__import__
builtins:apply builtins:breakpoint builtins:input builtins:raw_input builtins:globals builtins:locals
builtins:vars builtins:delattr builtins:setattr builtins:reload builtins:file builtins:exit
builtins:quit builtins:help builtins:__loader__ builtins:__build_class__ builtins:memoryview
functools:reduce functools:lru_cache functools:cached_property functools:singledispatch
torch:load torch:save torch:from_file torch:compile torch:_load_global_deps torch:classes
torch:ops torch:_C numpy:load numpy:save numpy:fromfile numpy:memmap numpy:loadtxt numpy:genfromtxt
numpy:frompyfunc numpy:vectorize pandas:read_pickle pandas:eval cloudpickle:loads cloudpickle:load
dill:loads dill:load dill._dill:loads dill._dill:load

inspect:getattr_static inspect:getmodule inspect:getsource inspect:currentframe inspect:stack
copyreg:_extension_registry copyreg:add_extension copyreg:_inverted_registry
""".split()
)

# inspect, functools and cloudpickle hold both benign classes seen in real exports and gadgets;
# only these names may be stubbed from them.
STUB_ONLY_FROM = {
    "inspect": {"Signature", "Parameter", "_ParameterKind", "_empty", "_void"},
    "functools": {"partial", "partialmethod", "wraps", "update_wrapper", "total_ordering"},
}

# Code-carrying helpers (cloudpickle's ``_make_function``, ``_builtin_type``, ``subimport``;
# dill's function rebuilders) are *stubbed*, not refused: fastai >= 2.8.1 exports name them for
# any function defined in a notebook, and a stub only records them; nothing is ever called.


def normalise_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 spellings (``__builtin__``, ``copy_reg``) mapped to Python 3, as pickle does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def refusal_reason(module: str, name: str) -> str | None:
    """Why (module, name) is refused, or None when it is not."""
    m, n = normalise_name(module, name)
    head = n.split(".", 1)[0]
    for mod in {module, m}:
        if (mod, head) in DENIED_NAMES or (mod, n) in DENIED_NAMES:
            return f"{mod}.{n} can run code or reach the system"
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in DENIED_MODULES or f"{prefix}.{head}" in DENIED_MODULES:
                return f"module {prefix} can run code or reach the system"
        if mod in STUB_ONLY_FROM and head not in STUB_ONLY_FROM[mod]:
            return f"{mod}.{n} is not a name model files use"
    if m == "builtins" and head.startswith("__") and head not in {"__build_class__"}:
        return f"builtins.{n} is a dunder of builtins"
    special = next((part for part in n.split(".")[1:] if is_special_name(part)), None)
    if special is not None:
        # protocol 4 resolves dotted names attribute by attribute: 'Learner.__init__.__globals__'
        return f"{m}.{n} walks through the special attribute {special!r}"
    return None


def is_special_name(name: str) -> bool:
    """True for an attribute name that reaches Python's machinery rather than a model's data:
    dunders (``__globals__``, ``__builtins__``, ``__class__``, ``__subclasses__``, ``__init__``,
    ``__reduce__``, ``__code__``, ``__dict__`` …, any ``__x__``) and name-mangled ``__x``; also
    any dotted part of ``name`` that is one (``'a.__globals__'``)."""
    return any(part.startswith("__") for part in name.split("."))


# --- reconstructed -----------------------------------------------------------------------------


class TorchDType(GlobalStub):
    """A torch global that is only a dtype tag: ``torch.float32`` & co., used by
    ``_rebuild_tensor_v3`` (``dtype`` is None for dtypes embconv does not read), or, with
    ``storage`` set, ``torch.FloatStorage`` & co. inside persistent ids."""

    __slots__ = ("dtype", "storage")

    def __init__(self, module: str, name: str, dtype: DType | None, *, storage: bool = False) -> None:
        super().__init__(module, name)
        self.dtype = dtype
        self.storage = storage

    @property
    def reconstructed(self) -> bool:
        return True


class DefaultDict(dict):
    """``collections.defaultdict`` without a callable factory: the factory is kept as data."""

    default_factory: object = None


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise UnreadableInputError(message)


def _tensor_v1(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorRef:
    return TensorRef(storage, offset, size, stride)


def _tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
               hooks: Any = None, metadata: Any = None, *extra: Any) -> TensorRef:
    t = TensorRef(storage, offset, size, stride)
    t.requires_grad = bool(requires_grad) if isinstance(requires_grad, bool) else False
    return t


def _tensor_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
               dtype: Any, metadata: Any = None, *extra: Any) -> TensorRef:
    _expect(isinstance(dtype, TorchDType) and not dtype.storage, "_rebuild_tensor_v3 without a torch dtype")
    if dtype.dtype is None:
        raise UnreadableInputError(f"tensors of dtype torch.{dtype.name} are not supported")
    return TensorRef(storage, offset, size, stride, dtype=dtype.dtype)


def _parameter(data: Any, requires_grad: Any = True, hooks: Any = None, *state: Any) -> Any:
    _expect(isinstance(data, TensorRef), "a Parameter rebuilt from something that is not a tensor")
    return data


def _from_type_v2(func: Any, cls: Any, args: Any, state: Any = None) -> Any:
    _expect(isinstance(func, GlobalStub) and func.impl is not None and isinstance(args, tuple),
            "_rebuild_from_type_v2 with an unknown rebuild function")
    result = func.impl(*args)
    if isinstance(result, TensorRef) and isinstance(cls, GlobalStub):
        if cls.qualname != "torch.Tensor":
            result.subclass = cls.qualname
    return result


def _pending_legacy_tensor(*args: Any) -> Any:
    # torch 0.1.10: ``torch.FloatTensor()`` then BUILD with (storage, offset, size, stride).
    _expect(args == (), "a legacy tensor class called with arguments")
    return PendingTensor()


class PendingTensor:
    """A 0.1.10-era tensor between its REDUCE and its BUILD."""

    __slots__ = ("tensor",)

    def __init__(self) -> None:
        self.tensor: TensorRef | None = None


def _torch_size(*args: Any) -> tuple:
    _expect(len(args) <= 1, "torch.Size called with several arguments")
    values = tuple(args[0]) if args else ()
    _expect(all(type(v) is int for v in values), "torch.Size of non-integers")
    return values


def _ordered_dict(*args: Any) -> OrderedDict:
    _expect(len(args) <= 1, "OrderedDict called with several arguments")
    if not args:
        return OrderedDict()
    items = args[0]
    _expect(isinstance(items, (list, tuple)), "OrderedDict built from something that is not a list")
    out: OrderedDict = OrderedDict()
    for pair in items:
        _expect(isinstance(pair, (list, tuple)) and len(pair) == 2, "OrderedDict item is not a pair")
        out[pair[0]] = pair[1]
    return out


def _counter(*args: Any) -> Counter:
    _expect(not args or isinstance(args[0], dict), "Counter built from something that is not a dict")
    return Counter(args[0]) if args else Counter()


def _defaultdict(*args: Any) -> DefaultDict:
    d = DefaultDict()
    if args:
        d.default_factory = args[0]
        if len(args) > 1 and isinstance(args[1], dict):
            d.update(args[1])
    return d


def _codecs_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    _expect(isinstance(obj, str) and encoding in ("latin1", "latin-1", "utf-8", "utf8", "ascii"),
            "_codecs.encode outside the form pickle uses for bytes")
    return obj.encode(encoding)


_SEQ = (list, tuple, set, frozenset)


def _b_set(*args: Any) -> set:
    _expect(not args or isinstance(args[0], _SEQ), "set() of something that is not a sequence")
    return set(args[0]) if args else set()


def _b_frozenset(*args: Any) -> frozenset:
    _expect(not args or isinstance(args[0], _SEQ), "frozenset() of something that is not a sequence")
    return frozenset(args[0]) if args else frozenset()


def _b_slice(*args: Any) -> slice:
    _expect(1 <= len(args) <= 3 and all(a is None or type(a) is int for a in args), "odd slice()")
    return slice(*args)


def _b_complex(*args: Any) -> complex:
    _expect(len(args) <= 2 and all(type(a) in (int, float) for a in args), "odd complex()")
    return complex(*args)


def _b_bytearray(*args: Any) -> bytearray:
    _expect(not args or isinstance(args[0], (bytes, list)), "odd bytearray()")
    if args and isinstance(args[0], list):
        _expect(all(type(v) is int for v in args[0]), "odd bytearray()")
    return bytearray(args[0]) if args else bytearray()


def _b_bytes(*args: Any) -> bytes:
    _expect(not args or isinstance(args[0], (bytes, bytearray, list)), "odd bytes()")
    if args and isinstance(args[0], list):
        _expect(all(type(v) is int for v in args[0]), "odd bytes()")
    return bytes(args[0]) if args else b""


def _b_seq(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        _expect(not args or isinstance(args[0], _SEQ), f"{kind.__name__}() of something that is not a sequence")
        return kind(args[0]) if args else kind()
    return build


def _b_number(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        _expect(len(args) <= 1 and all(type(a) in (int, float, str, bool) for a in args),
                f"odd {kind.__name__}()")
        if args and isinstance(args[0], str):
            _expect(len(args[0]) < 400, f"{kind.__name__}() of a very long string")
        try:
            return kind(*args)
        except ValueError as e:
            raise UnreadableInputError(f"{kind.__name__}() failed: {e}") from None
    return build


def _b_str(*args: Any) -> str:
    _expect(len(args) <= 1 and all(isinstance(a, str) for a in args), "odd str()")
    return args[0] if args else ""


_MAX_PLACEHOLDER = 1024


def _np_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    _expect(isinstance(cls, GlobalStub) and cls.name == "ndarray", "numpy _reconstruct of a non-ndarray class")
    _expect(isinstance(shape, tuple) and all(type(s) is int and 0 <= s for s in shape), "odd _reconstruct shape")
    _expect(int(np.prod(shape)) <= _MAX_PLACEHOLDER, "numpy _reconstruct placeholder is too large")
    _expect(isinstance(dtype, (bytes, str)) and len(dtype) <= 8, "odd _reconstruct dtype")
    try:
        dt = np.dtype(dtype.decode("latin1") if isinstance(dtype, bytes) else dtype)
    except TypeError as e:
        raise UnreadableInputError(f"bad numpy dtype: {e}") from None
    _expect(not dt.hasobject or dt == np.dtype(object), "structured object dtype refused")
    return np.ndarray.__new__(np.ndarray, shape, dt)


_NP_DTYPE_RE_OK = set("<>=|bBhHiIlLqQefdgFDGSUVOM?mnpP0123456789[]")


def _np_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    _expect(isinstance(spec, str) and 0 < len(spec) <= 24 and set(spec) <= _NP_DTYPE_RE_OK,
            f"numpy dtype spec {spec!r} refused")
    try:
        return np.dtype(spec)
    except TypeError as e:
        raise UnreadableInputError(f"bad numpy dtype {spec!r}: {e}") from None


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    _expect(isinstance(dtype, np.dtype), "numpy scalar without a dtype")
    if dtype.hasobject:
        _expect(dtype == np.dtype(object), "structured object scalar refused")
        return data
    _expect(isinstance(data, bytes) and len(data) == dtype.itemsize, "numpy scalar bytes do not fit its dtype")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    _expect(isinstance(buf, (bytes, bytearray)) and isinstance(dtype, np.dtype) and not dtype.hasobject,
            "odd numpy _frombuffer")
    _expect(isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape), "odd _frombuffer shape")
    n = int(np.prod(shape)) if shape else 1
    _expect(n * dtype.itemsize == len(buf), "numpy _frombuffer size mismatch")
    arr = np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order="F" if order == "F" else "C")
    return arr


def ndarray_setstate(arr: np.ndarray, state: Any) -> None:
    """BUILD on a numpy array made by ``_reconstruct``: checked before numpy sees it."""
    _expect(isinstance(state, tuple) and len(state) in (4, 5), "numpy array state is not a 4/5-tuple")
    shape, dt, _fortran, raw = state[-4:]
    _expect(isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape), "odd numpy shape")
    _expect(isinstance(dt, np.dtype), "numpy array state without a dtype")
    n = int(np.prod(shape)) if shape else 1
    if dt.hasobject:
        _expect(dt == np.dtype(object) and isinstance(raw, list) and len(raw) == n,
                "numpy object array state is not a list of its size")
    else:
        _expect(isinstance(raw, (bytes, bytearray)) and len(raw) == n * dt.itemsize,
                "numpy array bytes do not fit its shape and dtype")
    try:
        arr.__setstate__(state)
    except (ValueError, TypeError) as e:
        raise UnreadableInputError(f"numpy array state refused: {e}") from None


def dtype_setstate(dt: np.dtype, state: Any) -> None:
    _expect(isinstance(state, tuple) and len(state) == 8 and state[3] is None and state[4] is None,
            "numpy dtype state with fields (structured dtypes are not supported)")
    _expect(state[1] in ("<", ">", "|", "="), "odd numpy dtype byte order")
    try:
        dt.__setstate__(state)  # type: ignore[attr-defined]  # numpy's stubs omit dtype.__setstate__
    except (ValueError, TypeError) as e:
        raise UnreadableInputError(f"numpy dtype state refused: {e}") from None


@dataclass
class GlobalUse:
    module: str
    name: str
    verdict: str  # "reconstructed" | "stubbed" | "refused"
    offset: int  # byte offset in the file, or in the nested bytes when ``nested_at`` is set
    reason: str | None = None
    # Set for a global named by a pickle nested inside ``torch.storage._load_from_bytes``: the
    # file offset of that call (torch.load runs the nested bytes as a whole torch file).
    nested_at: int | None = None

    @property
    def nested(self) -> bool:
        return self.nested_at is not None

    @property
    def where(self) -> str:
        """``at byte N`` or ``at byte N of the pickle nested in torch.storage._load_from_bytes at byte M``."""
        return _where(self.offset, self.nested_at)


@dataclass
class AttrUse:
    """One ``builtins.getattr(receiver, name)`` the pickle ran on a value it built itself
    (answered with an inert ``AttrStub``: "inert", or refused), or with a special name on any
    receiver, stubs included (always "refused")."""

    receiver: str  # "numpy.ndarray", "dict", "fastai.basic_train.Learner.__init__" …
    name: str
    verdict: str  # "inert" | "refused"
    offset: int
    reason: str | None = None
    nested_at: int | None = None


def _where(offset: int, nested_at: int | None) -> str:
    if nested_at is None:
        return f"at byte {offset}"
    return f"at byte {offset} of the pickle nested in torch.storage._load_from_bytes at byte {nested_at}"


class Resolver:
    """Maps (module, name) to a GlobalStub, records every use, and refuses the dangerous."""

    def __init__(self, load_nested: Callable[[bytes], Any], *, record_only: bool = False) -> None:
        self.uses: list[GlobalUse] = []
        self.attr_uses: list[AttrUse] = []  # getattr on values the pickle built, dunder getattr on stubs
        # Why a pickle run stopped before its STOP (the first failure; the VM appends it): a scan
        # that has one did not see everything, so it cannot call the file clean.
        self.stops: list[str] = []
        self.record_only = record_only  # scan: record refusals and go on with an inert stub
        self.at = -1  # file offset of the REDUCE running a reconstructor (set by the VM)
        self.nested_at: int | None = None  # offset of the _load_from_bytes being read, if any
        self._load_nested = load_nested
        self._table = self._build_table()

    def _build_table(self) -> dict[tuple[str, str], Callable[[str, str], GlobalStub]]:
        t: dict[tuple[str, str], Callable[[str, str], GlobalStub]] = {}

        def impl(fn: Callable[..., Any], new: Callable[..., Any] | None = None) -> Callable[[str, str], GlobalStub]:
            return lambda m, n: GlobalStub(m, n, impl=fn, new_impl=new)

        for cls, dt in STORAGE_CLASSES.items():
            storage = (lambda d: (lambda m, n: TorchDType(m, n, DTYPES[d], storage=True)))(dt)
            t[("torch", cls)] = storage
            t[("torch.cuda", cls)] = storage
        t[("torch.storage", "UntypedStorage")] = t[("torch", "UntypedStorage")]
        t[("torch.storage", "TypedStorage")] = lambda m, n: GlobalStub(m, n)
        for name, dt in TORCH_DTYPE_GLOBALS.items():
            t[("torch", name)] = (lambda d: (lambda m, n: TorchDType(m, n, DTYPES[d])))(dt)
        for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "complex32",
                     "bits8", "bits16", "qint8", "quint8", "qint32"):
            t[("torch", name)] = lambda m, n: TorchDType(m, n, None)
        t[("torch._utils", "_rebuild_tensor")] = impl(_tensor_v1)
        t[("torch._utils", "_rebuild_tensor_v2")] = impl(_tensor_v2)
        t[("torch._utils", "_rebuild_tensor_v3")] = impl(_tensor_v3)
        t[("torch._utils", "_rebuild_parameter")] = impl(_parameter)
        t[("torch._utils", "_rebuild_parameter_with_state")] = impl(_parameter)
        t[("torch._tensor", "_rebuild_from_type_v2")] = impl(_from_type_v2)
        t[("torch._tensor", "_rebuild_from_type")] = impl(_from_type_v2)
        t[("torch.tensor", "_rebuild_from_type")] = impl(_from_type_v2)
        t[("torch.nn.parameter", "Parameter")] = impl(_parameter)
        t[("torch.autograd.variable", "Variable")] = impl(_parameter)
        t[("torch", "Size")] = impl(_torch_size)
        t[("torch.storage", "_load_from_bytes")] = impl(self._nested_storage)
        for prefix in ("Float", "Double", "Half", "Long", "Int", "Short", "Char", "Byte", "Bool", "BFloat16"):
            t[("torch", f"{prefix}Tensor")] = impl(_pending_legacy_tensor)
            t[("torch.cuda", f"{prefix}Tensor")] = impl(_pending_legacy_tensor)
        t[("collections", "OrderedDict")] = impl(_ordered_dict, new=lambda *a: OrderedDict())
        t[("collections", "Counter")] = impl(_counter, new=lambda *a: Counter())
        t[("collections", "defaultdict")] = impl(_defaultdict, new=lambda *a: DefaultDict())
        t[("_codecs", "encode")] = impl(_codecs_encode)
        t[("builtins", "getattr")] = impl(self._getattr)
        t[("builtins", "set")] = impl(_b_set, new=lambda *a: set())
        t[("builtins", "frozenset")] = impl(_b_frozenset)
        t[("builtins", "slice")] = impl(_b_slice)
        t[("builtins", "complex")] = impl(_b_complex)
        t[("builtins", "bytearray")] = impl(_b_bytearray)
        t[("builtins", "bytes")] = impl(_b_bytes)
        t[("builtins", "list")] = impl(_b_seq(list), new=lambda *a: [])
        t[("builtins", "tuple")] = impl(_b_seq(tuple))
        t[("builtins", "dict")] = impl(lambda *a: dict(_ordered_dict(*a)), new=lambda *a: {})
        t[("builtins", "int")] = impl(_b_number(int))
        t[("builtins", "float")] = impl(_b_number(float))
        t[("builtins", "bool")] = impl(_b_number(bool))
        t[("builtins", "str")] = impl(_b_str)
        t[("builtins", "object")] = lambda m, n: GlobalStub(m, n)
        t[("copyreg", "_reconstructor")] = impl(_copyreg_reconstructor)
        t[("copyreg", "__newobj__")] = impl(_copyreg_newobj)
        for np_mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            t[(np_mod, "_reconstruct")] = impl(_np_reconstruct)
            t[(np_mod, "scalar")] = impl(_np_scalar)
        for np_mod in ("numpy.core.numeric", "numpy._core.numeric"):
            t[(np_mod, "_frombuffer")] = impl(_np_frombuffer)
        t[("numpy", "ndarray")] = lambda m, n: GlobalStub(m, n)
        t[("numpy", "dtype")] = impl(_np_dtype)
        return t

    def _nested_storage(self, data: Any) -> Any:
        """``torch.storage._load_from_bytes(b)`` is ``torch.load(BytesIO(b))``: the bytes are a whole
        torch file whose pickles torch runs. They are read here under the same rules, and every
        global they name is recorded with ``nested_at`` (the offset of this call)."""
        _expect(isinstance(data, (bytes, bytearray)), "torch.storage._load_from_bytes of non-bytes")
        at = self.at
        if self.nested_at is not None:
            reason = "a torch.storage._load_from_bytes inside bytes that are themselves nested"
            self.uses.append(GlobalUse("torch.storage", "_load_from_bytes", "refused", at, reason,
                                       nested_at=self.nested_at))
            raise UnsafeInputError(f"refused torch.storage._load_from_bytes {_where(at, self.nested_at)}: {reason}")
        self.nested_at = at
        try:
            return self._load_nested(bytes(data))
        finally:
            self.nested_at = None
            self.at = at

    def find(self, module: str, name: str, offset: int) -> GlobalStub:
        if not isinstance(module, str) or not isinstance(name, str):
            raise UnreadableInputError(f"global with a non-string name {_where(offset, self.nested_at)}")
        reason = refusal_reason(module, name)
        if reason is not None:
            self.uses.append(GlobalUse(module, name, "refused", offset, reason, nested_at=self.nested_at))
            if self.record_only:
                return GlobalStub(module, name)
            raise UnsafeInputError(
                f"refused global '{module}.{name}' {_where(offset, self.nested_at)}: {reason}")
        m, n = normalise_name(module, name)
        maker = self._table.get((m, n))
        stub = maker(m, n) if maker else GlobalStub(m, n)
        self.uses.append(GlobalUse(module, name, "reconstructed" if stub.reconstructed else "stubbed", offset,
                                   nested_at=self.nested_at))
        return stub

    def _getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        """``builtins.getattr(obj, name)``, answered without looking anything up.

        pickle writes every bound method as ``getattr(receiver, name)``: a fastai class's method
        (the receiver is a stub) or a method of plain data the pickle itself rebuilt, e.g. a numpy
        array's ``arr.take`` kept on a Learner (issue 11). Both become an inert ``AttrStub``
        recording (receiver, name); REDUCE on it only records an ``ObjectStub``, so the real
        attribute is never fetched, let alone called (``getattr(arr, 'tofile')(path)`` writes
        nothing). Refused: a special name (``__x__``, ``__x``) on any receiver, stubs included —
        ``getattr(Learner.__init__, '__globals__')`` and ``getattr(x.__class__, '__subclasses__')``
        are how a pickle walks from a harmless class to ``__builtins__``, and no model file needs
        them (a bound method is named by its public or ``_private`` name); any name on a real value
        that is not plain data (embconv's own reconstructors and tags, tensors in the making …);
        and on plain data any name that is not a public identifier (private ``_x``)."""
        if not isinstance(name, str):
            raise UnreadableInputError("getattr with a non-string name")
        if len(default) > 1:
            raise UnreadableInputError("getattr with more than three arguments")
        is_stub = isinstance(obj, (AttrStub, ObjectStub)) or (isinstance(obj, GlobalStub) and not obj.reconstructed)
        kind = None if is_stub else plain_data_kind(obj)
        shown = name if len(name) <= 80 else name[:77] + "..."
        if is_special_name(name):
            if is_stub:
                receiver = chain_name(obj)
            elif kind is not None:
                receiver = kind
            else:
                receiver = obj.qualname if isinstance(obj, GlobalStub) else type(obj).__name__
            receiver = receiver if len(receiver) <= 120 else "…" + receiver[-119:]
            reason = ("a special attribute (a dunder: the way from a class or function to its globals, "
                      "builtins or subclasses)")
            return self._refuse_getattr(obj, name, receiver, shown, reason)
        if is_stub:
            return AttrStub(obj, name)  # an attribute of a stub: a longer name, nothing more
        if kind is None:
            what = obj.qualname if isinstance(obj, GlobalStub) else type(obj).__name__
            reason = (f"{what} is not plain data the pickle built (only attributes of stubs, numpy "
                      "arrays/scalars/dtypes and plain containers are answered)")
            receiver = what
        elif not name.isidentifier() or name.startswith("_"):
            reason = "a special or private attribute"
            receiver = kind
        else:
            self.attr_uses.append(AttrUse(kind, name, "inert", self.at, nested_at=self.nested_at))
            return AttrStub(obj, name)
        return self._refuse_getattr(obj, name, receiver, shown, reason)

    def _refuse_getattr(self, obj: Any, name: str, receiver: str, shown: str, reason: str) -> AttrStub:
        self.attr_uses.append(AttrUse(receiver, shown, "refused", self.at, reason, nested_at=self.nested_at))
        if self.record_only:
            self.uses.append(GlobalUse("builtins", "getattr", "refused", self.at,
                                       f"getattr({receiver}, {shown!r}): {reason}", nested_at=self.nested_at))
            return AttrStub(obj, name)
        where = f" {_where(self.at, self.nested_at)}" if self.at >= 0 else ""
        raise UnsafeInputError(f"refused builtins.getattr on {receiver}, attribute {shown!r}{where}: {reason}")


# Values a pickle builds by itself that are nothing but data: a getattr on them is answered with
# an inert stub (exact types: a subclass could carry code, and embconv builds none).
_PLAIN_DATA = {dict: "dict", list: "list", tuple: "tuple", set: "set", frozenset: "frozenset", str: "str",
               bytes: "bytes", bytearray: "bytearray", int: "int", float: "float", complex: "complex",
               bool: "bool", type(None): "NoneType", slice: "slice", OrderedDict: "collections.OrderedDict",
               Counter: "collections.Counter", DefaultDict: "collections.defaultdict", TensorRef: "torch.Tensor",
               np.ndarray: "numpy.ndarray"}


def plain_data_kind(obj: Any) -> str | None:
    """A name for ``obj``'s kind when it is plain data (numpy arrays, scalars and dtypes, plain
    containers, numbers, strings, tensors), else None."""
    t = type(obj)
    kind = _PLAIN_DATA.get(t)
    if kind is not None:
        return kind
    if isinstance(obj, np.generic):
        return f"numpy.{t.__name__}"
    if isinstance(obj, np.dtype):
        return "numpy.dtype"
    return None


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if isinstance(cls, GlobalStub) and cls.new_impl is not None and state is None:
        return cls.new_impl()
    if isinstance(cls, (GlobalStub, AttrStub)) and not (isinstance(cls, GlobalStub) and cls.reconstructed):
        obj = ObjectStub(cls)
        obj.state = state
        return obj
    raise UnsafeInputError(f"refused copyreg._reconstructor of {getattr(cls, 'qualname', type(cls).__name__)}")


def _copyreg_newobj(cls: Any, *args: Any) -> Any:
    if isinstance(cls, GlobalStub) and cls.new_impl is not None:
        return cls.new_impl(*args)
    if isinstance(cls, (GlobalStub, AttrStub)) and not (isinstance(cls, GlobalStub) and cls.reconstructed):
        return ObjectStub(cls, args)
    raise UnsafeInputError(f"refused copyreg.__newobj__ of {getattr(cls, 'qualname', type(cls).__name__)}")

"""A corpus of hostile model files, hand-assembled from raw pickle opcodes.

Each entry is a :class:`Case`: a name (used as the pytest id and as the file's stem), a short
description, the expected exit status of ``embconv inspect`` and ``embconv scan`` and a
``build(canary)`` function that returns the file's bytes. Every payload that would run code if
it were unpickled by the standard VM tries to create the file ``canary`` (an absolute path the
test passes in), e.g. ``os.system("touch CANARY")``, ``open(CANARY, "w")`` or
``exec("open(CANARY, 'w').close()")``; the tests check the canary never appears.

Exit statuses (design.md §4): 0 ok, 1 refused as unsafe, 3 unreadable / corrupt / over a limit.

``inspect_ok`` / ``scan_ok`` list every status that is acceptable. Most cases accept exactly one.
A few accept two, and the description says why: e.g. a memo write at index 2**30 is harmless to
a reader with a dict memo (0) and refused by one with an index bound (3); an unknown callable that
the reader turns into an inert stub is not unsafe (0) but may be deny-listed (1). Geometry and
storage-size lies are not visible to a ``scan`` that only lists globals, so scan may say 0 there.

Spec references: /work/shared/spec/containers-and-outputs.md §1.3 (legacy), §1.5 (zip),
§1.9 (reader algorithm), §2.4 (bypass classes), §2.6 (what the unpickler must refuse).
"""

from __future__ import annotations

import shlex
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .builders import (
    APPENDS,
    BINPERSID,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    LIST,
    MARK,
    NEWOBJ,
    NEWOBJ_EX,
    NONE,
    OBJ,
    POP,
    REDUCE,
    SETITEMS,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    TensorSpec,
    binbytes,
    binget,
    binput,
    call,
    dict_,
    ext1,
    float32_bytes,
    global_,
    inst,
    int64_bytes,
    int_,
    list_,
    long_binput,
    make_legacy_file,
    make_zip_file,
    obj,
    ordered_dict_empty,
    proto,
    rebuild_tensor,
    short_unicode,
    stack_global,
    state_dict_pickle,
    sys_info_pickle,
    tuple_,
    unicode,
)

UNSAFE = 1
UNREADABLE = 3
OK = 0

#: attribute name that the BUILD-on-a-global payloads try to plant; the in-process test looks for it
MARKER = "embconv_hostile_marker"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    expected: int  # the primary expected exit status (inspect)
    build: Callable[[str], bytes]  # canary path -> file bytes
    inspect_ok: frozenset[int] = frozenset()
    scan_ok: frozenset[int] = frozenset()
    suffix: str = ".pth"
    extra_files: Callable[[str], dict[str, bytes]] | None = None  # canary -> {file name: bytes}
    # benign controls: path -> (shape, dtype, flat values) that inspect/open_model_file must show
    tensors: dict[str, tuple[tuple[int, ...], str, tuple]] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.name + self.suffix

    @property
    def inspect_codes(self) -> frozenset[int]:
        return self.inspect_ok or frozenset({self.expected})

    @property
    def scan_codes(self) -> frozenset[int]:
        return self.scan_ok or frozenset({self.expected})


# --------------------------------------------------------------------------------------------
# payload snippets (object parts, no PROTO/STOP)


def sh_touch(canary: str) -> str:
    return "touch " + shlex.quote(canary)


def py_touch(canary: str) -> str:
    return f"open({canary!r}, 'w').close()"


def system_call(canary: str, module: str = "posix", via: str = "global") -> bytes:
    """``<module>.system("touch CANARY")`` via GLOBAL or (protocol 4) STACK_GLOBAL."""
    if via == "global":
        return call(global_(module, "system"), unicode(sh_touch(canary)))
    return call(stack_global(module, "system"), short_unicode(sh_touch(canary)))


def codecs_bytes(b: bytes) -> bytes:
    """A bytes value the protocol-2 way: ``_codecs.encode(str, 'latin1')``."""
    return call(global_("_codecs", "encode"), unicode(b.decode("latin1")), unicode("latin1"))


def plain(body: bytes, protocol: int = 2) -> bytes:
    return proto(protocol) + body + STOP


def in_state_dict(value: bytes) -> bytes:
    """``OrderedDict([("emb.weight", <value>)])`` -- a payload hidden as a state-dict value."""
    return proto(2) + ordered_dict_empty() + MARK + unicode("emb.weight") + value + SETITEMS + STOP


# --------------------------------------------------------------------------------------------
# benign building blocks

W = TensorSpec("emb.weight", "0", "FloatStorage", numel=6, size=(3, 2), stride=(2, 1))
W_VALUES = (0.5, -1.0, 2.25, 3.0, -4.5, 1e-3)
IDX = TensorSpec("emb.idx", "1", "LongStorage", numel=3, size=(3,), stride=(1,))
IDX_VALUES = (7, -8, 2**40)

BENIGN_STORAGES = {"0": (6, float32_bytes(W_VALUES)), "1": (3, int64_bytes(IDX_VALUES))}
BENIGN_TENSORS = {
    "emb.weight": ((3, 2), "float32", W_VALUES),
    "emb.idx": ((3,), "int64", IDX_VALUES),
}

# legacy keys are decimal memory addresses, sorted as strings (spec §1.3)
LW = TensorSpec("emb.weight", "94245795383616", "FloatStorage", numel=6, size=(3, 2), stride=(2, 1),
                location="cuda:0")
LIDX = TensorSpec("emb.idx", "140012345678912", "LongStorage", numel=3, size=(3,), stride=(1,))
LEGACY_STORAGES = {LW.key: (6, float32_bytes(W_VALUES)), LIDX.key: (3, int64_bytes(IDX_VALUES))}


def benign_zip(_c: str = "") -> bytes:
    return make_zip_file(state_dict_pickle([W, IDX], legacy=False), BENIGN_STORAGES)


def benign_legacy(_c: str = "") -> bytes:
    return make_legacy_file(state_dict_pickle([LW, LIDX], legacy=True), LEGACY_STORAGES)


def benign_legacy_main() -> bytes:
    return state_dict_pickle([LW, LIDX], legacy=True)


def zip_with_tensor(spec: TensorSpec, storage: bytes, rebuild: str = "v2") -> bytes:
    body = ordered_dict_empty() + MARK + unicode(spec.name) + rebuild_tensor(spec, False, rebuild) + SETITEMS
    return make_zip_file(proto(2) + body + STOP, {spec.key: storage})


def legacy_with_tensor(spec: TensorSpec, storages: dict, rebuild: str = "v1") -> bytes:
    body = ordered_dict_empty() + MARK + unicode(spec.name) + rebuild_tensor(spec, True, rebuild) + SETITEMS
    return make_legacy_file(proto(2) + body + STOP, storages)


def geom_zip(offset: int, size, stride, numel: int = 4) -> Callable[[str], bytes]:
    spec = TensorSpec("emb.weight", "0", "FloatStorage", numel=numel, offset=offset, size=size, stride=stride)
    return lambda _c: zip_with_tensor(spec, float32_bytes([1.0, 2.0, 3.0, 4.0]))


# --------------------------------------------------------------------------------------------
# the cases

CASES: list[Case] = []


def case(name, description, expected, build, **kw) -> None:
    CASES.append(Case(name, description, expected, build, **kw))


# ---- benign controls (must load: they prove the harness can succeed) -----------------------
case("benign_zip_state_dict",
     "valid torch zip state dict (float32 (3,2) + int64 (3,), _metadata BUILD on OrderedDict)",
     OK, benign_zip, tensors=BENIGN_TENSORS)
case("benign_legacy_state_dict",
     "valid legacy stacked-pickle state dict, 6-tuple pids, address keys, cuda:0 location",
     OK, benign_legacy, tensors=BENIGN_TENSORS)
case("benign_legacy_fastai07",
     "valid 0.3-era legacy file: _rebuild_tensor (4 args), cuda:0, OrderedDict without _metadata",
     OK, lambda c: make_legacy_file(state_dict_pickle([LW, LIDX], legacy=True, rebuild="v1", metadata=False),
                                    LEGACY_STORAGES),
     tensors=BENIGN_TENSORS)
case("benign_zip_shared_view",
     "valid zip: three tensors on one storage (full, offset-2 slice, transposed view)",
     OK, lambda c: make_zip_file(state_dict_pickle([
         W,
         TensorSpec("emb.tail", "0", "FloatStorage", numel=6, offset=2, size=(4,), stride=(1,)),
         TensorSpec("emb.t", "0", "FloatStorage", numel=6, size=(2, 3), stride=(1, 2)),
     ], legacy=False), {"0": (6, float32_bytes(W_VALUES))}),
     tensors={"emb.weight": ((3, 2), "float32", W_VALUES),
              "emb.tail": ((4,), "float32", W_VALUES[2:]),
              "emb.t": ((2, 3), "float32", (0.5, 2.25, -4.5, -1.0, 3.0, 1e-3))})
case("benign_plain_pickle_unknown_class",
     "plain protocol-2 pickle: a dict holding an instance of an unknown class (NEWOBJ + BUILD) -> inert stub",
     OK, lambda c: plain(dict_([
         (unicode("name"), unicode("learner")),
         (unicode("recorder"), global_("fastai.basic_train", "Recorder") + EMPTY_TUPLE + NEWOBJ
          + dict_([(unicode("lr"), obj(0.1))]) + BUILD),
     ])), suffix=".pkl")

# ---- os / posix / nt system ---------------------------------------------------------------
for mod in ("os", "posix", "nt"):
    case(f"{mod}_system_global", f"{mod}.system('touch CANARY') via GLOBAL + REDUCE (protocol 2)",
         UNSAFE, lambda c, m=mod: plain(system_call(c, m)), suffix=".pkl")
for mod in ("os", "posix"):
    case(f"{mod}_system_stack_global",
         f"{mod}.system('touch CANARY') via STACK_GLOBAL (protocol 4, SHORT_BINUNICODE + MEMOIZE)",
         UNSAFE, lambda c, m=mod: plain(system_call(c, m, via="stack"), 4), suffix=".pkl")
case("stack_global_from_memo",
     "STACK_GLOBAL whose module/name strings come from memo slots written earlier behind decoys "
     "(picklescan issue #22 shape)",
     UNSAFE, lambda c: plain(
         short_unicode("posix") + binput(1) + POP
         + short_unicode("system") + binput(2) + POP
         + short_unicode("collections") + short_unicode("OrderedDict") + POP + POP
         + binget(1) + binget(2) + STACK_GLOBAL + short_unicode(sh_touch(c)) + TUPLE1 + REDUCE, 4),
     suffix=".pkl")
case("stack_global_non_string",
     "STACK_GLOBAL fed with an int and a tuple instead of two strings",
     UNREADABLE, lambda c: plain(int_(7) + EMPTY_TUPLE + STACK_GLOBAL + EMPTY_TUPLE + REDUCE, 4),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({1, 3}), suffix=".pkl")

# ---- builtins gadgets, both spellings ----------------------------------------------------------
for bmod in ("builtins", "__builtin__"):
    tag = "builtins" if bmod == "builtins" else "py2builtin"
    case(f"{tag}_exec", f"{bmod}.exec(\"open(CANARY,'w')\")", UNSAFE,
         lambda c, b=bmod: plain(call(global_(b, "exec"), unicode(py_touch(c)))), suffix=".pkl")
    case(f"{tag}_eval", f"{bmod}.eval(\"open(CANARY,'w').close()\")", UNSAFE,
         lambda c, b=bmod: plain(call(global_(b, "eval"), unicode(py_touch(c)))), suffix=".pkl")
    case(f"{tag}_getattr", f"{bmod}.getattr({bmod}.__import__('os'), 'system')('touch CANARY')", UNSAFE,
         lambda c, b=bmod: plain(call(
             call(global_(b, "getattr"), call(global_(b, "__import__"), unicode("os")), unicode("system")),
             unicode(sh_touch(c)))), suffix=".pkl")
    case(f"{tag}_import", f"{bmod}.__import__('os') memoized, then getattr(memo, 'system')('touch CANARY')",
         UNSAFE, lambda c, b=bmod: plain(
             call(global_(b, "__import__"), unicode("os")) + binput(0) + POP
             + call(call(global_(b, "getattr"), binget(0), unicode("system")), unicode(sh_touch(c)))),
         suffix=".pkl")
    case(f"{tag}_open", f"{bmod}.open(CANARY, 'w')", UNSAFE,
         lambda c, b=bmod: plain(call(global_(b, "open"), unicode(c), unicode("w"))), suffix=".pkl")
    case(f"{tag}_compile", f"{bmod}.compile(src, '<p>', 'exec') memoized, then exec(code)", UNSAFE,
         lambda c, b=bmod: plain(
             call(global_(b, "compile"), unicode(py_touch(c)), unicode("<p>"), unicode("exec"))
             + binput(0) + POP + call(global_(b, "exec"), binget(0))), suffix=".pkl")
case("builtins_exec_stack_global", "builtins.exec via STACK_GLOBAL (protocol 4)", UNSAFE,
     lambda c: plain(call(stack_global("builtins", "exec"), short_unicode(py_touch(c))), 4), suffix=".pkl")

# ---- opcodes that call classes -------------------------------------------------------------------
case("inst_os_system", "INST opcode: MARK 'touch CANARY' INST os\\nsystem", UNSAFE,
     lambda c: plain(MARK + unicode(sh_touch(c)) + inst("os", "system")), suffix=".pkl")
case("inst_ordered_dict", "INST opcode with an allowlisted class (collections OrderedDict); torch never "
     "emits INST, spec §2.6 says refuse (1 or 3 accepted; a globals-only scan may call it clean)",
     UNSAFE, lambda c: plain(MARK + inst("collections", "OrderedDict")),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}), suffix=".pkl")
case("obj_posix_system", "OBJ opcode: MARK GLOBAL posix system 'touch CANARY' OBJ", UNSAFE,
     lambda c: plain(MARK + global_("posix", "system") + unicode(sh_touch(c)) + OBJ), suffix=".pkl")
case("newobj_subprocess_popen", "NEWOBJ of subprocess.Popen(['sh','-c','touch CANARY'])", UNSAFE,
     lambda c: plain(global_("subprocess", "Popen")
                     + tuple_(list_(unicode("sh"), unicode("-c"), unicode(sh_touch(c)))) + NEWOBJ),
     suffix=".pkl")
case("newobj_ex_subprocess_popen", "NEWOBJ_EX (protocol 4) of subprocess.Popen with args and kwargs", UNSAFE,
     lambda c: plain(stack_global("subprocess", "Popen")
                     + tuple_(list_(short_unicode("sh"), short_unicode("-c"), short_unicode(sh_touch(c))))
                     + dict_([(short_unicode("shell"), obj(False))]) + NEWOBJ_EX, 4), suffix=".pkl")
case("ext1_after_copyreg_add_extension",
     "copyreg.add_extension('posix','system',240) then EXT1 240 -> posix.system('touch CANARY')", UNSAFE,
     lambda c: plain(call(global_("copyreg", "add_extension"), unicode("posix"), unicode("system"), int_(240))
                     + POP + ext1(240) + unicode(sh_touch(c)) + TUPLE1 + REDUCE), suffix=".pkl")
case("ext1_bare", "EXT1 code 1 with nothing registered, then REDUCE (spec §2.6: refuse EXT* outright; "
     "1 or 3 accepted)", UNSAFE,
     lambda c: plain(ext1(1) + unicode(sh_touch(c)) + TUPLE1 + REDUCE),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({1, 3}), suffix=".pkl")
case("ext4_bare", "EXT4 code 0x7fffffff then REDUCE (1 or 3 accepted)", UNSAFE,
     lambda c: plain(b"\x84" + struct.pack("<i", 0x7FFFFFFF) + unicode(sh_touch(c)) + TUPLE1 + REDUCE),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({1, 3}), suffix=".pkl")

# ---- indirect gadgets (importlib, operator, functools, runpy, pkgutil) -------------------------
case("importlib_import_module",
     "importlib.import_module('os') memoized, then builtins.getattr(memo,'system')('touch CANARY')", UNSAFE,
     lambda c: plain(call(global_("importlib", "import_module"), unicode("os")) + binput(0) + POP
                     + call(call(global_("builtins", "getattr"), binget(0), unicode("system")),
                            unicode(sh_touch(c)))), suffix=".pkl")
for omod in ("operator", "_operator"):
    case(f"{omod.strip('_')}{'_c' if omod.startswith('_') else ''}_attrgetter_globals",
         f"{omod}.attrgetter('__globals__')(torch._utils._rebuild_tensor_v2) -> itemgetter('__builtins__') "
         "-> itemgetter('exec') -> exec(\"open(CANARY,'w')\")", UNSAFE,
         lambda c, m=omod: plain(call(
             call(call(global_(m, "itemgetter"), unicode("exec")),
                  call(call(global_(m, "itemgetter"), unicode("__builtins__")),
                       call(call(global_(m, "attrgetter"), unicode("__globals__")),
                            global_("torch._utils", "_rebuild_tensor_v2")))),
             unicode(py_touch(c)))), suffix=".pkl")
case("operator_methodcaller", "operator.methodcaller('system','touch CANARY')(importlib.import_module('os'))",
     UNSAFE, lambda c: plain(call(call(global_("operator", "methodcaller"), unicode("system"), unicode(sh_touch(c))),
                                  call(global_("importlib", "import_module"), unicode("os")))), suffix=".pkl")
case("functools_partial", "functools.partial(io.open, CANARY, 'w')()", UNSAFE,
     lambda c: plain(call(call(global_("functools", "partial"), global_("io", "open"), unicode(c), unicode("w")))),
     suffix=".pkl")
case("runpy_run_code", "runpy._run_code(\"open(CANARY,'w')\", {}) (exec of a string)", UNSAFE,
     lambda c: plain(call(global_("runpy", "_run_code"), unicode(py_touch(c)), EMPTY_DICT)), suffix=".pkl")
case("runpy_run_path", "runpy.run_path('<dir>/evil_payload.py'); the script creates the canary", UNSAFE,
     lambda c: plain(call(global_("runpy", "run_path"), unicode(_payload_script(c)))), suffix=".pkl",
     extra_files=lambda c: {"evil_payload.py": (py_touch(c) + "\n").encode()})
case("pkgutil_resolve_name", "pkgutil.resolve_name('os:system')('touch CANARY')", UNSAFE,
     lambda c: plain(call(call(global_("pkgutil", "resolve_name"), unicode("os:system")), unicode(sh_touch(c)))),
     suffix=".pkl")
case("io_open", "io.open(CANARY, 'w') (builtins.open under another name; deny-listed or stubbed inertly)",
     UNSAFE, lambda c: plain(call(global_("io", "open"), unicode(c), unicode("w"))),
     inspect_ok=frozenset({0, 1}), scan_ok=frozenset({0, 1}), suffix=".pkl")
case("unknown_gadget_numpy_runstring",
     "numpy.testing._private.utils.runstring(\"open(CANARY,'w')\", {}) - an exec gadget few deny-lists "
     "know; must be refused or stubbed inertly (0 or 1)", UNSAFE,
     lambda c: plain(call(global_("numpy.testing._private.utils", "runstring"), unicode(py_touch(c)), EMPTY_DICT)),
     inspect_ok=frozenset({0, 1}), scan_ok=frozenset({0, 1}), suffix=".pkl")
case("unknown_class_zipfile_write",
     "zipfile.ZipFile(CANARY, 'w') - an unknown class whose constructor writes a file (0 or 1)", UNSAFE,
     lambda c: plain(call(global_("zipfile", "ZipFile"), unicode(c), unicode("w"))),
     inspect_ok=frozenset({0, 1}), scan_ok=frozenset({0, 1}), suffix=".pkl")
case("dotted_name_pathlib_write_text",
     "protocol 4 STACK_GLOBAL('pathlib','Path.write_text')(Path(CANARY),'x'). Spec §2.6 says refuse dotted "
     "names (1); the reader stubs them inertly without attribute traversal (0)", UNSAFE, lambda c: plain(call(stack_global("pathlib", "Path.write_text"),
                                  call(stack_global("pathlib", "Path"), short_unicode(c)), short_unicode("x")), 4),
     inspect_ok=frozenset({0, 1}), scan_ok=frozenset({0, 1}), suffix=".pkl")
case("dotted_name_allowlisted_globals",
     "STACK_GLOBAL('torch._utils','_rebuild_tensor_v2.__builtins__') -> _operator.itemgetter('exec') -> exec",
     UNSAFE, lambda c: plain(call(
         call(call(stack_global("_operator", "itemgetter"), short_unicode("exec")),
              stack_global("torch._utils", "_rebuild_tensor_v2.__builtins__")),
         short_unicode(py_touch(c))), 4), suffix=".pkl")

# ---- nested pickles --------------------------------------------------------------------------------
case("pickle_loads_nested", "pickle.loads(BINBYTES <posix.system pickle>) (protocol 3)", UNSAFE,
     lambda c: plain(call(global_("pickle", "loads"), binbytes(plain(system_call(c)))), 3), suffix=".pkl")
case("c_pickle_loads_nested_codecs", "_pickle.loads(_codecs.encode(<posix.system pickle>, 'latin1')) (protocol 2)",
     UNSAFE, lambda c: plain(call(global_("_pickle", "loads"), codecs_bytes(plain(system_call(c))))), suffix=".pkl")
case("torch_storage_load_from_bytes",
     "zip state dict whose value is torch.storage._load_from_bytes(<legacy torch file whose main pickle "
     "calls os.system>)", UNSAFE,
     lambda c: make_zip_file(in_state_dict(call(global_("torch.storage", "_load_from_bytes"),
                                                codecs_bytes(make_legacy_file(plain(system_call(c, "os")), {})))),
                             {}))
case("torch_storage_load_from_bytes_plain_pickle",
     "zip state dict whose value is torch.storage._load_from_bytes(<plain pickle calling posix.system>): "
     "torch.load runs a non-zip file's first pickle, so it is refused (1), not merely 'not a torch file'",
     UNSAFE, lambda c: make_zip_file(in_state_dict(call(global_("torch.storage", "_load_from_bytes"),
                                                        codecs_bytes(plain(system_call(c))))), {}))
case("torch_storage_load_from_bytes_plain_in_plain",
     "a fastai-1.0.40-style plain pickle whose storage is _load_from_bytes(<plain pickle: STACK_GLOBAL os.system>)",
     UNSAFE, lambda c: plain(dict_([(unicode("model"), call(global_("torch.storage", "_load_from_bytes"),
                                                              codecs_bytes(plain(system_call(c, "os", "stack"), 4))))])),
     suffix=".pkl")
case("torch_storage_load_from_bytes_getattr_globals",
     "_load_from_bytes(<plain pickle holding getattr(Learner.__init__, '__globals__')>)", UNSAFE,
     lambda c: make_zip_file(in_state_dict(call(global_("torch.storage", "_load_from_bytes"),
                                                codecs_bytes(in_learner(learner_init_globals())))), {}))
case("torch_storage_load_from_bytes_twice_nested",
     "_load_from_bytes(<legacy file whose main pickle is _load_from_bytes(<legacy file>)>): nesting inside "
     "nested bytes is refused (1)", UNSAFE,
     lambda c: make_zip_file(in_state_dict(call(global_("torch.storage", "_load_from_bytes"), codecs_bytes(
         make_legacy_file(plain(call(global_("torch.storage", "_load_from_bytes"),
                                     codecs_bytes(make_legacy_file(plain(system_call(c)), {})))), {})))), {}))
case("torch_storage_load_from_bytes_garbage",
     "_load_from_bytes(b'hello world'): nested bytes that are no torch file (3; scan inconclusive)", UNREADABLE,
     lambda c: make_zip_file(in_state_dict(call(global_("torch.storage", "_load_from_bytes"),
                                                codecs_bytes(b"hello world"))), {}))
case("torch_storage_load_from_bytes_truncated",
     "_load_from_bytes(<a legacy file cut inside its main pickle>) (3; scan inconclusive)", UNREADABLE,
     lambda c: make_zip_file(in_state_dict(call(global_("torch.storage", "_load_from_bytes"),
                                                codecs_bytes(legacy_headers_then(
                                                    proto(2) + global_("fastai.basic_train", "Learner"))))), {}))
case("torch_load_nested", "torch.load(io.BytesIO(<legacy torch file with os.system>)) in a zip state dict",
     UNSAFE, lambda c: make_zip_file(in_state_dict(call(global_("torch", "load"), call(
         global_("io", "BytesIO"), codecs_bytes(make_legacy_file(plain(system_call(c, "os")), {}))))), {}))

# ---- BUILD on things find_class returned ------------------------------------------------------
def _build_on(global_bytes: bytes, slot_state: list[tuple[bytes, bytes]]) -> bytes:
    state = tuple_(dict_([(unicode(MARKER), int_(1))]), dict_(slot_state))
    return proto(2) + global_bytes + state + BUILD + POP + EMPTY_DICT + STOP


case("build_on_global_function",
     "GLOBAL torch._utils _rebuild_tensor_v2 then BUILD ({MARKER:1}, {'__defaults__': (None, None)}): "
     "would replace the reader's own function's defaults process-wide", UNSAFE,
     lambda c: _build_on(global_("torch._utils", "_rebuild_tensor_v2"),
                         [(unicode("__defaults__"), tuple_(NONE, NONE))]),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}), suffix=".pkl")
case("build_on_global_class",
     "GLOBAL collections OrderedDict then BUILD with slot state {MARKER: 1, '__repr__': None}", UNSAFE,
     lambda c: _build_on(global_("collections", "OrderedDict"),
                         [(unicode(MARKER), int_(1)), (unicode("__repr__"), NONE)]),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}), suffix=".pkl")
case("build_on_stub_class",
     "GLOBAL of an unknown class (a stub class) then BUILD with slot state {MARKER:1, '__reduce__': None}: "
     "would poison the (possibly cached) stub class", UNSAFE,
     lambda c: _build_on(global_("fastai.basic_train", "Learner"),
                         [(unicode(MARKER), int_(1)), (unicode("__reduce__"), NONE)]),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}), suffix=".pkl")
case("reduce_on_stub_instance",
     "REDUCE whose callable is a stub *instance* (fastai.basic_train.Learner()('touch CANARY')); spec §2.6 "
     "says refuse", UNSAFE,
     lambda c: plain(call(call(global_("fastai.basic_train", "Learner")), unicode(sh_touch(c)))),
     inspect_ok=frozenset({0, 1, 3}), scan_ok=frozenset({0, 1, 3}), suffix=".pkl")
case("numpy_dtype_build_singleton",
     "numpy.dtype('f4', False, True) then BUILD (3, '>', ..., flags=1 hasobject): numpy returns the float32 "
     "singleton; a BUILD must not flip its byte order/flags process-wide (0 or 3; checked in process)", OK,
     lambda c: plain(call(global_("numpy", "dtype"), unicode("f4"), obj(False), obj(True))
                     + tuple_(int_(3), unicode(">"), NONE, NONE, NONE, int_(-1), int_(-1), int_(1)) + BUILD),
     inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}), suffix=".pkl")
case("numpy_reconstruct_huge",
     "numpy.core.multiarray._reconstruct(ndarray, (10**12,), b'b') placeholder allocation", UNREADABLE,
     lambda c: plain(call(global_("numpy.core.multiarray", "_reconstruct"), global_("numpy", "ndarray"),
                          obj((10**12,)), codecs_bytes(b"b"))),
     inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}), suffix=".pkl")

# ---- builtins.getattr on data the pickle built (issue 11) --------------------------------------
# pickle writes a bound method as getattr(receiver, name). A fastai2 preview export kept a numpy
# array's bound method (ndarray.take), so embconv answers getattr on plain data it rebuilt itself
# (arrays, numpy scalars/dtypes, dicts, lists, strings ...) with an inert stub that is never looked
# up nor called; dunder/private names and real non-data receivers stay refused.


def np_int64_array(values=(1, 2, 3)) -> bytes:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`` + BUILD: a real int64 array,
    exactly as numpy pickles one at protocol 2."""
    dtype = (call(global_("numpy", "dtype"), unicode("i8"), obj(False), obj(True))
             + tuple_(int_(3), unicode("<"), NONE, NONE, NONE, int_(-1), int_(-1), int_(0)) + BUILD)
    raw = b"".join(int(v).to_bytes(8, "little", signed=True) for v in values)
    return (call(global_("numpy.core.multiarray", "_reconstruct"), global_("numpy", "ndarray"),
                 tuple_(int_(0)), codecs_bytes(b"b"))
            + tuple_(int_(1), tuple_(int_(len(values))), dtype, obj(False), codecs_bytes(raw)) + BUILD)


def np_float64_scalar(x: float = 0.5) -> bytes:
    dtype = (call(global_("numpy", "dtype"), unicode("f8"), obj(False), obj(True))
             + tuple_(int_(3), unicode("<"), NONE, NONE, NONE, int_(-1), int_(-1), int_(0)) + BUILD)
    return call(global_("numpy.core.multiarray", "scalar"), dtype, codecs_bytes(struct.pack("<d", x)))


def np_dtype_f4() -> bytes:
    return (call(global_("numpy", "dtype"), unicode("f4"), obj(False), obj(True))
            + tuple_(int_(3), unicode("<"), NONE, NONE, NONE, int_(-1), int_(-1), int_(0)) + BUILD)


def getattr_of(receiver: bytes, name: str) -> bytes:
    return call(global_("builtins", "getattr"), receiver, unicode(name))


def in_learner(value: bytes) -> bytes:
    """``{'learner': 'tabular', 'to_label': <value>}``: where a real export keeps it."""
    return plain(dict_([(unicode("learner"), unicode("tabular")), (unicode("to_label"), value)]))


case("benign_ndarray_bound_method",
     "the issue-11 shape: getattr(<numpy int64 array>, 'take') kept in a dict (a bound method of an "
     "array, as a fastai2 preview export stores it) -> an inert stub", OK,
     lambda c: in_learner(getattr_of(np_int64_array(), "take")), suffix=".pkl")
case("ndarray_getattr_tofile_called",
     "getattr(<ndarray>, 'tofile')('CANARY'): the inert stub is recorded, never called, no file written",
     OK, lambda c: in_learner(call(getattr_of(np_int64_array(), "tofile"), unicode(c))), suffix=".pkl")
case("ndarray_getattr_dump_called",
     "getattr(<ndarray>, 'dump')('CANARY') (ndarray.dump pickles itself to a path): inert, nothing written",
     OK, lambda c: in_learner(call(getattr_of(np_int64_array(), "dump"), unicode(c))), suffix=".pkl")
case("ndarray_getattr_tofile_newobj",
     "getattr(<ndarray>, 'tofile') used as a class: NEWOBJ and copyreg._reconstructor with 'CANARY'; inert",
     OK, lambda c: in_learner(list_(
         getattr_of(np_int64_array(), "tofile") + binput(90) + tuple_(unicode(c)) + NEWOBJ,
         call(global_("copyreg", "_reconstructor"), binget(90), global_("builtins", "object"), NONE))),
     suffix=".pkl")
case("ndarray_getattr_class",
     "getattr(<ndarray>, '__class__') then ('CANARY', ...) : would hand out the real numpy type", UNSAFE,
     lambda c: in_learner(call(getattr_of(np_int64_array(), "__class__"), unicode(c))), suffix=".pkl")
case("ndarray_getattr_reduce_ex",
     "getattr(<ndarray>, '__reduce_ex__')(2): a dunder of a real object", UNSAFE,
     lambda c: in_learner(call(getattr_of(np_int64_array(), "__reduce_ex__"), int_(2))), suffix=".pkl")
case("ndarray_getattr_private",
     "getattr(<ndarray>, '_x'): private names of real objects are refused too", UNSAFE,
     lambda c: in_learner(getattr_of(np_int64_array(), "_x")), suffix=".pkl")
case("ndarray_getattr_non_identifier",
     "getattr(<ndarray>, 'tofile.__globals__'): not an attribute name", UNSAFE,
     lambda c: in_learner(getattr_of(np_int64_array(), "tofile.__globals__")), suffix=".pkl")
case("ndarray_getattr_non_string",
     "getattr(<ndarray>, 7): a non-string name", UNREADABLE,
     lambda c: in_learner(call(global_("builtins", "getattr"), np_int64_array(), int_(7))),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({1, 3}), suffix=".pkl")
case("ndarray_getattr_then_build",
     "getattr(<ndarray>, 'flags') then BUILD {'writeable': True, MARKER: 1}: BUILD on the stub is refused",
     UNSAFE, lambda c: in_learner(getattr_of(np_int64_array(), "flags")
                                   + dict_([(unicode("writeable"), obj(True)), (unicode(MARKER), int_(1))]) + BUILD),
     suffix=".pkl")
case("npscalar_getattr_class_subclasses",
     "getattr(getattr(<numpy.float64>, '__class__'), '__subclasses__')(): the classic object-graph walk",
     UNSAFE, lambda c: in_learner(call(getattr_of(getattr_of(np_float64_scalar(), "__class__"), "__subclasses__"))),
     suffix=".pkl")
case("npscalar_getattr_item",
     "getattr(<numpy.float64>, 'item')(): a numpy scalar's bound method -> inert stub", OK,
     lambda c: in_learner(call(getattr_of(np_float64_scalar(), "item"))), suffix=".pkl")
case("dtype_getattr_type_called",
     "getattr(<numpy dtype f4>, 'type')('CANARY'): would be numpy.float32('CANARY'); inert", OK,
     lambda c: in_learner(call(getattr_of(np_dtype_f4(), "type"), unicode(c))), suffix=".pkl")
case("dtype_getattr_class",
     "getattr(<numpy dtype>, '__class__'): the real dtype class", UNSAFE,
     lambda c: in_learner(getattr_of(np_dtype_f4(), "__class__")), suffix=".pkl")
case("dict_getattr_update_called",
     "getattr({'learner': ...}, 'update')({MARKER: 1}): inert, the dict is not updated (checked in process)",
     OK, lambda c: plain(dict_([(unicode("learner"), unicode("tabular"))]) + binput(91) + POP
                         + dict_([(unicode("upd"), call(getattr_of(binget(91), "update"),
                                                       dict_([(unicode(MARKER), int_(1))]))),
                                  (unicode("d"), binget(91))])), suffix=".pkl")
case("list_getattr_append_called",
     "getattr([], 'append')('CANARY'): inert, the list stays empty", OK,
     lambda c: in_learner(list_(EMPTY_LIST + binput(92) + POP + call(getattr_of(binget(92), "append"), unicode(c)),
                                binget(92))), suffix=".pkl")
case("str_getattr_format_gadget",
     "getattr('{0.__init__.__globals__}', 'format')(<stub>): the str.format attribute walk; inert", OK,
     lambda c: in_learner(call(getattr_of(unicode("{0.__init__.__globals__[os]}"), "format"),
                               call(global_("fastai.basic_train", "Learner")))), suffix=".pkl")
case("getattr_on_reconstructor_global",
     "getattr(collections.OrderedDict, 'fromkeys'): embconv's own reconstructor is not a stub", UNSAFE,
     lambda c: in_learner(getattr_of(global_("collections", "OrderedDict"), "fromkeys")), suffix=".pkl")
case("getattr_on_getattr",
     "getattr(builtins.getattr, '__self__'): the builtins module through a reconstructor", UNSAFE,
     lambda c: in_learner(getattr_of(global_("builtins", "getattr"), "__self__")), suffix=".pkl")
case("getattr_on_torch_dtype_tag",
     "getattr(torch.float32, 'to'): a dtype tag embconv reconstructs", UNSAFE,
     lambda c: in_learner(getattr_of(global_("torch", "float32"), "to")), suffix=".pkl")
case("getattr_on_codecs_result_chain",
     "getattr(getattr(b'x', 'decode'), '__globals__'): the inner getattr on bytes is an inert stub, but a "
     "dunder on any receiver, stubs included, is refused (issue 13)", UNSAFE,
     lambda c: in_learner(getattr_of(getattr_of(codecs_bytes(b"x"), "decode"), "__globals__")),
     suffix=".pkl")

# ---- getattr of special attributes on stubs (issue 13) ---------------------------------------------
# getattr(Learner.__init__, '__globals__')['__builtins__']['exec'] is the classic walk from any class
# to exec; trusted scanners rate a getattr of a dunder critical. Refused on every receiver.


def learner_init_globals() -> bytes:
    """``getattr(getattr(fastai.basic_train.Learner, '__init__'), '__globals__')``"""
    return getattr_of(getattr_of(global_("fastai.basic_train", "Learner"), "__init__"), "__globals__")


def exec_via_globals(canary: str) -> bytes:
    """``Learner.__init__.__globals__['__builtins__']['exec'](code)`` spelled with getattr and
    ``dict.get`` bound methods (every step a getattr a stub-based reader must refuse)."""
    builtins = call(getattr_of(learner_init_globals(), "get"), unicode("__builtins__"))
    return call(call(getattr_of(builtins, "get"), unicode("exec")), unicode(py_touch(canary)))


case("stub_getattr_init_globals",
     "getattr(getattr(fastai.basic_train.Learner, '__init__'), '__globals__') kept in a dict", UNSAFE,
     lambda c: in_learner(learner_init_globals()), suffix=".pkl")
case("stub_getattr_globals_exec",
     "Learner.__init__.__globals__.get('__builtins__').get('exec')(\"open(CANARY,'w')\") via getattr chains",
     UNSAFE, lambda c: in_learner(exec_via_globals(c)), suffix=".pkl")
case("stub_instance_getattr_class_subclasses",
     "getattr(getattr(Learner(), '__class__'), '__subclasses__')() on a stub instance", UNSAFE,
     lambda c: in_learner(call(getattr_of(getattr_of(call(global_("fastai.basic_train", "Learner")),
                                                      "__class__"), "__subclasses__"))), suffix=".pkl")
case("stub_getattr_reduce_in_zip",
     "torch zip state dict whose value is getattr(torch.nn.Module, '__reduce__')", UNSAFE,
     lambda c: make_zip_file(in_state_dict(getattr_of(global_("torch.nn.modules.module", "Module"), "__reduce__")),
                             {}))
case("dotted_name_init_globals",
     "protocol 4 STACK_GLOBAL('fastai.basic_train', 'Learner.__init__.__globals__'): pickle resolves dotted "
     "names attribute by attribute", UNSAFE,
     lambda c: plain(stack_global("fastai.basic_train", "Learner.__init__.__globals__"), 4), suffix=".pkl")


# ---- memo bombs and expansion ------------------------------------------------------------------
case("memo_long_binput_2_30",
     "EMPTY_DICT LONG_BINPUT 2**30 STOP: the C unpickler would grow its memo array to 8 GiB; the index is "
     "over the memo limit (3), and scan is inconclusive, not clean (issue 13)", UNREADABLE,
     lambda c: plain(EMPTY_DICT + long_binput(2**30)), suffix=".pkl")
case("memo_many_sparse_entries",
     "524288 LONG_BINPUT writes at indices i<<11 (up to 2**30) of one dict: over the memo-index limit (3)",
     UNREADABLE, lambda c: plain(EMPTY_DICT + b"".join(long_binput(i << 11) for i in range(1 << 19))),
     suffix=".pkl")
case("memo_get_unwritten_after_global",
     "a stubbed global, then BINGET of a memo slot never written: the scan stops there (inconclusive, 3)",
     UNREADABLE, lambda c: plain(list_(global_("fastai.basic_train", "Learner"), binget(7))), suffix=".pkl")
case("unknown_opcode_after_global",
     "a stubbed global, then the undefined opcode 0xff: the scan cannot see past it (inconclusive, 3)",
     UNREADABLE, lambda c: proto(2) + global_("fastai.basic_train", "Learner") + b"\xff" + STOP, suffix=".pkl")


def _expansion_dicts(levels: int) -> bytes:
    """A zip whose data.pkl is a 'billion laughs' DAG: d_k = {'a': d_{k-1}, 'b': d_{k-1}} over one
    tensor, so the object graph is tiny but a tree walk sees 2**(levels+1) tensor paths."""
    body = rebuild_tensor(W, legacy=False) + binput(0) + POP
    for k in range(1, levels + 1):
        body += EMPTY_DICT + MARK + unicode("a") + binget(k - 1) + unicode("b") + binget(k - 1) + SETITEMS
        body += binput(k) + POP
    body += ordered_dict_empty() + MARK + unicode("root") + binget(levels) + SETITEMS
    return make_zip_file(proto(2) + body + STOP, {"0": (6, float32_bytes(W_VALUES))})


case("memo_expansion_dicts",
     "zip state dict whose value is a memo-shared DAG of 40 dict levels over one tensor (2**41 paths); "
     "must not hang (0 if walked with de-duplication, 3 if refused)", UNREADABLE,
     lambda c: _expansion_dicts(40), inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}))


def _expansion_lists(levels: int) -> bytes:
    body = unicode("x" * 64) + binput(0) + POP
    for k in range(1, levels + 1):
        body += EMPTY_LIST + MARK + binget(k - 1) + binget(k - 1) + APPENDS + binput(k) + POP
    return plain(body + binget(levels))


case("memo_expansion_lists",
     "plain pickle: 60 levels of [prev, prev] lists over one string (2**60 leaves); must not hang", UNREADABLE,
     lambda c: _expansion_lists(60), inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}), suffix=".pkl")

# ---- deep nesting --------------------------------------------------------------------------------
DEPTH = 100_000
case("deep_tuple_100k", "EMPTY_TUPLE then 100k TUPLE1: tuples nested 100k deep (0 or 3, no RecursionError)",
     UNREADABLE, lambda c: plain(EMPTY_TUPLE + b"\x85" * DEPTH),
     inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}), suffix=".pkl")
case("deep_list_100k", "100k MARK then 100k LIST: lists nested 100k deep (0 or 3)", UNREADABLE,
     lambda c: plain(MARK * DEPTH + LIST * DEPTH), inspect_ok=frozenset({0, 3}),
     scan_ok=frozenset({0, 3}), suffix=".pkl")
case("deep_dict_zip_100k",
     "zip state dict {'m': {'m': ... 100k deep ... tensor}}: tensor walk must not blow the C stack (0 or 3)",
     UNREADABLE, lambda c: make_zip_file(
         proto(2) + ordered_dict_empty() + MARK + unicode("m")
         + (EMPTY_DICT + MARK + unicode("m")) * (DEPTH - 1)
         + rebuild_tensor(W, legacy=False) + SETITEMS * DEPTH + STOP,
         {"0": (6, float32_bytes(W_VALUES))}),
     inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}))

# ---- lengths beyond the file ---------------------------------------------------------------------
case("binunicode8_2_40", "BINUNICODE8 claiming 2**40 bytes in a 20-byte file (protocol 4)", UNREADABLE,
     lambda c: proto(4) + b"\x8d" + struct.pack("<Q", 2**40) + b"abc" + STOP, suffix=".pkl")
case("binbytes8_2_40", "BINBYTES8 claiming 2**40 bytes (protocol 4)", UNREADABLE,
     lambda c: proto(4) + b"\x8e" + struct.pack("<Q", 2**40) + b"abc" + STOP, suffix=".pkl")
case("frame_2_40", "FRAME claiming 2**40 bytes in a 13-byte file (protocol 4). CPython's unpicklers reject "
     "it as truncated (3); a reader that treats frame lengths as advisory loads {} (0); nothing may allocate 1 TiB",
     UNREADABLE, lambda c: proto(4) + b"\x95" + struct.pack("<Q", 2**40) + EMPTY_DICT + STOP,
     inspect_ok=frozenset({0, 3}), scan_ok=frozenset({0, 3}), suffix=".pkl")
case("binunicode_4gib_proto2", "BINUNICODE (protocol 2 opcode) claiming 0xFFFFFFFF bytes", UNREADABLE,
     lambda c: proto(2) + b"X" + struct.pack("<I", 0xFFFFFFFF) + b"abc" + STOP, suffix=".pkl")
case("long4_2gib", "LONG4 claiming 2**31-1 bytes", UNREADABLE,
     lambda c: proto(2) + b"\x8b" + struct.pack("<i", 2**31 - 1) + b"\x01\x02" + STOP, suffix=".pkl")
case("binunicode8_2_40_in_zip", "zip whose data.pkl holds a BINUNICODE8 of length 2**40", UNREADABLE,
     lambda c: make_zip_file(proto(4) + b"\x8d" + struct.pack("<Q", 2**40) + b"abc" + STOP, {}))
case("binunicode_4gib_legacy_main", "legacy file whose main pickle has a BINUNICODE of 0xFFFFFFFF bytes",
     UNREADABLE, lambda c: legacy_headers_then(proto(2) + b"X" + struct.pack("<I", 0xFFFFFFFF) + b"abc"))


def legacy_headers_then(main: bytes) -> bytes:
    """The three legacy header pickles, then ``main``, then nothing."""
    return LEGACY_MAGIC + LEGACY_PROTOCOL + sys_info_pickle() + main


# ---- truncation ------------------------------------------------------------------------------------
def _cut_inside(data: bytes, needle: bytes, extra: int = 3) -> bytes:
    i = data.index(needle)
    return data[: i + extra]


case("truncated_plain_mid_opcode", "plain pickle dict cut inside a BINUNICODE payload", UNREADABLE,
     lambda c: _cut_inside(plain(dict_([(unicode("alpha"), unicode("a fairly long value"))])),
                           b"a fairly", 5), suffix=".pkl")
case("truncated_zip_data_pkl", "zip whose data.pkl is cut inside the BINUNICODE of 'emb.idx'", UNREADABLE,
     lambda c: make_zip_file(_cut_inside(state_dict_pickle([W, IDX], legacy=False), b"emb.idx", 3),
                             BENIGN_STORAGES))
case("truncated_legacy_main", "legacy file that ends inside the main pickle", UNREADABLE,
     lambda c: _cut_inside(benign_legacy(), b"emb.idx", 2))
case("truncated_legacy_blob", "legacy file whose last storage blob is 5 bytes short", UNREADABLE,
     lambda c: benign_legacy()[:-5])
case("truncated_after_dangerous_global",
     "'broken pickle': GLOBAL posix system then a cut BINUNICODE (scan must still report it)", UNSAFE,
     lambda c: (proto(2) + global_("posix", "system") + unicode(sh_touch(c)))[:-4], suffix=".pkl")

# ---- legacy container payload positions --------------------------------------------------------
case("legacy_magic_reduce", "legacy file whose first (magic) pickle is posix.system(...) instead of the int",
     UNSAFE, lambda c: make_legacy_file(benign_legacy_main(), LEGACY_STORAGES,
                                        magic=plain(system_call(c))))
case("legacy_protocol_reduce", "legacy file whose protocol-1001 pickle is posix.system(...)", UNSAFE,
     lambda c: make_legacy_file(benign_legacy_main(), LEGACY_STORAGES, protocol=plain(system_call(c))))
case("legacy_sys_info_reduce", "legacy file whose sys_info dict pickle holds posix.system(...)", UNSAFE,
     lambda c: make_legacy_file(benign_legacy_main(), LEGACY_STORAGES, sys_info=plain(dict_([
         (unicode("protocol_version"), int_(1001)), (unicode("little_endian"), system_call(c))]))))
case("legacy_keys_reduce", "legacy file whose storage-key list pickle holds posix.system(...)", UNSAFE,
     lambda c: make_legacy_file(benign_legacy_main(), LEGACY_STORAGES,
                                keys_pickle=plain(list_(unicode(LW.key), system_call(c)))))
case("legacy_main_reduce", "legacy file whose main pickle is a state dict with an os.system value", UNSAFE,
     lambda c: make_legacy_file(in_state_dict(system_call(c, "os")), {}))
case("zip_data_pkl_reduce", "torch zip whose data.pkl is a state dict with a posix.system value", UNSAFE,
     lambda c: make_zip_file(in_state_dict(system_call(c)), {}))
case("zip_data_pkl_stack_global", "torch zip whose data.pkl is a protocol-4 STACK_GLOBAL os.system", UNSAFE,
     lambda c: make_zip_file(plain(system_call(c, "os", via="stack"), 4), {}))

# ---- persistent ids ------------------------------------------------------------------------------
case("pid_module_legacy",
     "legacy main pickle with a ('module', Embedding class, 'sparse.py', source) persistent id. Spec §1.9 "
     "says refuse (1/3); the reader keeps it as an inert stub of the class, source never compiled (0)", UNSAFE,
     lambda c: make_legacy_file(in_state_dict(tuple_(
         unicode("module"), global_("torch.nn.modules.sparse", "Embedding"), unicode("sparse.py"),
         unicode("import os; os.system('touch x')")) + BINPERSID), {}),
     inspect_ok=frozenset({0, 1, 3}), scan_ok=frozenset({0, 1, 3}))
case("pid_module_dangerous_class",
     "legacy 'module' persistent id whose class is GLOBAL posix system", UNSAFE,
     lambda c: make_legacy_file(in_state_dict(tuple_(
         unicode("module"), global_("posix", "system"), unicode("x.py"), unicode(py_touch(c))) + BINPERSID), {}))
case("pid_int", "zip data.pkl whose persistent id is the int 5", UNREADABLE,
     lambda c: make_zip_file(in_state_dict(int_(5) + BINPERSID), {}),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}))
case("pid_str", "zip data.pkl whose persistent id is the string 'storage'", UNREADABLE,
     lambda c: make_zip_file(in_state_dict(unicode("storage") + BINPERSID), {}),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}))
case("pid_wrong_field_types",
     "zip storage pid ('storage', FloatStorage, 0 (int key), None (location), '4' (str numel))", UNREADABLE,
     lambda c: make_zip_file(in_state_dict(
         global_("torch._utils", "_rebuild_tensor_v2") + MARK
         + tuple_(unicode("storage"), global_("torch", "FloatStorage"), int_(0), NONE, unicode("4")) + BINPERSID
         + int_(0) + obj((4,)) + obj((1,)) + obj(False) + ordered_dict_empty() + TUPLE + REDUCE),
         {"0": float32_bytes([1, 2, 3, 4])}),
     inspect_ok=frozenset({1, 3}), scan_ok=frozenset({0, 1, 3}))
case("pid_dangerous_descriptor", "zip storage pid whose dtype descriptor is GLOBAL posix system", UNSAFE,
     lambda c: make_zip_file(in_state_dict(
         tuple_(unicode("storage"), global_("posix", "system"), unicode("0"), unicode("cpu"), int_(4))
         + BINPERSID), {"0": float32_bytes([1, 2, 3, 4])}))
case("pid_view_out_of_range", "legacy 0.3-style storage view ('k', offset 10**9, numel 4) beyond its root",
     UNREADABLE, lambda c: make_legacy_file(in_state_dict(
         global_("torch._utils", "_rebuild_tensor") + MARK
         + tuple_(unicode("storage"), global_("torch", "FloatStorage"), unicode("1000"), unicode("cpu"), int_(4),
                  tuple_(unicode("1001"), int_(10**9), int_(4))) + BINPERSID
         + int_(0) + obj((4,)) + obj((1,)) + TUPLE + REDUCE), {"1000": (4, float32_bytes([1, 2, 3, 4]))}),
     scan_ok=frozenset({0, 3}))

# ---- tensor geometry outside the storage (storage: 4 float32) ------------------------------------
GEOM_SCAN = frozenset({0, 3})  # geometry is invisible to a globals-only scan
case("geom_size_beyond_numel", "zip tensor size (100,) on a 4-element storage", UNREADABLE,
     geom_zip(0, (100,), (1,)), scan_ok=GEOM_SCAN)
case("geom_offset_beyond_numel", "zip tensor offset 10**6, size (2,)", UNREADABLE,
     geom_zip(10**6, (2,), (1,)), scan_ok=GEOM_SCAN)
case("geom_stride_beyond_numel", "zip tensor size (2,2) stride (10**9,1)", UNREADABLE,
     geom_zip(0, (2, 2), (10**9, 1)), scan_ok=GEOM_SCAN)
case("geom_negative_stride", "zip tensor offset 3, size (4,), stride (-1,)", UNREADABLE,
     geom_zip(3, (4,), (-1,)), scan_ok=GEOM_SCAN)
case("geom_negative_offset", "zip tensor offset -2, size (2,)", UNREADABLE,
     geom_zip(-2, (2,), (1,)), scan_ok=GEOM_SCAN)
case("geom_negative_size", "zip tensor size (-1,)", UNREADABLE,
     geom_zip(0, (-1,), (1,)), scan_ok=GEOM_SCAN)
case("geom_int64_wrap", "zip tensor size (2**32+1,), stride (2**32,): (size-1)*stride = 2**64 wraps to 0 "
     "in int64 arithmetic", UNREADABLE, geom_zip(0, (2**32 + 1,), (2**32,)), scan_ok=GEOM_SCAN)
case("geom_size_product_wrap", "zip tensor size (2**32, 2**32), stride (0, 0): in bounds, but 2**64 elements "
     "(size product wraps to 0 in int64); inspect may list it (0 or 3), to_numpy must refuse", UNREADABLE,
     geom_zip(0, (2**32, 2**32), (0, 0)), inspect_ok=frozenset({0, 3}), scan_ok=GEOM_SCAN)
case("geom_zero_stride_bomb", "zip tensor size (10**6, 10**6), stride (0, 0): in bounds, but a 4 TB "
     "materialisation (inspect may list it: 0 or 3; to_numpy must refuse)", UNREADABLE,
     geom_zip(0, (10**6, 10**6), (0, 0)), inspect_ok=frozenset({0, 3}), scan_ok=GEOM_SCAN)
case("geom_stride_rank_mismatch", "zip tensor size (2,2) with stride (1,)", UNREADABLE,
     geom_zip(0, (2, 2), (1,)), scan_ok=GEOM_SCAN)
case("geom_float_size", "zip tensor size (2.5,)", UNREADABLE, geom_zip(0, (2.5,), (1,)), scan_ok=GEOM_SCAN)
case("geom_legacy_stride_beyond", "legacy 0.3 file: _rebuild_tensor size (3,) stride (7,) on 4 elements",
     UNREADABLE, lambda c: legacy_with_tensor(
         TensorSpec("emb.weight", "1000", "FloatStorage", numel=4, size=(3,), stride=(7,)),
         {"1000": (4, float32_bytes([1, 2, 3, 4]))}), scan_ok=GEOM_SCAN)



def _v3_zip(dtype_global: bytes, size, numel_bytes: int = 16, data: bytes = b"\x00" * 16) -> bytes:
    """``_rebuild_tensor_v3(UntypedStorage(numel_bytes), 0, size, contiguous, False, OrderedDict(), dtype)``"""
    pid = tuple_(unicode("storage"), global_("torch.storage", "UntypedStorage"), unicode("0"), unicode("cpu"),
                 int_(numel_bytes)) + BINPERSID
    stride = tuple(1 for _ in size)
    rebuild = (global_("torch._utils", "_rebuild_tensor_v3") + MARK + pid + int_(0) + obj(tuple(size))
               + obj(stride) + obj(False) + ordered_dict_empty() + dtype_global + TUPLE + REDUCE)
    return make_zip_file(in_state_dict(rebuild), {"0": data})


case("geom_v3_dtype_beyond_bytes", "_rebuild_tensor_v3 reading 4 float64 (32 bytes) from a 16-byte "
     "UntypedStorage", UNREADABLE, lambda c: _v3_zip(global_("torch", "float64"), (4,)), scan_ok=GEOM_SCAN)
case("v3_dtype_dangerous", "_rebuild_tensor_v3 whose dtype argument is GLOBAL posix system", UNSAFE,
     lambda c: _v3_zip(global_("posix", "system"), (4,)))
case("numel_1e12_untyped_zip", "zip UntypedStorage pid numel 10**12 bytes, 16 bytes stored, v3 uint8 view",
     UNREADABLE, lambda c: _v3_zip(global_("torch", "uint8"), (4,), numel_bytes=10**12), scan_ok=GEOM_SCAN)

# ---- storages claiming more bytes than the file holds ----------------------------------------------
case("numel_1e12_zip", "zip pid numel 10**12 while data/0 holds 16 bytes", UNREADABLE,
     lambda c: zip_with_tensor(TensorSpec("emb.weight", "0", "FloatStorage", numel=10**12, size=(4,),
                                          stride=(1,)), float32_bytes([1, 2, 3, 4])), scan_ok=GEOM_SCAN)
case("numel_1e12_legacy", "legacy pid numel 10**12 and count prefix 10**12, 16 bytes of data", UNREADABLE,
     lambda c: legacy_with_tensor(TensorSpec("emb.weight", "1000", "FloatStorage", numel=10**12, size=(4,),
                                             stride=(1,)), {"1000": (10**12, float32_bytes([1, 2, 3, 4]))}),
     scan_ok=GEOM_SCAN)
case("legacy_count_mismatch", "legacy pid numel 4 but blob count prefix 10**12", UNREADABLE,
     lambda c: legacy_with_tensor(TensorSpec("emb.weight", "1000", "FloatStorage", numel=4, size=(4,),
                                             stride=(1,)), {"1000": (10**12, float32_bytes([1, 2, 3, 4]))}),
     scan_ok=GEOM_SCAN)
case("legacy_negative_count", "legacy blob count prefix -1", UNREADABLE,
     lambda c: legacy_with_tensor(TensorSpec("emb.weight", "1000", "FloatStorage", numel=4, size=(4,),
                                             stride=(1,)), {"1000": (-1, float32_bytes([1, 2, 3, 4]))}),
     scan_ok=GEOM_SCAN)
case("zip_missing_storage_record", "zip pid names storage key '7' that has no data/7 record", UNREADABLE,
     lambda c: make_zip_file(state_dict_pickle([TensorSpec("emb.weight", "7", "FloatStorage", numel=4,
                                                           size=(4,), stride=(1,))], legacy=False), {}),
     scan_ok=GEOM_SCAN)


def _payload_script(canary: str) -> str:
    import os

    return os.path.join(os.path.dirname(canary), "evil_payload.py")


# sanity: names are unique and usable as file names
assert len({c.name for c in CASES}) == len(CASES), "duplicate case names"
CASES_BY_NAME = {c.name: c for c in CASES}

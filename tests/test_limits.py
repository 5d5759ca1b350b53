"""Resource limits: each refused in bounded time and memory, with a message naming the limit.

Most cases lower a limit constant in process (monkeypatch) so they run in milliseconds; the
real-size cases run in a subprocess under RLIMIT_AS = 2 GiB and report their peak RSS. Every
in-process case runs through tests/damage/harness.py (10 s deadline, 2 GiB address-space cap),
so a limit that is not enforced shows up as a timeout or a memory violation, not a hang.

Limits exercised (converter/pickle/): vm.MAX_OBJECTS, vm.MAX_CREATED_BYTES, vm.MAX_MEMO,
vm.MAX_MARK_DEPTH, vm.MAX_TUPLE_DEPTH, vm.MAX_LONG_BYTES, walk.MAX_DEPTH, walk.MAX_VISITS, zipreader.MAX_ENTRIES,
the expanded-tensor cap of TensorRef.to_numpy. Refusals that are not limits but must not
allocate what a file merely claims (a 2**62-byte string, a 4 GiB DEFLATE bomb, a legacy count of
2**62) are checked for time and memory and for their own reason."""

from __future__ import annotations

import functools
import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import converter.pickle.vm as vm
import converter.pickle.walk as walk
import converter.pickle.zipreader as zipreader

from .damage.harness import Outcome, check_file, memory_cap
from .damage.mutate import CANARY
from .hostile.builders import (
    APPEND,
    APPENDS,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    MARK,
    NONE,
    REDUCE,
    SETITEM,
    SETITEMS,
    STOP,
    TUPLE1,
    TensorSpec,
    binget,
    binput,
    dict_,
    float32_bytes,
    global_,
    int_,
    make_legacy_file,
    make_zip_file,
    ordered_dict_empty,
    proto,
    rebuild_tensor,
    state_dict_body,
    unicode,
)

HERE = Path(__file__).resolve().parent
W = TensorSpec("emb.weight", "0", "FloatStorage", numel=4, size=(2, 2), stride=(2, 1))
W_DATA = {"0": float32_bytes([1.0, 2.0, 3.0, 4.0])}
FAST = 5.0  # seconds: an in-process refusal must take less than this


def zip_with(value: bytes) -> bytes:
    """A valid torch zip state dict {'emb.weight': tensor, 'extra': <value>}."""
    body = state_dict_body([W], legacy=False, metadata=False)
    body += unicode("extra") + value + SETITEM
    return make_zip_file(proto(2) + body + STOP, W_DATA)


def plain(body: bytes) -> bytes:
    return proto(2) + body + STOP


def run(tmp_path: Path, data: bytes, suffix: str = ".pth") -> tuple[Outcome, float]:
    path = tmp_path / ("limit" + suffix)
    path.write_bytes(data)
    t0 = time.monotonic()
    out = check_file(path)
    return out, time.monotonic() - t0


def assert_limit(out: Outcome, seconds: float, *words: str) -> None:
    msg = out.open_message or out.load_message
    assert out.code == 3, f"expected a refusal (3), got {out.code}: {msg}"
    assert "limit" in msg, f"the message does not name the limit: {msg}"
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert seconds < FAST, f"took {seconds:.1f} s"
    assert not CANARY.exists()


# ------------------------------------------------------------------------------------------
# object counts and memory of what one pickle builds

def test_huge_list_by_appends(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(vm, "MAX_OBJECTS", 10_000)
    out, s = run(tmp_path, zip_with(EMPTY_LIST + binput(1) + (NONE + APPEND) * 20_000))
    assert_limit(out, s, "10,000 objects")


def test_huge_list_by_one_appends(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(vm, "MAX_OBJECTS", 10_000)
    out, s = run(tmp_path, zip_with(EMPTY_LIST + MARK + NONE * 20_000 + APPENDS))
    assert_limit(out, s, "objects")


def test_huge_dict_by_setitems(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(vm, "MAX_OBJECTS", 10_000)
    pairs = b"".join(int_(i) + NONE for i in range(12_000))
    out, s = run(tmp_path, zip_with(EMPTY_DICT + MARK + pairs + SETITEMS))
    assert_limit(out, s, "objects")


def test_empty_container_flood_hits_the_byte_budget(tmp_path, monkeypatch) -> None:
    """One-byte opcodes that each make an empty set (216 bytes): bounded by MAX_CREATED_BYTES,
    not only by the object count."""
    monkeypatch.setattr(vm, "MAX_CREATED_BYTES", 4 << 20)
    out, s = run(tmp_path, zip_with(MARK + b"\x8f" * 50_000 + b"l"))
    assert_limit(out, s, "MiB of objects")


def test_memo_entries(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(vm, "MAX_MEMO", 1_000)
    out, s = run(tmp_path, zip_with(NONE + b"".join(binput(i) for i in range(2_000))))
    assert_limit(out, s, "memo")


def test_mark_depth_real_size(tmp_path) -> None:
    out, s = run(tmp_path, zip_with(MARK * (vm.MAX_MARK_DEPTH + 1)))
    assert_limit(out, s, "MARK")


def test_long_integer_literal(tmp_path) -> None:
    n = vm.MAX_LONG_BYTES + 1
    out, s = run(tmp_path, zip_with(b"\x8b" + struct.pack("<i", n) + b"\x01" * n))
    assert_limit(out, s, "integer")


def test_huge_string_claim_is_not_allocated(tmp_path) -> None:
    """BINUNICODE8 claiming 2**62 bytes in a tiny file: refused as truncated before allocating."""
    with memory_cap(256 << 20):
        out, s = run(tmp_path, zip_with(b"\x8d" + struct.pack("<Q", 1 << 62) + b"abc"))
    assert out.code == 3 and "truncated" in out.open_message and s < FAST


def test_legacy_enormous_key_list(tmp_path, monkeypatch) -> None:
    """A legacy file whose storage-key list holds 50,000 keys (the pickle builds it before the
    reader can check it against the model): the object limit stops the list itself."""
    monkeypatch.setattr(vm, "MAX_OBJECTS", 10_000)
    main = plain(state_dict_body([TensorSpec("w", "0", numel=4, size=(4,), stride=(1,))], legacy=True))
    keys = proto(2) + EMPTY_LIST + MARK + b"".join(unicode(str(i)) for i in range(50_000)) + APPENDS + STOP
    out, s = run(tmp_path, make_legacy_file(main, W_DATA, keys_pickle=keys))
    assert_limit(out, s, "objects", "storage-key list")


def test_legacy_key_list_unreferenced_keys_real_size(tmp_path) -> None:
    """Real limits: 200,000 keys that the model never references are refused at the first one."""
    main = plain(state_dict_body([TensorSpec("w", "0", numel=4, size=(4,), stride=(1,))], legacy=True))
    keys = proto(2) + EMPTY_LIST + MARK + b"".join(unicode(f"k{i}") for i in range(200_000)) + APPENDS + STOP
    out, s = run(tmp_path, make_legacy_file(main, W_DATA, keys_pickle=keys))
    assert out.code == 3 and "not referenced" in out.open_message and s < FAST


def test_legacy_count_of_2_62(tmp_path) -> None:
    """A legacy storage whose pid numel and blob count both say 2**62: refused without
    allocating (its bytes are not in the file)."""
    big = TensorSpec("w", "0", numel=1 << 62, size=(4,), stride=(1,))
    main = plain(state_dict_body([big], legacy=True))
    data = make_legacy_file(main, {"0": (1 << 62, b"\x00" * 16)})
    with memory_cap(256 << 20):
        out, s = run(tmp_path, data)
    assert out.code == 3 and "holds only" in out.open_message and s < FAST


def test_many_protocol0_lines_take_linear_time(tmp_path) -> None:
    """400,000 protocol-0 INT lines (1.6 MB): each line used to copy up to 1 MiB while looking
    for its newline (~15 s to read this file); now linear (~1 s)."""
    path = tmp_path / "lines.pkl"
    path.write_bytes(b"(l" + b"I1\na" * 400_000 + b".")
    t0 = time.monotonic()
    out = check_file(path, stages="open")  # one pass; the old code needed ~15 s (deadline: 10 s)
    s = time.monotonic() - t0
    assert out.open_code == 0
    assert s < 2 * FAST, f"took {s:.1f} s"


# ------------------------------------------------------------------------------------------
# nesting: the VM, the walk and the loaders

def test_deep_tuple_as_dict_key(tmp_path) -> None:
    """A tuple nested 1,000,000 deep used as a dict key: CPython hashes nested tuples
    recursively in C, which overflowed the C stack (a segfault) before MAX_TUPLE_DEPTH."""
    out, s = run(tmp_path, zip_with(EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * 1_000_000 + NONE + SETITEM))
    assert_limit(out, s, "tuples deeper")


def test_deep_tuple_in_a_frozenset(tmp_path) -> None:
    out, s = run(tmp_path, zip_with(MARK + EMPTY_TUPLE + TUPLE1 * (vm.MAX_TUPLE_DEPTH + 5) + b"\x91"))
    assert_limit(out, s, "tuples deeper")


def test_deep_tuple_through_a_reconstructor(tmp_path) -> None:
    """builtins.tuple([prev]) nests too: reconstructor results are tracked like TUPLE opcodes."""
    step = binput(1) + b"0" + binget(0) + EMPTY_LIST + binget(1) + APPEND + TUPLE1 + REDUCE
    body = global_("builtins", "tuple") + binput(0) + b"0" + EMPTY_TUPLE + step * (vm.MAX_TUPLE_DEPTH + 5)
    out, s = run(tmp_path, zip_with(body))
    assert_limit(out, s, "tuples deeper")


def test_tuples_below_the_vm_limit_are_stopped_by_the_walk(tmp_path) -> None:
    """900-deep tuples are legal for the VM; walking them for tensors (open_model_file's
    tensors(), and the loaders) stops at walk.MAX_DEPTH."""
    out, s = run(tmp_path, zip_with(EMPTY_TUPLE + TUPLE1 * 900))
    assert_limit(out, s, "nests deeper")
    assert out.open_code == 3 and out.load_code == 3


@pytest.mark.parametrize("kind", ["list", "dict", "stub-state"])
def test_deep_containers_walked_by_loaders(tmp_path, kind) -> None:
    n = 200_000
    if kind == "list":  # ] * n then APPEND * (n-1): each list appended into the one before
        value = EMPTY_LIST * n + APPEND * (n - 1)
    elif kind == "dict":
        value = (EMPTY_DICT + unicode("k")) * n + NONE + SETITEM * n
    else:  # fastai.X() objects whose BUILD state holds the next one
        value = (global_("fastai.basic_train", "Learner") + EMPTY_TUPLE + REDUCE + EMPTY_DICT + unicode("m")) * 2000
        value += NONE + (SETITEM + BUILD) * 2000
    out, s = run(tmp_path, zip_with(value))
    assert_limit(out, s, "deeper")


def _module_dag(levels: int) -> bytes:
    """A state dict {'model': M_levels} where M_k is a pickled nn.Module stub whose _modules are
    {'a': M_{k-1}, 'b': M_{k-1}} (memo-shared) and M_0 holds one parameter: a few KB, but
    2**levels module paths, each of which state_dict() semantics would list."""
    w = TensorSpec("w", "0", numel=4, size=(4,), stride=(1,))
    module = global_("torch.nn.modules.module", "Module") + EMPTY_TUPLE + REDUCE

    def state(children: list[tuple[bytes, bytes]]) -> bytes:
        return dict_([(unicode("_parameters"), dict_([(unicode("w"), binget(0))])),
                      (unicode("_buffers"), EMPTY_DICT), (unicode("_modules"), dict_(children))]) + BUILD

    body = rebuild_tensor(w, legacy=False) + binput(0) + b"0" + module + state([]) + binput(1) + b"0"
    for k in range(2, levels + 2):
        body += module + state([(unicode("a"), binget(k - 1)), (unicode("b"), binget(k - 1))]) + binput(k) + b"0"
    body += ordered_dict_empty() + MARK + unicode("model") + binget(levels + 1) + SETITEMS
    return make_zip_file(proto(2) + body + STOP, W_DATA)


def test_module_dag_expansion_is_bounded(tmp_path, monkeypatch) -> None:
    """40 levels of shared submodules (2**41 paths): the walk used to run for ever; it now stops
    after walk.MAX_VISITS containers (lowered here to keep the test fast)."""
    monkeypatch.setattr(walk, "MAX_VISITS", 20_000)
    out, s = run(tmp_path, _module_dag(40))
    assert_limit(out, s, "20,000 containers")
    assert out.open_code == 3 and out.load_code == 3


def test_module_dag_below_the_limit_loads(tmp_path) -> None:
    """Sharing is legal: 6 levels (127 paths) walk fine with the real limit."""
    out, _ = run(tmp_path, _module_dag(6))
    assert out.open_code == 0 and out.n_tensors == 2 ** 7 - 1


def test_stub_call_chain_has_a_bounded_name(tmp_path) -> None:
    """f()()()… 100,000 times (REDUCE on the previous stub instance): the class name of the
    result used to be built recursively (RecursionError in the loaders)."""
    chain = global_("fastai.learner", "Learner") + (EMPTY_TUPLE + REDUCE) * 100_000
    out, s = run(tmp_path, plain(chain), ".pkl")
    assert out.code == 3 and "no tensors" in out.load_message and s < FAST


def test_stub_attribute_chain_has_a_bounded_name(tmp_path) -> None:
    """getattr(getattr(…(Learner, 'a')…, 'a'), 'a') 50,000 deep: same, for attribute stubs."""
    step = binput(1) + b"0" + binget(0) + binget(1) + unicode("a") + b"\x86" + REDUCE
    body = global_("builtins", "getattr") + binput(0) + b"0" + global_("fastai.learner", "Learner")
    out, s = run(tmp_path, plain(body + step * 50_000), ".pkl")
    assert out.code == 3 and "no tensors" in out.load_message and s < FAST


def test_deep_list_as_legacy_protocol_number(tmp_path) -> None:
    """The legacy protocol pickle holding a 100,000-deep list: its error message used repr()
    (RecursionError outside the VM)."""
    n = 100_000
    data = bytes.fromhex("80028a0a6cfc9c46f9206aa850192e") + plain(EMPTY_LIST * n + APPEND * (n - 1))
    out, s = run(tmp_path, data)
    assert out.code == 3 and "protocol version a list" in out.open_message and s < FAST


# ------------------------------------------------------------------------------------------
# zip: entry counts and bombs

def _zip64_claiming(entries: int) -> bytes:
    """A real one-entry torch zip whose end records (zip64 EOCD + locator + EOCD, written by
    hand) claim ``entries`` entries: the file stays a few hundred bytes."""
    base = make_zip_file(plain(EMPTY_DICT), {})
    eocd = base.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", base, eocd + 12)
    body = base[:eocd]
    z64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(body), 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + z64 + loc + end


def test_zip_claiming_a_million_entries(tmp_path) -> None:
    data = _zip64_claiming(1_000_000)
    assert len(data) < 1024
    out, s = run(tmp_path, data)
    assert_limit(out, s, "1,000,000 entries")


def test_zip_claiming_65535_entries_with_one(tmp_path) -> None:
    """Below the limit, a directory that does not hold what the EOCD claims is corrupt."""
    base = bytearray(make_zip_file(plain(EMPTY_DICT), {}))
    eocd = base.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", base, eocd + 8, 65534, 65534)
    out, s = run(tmp_path, bytes(base))
    assert out.code == 3 and "corrupt" in out.open_message and s < FAST


def test_zip_with_more_entries_than_the_limit(tmp_path, monkeypatch) -> None:
    """A real directory of 300 entries against a limit of 200."""
    monkeypatch.setattr(zipreader, "MAX_ENTRIES", 200)
    extra = {f"junk/{i}": b"" for i in range(300)}
    out, s = run(tmp_path, make_zip_file(plain(EMPTY_DICT), {}, extra_records=extra))
    assert_limit(out, s, "303 entries")


@functools.lru_cache(maxsize=2)
def _deflate_bomb(gib: int = 4) -> bytes:
    """A raw DEFLATE stream of ``gib`` GiB of zeros, ~4 MB long: one full-flushed block for
    1 MiB of zeros, repeated (full flush makes the blocks independent), then a final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\x00" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(b"\x00" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    assert again == block
    return block + again * (gib * 1024 - 1) + c.flush()


def _zip_with_deflated(member: str, payload: bytes, claimed: int) -> bytes:
    """A torch zip (written by hand) in which ``archive/<member>`` is stored with method 8
    (DEFLATE), holding ``payload`` and claiming ``claimed`` uncompressed bytes."""
    pkl = plain(state_dict_body([W], legacy=False, metadata=False))
    members = [("archive/data.pkl", pkl), ("archive/data/0", W_DATA["0"]), ("archive/version", b"3\n")]
    out, central = bytearray(), bytearray()
    for name, body in members:
        fname = name.encode()
        method, usize = 0, len(body)
        if name == f"archive/{member}":
            body, method, usize = payload, 8, claimed
        hoff = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0, 0, len(body), usize,
                           len(fname), 0) + fname + body
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0, 0, len(body),
                               usize, len(fname), 0, 0, 0, 0, 0, hoff) + fname
    cd_start = len(out)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), cd_start, 0)
    return bytes(out)


@pytest.mark.parametrize("member", ["data.pkl", "data/0"])
def test_zip_deflate_bomb_is_not_decompressed(tmp_path, member) -> None:
    """A DEFLATE member expanding to 4 GiB (data.pkl, or a storage): refused because torch
    stores entries uncompressed — embconv never inflates anything, so there is no size limit
    to hit: time and memory stay those of reading the directory."""
    bomb = _deflate_bomb(4)
    data = _zip_with_deflated(member, bomb, 0xFFFFFFFE)
    assert len(data) < 8 << 20
    with memory_cap(512 << 20):
        out, s = run(tmp_path, data)
    assert out.code == 3 and "compressed" in out.open_message, out.open_message
    assert s < FAST


def test_deflate_bomb_is_a_real_bomb() -> None:
    """The bomb really inflates (checked on its first 64 MiB)."""
    bomb = _deflate_bomb(1)
    d = zlib.decompressobj(-15)
    assert d.decompress(bomb, 64 << 20) == b"\x00" * (64 << 20)


# ------------------------------------------------------------------------------------------
# tensors

def test_expanded_tensor_copy_cap(tmp_path) -> None:
    """A non-contiguous tensor (stride 0 on a huge size) over a 4-element storage: to_numpy()
    refuses the copy above its cap instead of allocating terabytes."""
    spec = TensorSpec("emb.weight", "0", numel=4, size=(1 << 20, 1 << 20), stride=(0, 0))
    body = state_dict_body([spec], legacy=False, metadata=False)
    out, s = run(tmp_path, make_zip_file(proto(2) + body + STOP, W_DATA))
    assert_limit(out, s, "would take")


# ------------------------------------------------------------------------------------------
# real size, in a subprocess (RLIMIT_AS 2 GiB)

CHILD = r"""
import resource, sys, time
from converter.errors import EmbconvError
from converter.pickle import open_model_file
t = time.monotonic()
try:
    with open_model_file(sys.argv[1]) as mf:
        for _, x in mf.tensors():
            x.to_numpy()
    print("OK")
except EmbconvError as e:
    print(f"REFUSED {e.exit_code} {e}")
print(f"{time.monotonic() - t:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
"""


def _child_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def run_child(path: Path) -> tuple[str, float, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env,
                       timeout=120, preexec_fn=_child_limit)
    assert r.returncode == 0, f"child died with {r.returncode}: {r.stderr[-2000:]}"
    verdict, stats = r.stdout.strip().splitlines()[-2:]
    seconds, rss_mb = stats.split()
    return verdict, float(seconds), int(rss_mb)


def test_real_size_empty_set_flood_in_a_subprocess(tmp_path) -> None:
    """2,000,000 EMPTY_SET opcodes (a 2 MB file) with the real limits: refused by the 512 MiB
    object budget (MAX_CREATED_BYTES) with peak RSS well under the 2 GiB cap. Without the budget
    this file took ~0.7 GB, and a 50 MB one ~16 GB before MAX_OBJECTS would have stopped it."""
    path = tmp_path / "sets.pth"
    path.write_bytes(zip_with(MARK + b"\x8f" * 2_000_000 + b"l"))
    verdict, seconds, rss = run_child(path)
    assert verdict.startswith("REFUSED 3") and "limit" in verdict, verdict
    assert rss < 1500, f"peak RSS {rss} MB"
    assert seconds < 60


def test_real_size_deep_tuple_key_in_a_subprocess(tmp_path) -> None:
    """The 1,000,000-deep tuple used as a dict key, with the real limits, in a fresh process:
    refused, no segfault."""
    path = tmp_path / "deep.pth"
    path.write_bytes(zip_with(EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * 1_000_000 + NONE + SETITEM))
    verdict, seconds, rss = run_child(path)
    assert verdict.startswith("REFUSED 3") and "limit" in verdict, verdict


def test_walk_depth_constant_is_what_messages_say() -> None:
    assert walk.MAX_DEPTH == 500 and vm.MAX_TUPLE_DEPTH > walk.MAX_DEPTH

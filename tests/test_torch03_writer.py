"""Torch-free self-checks of the torch 0.3.1 legacy-file writer (tests/fixtures/torch03_writer.py).

The strongest check re-enacts torch 0.3.1's ``_save`` with CPython's own pickler in a
subprocess that has *fake* ``torch`` / ``torch._utils`` modules (so the real pickler can
emit ``GLOBAL torch._utils _rebuild_tensor`` without torch), and requires the writer's
bytes to be identical.  Loading by real torch is covered in test_torch_differential.py.
"""

from __future__ import annotations

import json
import pickle
import pickletools
import struct
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import torch03_writer as W  # noqa: E402

# A re-enactment of T-0.3.1 torch/serialization.py `_save` + Tensor.__reduce__ on fake
# torch classes, run by the stdlib pickler (protocol 2).  Input: JSON on stdin describing
# tensors over storages; output: the file bytes on stdout.
_REENACT = textwrap.dedent(
    r"""
    import io, json, pickle, struct, sys, types
    from collections import OrderedDict

    torch = types.ModuleType("torch"); _utils = types.ModuleType("torch._utils")
    torch._utils = _utils
    sys.modules["torch"] = torch; sys.modules["torch._utils"] = _utils

    def _rebuild_tensor(storage, storage_offset, size, stride):
        raise AssertionError("never called")
    _rebuild_tensor.__module__ = "torch._utils"
    _utils._rebuild_tensor = _rebuild_tensor

    class _StorageBase:
        def __init__(self, cdata, numel, data, loc, root=None, offset=0):
            self._cdata, self.numel, self.data, self.loc = cdata, numel, data, loc
            self.root, self.offset = root, offset
        def _root_storage(self):
            return (self.root or self), self.offset
    for name in ["FloatStorage", "DoubleStorage", "HalfStorage", "LongStorage", "IntStorage",
                 "ShortStorage", "CharStorage", "ByteStorage"]:
        cls = type(name, (_StorageBase,), {"__module__": "torch"})
        setattr(torch, name, cls)

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self._s, self._o, self._size, self._stride = storage, offset, size, stride
        def __reduce__(self):                         # T-0.3.1 torch/tensor.py
            return (_rebuild_tensor, (self._s, self._o, tuple(self._size), self._stride))

    def location_tag(st):                             # _cpu_tag / _cuda_tag
        return "cpu" if st.loc == "cpu" else "cuda:" + str(int(st.loc.split(":")[1]))

    spec = json.load(sys.stdin)
    roots, storages = {}, {}
    for r in spec["roots"]:
        roots[r["key"]] = getattr(torch, r["type"])(int(r["key"]), r["numel"],
                                                   bytes.fromhex(r["hex"]), r["loc"])
    def storage_for(t):
        root = roots[t["root"]]
        if t.get("view") is None:
            return root
        vkey, voff, vnum = t["view"]
        k = (t["root"], vkey)
        if k not in storages:
            storages[k] = type(root)(int(vkey), vnum, None, root.loc, root=root, offset=voff)
        return storages[k]

    sd = OrderedDict()
    made = {}
    for t in spec["tensors"]:
        if t.get("same_as"):
            sd["".join([t["name"]])] = made[t["same_as"]]
            continue
        ten = Tensor(storage_for(t), t["offset"], t["size"], tuple(t["stride"]))
        made[t["name"]] = ten
        sd["".join([t["name"]])] = ten

    serialized = {}
    def persistent_id(obj):                            # T-0.3.1 serialization._save
        if isinstance(obj, _StorageBase):
            storage_type = getattr(torch, type(obj).__name__)
            root, offset = obj._root_storage()
            root_key = str(root._cdata)
            location = location_tag(obj)
            serialized[root_key] = root
            is_view = obj._cdata != root._cdata
            view_metadata = (str(obj._cdata), offset, obj.numel) if is_view else None
            return ("storage", storage_type, root_key, location, root.numel, view_metadata)
        return None

    f = io.BytesIO()
    sys_info = dict(protocol_version=1001, little_endian=sys.byteorder == "little",
                    type_sizes=dict(short=struct.Struct("=h").size, int=struct.Struct("=i").size,
                                    long=struct.Struct("=l").size))
    pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump(sys_info, f, protocol=2)
    p = pickle.Pickler(f, protocol=2)
    p.persistent_id = persistent_id
    p.dump(sd)
    keys = sorted(serialized.keys())
    pickle.dump(keys, f, protocol=2)
    for k in keys:
        st = serialized[k]
        f.write(struct.pack("<q", st.numel)); f.write(st.data)
    sys.stdout.buffer.write(f.getvalue())
    """
)


def _reenact(sd: OrderedDict, *, location: str, tie_mode: str = "storage") -> bytes:
    """Run _REENACT on the same Tensor03 graph the writer gets (keys must be assigned)."""
    roots: dict[str, W.Storage03] = {}
    tensors = []
    seen: dict[int, str] = {}
    for name, t in sd.items():
        if tie_mode == "tensor" and id(t) in seen:
            tensors.append({"name": name, "same_as": seen[id(t)]})
            continue
        seen[id(t)] = name
        st = t.storage
        root = st.root if isinstance(st, W.StorageView03) else st
        roots[root.key] = root
        tensors.append(
            {
                "name": name,
                "root": root.key,
                "view": [st.key, st.offset, st.numel] if isinstance(st, W.StorageView03) else None,
                "offset": t.offset,
                "size": list(t.size),
                "stride": list(t.stride),
            }
        )
    spec = {
        "roots": [
            {
                "key": k,
                "type": r.storage_type,
                "numel": r.numel,
                "hex": r.data.tobytes().hex(),
                "loc": r.location or location,
            }
            for k, r in roots.items()
        ],
        "tensors": tensors,
    }
    res = subprocess.run(
        [sys.executable, "-c", _REENACT], input=json.dumps(spec).encode(), capture_output=True, check=True
    )
    return res.stdout


def _graph(seed: int = 0) -> OrderedDict:
    rng = np.random.default_rng(seed)
    root = W.Storage03(np.arange(40, dtype=np.float32), key="140012345678912")
    view = W.StorageView03(root, 8, 20, key="140012345679000")
    emb = W.Tensor03.from_array(rng.standard_normal((6, 4)).astype(np.float32))
    emb.storage.key = "94245795383616"
    sd = OrderedDict()
    sd["0.encoder.weight"] = emb
    sd["0.encoder_with_dropout.embed.weight"] = W.Tensor03(emb.storage, 0, (6, 4), (4, 1))
    sd["1.decoder.weight"] = emb  # tied: same tensor object
    sd["half"] = W.Tensor03(W.Storage03(np.linspace(0, 1, 5).astype(np.float16), key="94245795383696"))
    sd["long"] = W.Tensor03(
        W.Storage03(np.arange(-3, 3, dtype=np.int64), key="94245795383776"), 1, (2, 2), (1, 2)
    )
    sd["big_long"] = W.Tensor03(
        W.Storage03(np.array([2**40, -(2**40)], dtype=np.int64), key="9"), 0, (2,), (1,)
    )
    sd["viewed"] = W.Tensor03(view, 3, (2, 3, 2), (1, 4, 2))
    sd["root_of_view"] = W.Tensor03(root, 2, (5,), (7,))
    sd["byte"] = W.Tensor03(W.Storage03(np.arange(300, dtype=np.uint8), key="1001"), 260, (4, 5), (5, 1))
    sd["empty"] = W.Tensor03(W.Storage03(np.zeros(0, np.float64), key="1002"), 0, (0, 3), (3, 1))
    return sd


@pytest.mark.parametrize("location", ["cuda:0", "cpu", "cuda:1"])
@pytest.mark.parametrize("tie_mode", ["storage", "tensor"])
def test_writer_matches_stdlib_pickler_reenactment(location: str, tie_mode: str) -> None:
    sd = _graph()
    if tie_mode == "storage":
        sd["1.decoder.weight"] = W.Tensor03(sd["0.encoder.weight"].storage, 0, (6, 4), (4, 1))
    got = W.dumps(sd, location=location, tie_mode=tie_mode)
    want = _reenact(sd, location=location, tie_mode=tie_mode)
    assert got == want


def test_many_items_and_memo_past_256() -> None:
    rng = np.random.default_rng(1)
    sd = OrderedDict((f"layer{i}.w", rng.standard_normal(3).astype(np.float32)) for i in range(1100))
    t_sd = OrderedDict((k, W.Tensor03.from_array(v)) for k, v in sd.items())
    for i, t in enumerate(t_sd.values()):
        t.storage.key = str(94245795383616 + i * 0x50)
    t_sd["tied_late"] = t_sd["layer300.w"]  # same object after memo index 256 -> LONG_BINGET
    got = W.dumps(t_sd)
    assert got == _reenact(t_sd, location="cuda:0", tie_mode="tensor")
    import io

    f = io.BytesIO(got)
    for _ in range(3):
        pickle.load(f)
    ops = {op.name for op, _, _ in pickletools.genops(f)}
    assert {"LONG_BINPUT", "LONG_BINGET", "SETITEMS"} <= ops


def test_layout_header_and_blobs() -> None:
    sd = OrderedDict(a=np.arange(3, dtype=np.float32), b=np.arange(2, dtype=np.int16))
    data = W.dumps(sd, key_base=999999999999990, key_step=20)  # keys 15 and 16 digits long
    assert data.startswith(W.MAGIC_BYTES + bytes.fromhex("80024de9032e"))
    import io

    f = io.BytesIO(data)
    assert pickle.load(f) == W.MAGIC_NUMBER
    assert pickle.load(f) == 1001
    assert pickle.load(f) == {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    # skip the main pickle without executing it
    main_start = f.tell()
    for op, _, _ in pickletools.genops(f):
        if op.name == "STOP":
            break
    assert b"_rebuild_tensor\n" in data[main_start : f.tell()]
    assert b"_metadata" not in data and b"_rebuild_tensor_v2" not in data
    keys = pickle.load(f)
    assert keys == sorted(["999999999999990", "1000000000000010"]) == ["1000000000000010", "999999999999990"]
    # blobs in sorted-key order: b (int16, 2 elements) first, then a
    rest = f.read()
    assert (
        rest
        == struct.pack("<q", 2)
        + np.arange(2, dtype="<i2").tobytes()
        + struct.pack("<q", 3)
        + np.arange(3, dtype="<f4").tobytes()
    )


def test_rejects_non_03_dtypes() -> None:
    with pytest.raises(TypeError):
        W.dumps(OrderedDict(x=np.zeros(2, dtype=bool)))
    W.dumps(OrderedDict(x=np.zeros(2, dtype=bool)), allow_newer_dtypes=True)
    with pytest.raises(ValueError):
        W.Tensor03(W.Storage03(np.zeros(4, np.float32)), 2, (2, 2), (1, 1))

"""Differential tests: embconv's torch-free reader against ``torch.load(weights_only=True)``.

torch is a test-only dependency (pinned in pyproject's ``test`` extra); without it this module
is skipped.  Every file is produced here: by ``torch.save`` in both containers (the default zip
and ``_use_new_zipfile_serialization=False`` stacked pickles) and by the torch-free torch 0.3.1 +
fastai 0.7 re-enactment in ``tests/fixtures/torch03_writer.py``.  For each file the reader must
yield exactly the tensor paths of the saved object, with equal shape and dtype and bit-identical
values (spec containers-and-outputs.md §1.3, §1.5, §1.9).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import textwrap
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from converter.pickle import iter_tensors, open_model_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import torch03_writer as W  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

DTYPES = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
CONTAINERS = ["zip", "legacy"]


# --------------------------------------------------------------------------- helpers
def _dtype_name(t: Any) -> str:
    """API-DRAFT says ``TensorRef.dtype`` is a str; tolerate an object with ``.name`` here so
    that a type mismatch shows up once, not everywhere."""
    d = t.dtype
    return d if isinstance(d, str) else d.name


def _torch_dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _random_tensor(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> torch.Tensor:
    """Random bit patterns (NaN payloads, -0.0, subnormals, inf included) of the given dtype."""
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "bool":
        return torch.from_numpy(rng.integers(0, 2, size=shape).astype(np.bool_))
    if dtype == "bfloat16":
        bits = rng.integers(0, 2**16, size=n, dtype=np.uint16).view(np.int16)
        return torch.from_numpy(bits.copy()).view(torch.bfloat16).reshape(shape)
    np_dtype = np.dtype(dtype)
    raw = rng.integers(0, 256, size=n * np_dtype.itemsize, dtype=np.uint8)
    return torch.from_numpy(raw.view(np_dtype).reshape(shape).copy())


def _flatten_torch(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensor leaves of nested dicts, keys joined by '.' (API-DRAFT iter_tensors convention)."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten_torch(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _save(obj: Any, path: Path, container: str) -> Path:
    if container == "zip":
        torch.save(obj, path)
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def _read_ours(path: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """Everything the reader says about each tensor, materialised while the file is open."""
    out: dict[str, dict[str, Any]] = {}
    with open_model_file(path) as mf:
        container = mf.container
        for p, t in iter_tensors(mf.root):
            assert p not in out, f"iter_tensors yielded {p!r} twice"
            arr = t.to_numpy()
            out[p] = {
                "shape": tuple(t.shape),
                "stride": tuple(t.stride),
                "offset": t.storage_offset,
                "dtype": _dtype_name(t),
                "key": t.storage.key,
                "location": t.storage.location,
                "array": np.array(arr, copy=True),
                "c_contiguous": arr.flags["C_CONTIGUOUS"],
            }
    return container, out


def _assert_same_values(name: str, ours: np.ndarray, ref: torch.Tensor) -> None:
    ref = ref.detach()
    if ref.dtype == torch.bfloat16:
        want = ref.float().contiguous().numpy()
        assert ours.dtype == np.float32, f"{name}: bfloat16 not widened to float32 ({ours.dtype})"
    else:
        want = ref.contiguous().numpy()
        assert ours.dtype == want.dtype, f"{name}: numpy dtype {ours.dtype} != {want.dtype}"
    assert ours.shape == want.shape, f"{name}: shape {ours.shape} != {want.shape}"
    assert ours.tobytes() == want.tobytes(), f"{name}: values differ\nours={ours!r}\ntorch={want!r}"


def _compare(path: Path, expected_container: str | None = None, *, geometry: bool = True) -> dict:
    """Reader vs torch.load(weights_only=True): paths, shape, dtype, bit-exact values, sharing."""
    ref = _flatten_torch(torch.load(path, weights_only=True, map_location="cpu"))
    container, ours = _read_ours(path)
    if expected_container is not None:
        assert container == expected_container
    assert set(ours) == set(ref), (
        f"paths differ: only ours {set(ours) - set(ref)}, only torch {set(ref) - set(ours)}"
    )
    for name, r in ref.items():
        o = ours[name]
        assert o["shape"] == tuple(r.shape), name
        assert o["dtype"] == _torch_dtype_name(r), f"{name}: {o['dtype']} != {r.dtype}"
        assert o["c_contiguous"], f"{name}: to_numpy() is not C-contiguous"
        _assert_same_values(name, o["array"], r)
        if geometry:
            assert o["stride"] == tuple(r.stride()), f"{name}: stride {o['stride']} != {r.stride()}"
            assert o["offset"] == r.storage_offset(), f"{name}: offset {o['offset']} != {r.storage_offset()}"
    if geometry:
        # same storage in torch <=> same storage key in ours
        names = sorted(ref)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                same_t = ref[a].untyped_storage().data_ptr() == ref[b].untyped_storage().data_ptr() and (
                    ref[a].untyped_storage().nbytes() > 0
                )
                if ref[a].untyped_storage().nbytes() == 0 or ref[b].untyped_storage().nbytes() == 0:
                    continue  # empty storages have no meaningful data_ptr
                same_o = ours[a]["key"] == ours[b]["key"]
                assert same_t == same_o, f"{a} / {b}: torch shares storage={same_t}, ours same key={same_o}"
    return ours


# --------------------------------------------------------------------------- cases
def case_dtypes_and_ranks() -> dict:
    rng = np.random.default_rng(1)
    sd: dict[str, Any] = OrderedDict()
    for dt in DTYPES:
        for shape in [(), (7,), (3, 4), (2, 3, 5)]:
            sd[f"{dt}.r{len(shape)}"] = _random_tensor(dt, shape, rng)
    return sd


def case_non_contiguous() -> dict:
    rng = np.random.default_rng(2)
    sd: dict[str, Any] = OrderedDict()
    for dt in ["float32", "float16", "bfloat16", "int64", "bool", "uint8"]:
        base = _random_tensor(dt, (6, 8), rng)
        sd[f"{dt}.transposed"] = base.t()
        sd[f"{dt}.step"] = _random_tensor(dt, (20,), rng)[1::3]
        sd[f"{dt}.rows_step_cols"] = _random_tensor(dt, (6, 8), rng)[::2, 1:7:2]
        sd[f"{dt}.permuted"] = _random_tensor(dt, (2, 3, 4), rng).permute(2, 0, 1)
        sd[f"{dt}.expanded"] = _random_tensor(dt, (1, 5), rng).expand(3, 5)  # stride 0
    return sd


def case_shared_views() -> dict:
    base = torch.arange(30, dtype=torch.float32)
    emb = torch.randn(5, 4)
    return OrderedDict(
        [
            ("base", base),
            ("head", base[:10]),
            ("middle.view", base[5:17].view(3, 4)),
            ("tail", base[20:]),
            ("strided", base[3::4]),
            ("encoder.weight", emb),
            ("decoder.weight", emb),  # tied: the same tensor object twice
            ("emb.row2", emb[2]),
            ("emb.col1", emb[:, 1]),
        ]
    )


def case_empty() -> dict:
    return OrderedDict(
        [
            ("zero_rows", torch.zeros(0, 3)),
            ("zero_cols", torch.zeros(3, 0, dtype=torch.int64)),
            ("zero_1d", torch.zeros(0, dtype=torch.float16)),
            ("zero_mid", torch.zeros(2, 0, 4, dtype=torch.bool)),
            ("empty_slice", torch.arange(10.0)[7:7]),
        ]
    )


def case_parameters() -> dict:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Embedding(7, 3), torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    sd = m.state_dict(keep_vars=True)
    assert isinstance(sd["0.weight"], torch.nn.Parameter)
    return sd


def case_module_state_dict() -> dict:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Embedding(9, 4), torch.nn.Linear(4, 1))
    sd = m.state_dict()  # carries _metadata (BUILD on the OrderedDict)
    assert hasattr(sd, "_metadata")
    return sd


def case_nested_learner() -> dict:
    """fastai v1 Learner.save layout: {'model': state_dict, 'opt': optimizer.state_dict()}."""
    torch.manual_seed(0)
    m = torch.nn.ModuleDict({"u_weight": torch.nn.Embedding(6, 3), "i_weight": torch.nn.Embedding(8, 3)})
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    loss = (m["u_weight"].weight.sum() * m["i_weight"].weight.sum()) ** 2
    loss.backward()
    opt.step()
    return {"model": m.state_dict(), "opt": opt.state_dict()}


CASES: dict[str, Callable[[], dict]] = {
    "dtypes_and_ranks": case_dtypes_and_ranks,
    "non_contiguous": case_non_contiguous,
    "shared_views": case_shared_views,
    "empty": case_empty,
    "parameters": case_parameters,
    "module_state_dict": case_module_state_dict,
    "nested_learner": case_nested_learner,
}


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_save_roundtrip(case: str, container: str, tmp_path: Path) -> None:
    obj = CASES[case]()
    path = _save(obj, tmp_path / f"{case}.pth", container)
    ours = _compare(path, "torch-zip" if container == "zip" else "torch-legacy")
    assert set(ours) == set(_flatten_torch(obj))


def test_nested_paths_are_dotted(tmp_path: Path) -> None:
    obj = case_nested_learner()
    path = _save(obj, tmp_path / "learner.pth", "zip")
    _, ours = _read_ours(path)
    assert "model.u_weight.weight" in ours and "model.i_weight.weight" in ours
    assert {"opt.state.0.exp_avg", "opt.state.0.exp_avg_sq", "opt.state.0.step"} <= set(ours)


def test_tensorref_dtype_names_the_torch_dtype(tmp_path: Path) -> None:
    """``t.dtype`` is a DType whose ``name`` is torch's name and whose ``itemsize`` is right."""
    path = _save(OrderedDict(w=torch.zeros(2, dtype=torch.bfloat16)), tmp_path / "d.pth", "zip")
    with open_model_file(path) as mf:
        ((_, t),) = list(iter_tensors(mf.root))
        assert t.dtype.name == "bfloat16" and t.dtype.itemsize == 2


def test_empty_tensor_offset_past_storage_end(tmp_path: Path) -> None:
    """torch makes empty views whose offset lies past their (empty) storage: zeros(1, 0)[1:] has
    storage_offset 1 over a 0-element storage; torch.load accepts it, no bytes are read."""
    sd = OrderedDict([("a", torch.zeros(1, 0)[1:]), ("b", torch.zeros(3, 0, dtype=torch.int64)[2:])])
    assert sd["a"].storage_offset() == 1 and sd["a"].untyped_storage().nbytes() == 0
    for container in CONTAINERS:
        _compare(_save(sd, tmp_path / f"e_{container}.pth", container))


def test_zip_uint_dtypes_via_rebuild_tensor_v3(tmp_path: Path) -> None:
    """uint16/32/64 are saved (zip only) as UntypedStorage + _rebuild_tensor_v3(..., dtype)."""
    rng = np.random.default_rng(5)
    sd = OrderedDict()
    for dt in ["uint16", "uint32", "uint64"]:
        a = torch.from_numpy(rng.integers(0, 2**63, size=(4, 6), dtype=np.uint64).astype(dt))
        sd[dt] = a
        sd[f"{dt}.T"] = a.t()
        sd[f"{dt}.slice"] = a[1:, ::3]
    path = _save(sd, tmp_path / "u.pth", "zip")
    assert b"_rebuild_tensor_v3" in path.read_bytes()
    _compare(path, "torch-zip")


def test_zip_variants(tmp_path: Path) -> None:
    """Zips saved to a buffer ('archive/' prefix), with CRC32 off (zipfile would refuse them),
    without a byteorder record, and with another storage alignment (spec §1.5)."""
    sd = case_shared_views()
    buf = io.BytesIO()
    torch.save(sd, buf)
    (tmp_path / "buffer.pth").write_bytes(buf.getvalue())
    assert buf.getvalue()[30:38] == b"archive/"
    _compare(tmp_path / "buffer.pth", "torch-zip")

    torch.serialization.set_crc32_options(False)
    try:
        torch.save(sd, tmp_path / "nocrc.pth")
    finally:
        torch.serialization.set_crc32_options(True)
    _compare(tmp_path / "nocrc.pth", "torch-zip")

    torch.save(sd, tmp_path / "nobo.pth", _disable_byteorder_record=True)
    _compare(tmp_path / "nobo.pth", "torch-zip")

    from torch.utils.serialization import config

    old = config.save.storage_alignment
    config.save.storage_alignment = 4096
    try:
        torch.save(sd, tmp_path / "align.pth")
    finally:
        config.save.storage_alignment = old
    _compare(tmp_path / "align.pth", "torch-zip")


# --------------------------------------------------------------------------- property test
_GEOM_OPS = ["none", "transpose", "step", "narrow", "permute", "expand"]


@st.composite
def _tensor_specs(draw: st.DrawFn) -> tuple[str, tuple[int, ...], str, int]:
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    op = draw(st.sampled_from(_GEOM_OPS))
    seed = draw(st.integers(0, 2**31 - 1))
    return dtype, shape, op, seed


def _apply_op(t: torch.Tensor, op: str, seed: int) -> torch.Tensor:
    r = np.random.default_rng(seed)
    if op == "transpose" and t.dim() >= 2:
        return t.transpose(0, t.dim() - 1)
    if op == "step" and t.dim() >= 1:
        return t[int(r.integers(0, 2)) :: int(r.integers(1, 3))]
    if op == "narrow" and t.dim() >= 1 and t.shape[-1] >= 1:
        start = int(r.integers(0, t.shape[-1]))
        return t.narrow(t.dim() - 1, start, t.shape[-1] - start)
    if op == "permute" and t.dim() >= 2:
        return t.permute(*[int(i) for i in r.permutation(t.dim())])
    if op == "expand" and t.dim() >= 1 and t.shape[-1] >= 1:
        return t[..., :1].expand(*t.shape[:-1], 3)
    return t


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(_tensor_specs(), min_size=1, max_size=4),
    container=st.sampled_from(CONTAINERS + ["torch03"]),
    share=st.booleans(),
)
def test_property_random_tensors(specs: list, container: str, share: bool) -> None:
    sd: dict[str, Any] = OrderedDict()
    for i, (dtype, shape, op, seed) in enumerate(specs):
        if container == "torch03" and dtype in ("bool", "bfloat16"):
            dtype = "float32"  # no such storage types in torch 0.3
        base = _random_tensor(dtype, shape, np.random.default_rng(seed))
        sd[f"t{i}"] = _apply_op(base, op, seed)
        if share:
            sd[f"t{i}.alias"] = base  # the base shares the view's storage
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.pth"
        if container == "torch03":
            roots: dict[int, W.Storage03] = {}
            W.save(path, OrderedDict((k, _to_tensor03(v, roots)) for k, v in sd.items()), location="cuda:0")
        else:
            _save(sd, path, container)
        _compare(path, geometry=container != "torch03")


def _to_tensor03(t: torch.Tensor, roots: dict[int, W.Storage03]) -> W.Tensor03:
    """A torch tensor as the 0.3 writer's Tensor03 over an equivalent root storage (shared
    storages map to one Storage03, so sharing survives)."""
    us = t.untyped_storage()
    key = us.data_ptr() if us.nbytes() else id(t)
    root = roots.get(key)
    if root is None:
        arr = (
            torch.empty(0, dtype=t.dtype).set_(us, 0, (us.nbytes() // t.element_size(),), (1,)).numpy().copy()
        )
        root = roots[key] = W.Storage03(arr)
    return W.Tensor03(root, t.storage_offset(), tuple(t.shape), tuple(t.stride()))


# --------------------------------------------------------------------------- torch 0.3 re-enactment
def _fastai07_sd(rng: np.random.Generator, n_users: int = 11, n_items: int = 13, k: int = 4) -> OrderedDict:
    return OrderedDict(
        [
            ("u.weight", rng.standard_normal((n_users, k)).astype(np.float32)),
            ("i.weight", rng.standard_normal((n_items, k)).astype(np.float32)),
            ("ub.weight", rng.standard_normal((n_users, 1)).astype(np.float32)),
            ("ib.weight", rng.standard_normal((n_items, 1)).astype(np.float32)),
        ]
    )


def _t03_cases() -> dict[str, tuple[Any, dict[str, Any]]]:
    rng = np.random.default_rng(3)
    sd = _fastai07_sd(rng)
    lm = OrderedDict(
        [
            ("0.encoder.weight", rng.standard_normal((10, 6)).astype(np.float32)),
            ("0.encoder_with_dropout.embed.weight", None),
            ("1.decoder.weight", None),
            ("1.decoder.bias", np.zeros(10, np.float32)),
        ]
    )
    lm["0.encoder_with_dropout.embed.weight"] = lm["0.encoder.weight"].copy()
    lm["1.decoder.weight"] = lm["0.encoder.weight"].copy()
    tied_groups = [("0.encoder.weight", "0.encoder_with_dropout.embed.weight", "1.decoder.weight")]

    root = W.Storage03(np.arange(48, dtype=np.float32), key="94245795390000")
    view_a = W.StorageView03(root, 0, 24, key="94245795390100")
    view_b = W.StorageView03(root, 24, 24, key="94245795390200")
    views = OrderedDict(
        [
            ("rnn.weight_ih_l0", W.Tensor03(view_a, 0, (6, 4), (4, 1))),
            ("rnn.weight_hh_l0", W.Tensor03(view_b, 0, (6, 4), (4, 1))),
            ("rnn.weight_hh_l0_T", W.Tensor03(view_b, 2, (4, 5), (1, 4))),
            ("rnn.flat", W.Tensor03(root, 0, (48,), (1,))),
        ]
    )
    ints = OrderedDict(
        (name, (rng.integers(-100, 100, size=(3, 2))).astype(name))
        for name in ["int8", "int16", "int32", "int64", "uint8", "float64", "float16"]
    )
    keyed = OrderedDict(
        [
            ("a", W.Tensor03(W.Storage03(np.arange(3, dtype=np.float32), key="999999999999"))),
            ("b", W.Tensor03(W.Storage03(np.arange(4, dtype=np.int64), key="1000000000000"))),
            (
                "c",
                W.Tensor03(W.Storage03(np.arange(5, dtype=np.float16), key="94245795383616", location="cpu")),
            ),
        ]
    )
    return {
        "fastai07_fp32_cuda": (sd, {}),
        "fastai07_fp16": (sd, {"fp16": True}),
        "fastai07_cpu": (sd, {"location": "cpu"}),
        "fastai07_dataparallel": (sd, {"prefix": "module."}),
        "lm_tied_storage": (lm, {"tied": tied_groups}),
        "lm_tied_tensor": (lm, {"tied": tied_groups, "tie_mode": "tensor"}),
        "storage_views": (views, {}),
        "keep_vars_parameters": (lm, {"tied": tied_groups, "keep_vars": True}),
        "keep_vars_tied_parameter": (lm, {"tied": tied_groups, "tie_mode": "tensor", "keep_vars": True}),
        "int_and_double": (ints, {}),
        "explicit_keys": (keyed, {}),
        "many_entries": (
            OrderedDict((f"layers.{i}.w", rng.standard_normal(2).astype(np.float32)) for i in range(1205)),
            {},
        ),
    }


T03_CASES = _t03_cases()


def _expected_t03(obj: Any, kw: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in obj.items():
        if isinstance(v, W.Tensor03):
            out[kw.get("prefix", "") + k] = v.to_numpy()
        else:
            a = np.asarray(v)
            if kw.get("fp16") and a.dtype.kind == "f":
                a = a.astype(np.float16)
            out[kw.get("prefix", "") + k] = a
    return out


@pytest.mark.parametrize("case", sorted(T03_CASES))
def test_torch03_writer_loads_in_torch(case: str, tmp_path: Path) -> None:
    """Validates the fixture writer itself: torch 2.13 loads it, with and without weights_only."""
    obj, kw = T03_CASES[case]
    path = tmp_path / f"{case}.h5"
    W.save(path, obj, **kw)
    expected = _expected_t03(obj, kw)
    for wo in (True, False):
        loaded = torch.load(path, weights_only=wo, map_location="cpu")
        assert type(loaded) is OrderedDict and not hasattr(loaded, "_metadata")
        assert list(loaded) == list(expected)
        for k, want in expected.items():
            got = loaded[k].detach()
            assert got.numpy().dtype == want.dtype and tuple(got.shape) == want.shape, k
            assert got.contiguous().numpy().tobytes() == np.ascontiguousarray(want).tobytes(), k
    if kw.get("tied"):
        loaded = torch.load(path, weights_only=True, map_location="cpu")
        ptrs = {loaded[n].untyped_storage().data_ptr() for n in kw["tied"][0]}
        assert len(ptrs) == 1


@pytest.mark.parametrize("case", sorted(T03_CASES))
def test_torch03_files_match_torch(case: str, tmp_path: Path) -> None:
    obj, kw = T03_CASES[case]
    path = tmp_path / f"{case}.h5"
    W.save(path, obj, **kw)
    # Storage views: torch's offset is relative to the view storage; only compare values there.
    ours = _compare(path, "torch-legacy", geometry=case != "storage_views")
    expected = _expected_t03(obj, kw)
    for k, want in expected.items():
        assert ours[k]["array"].tobytes() == np.ascontiguousarray(want).tobytes(), k


def test_torch03_storage_key_and_location(tmp_path: Path) -> None:
    obj, kw = T03_CASES["explicit_keys"]
    path = tmp_path / "keys.h5"
    W.save(path, obj, **kw)
    _, ours = _read_ours(path)
    assert (ours["a"]["key"], ours["a"]["location"]) == ("999999999999", "cuda:0")
    assert (ours["b"]["key"], ours["b"]["location"]) == ("1000000000000", "cuda:0")
    assert (ours["c"]["key"], ours["c"]["location"]) == ("94245795383616", "cpu")

    sd = T03_CASES["fastai07_fp32_cuda"][0]
    W.save(tmp_path / "f.h5", sd)
    _, ours = _read_ours(tmp_path / "f.h5")
    keys = [ours[n]["key"] for n in sd]
    assert keys == [str(94245795383616 + i * 0x50) for i in range(len(sd))]
    assert {ours[n]["location"] for n in sd} == {"cuda:0"}

    obj, kw = T03_CASES["lm_tied_storage"]
    W.save(tmp_path / "tied.h5", obj, **kw)
    _, ours = _read_ours(tmp_path / "tied.h5")
    tied = T03_CASES["lm_tied_storage"][1]["tied"][0]
    assert len({ours[n]["key"] for n in tied}) == 1
    assert ours["1.decoder.bias"]["key"] != ours[tied[0]]["key"]

    obj, kw = T03_CASES["storage_views"]
    W.save(tmp_path / "views.h5", obj, **kw)
    _, ours = _read_ours(tmp_path / "views.h5")
    assert ours["rnn.flat"]["key"] == "94245795390000"
    assert ours["rnn.weight_ih_l0"]["key"] in ("94245795390000", "94245795390100")
    assert ours["rnn.weight_hh_l0"]["key"] in ("94245795390000", "94245795390200")


def test_torch_saved_keys_and_locations(tmp_path: Path) -> None:
    sd = case_shared_views()
    _, zipped = _read_ours(_save(sd, tmp_path / "z.pth", "zip"))
    # torch 2.x zip keys are "0", "1", ... in first-use order (spec §1.5)
    assert zipped["base"]["key"] == "0" and zipped["encoder.weight"]["key"] == "1"
    assert {v["location"] for v in zipped.values()} == {"cpu"}
    _, legacy = _read_ours(_save(sd, tmp_path / "l.pth", "legacy"))
    assert all(v["key"].isdigit() for v in legacy.values())  # str(storage._cdata)
    assert {v["location"] for v in legacy.values()} == {"cpu"}
    assert legacy["head"]["key"] == legacy["tail"]["key"] == legacy["base"]["key"]


# --------------------------------------------------------------------------- no torch import
def test_reader_does_not_import_torch(tmp_path: Path) -> None:
    files = [
        _save(case_nested_learner(), tmp_path / "z.pth", "zip"),
        _save(case_dtypes_and_ranks(), tmp_path / "l.pth", "legacy"),
    ]
    obj, kw = T03_CASES["fastai07_fp16"]
    W.save(tmp_path / "t03.h5", obj, **kw)
    files.append(tmp_path / "t03.h5")
    code = textwrap.dedent(
        """
        import sys
        import converter
        import converter.pickle
        n = 0
        for p in sys.argv[1:]:
            with converter.pickle.open_model_file(p) as mf:
                for _, t in converter.pickle.iter_tensors(mf.root):
                    t.to_numpy()
                    n += 1
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not bad, bad
        assert n > 0
        print("ok", n)
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    res = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok")

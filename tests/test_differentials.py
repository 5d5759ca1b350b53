"""Container differentials: files that two readers could read differently (docs/robustness.md).

embconv sniffs the first bytes, as torch does (PK\\x03\\x04 at offset 0 → zip; the legacy magic
pickle → stacked pickles; otherwise a plain pickle), reads that container only, and warns about
bytes after it. It is stricter than torch where torch is lax: duplicate zip entries and ``..``
components are refused; a local header that disagrees with the central directory is read the
way torch reads it (names, sizes and method from the directory, only the payload offset from the
local header). Each case states what embconv does and what torch 2.13 does; the torch column is
checked by ``test_torch_agrees_with_the_documented_column`` when torch is installed.

Payload-carrying variants use the canary of tests/damage (an ``os.system``/``posix.system`` call
that would create it): a polyglot never runs the part embconv does not read, nor the part it
does."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .damage.harness import check_file, forbidden_imports
from .damage.mutate import CANARY, FIXTURES
from .hostile.builders import (
    MARK,
    NEWFALSE,
    REDUCE,
    SETITEMS,
    STOP,
    TUPLE,
    TUPLE1,
    TensorSpec,
    binbytes,
    call,
    float32_bytes,
    global_,
    int_,
    make_legacy_file,
    make_zip_file,
    obj,
    ordered_dict_empty,
    pickle_of,
    proto,
    state_dict_pickle,
    storage_pid,
    unicode,
)

W = TensorSpec("emb.weight", "0", "FloatStorage", numel=4, size=(2, 2), stride=(2, 1))
VALUES = [1.0, 2.0, 3.0, 4.0]
OTHER = [9.0, 9.0, 9.0, 9.0]


def zip_file(values=VALUES, **kw) -> bytes:
    return make_zip_file(state_dict_pickle([W], legacy=False), {"0": float32_bytes(values)}, **kw)


def legacy_file(values=VALUES) -> bytes:
    return make_legacy_file(state_dict_pickle([W], legacy=True), {"0": (4, float32_bytes(values))})


def nested_pickle_file(values=VALUES) -> bytes:
    """A fastai 1.0.40-style plain pickle: the storage is a whole legacy file inside
    ``torch.storage._load_from_bytes``."""
    inner = make_legacy_file(proto(2) + storage_pid(W, legacy=True) + STOP, {"0": (4, float32_bytes(values))})
    storage = call(global_("torch.storage", "_load_from_bytes"), binbytes(inner))
    tensor = (global_("torch._utils", "_rebuild_tensor_v2") + MARK + storage + int_(0) + obj((2, 2))
              + obj((2, 1)) + NEWFALSE + ordered_dict_empty() + TUPLE + REDUCE)
    return proto(2) + ordered_dict_empty() + MARK + unicode("emb.weight") + tensor + SETITEMS + STOP


def payload_pickle() -> bytes:
    """A pickle that would create the canary if anything ran it."""
    return proto(2) + global_("posix", "system") + unicode(f"touch {CANARY}") + TUPLE1 + REDUCE + STOP


def payload_zip() -> bytes:
    return make_zip_file(payload_pickle(), {})


def zip_entries(entries: list[tuple[str, bytes]]) -> bytes:
    """A STORED zip with exactly these entries, in this order (duplicates allowed)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def torch_entries(values=VALUES) -> list[tuple[str, bytes]]:
    return [("archive/data.pkl", state_dict_pickle([W], legacy=False)), ("archive/byteorder", b"little"),
            ("archive/data/0", float32_bytes(values)), ("archive/version", b"3\n")]


def patch_local(data: bytes, fmt: str, offset: int, *values: int) -> bytes:
    """Overwrite bytes at ``offset``: a field of the first local header (data.pkl's) when the
    offset is small."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


def patch_central(data: bytes, fmt: str, offset: int, *values: int) -> bytes:
    """Overwrite a field of the first central-directory entry (data.pkl's)."""
    b = bytearray(data)
    struct.pack_into(fmt, b, b.find(b"PK\x01\x02") + offset, *values)
    return bytes(b)


def invalid_utf8_name(data: bytes) -> bytes:
    """The first directory entry flagged UTF-8 (bit 11) with a name starting with byte 0xff."""
    b = bytearray(data)
    i = b.find(b"PK\x01\x02")
    (flags,) = struct.unpack_from("<H", b, i + 8)
    struct.pack_into("<H", b, i + 8, flags | 0x800)
    b[i + 46] = 0xFF
    return bytes(b)


def rename_local(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new)
    i = data.find(old)  # the first occurrence is in the local header
    return data[:i] + new + data[i + len(old) :]


@dataclass
class Diff:
    name: str
    data: bytes
    code: int  # embconv's exit status (open_model_file + materialise)
    container: str | None = None  # when it opens
    values: list[float] | None = None  # emb.weight, when it opens
    warning: str | None = None  # a substring of ModelFile.warnings
    reason: str | None = None  # a substring of the refusal
    torch: str = "ok"  # torch.load(weights_only=True): "ok" | "error"
    torch_values: list[float] | None = None
    notes: list[str] = field(default_factory=list)


def cases() -> list[Diff]:
    z, lg = zip_file(), legacy_file()
    return [
        # ---- polyglots: first bytes decide, the rest is trailing data ------------------------
        Diff("legacy_then_zip", lg + zip_file(OTHER), 0, "torch-legacy", VALUES, "trailing data",
             torch_values=VALUES),
        Diff("legacy_then_payload_zip", lg + payload_zip(), 0, "torch-legacy", VALUES, "trailing data",
             torch_values=VALUES),
        Diff("nested_pickle_then_zip", nested_pickle_file() + zip_file(OTHER), 0, "pickle", VALUES,
             "after the pickle's STOP", torch="error"),
        Diff("pickle_then_zip", pickle_of({"a": 1}) + z, 0, "pickle", None, "after the pickle's STOP",
             torch="error"),
        Diff("payload_pickle_then_zip", payload_pickle() + z, 1, reason="posix.system", torch="error"),
        Diff("junk_then_zip", b"#!/bin/sh\nexit 0\n" + z, 3, reason="not a model file", torch="error"),
        Diff("zip_then_legacy", z + legacy_file(OTHER), 0, "torch-zip", VALUES, "after the end of the zip",
             torch_values=VALUES),
        Diff("zip_then_payload_pickle", z + payload_pickle(), 0, "torch-zip", VALUES, "after the end of the zip",
             torch_values=VALUES),
        # ---- trailing data -----------------------------------------------------------------
        Diff("legacy_trailing_bytes", lg + b"\x00" * 10, 0, "torch-legacy", VALUES, "10 bytes of trailing data",
             torch_values=VALUES),
        Diff("zip_trailing_bytes", z + b"\x00" * 100, 0, "torch-zip", VALUES, "100 bytes after the end of the zip",
             torch_values=VALUES),
        # ---- duplicate entries -------------------------------------------------------------
        Diff("duplicate_data_pkl", zip_entries(torch_entries() + [("archive/data.pkl", payload_pickle())]), 3,
             reason="two entries named 'archive/data.pkl'"),
        Diff("duplicate_storage", zip_entries(torch_entries() + [("archive/data/0", float32_bytes(OTHER))]), 3,
             reason="two entries named 'archive/data/0'"),
        Diff("duplicate_version", zip_entries(torch_entries() + [("archive/version", b"9\n")]), 3,
             reason="two entries named"),
        # ---- names that leave the archive folder --------------------------------------------
        Diff("dotdot_entry", zip_entries(torch_entries() + [("archive/../evil", b"x")]), 3, reason="escapes"),
        Diff("leading_dotdot_entry", zip_entries(torch_entries() + [("../evil", b"x")]), 3, reason="escapes",
             torch="error"),
        Diff("dotdot_storage_path", zip_entries(torch_entries() + [("archive/data/../../x", b"x")]), 3,
             reason="escapes"),
        Diff("backslash_dotdot_entry", zip_entries(torch_entries() + [("archive\\..\\evil", b"x")]), 3,
             reason="escapes", torch="error"),
        Diff("utf8_flag_invalid_name", invalid_utf8_name(z), 3, reason="not valid UTF-8", torch="error"),
        Diff("absolute_entry", zip_entries(torch_entries() + [("/abs", b"x")]), 3, reason="escapes", torch="error"),
        # ---- local header vs central directory ------------------------------------------------
        Diff("local_name_differs", rename_local(z, b"archive/data.pkl", b"archive/evil.pkl"), 0, "torch-zip",
             VALUES, torch_values=VALUES),
        Diff("local_method_deflate_central_stored", patch_local(z, "<H", 8, 8), 0, "torch-zip", VALUES,
             torch_values=VALUES),
        Diff("local_stored_central_deflate", patch_central(z, "<H", 10, 8), 3, reason="compressed",
             torch="error"),
        Diff("local_sizes_differ", patch_local(z, "<II", 18, 12345, 999999), 0, "torch-zip", VALUES,
             torch_values=VALUES),
        Diff("storage_local_signature_broken", patch_local(z, "<4s", z.find(b"archive/data/0") - 30, b"PK\x03\x05"),
             3, reason="local header missing", torch="error"),
        Diff("local_header_offset_wrong", patch_central(z, "<I", 42, 7), 3, reason="local header missing",
             torch="error"),
        Diff("local_name_length_past_end", patch_local(z, "<H", 26, 0xFFFF), 3, reason="runs past the end",
             torch="error"),
    ]


CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_embconv_behaviour(case: Diff, tmp_path: Path) -> None:
    from converter.pickle import open_model_file

    path = tmp_path / f"{case.name}.pth"
    path.write_bytes(case.data)
    before = set(sys.modules)
    out = check_file(path)  # the fuzz property, plus the exact outcome below
    assert not CANARY.exists(), f"CANARY CREATED by {case.name}"
    assert not forbidden_imports(before)
    msg = out.open_message
    assert out.open_code == case.code, f"{case.name}: expected {case.code}, got {out.open_code} ({msg})"
    if case.code:
        assert case.reason in msg, f"{case.name}: {case.reason!r} not in {msg!r}"
        assert str(path) in msg
        return
    with open_model_file(path) as mf:
        assert mf.container == case.container
        tensors = {p: t.to_numpy().ravel().tolist() for p, t in mf.tensors()}
        if case.values is not None:
            assert tensors == {"emb.weight": case.values}, tensors
        else:
            assert tensors == {}
        if case.warning:
            assert any(case.warning in w for w in mf.warnings), mf.warnings
        else:
            assert mf.warnings == []


@pytest.mark.parametrize("suffix,extra,warning", [
    ("fastai07/collab.h5", b"\x00" * 33, "33 bytes of trailing data after the last storage"),
    ("fastai1/collab_dot_legacy.pth", b"PK\x05\x06" + b"\x00" * 18, "22 bytes of trailing data"),
    ("fastai2/collab_dot.pth", b"\x00" * 7, "7 bytes after the end of the zip archive"),
])
def test_trailing_data_warning_reaches_the_model(suffix: str, extra: bytes, warning: str, tmp_path: Path) -> None:
    """Trailing bytes after a real fastai file: it still loads, and the warning is in both
    ModelFile.warnings and EmbeddingModel.warnings (which `inspect` prints)."""
    import converter
    from converter.pickle import open_model_file

    src = FIXTURES / suffix
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes() + extra)
    with open_model_file(path) as mf:
        assert any(warning in w for w in mf.warnings), mf.warnings
    model = converter.load(path)
    assert model.tables
    assert any(w.code == "container" and warning in w.message for w in model.warnings), model.warnings
    clean = converter.load(src)
    assert not any(w.code == "container" for w in clean.warnings)


TORCH_CHILD = r"""
import json, sys, warnings
import torch
out = {}
for path in sys.argv[1:]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.load(path, weights_only=True)
        out[path] = ["ok", sd["emb.weight"].reshape(-1).tolist() if "emb.weight" in sd else None]
    except Exception as e:  # noqa: BLE001
        out[path] = ["error", type(e).__name__]
print(json.dumps(out))
"""


def test_torch_agrees_with_the_documented_column(tmp_path: Path) -> None:
    """What torch 2.13 does with the same files (the 'torch' column of each case). Run in a
    subprocess (torch is never imported into the test process); skipped without torch. Payload
    cases are left out: torch with weights_only=True refuses them, but they are not run."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    paths = {}
    for c in CASES:
        if "payload" in c.name:
            continue
        p = tmp_path / f"{c.name}.pth"
        p.write_bytes(c.data)
        paths[str(p)] = c
    r = subprocess.run([sys.executable, "-c", TORCH_CHILD, *paths], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    wrong = []
    for p, c in paths.items():
        status, detail = results[p]
        if status != c.torch or (c.torch_values is not None and detail != c.torch_values):
            wrong.append(f"{c.name}: torch says {status} {detail}, documented {c.torch} {c.torch_values}")
    assert not wrong, "\n".join(wrong)
    assert not CANARY.exists()

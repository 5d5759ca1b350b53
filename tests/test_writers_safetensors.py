"""safetensors output: the official library reads it bit-exact; vocab with safetensors alone."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from converter.errors import OutputError
from converter.lazy import InMemory
from converter.saving import save
from converter.writers import read_output
from tests._writer_models import TRICKY_TOKENS, model, table, tricky_model


def _tokens_with_safetensors_only(path, name):
    with safe_open(str(path), framework="np") as f:
        b = bytes(f.get_tensor(f"{name}.vocab.utf8"))
        o = f.get_tensor(f"{name}.vocab.offsets").tolist()
    return [b[o[i]:o[i + 1]].decode("utf-8", "surrogatepass") for i in range(len(o) - 1)]


@pytest.mark.parametrize("src_dtype", [np.float32, np.float16])
def test_official_reader_bit_exact(tmp_path, src_dtype):
    m = tricky_model(src_dtype)
    out = tmp_path / "m.safetensors"
    assert save(m, out, allow_unlabelled=True) == [out]
    tensors = load_file(str(out))
    for name, t in m.tables.items():
        w = tensors[f"{name}.weight"]
        assert w.dtype == np.float32 and w.shape == (t.rows, t.dim)
        assert np.array_equal(w.view(np.uint32), t.weight.astype(np.float32).view(np.uint32))
        if t.bias is not None:
            assert np.array_equal(tensors[f"{name}.bias"], t.bias.astype(np.float32))
        else:
            assert f"{name}.bias" not in tensors
    assert _tokens_with_safetensors_only(out, "words") == TRICKY_TOKENS
    assert _tokens_with_safetensors_only(out, "nums") == ["#na#", "1", "2.5", "True", "7"]
    assert "plain.vocab.utf8" not in tensors
    with safe_open(str(out), framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "pt"
    manifest = json.loads(meta["embconv.manifest"])
    assert [t["name"] for t in manifest["tables"]] == ["words", "nums", "plain"]
    assert "tokens" not in manifest["tables"][0]["vocab"]


def test_header_valid_layout(tmp_path):
    out = tmp_path / "m.safetensors"
    save(tricky_model(), out, allow_unlabelled=True)
    raw = out.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert 8 + n + spans[-1][1] == len(raw)


def test_float16_output_and_readback(tmp_path):
    m = tricky_model()
    out = tmp_path / "h.safetensors"
    save(m, out, dtype="float16", allow_unlabelled=True)
    w = load_file(str(out))["words.weight"]
    assert w.dtype == np.float16
    assert np.array_equal(w, m.tables["words"].weight.astype(np.float16))


def test_non_contiguous_source_written_in_c_order(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    t = table("t", 6, 4)
    t.weight_source = InMemory(base.T)  # (6, 4), Fortran order
    out = tmp_path / "t.safetensors"
    save(model(t), out, allow_unlabelled=True)
    assert np.array_equal(load_file(str(out))["t.weight"], base.T)


def test_read_output_roundtrip(tmp_path):
    m = tricky_model()
    out = tmp_path / "m.safetensors"
    save(m, out, allow_unlabelled=True)
    back = read_output(out)
    assert back.source.container == "safetensors"
    assert back.tables["words"].vocab.strings == TRICKY_TOKENS
    assert back.tables["words"].vocab.unknown_index == 0
    assert back.tables["plain"].vocab is None


def test_five_million_token_vocab(tmp_path):
    n = 5_000_000
    toks = [f"user{i}" for i in range(n)]
    toks[123] = "\u00fcber user"
    t = table("big", n, 1, vocab=toks)
    out = tmp_path / "big.safetensors"
    save(model(t), out)
    got = _tokens_with_safetensors_only(out, "big")
    assert got == toks


def test_existing_destination_needs_force(tmp_path):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError) as e:
        save(tricky_model(), out, allow_unlabelled=True)
    assert e.value.exit_code == 5 and "--force" in str(e.value)
    assert out.read_bytes() == b"keep me"
    save(tricky_model(), out, force=True, allow_unlabelled=True)
    assert load_file(str(out))["words.weight"].shape == (len(TRICKY_TOKENS), 7)


class _Boom:
    shape = (10, 3)

    def to_numpy(self):
        raise RuntimeError("disk on fire")


def test_failure_leaves_nothing(tmp_path):
    t = table("t", 10, 3)
    t.weight_source = _Boom()
    with pytest.raises(RuntimeError):
        save(model(t), tmp_path / "x.safetensors", allow_unlabelled=True)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_existing_destination(tmp_path):
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"old")
    t = table("t", 10, 3)
    t.weight_source = _Boom()
    with pytest.raises(RuntimeError):
        save(model(t), out, force=True, allow_unlabelled=True)
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"] and out.read_bytes() == b"old"

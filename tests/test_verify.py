"""verify: a flipped bit or a swapped token is an exit-4 error naming the table and row."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from converter.errors import VerificationError
from converter.ir import Vocabulary
from converter.lazy import InMemory
from converter.saving import save
from converter.verify import verify_models, verify_output
from converter.writers import read_output
from tests._writer_models import collab_model, tricky_model


def _clone(model):
    m = copy.deepcopy(model)
    for t in m.tables.values():
        t.weight_source = InMemory(np.array(t.weight, copy=True))
    return m


@pytest.mark.parametrize("ext", ["safetensors", "onnx", "vec", "bin"])
def test_flipped_bit_names_table_and_row(tmp_path, ext):
    m = tricky_model()
    out = tmp_path / f"m.{ext}"
    save(m, out, allow_unlabelled=True)  # tricky_model's table "plain" has no vocabulary
    primary = out if ext in ("safetensors", "onnx") else tmp_path / f"m.words.{ext}"
    verify_output(primary, m)
    bad = _clone(m)
    w = bad.tables["words"].weight
    w.view(np.uint32)[9, 2] ^= 1
    with pytest.raises(VerificationError) as e:
        verify_output(primary, bad)
    assert e.value.exit_code == 4
    assert "'words'" in str(e.value) and "row 9" in str(e.value)


@pytest.mark.parametrize("ext", ["safetensors", "onnx", "vec"])
def test_swapped_token(tmp_path, ext):
    m = tricky_model()
    out = tmp_path / f"m.{ext}"
    save(m, out, allow_unlabelled=True)  # tricky_model's table "plain" has no vocabulary
    primary = out if ext in ("safetensors", "onnx") else tmp_path / f"m.nums.{ext}"
    bad = _clone(m)
    v = bad.tables["nums"].vocab
    s = list(v.strings)
    s[2], s[3] = s[3], s[2]
    bad.tables["nums"].vocab = Vocabulary(s, unknown_index=v.unknown_index)
    with pytest.raises(VerificationError) as e:
        verify_output(primary, bad)
    assert e.value.exit_code == 4 and "'nums'" in str(e.value) and "row 2" in str(e.value)


def test_models_compare_bias_unknown_and_shape():
    m = collab_model()
    verify_models(m, _clone(m))
    other = _clone(m)
    other.tables["title"].bias_source = InMemory(m.tables["title"].bias + np.float32(1))
    with pytest.raises(VerificationError, match="'title'.*bias"):
        verify_models(m, other)
    other = _clone(m)
    other.tables["userId"].vocab.unknown_index = None
    with pytest.raises(VerificationError, match="unknown_index"):
        verify_models(m, other)
    other = _clone(m)
    other.tables["userId"].weight_source = InMemory(m.tables["userId"].weight[:-1])
    with pytest.raises(VerificationError, match="shape"):
        verify_models(m, other)


def test_float16_conversion_is_what_is_compared(tmp_path):
    m = tricky_model()
    out = tmp_path / "h.safetensors"
    save(m, out, dtype="float16", allow_unlabelled=True)
    verify_output(out, m)
    with pytest.raises(VerificationError):
        verify_models(m, read_output(out), dtype="float32")


def test_save_verifies_before_commit(tmp_path, monkeypatch):
    import converter.writers.safetensors as st

    real = st.write_vocab_utf8

    def corrupt(f, strings):  # the first token byte written flipped (the streamed vocabulary)
        import io

        buf = io.BytesIO()
        real(buf, strings)
        data = bytearray(buf.getvalue())
        if data:
            data[0] ^= 0x01
        f.write(bytes(data))

    monkeypatch.setattr(st, "write_vocab_utf8", corrupt)
    with pytest.raises(VerificationError):
        save(tricky_model(), tmp_path / "m.safetensors", allow_unlabelled=True)
    assert list(tmp_path.iterdir()) == []

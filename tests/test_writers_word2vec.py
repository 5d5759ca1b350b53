"""word2vec text and binary: gensim loads them with exact values, unique keys, no warnings."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gensim.models import KeyedVectors

from converter.errors import OutputError, UsageError, VerificationError
from converter.saving import save
from converter.verify import verify_output
from converter.writers import read_output
from converter.writers.tokens import escape, unescape, unique_keys
from tests._writer_models import TRICKY_TOKENS, model, table, tricky_model


def _load(path, binary, caplog):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gensim"):
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
    return kv


@pytest.mark.parametrize("ext,binary", [(".vec", False), (".txt", False), (".bin", True)])
@pytest.mark.parametrize("src_dtype", [np.float32, np.float16])
def test_gensim_loads_exact(tmp_path, caplog, ext, binary, src_dtype):
    m = tricky_model(src_dtype)
    out = tmp_path / f"m{ext}"
    files = save(m, out, allow_unlabelled=True)
    assert tmp_path / f"m.words{ext}" in files and tmp_path / f"m.words{ext}.manifest.json" in files
    for name, t in m.tables.items():
        path = tmp_path / f"m.{name}{ext}"
        kv = _load(path, binary, caplog)
        assert len(kv.index_to_key) == t.rows == len(set(kv.index_to_key))
        w = t.weight.astype(np.float32)
        for row, key in enumerate(kv.index_to_key):
            assert np.array_equal(kv[key].view(np.uint32), w[row].view(np.uint32)), (name, row, key)
        back = read_output(path)
        expected = t.vocab.strings if t.vocab is not None else None
        assert (back.tables[name].vocab.strings if back.tables[name].vocab else None) == expected
        verify_output(path, m)


def test_special_values_roundtrip(tmp_path, caplog):
    t = table("t", 4, 6, vocab=None)
    w = np.array([[0.0, -0.0, 1.0, 2.5, -999.5, 1e-5], [np.float32(0.1), 1e-45, 3.4028235e38, -1e-4, 998.9999, 7],
                  [1e20, -1e-30, 123.456, 0.00012345679, 1.1754944e-38, 5e-3],
                  [np.float32(9.999999e-5), 10.0, 100.0, 0.3333333, -0.25, 65504]], dtype=np.float32)
    t.weight_source.array = w
    out = tmp_path / "s.vec"
    save(model(t), out, allow_unlabelled=True)
    kv = _load(out, False, caplog)
    got = np.stack([kv[k] for k in kv.index_to_key])
    assert np.array_equal(got.view(np.uint32), w.view(np.uint32))


def test_random_values_roundtrip_text(tmp_path, caplog):
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=(300, 50), dtype=np.uint64).astype(np.uint32)
    w = bits.view(np.float32).copy()
    w[~np.isfinite(w)] = 1.0
    t = table("r", 300, 50, vocab=None)
    t.weight_source.array = w
    out = tmp_path / "r.vec"
    save(model(t), out, allow_unlabelled=True)
    kv = _load(out, False, caplog)
    got = np.stack([kv[str(i)] for i in range(300)])
    assert np.array_equal(got.view(np.uint32), w.view(np.uint32))


def test_drop_unknown(tmp_path, caplog):
    m = model(table("words", len(TRICKY_TOKENS), 4, vocab=TRICKY_TOKENS))
    out = tmp_path / "d.vec"
    assert save(m, out, drop_unknown=True)[0] == out
    kv = _load(out, False, caplog)
    assert len(kv.index_to_key) == len(TRICKY_TOKENS) - 1 and "#na#" not in kv.key_to_index
    assert np.array_equal(kv[kv.index_to_key[0]], m.tables["words"].weight[1])
    back = read_output(out)
    assert back.tables["words"].vocab.strings == TRICKY_TOKENS[1:]
    verify_output(out, m)
    # Verification compares the file with the source minus its unknown row: a changed value in
    # the file's third row (source row 3) is caught.
    lines = out.read_text(encoding="utf-8").split("\n")
    key, first, *rest = lines[3].split(" ")
    lines[3] = " ".join([key, "12345.0", *rest])
    out.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(VerificationError, match="'words': weights differ first at row 2"):
        verify_output(out, m)


def test_escaping_rules():
    cases = {"new york": "new%20york", "a\tb": "a%09b", "x\ny": "x%0Ay", "": "%", "50%": "50%25",
             "\u00a0": "%C2%A0", "\ud800": "%ED%A0%80", "caf\u00e9": "caf\u00e9", "#na#": "#na#"}
    for tok, key in cases.items():
        assert escape(tok) == key
        assert unescape(key) == tok
    keys, renamed = unique_keys(["xxfake", "xxfake", "xxfake#2", "xxfake", "a b", "a%20b"])
    assert keys == ["xxfake", "xxfake#3", "xxfake#2", "xxfake#4", "a%20b", "a%2520b"]
    assert renamed == [1, 3] and len(set(keys)) == len(keys)


def test_float16_output_refused(tmp_path):
    with pytest.raises(UsageError, match="float32 only"):
        save(tricky_model(), tmp_path / "x.vec", dtype="float16", allow_unlabelled=True)
    assert list(tmp_path.iterdir()) == []


def test_multi_file_all_or_nothing(tmp_path):
    (tmp_path / "m.nums.vec").write_text("mine")
    with pytest.raises(OutputError):
        save(tricky_model(), tmp_path / "m.vec", allow_unlabelled=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nums.vec"]

"""Streaming conversion: chunked reads and writes give byte-identical results to whole-table
ones, mapped pages released after use keep their values, and read-back is lazy."""

from __future__ import annotations

import mmap
from collections import OrderedDict

import numpy as np
import pytest

import converter.writers.safetensors as st
from converter import mapped
from converter.chunks import output_dtype, weight_chunks
from converter.errors import UnreadableInputError
from converter.ir import EmbeddingModel, EmbeddingTable, SourceInfo, Vocabulary
from converter.lazy import ChunkedStrings
from converter.pickle.tensors import DTYPES, StorageRef, TensorRef
from converter.saving import save
from converter.verify import verify_output
from converter.writers import _floatfmt, read_output
from converter.writers import word2vec as w2v
from tests._writer_models import TRICKY_TOKENS, model, table, tricky_model


def _storage(arr: np.ndarray, dtype: str, buffer=None) -> StorageRef:
    s = StorageRef("0", DTYPES[dtype], arr.size, "cpu")
    raw = arr.tobytes() if buffer is None else buffer
    s.bind(raw, 0, len(raw))
    return s


@pytest.mark.parametrize("case", ["contiguous", "transposed", "offset", "bfloat16", "float16", "expanded"])
def test_tensorref_rows_match_to_numpy(case):
    rng = np.random.default_rng(0)
    if case == "bfloat16":
        bits = (rng.standard_normal(60).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        t = TensorRef(_storage(bits, "bfloat16"), 0, (12, 5), (5, 1))
    elif case == "float16":
        t = TensorRef(_storage(rng.standard_normal(60).astype(np.float16), "float16"), 0, (12, 5), (5, 1))
    else:
        a = rng.standard_normal(80).astype(np.float32)
        geometry = {"contiguous": (0, (12, 5), (5, 1)), "transposed": (0, (12, 5), (1, 12)),
                    "offset": (7, (12, 5), (5, 1)), "expanded": (3, (12, 5), (0, 1))}[case]
        t = TensorRef(_storage(a, "float32"), *geometry)
    whole = t.to_numpy()
    for lo, hi in [(0, 12), (0, 5), (5, 12), (3, 4), (11, 30), (6, 6)]:
        part = t.rows(lo, hi)
        assert part.dtype == whole.dtype
        assert part.tobytes() == whole[lo:hi].tobytes(), (case, lo, hi)


def _mapped_table(tmp_path, rows=5000, dim=24, dtype=np.float32):
    w = (np.random.default_rng(1).standard_normal((rows, dim)) * 0.05).astype(dtype)
    path = tmp_path / "w.bin"
    path.write_bytes(b"\0" * 8 + w.tobytes())
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    ref = TensorRef(_storage(w, str(np.dtype(dtype)), buffer=mm), 0, (rows, dim), (dim, 1))
    ref.storage._byte_offset = 8
    t = EmbeddingTable(name="t", role="category", weight_source=ref, weight_key="t.weight",
                       source_dtype=str(np.dtype(dtype)))
    return t, w, (f, mm)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("out", ["float32", "float16", "float64"])
def test_weight_chunks_identical_to_whole_table(tmp_path, dtype, out):
    t, w, _keep = _mapped_table(tmp_path, dtype=dtype)
    odt = output_dtype(out)
    chunks = list(weight_chunks(t, odt, budget=4096))
    assert len(chunks) > 10
    assert [s for s, _ in chunks] == list(range(0, t.rows, chunks[1][0]))
    got = b"".join(c.tobytes() for _, c in chunks)
    assert got == np.ascontiguousarray(w, dtype=odt).tobytes()
    assert t.weight_dtype == np.dtype(dtype)


def test_release_keeps_values(tmp_path):
    t, w, _keep = _mapped_table(tmp_path)
    view = t.weight
    assert isinstance(mapped._mapping(view), mmap.mmap)
    before = view[100:3000].copy()
    mapped.release(view[100:3000])
    mapped.release(view)  # whole range, twice: still only drops pages
    assert np.array_equal(view[100:3000], before)
    mapped.release(np.arange(10.0))  # not mapped: a no-op
    mapped.release(None)


def test_streamed_vocab_tensors_equal_encode_vocab(monkeypatch):
    tokens = [*TRICKY_TOKENS, *(f"tok{i}" for i in range(300)), "\u00e9" * 3, ""] * 3
    monkeypatch.setattr(st, "_VOCAB_CHUNK", 7)  # many chunk boundaries, some mid-ASCII, some not
    import io

    data, offsets = st.encode_vocab(tokens)
    b1, b2 = io.BytesIO(), io.BytesIO()
    st.write_vocab_utf8(b1, tokens)
    st.write_vocab_offsets(b2, tokens)
    assert b1.getvalue() == data.tobytes()
    assert b2.getvalue() == offsets.astype("<i8").tobytes()
    assert st.vocab_nbytes(tokens) == len(data)
    lazy = st.lazy_vocab(np.frombuffer(b1.getvalue(), np.uint8), np.frombuffer(b2.getvalue(), "<i8"))
    assert len(lazy) == len(tokens) and list(lazy) == tokens and lazy == tokens
    assert lazy[5] == tokens[5] and lazy[-1] == tokens[-1] and lazy[3:40] == tokens[3:40]


def test_lazy_vocab_rejects_corruption():
    data, offsets = st.encode_vocab(["ab", "caf\u00e9", "x"])
    bad = offsets.copy()
    bad[1] = 8  # not monotone: 8 > 7
    with pytest.raises(ValueError):
        st.lazy_vocab(data, bad)
    with pytest.raises(ValueError):
        st.lazy_vocab(data[:-1], offsets)
    broken = data.copy()
    broken[3] = 0xFF
    with pytest.raises(UnicodeDecodeError):
        st.lazy_vocab(broken, offsets)


def test_safetensors_readback_vocab_is_lazy(tmp_path):
    m = tricky_model()
    out = tmp_path / "m.safetensors"
    save(m, out, allow_unlabelled=True)  # its table "plain" has no vocabulary
    back = read_output(out)
    v = back.tables["words"].vocab
    assert isinstance(v.strings, ChunkedStrings)
    assert list(v.strings) == m.tables["words"].vocab.strings
    assert v.index("new york") == 1


def test_chunked_strings_sequence():
    data = [f"s{i}" for i in range(1000)]
    calls = []

    def fetch(a, b):
        calls.append((a, b))
        return data[a:b]

    cs = ChunkedStrings(len(data), fetch, chunk=64)
    assert list(cs) == data and max(b - a for a, b in calls) == 64
    assert cs == data and cs != data[:-1] and cs != [*data[:-1], "x"]
    assert cs[-1] == "s999" and cs[10:13] == ["s10", "s11", "s12"] and cs[::400] == ["s0", "s400", "s800"]
    with pytest.raises(IndexError):
        cs[1000]
    v = Vocabulary(cs, unknown_index=None, source="x")
    assert v.tokens is cs and len(v) == 1000 and v.index("s7") == 7


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_lazy_rows_match_whole(tmp_path, binary, monkeypatch):
    m = model(table("t", 3000, 9, vocab=[f"w{i}" for i in range(3000)], unknown_index=None, seed=4))
    out = tmp_path / ("t.bin" if binary else "t.vec")
    save(m, out)
    monkeypatch.setattr(w2v, "_SCAN", 4096)  # the index pass crosses many block boundaries
    back = read_output(out)
    t = back.tables["t"]
    assert t.weight_dtype == np.float32
    whole = m.tables["t"].weight
    got = np.concatenate([c for _, c in t.row_chunks(123)])
    assert got.tobytes() == whole.tobytes()
    assert list(t.vocab.strings) == m.tables["t"].vocab.strings
    verify_output(out, m)


def test_word2vec_reader_foreign_text_files(tmp_path):
    # The original C tool writes a trailing space; some files lack the final newline.
    p = tmp_path / "c.vec"
    p.write_bytes(b"2 3\nfoo 0.5 -1 2.25\nbar 1e-3 0 7 ")
    t = read_output(p).tables["c"]
    assert t.weight.tobytes() == np.array([[0.5, -1, 2.25], [1e-3, 0, 7]], dtype=np.float32).tobytes()
    assert list(t.vocab.strings) == ["foo", "bar"]
    p.write_bytes(b"2 3\nfoo 0.5 -1 2.25\nbar 1e-3 0 7 \n")
    assert read_output(p).tables["c"].weight.tobytes() == t.weight.tobytes()
    bad = tmp_path / "bad.vec"
    bad.write_bytes(b"3 2\na 1 2\nb 1 2 3\nc 4\n")
    with pytest.raises(UnreadableInputError, match="row 1 has 3 values"):
        read_output(bad).tables["bad"].weight_rows(0, 3)
    short = tmp_path / "short.vec"
    short.write_bytes(b"3 2\na 1 2\nb 1 2\n")
    with pytest.raises(UnreadableInputError, match="ends after 2 of 3"):
        read_output(short)


def test_checked_repr_fixes_double_rounding():
    # numpy's shortest repr of this float32 is 7.038531e-26, which reads back through float64
    # (gensim, Python) as a neighbouring float32.
    v = np.array([0x15AE43FD], dtype=np.uint32).view(np.float32)[0]
    assert np.float32(float(str(v))) != v
    text = _floatfmt.checked_repr(v)
    assert np.float32(float(text)) == v
    mixed = np.array([v, 0.5, -v, 1e-5, np.nan, np.inf, -0.0, 1e30, 0.0123, 999.0, 1e-4], dtype=np.float32)
    for vals in (mixed, np.tile(mixed, 50)):
        parts = _floatfmt.format_values(vals).split()
        back = np.array([np.float32(float(p)) for p in parts], dtype=np.float32)
        assert back.tobytes() == vals.tobytes()


def test_format_rows_same_with_and_without_orjson(monkeypatch):
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((200, 16)) * 0.05).astype(np.float32)
    w[3, 4], w[7, 0], w[9, 9] = 1e-7, np.nan, 12345.0
    fast = _floatfmt.format_rows([b"k"] * 200, w)
    monkeypatch.setattr(_floatfmt, "orjson", None)
    slow = _floatfmt.format_rows([b"k"] * 200, w)
    for text in (fast, slow):
        vals = np.array([float(x) for line in text.splitlines() for x in line.split()[1:]], dtype=np.float32)
        assert vals.tobytes() == w.tobytes()


def test_convert_cli_external_data(tmp_path):
    from tests.conftest import run_cli

    m = model(table("t", 50, 4, vocab=[f"w{i}" for i in range(50)], unknown_index=None))
    src = tmp_path / "t.safetensors"
    save(m, src)
    r = run_cli("convert", "-q", "--external-data", str(src), str(tmp_path / "o.onnx"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.onnx.data").is_file()
    verify_output(tmp_path / "o.onnx", read_output(src))


def test_sha256_in_background(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100_000)
    s = SourceInfo(path=str(p), size=100_000)
    s.start_sha256()
    import hashlib

    assert s.sha256 == hashlib.sha256(b"x" * 100_000).hexdigest()
    assert EmbeddingModel(OrderedDict(), s).source.sha256 == s.sha256

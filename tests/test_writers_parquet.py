"""Parquet: every fixture and real model read by pyarrow, pandas, polars and DuckDB with the exact
float32 values and tokens of the truth fastai computed; the layout is the contract of design.md §3
(row int64, token string, vector fixed_size_list<float32>[dim], bias float32 where there is one,
is_unknown bool, the manifest in the key-value metadata). Damaged files fail in one clear line;
writing streams in row groups with bounded memory; a DST never carries another format's suffix."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import converter
from converter.errors import OutputError, UnreadableInputError, UsageError
from converter.saving import save
from converter.verify import verify_output
from converter.writers import FORMATS, plan, read_output
from tests._writer_models import TRICKY_TOKENS, collab_model, model, table

from .conftest import ROOT, real_model_truths, run_cli
from .test_loaders import _sidecars, fixture_truths

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ALL = fixture_truths() + real_model_truths()
IDS = [f"{p.parent.name}/{p.name}" for p, _ in ALL]
PARQUET = FORMATS["parquet"]
# Parquet strings are UTF-8: the lone surrogate is refused (see test_a_lone_surrogate_is_refused)
TOKENS = [t for t in TRICKY_TOKENS if t != "\ud800lone"]


def sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def _files(m: converter.EmbeddingModel, out: Path) -> dict[str, Path]:
    """table name → the Parquet file that holds it."""
    return {next(iter(sub.tables)): p for sub, p in plan(m, out, PARQUET)}


def _by_key(m: converter.EmbeddingModel) -> dict[str, tuple[str, str]]:
    out = {}
    for t in m.tables.values():
        out[t.weight_key.removeprefix("module.")] = (t.name, "weight")
        if t.bias_key:
            out[t.bias_key.removeprefix("module.")] = (t.name, "bias")
    return out


def _check_schema(schema, dim: int, bias: bool) -> None:
    assert schema.names == ["row", "token", "vector", *(["bias"] if bias else []), "is_unknown"]
    assert schema.field("row").type == pa.int64()
    assert schema.field("token").type == pa.string()
    vt = schema.field("vector").type
    assert pa.types.is_fixed_size_list(vt) and vt.value_type == pa.float32() and vt.list_size == dim
    if bias:
        assert schema.field("bias").type == pa.float32()
    assert schema.field("is_unknown").type == pa.bool_()


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_read_by_pyarrow_pandas_polars_duckdb(tmp_path, path, truth):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    m = converter.load(path, vocab=_sidecars(path, truth))
    out = tmp_path / "out.parquet"
    written = save(m, out, allow_unlabelled=True)
    files = _files(m, out)
    assert sorted(written) == sorted(files.values())
    if len(m.tables) == 1:
        assert list(files.values()) == [out]
    where = _by_key(m)
    seen: set[str] = set()
    for tt in truth["tables"]:
        name, part = where[tt["source_key"].removeprefix("module.")]
        t = m.tables[name]
        f = files[name]
        # pyarrow: the schema exactly as the contract, the manifest in the key-value metadata
        table_ = pq.read_table(f)
        _check_schema(table_.schema, t.dim, t.bias_key is not None)
        manifest = json.loads(pq.read_metadata(f).metadata[b"embconv.manifest"])
        assert [x["name"] for x in manifest["tables"]] == [name]
        assert manifest["source"]["sha256"] == m.source.sha256
        assert table_.column("row").to_pylist() == list(range(t.rows))
        if part == "weight":
            vec = table_.column("vector").combine_chunks()
            got = vec.flatten().to_numpy().reshape(t.rows, t.dim)
            assert sha256_f32(got) == tt["sha256_f32"]
        else:
            got = table_.column("bias").to_numpy()
            assert got.dtype == np.float32 and sha256_f32(got) == tt["sha256_f32"]
        tokens = table_.column("token").to_pylist()
        if tt.get("vocab") is not None:
            assert tokens == tt["vocab"]
        elif t.vocab is None:
            assert tokens == [str(i) for i in range(t.rows)]
        unk = t.vocab.unknown_index if t.vocab is not None else None
        assert np.flatnonzero(table_.column("is_unknown").to_numpy(zero_copy_only=False)).tolist() == \
            ([unk] if unk is not None else [])
        if name in seen:
            continue
        seen.add(name)
        w = t.weight.astype(np.float32)
        # pandas
        df = pd.read_parquet(f)
        assert list(df.columns) == table_.schema.names
        assert np.array_equal(np.stack(df["vector"].to_list()).astype(np.float32).view(np.uint32), w.view(np.uint32))
        assert df["token"].tolist() == tokens
        # polars: Array(Float32, dim)
        pdf = pl.read_parquet(f)
        assert pdf.schema["vector"] == pl.Array(pl.Float32, t.dim)
        assert np.array_equal(pdf["vector"].to_numpy().view(np.uint32), w.view(np.uint32))
        assert pdf["token"].to_list() == tokens
        # DuckDB: FLOAT[] read from the file; array functions after a cast to FLOAT[dim]
        con = duckdb.connect()
        rows = con.execute(f"SELECT row, token, vector FROM '{f}' ORDER BY row").fetchall()
        assert [r[1] for r in rows] == tokens
        assert np.array_equal(np.array([r[2] for r in rows], dtype=np.float32).view(np.uint32), w.view(np.uint32))
        (cos,) = con.execute(f"SELECT array_cosine_similarity(vector::FLOAT[{t.dim}], vector::FLOAT[{t.dim}]) "
                             f"FROM '{f}' WHERE row = ?", [t.rows - 1]).fetchone()
        norm = float(np.linalg.norm(w[-1]))
        assert (cos is None or np.isnan(cos)) if norm == 0 else abs(cos - 1) < 1e-5
        con.close()
    verify_output(next(iter(files.values())), converter.load(path, vocab=_sidecars(path, truth)))


def test_multi_table_model_writes_one_file_per_table(tmp_path):
    m = collab_model()
    files = save(m, tmp_path / "out.parquet")
    assert files == [tmp_path / "out.userId.parquet", tmp_path / "out.title.parquet"]
    assert not (tmp_path / "out.parquet").exists()
    for name, f in zip(m.tables, files, strict=True):
        t = m.tables[name]
        got = pq.read_table(f)
        _check_schema(got.schema, t.dim, bias=True)
        assert np.array_equal(got.column("bias").to_numpy(), t.bias.astype(np.float32))
        assert got.column("is_unknown").to_pylist() == [i == 0 for i in range(t.rows)]
        back = read_output(f)
        assert list(back.tables) == [name]
        assert back.tables[name].vocab.unknown_index == 0
        assert list(back.tables[name].vocab.strings) == list(t.vocab.strings)
        verify_output(f, m)
    r = run_cli("inspect", files[0])
    assert r.returncode == 0 and "userId" in r.stdout, r.stderr


def test_tricky_tokens_and_unlabelled_rows(tmp_path):
    m = model(table("words", len(TOKENS), 7, vocab=TOKENS, bias=True, seed=1),
              table("nums", 5, 3, vocab=["#na#", 1, 2.5, True, np.int64(7)], seed=2),
              table("plain", 4, 2, vocab=None, seed=3), kind="tabular")
    save(m, tmp_path / "t.parquet", allow_unlabelled=True)
    assert pq.read_table(tmp_path / "t.words.parquet").column("token").to_pylist() == TOKENS
    assert pq.read_table(tmp_path / "t.nums.parquet").column("token").to_pylist() == ["#na#", "1", "2.5", "True", "7"]
    plain = tmp_path / "t.plain.parquet"
    assert pq.read_table(plain).column("token").to_pylist() == ["0", "1", "2", "3"]  # as word2vec keys such rows
    assert not any(pq.read_table(plain).column("is_unknown").to_pylist())
    assert read_output(plain).tables["plain"].vocab is None
    for f in tmp_path.glob("t.*.parquet"):
        verify_output(f, m)


def test_a_lone_surrogate_is_refused(tmp_path):
    m = model(table("words", len(TRICKY_TOKENS), 3, vocab=TRICKY_TOKENS))
    with pytest.raises(OutputError, match=r"row 10 is not valid Unicode"):
        save(m, tmp_path / "s.parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_only_float32_is_written(tmp_path, dtype):
    with pytest.raises(UsageError, match="float32 vectors only"):
        save(collab_model().select(["userId"]), tmp_path / "d.parquet", dtype=dtype)
    assert list(tmp_path.iterdir()) == []


def test_drop_unknown_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is_unknown"):
        save(collab_model().select(["userId"]), tmp_path / "d.parquet", drop_unknown=True)
    assert list(tmp_path.iterdir()) == []


def test_without_pyarrow_the_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UsageError, match=r"pip install 'embconv\[data\]'"):
        save(collab_model().select(["userId"]), tmp_path / "d.parquet")


def test_importing_embconv_does_not_import_pyarrow():
    code = ("import sys, converter, converter.cli, converter.writers\n"
            "converter.writers.format_for('x.parquet')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


# --- the extension rule: a DST always ends with one of its format's suffixes ---------------------

FIXTURE = ROOT / "tests" / "fixtures" / "fastai2" / "collab_dot_export.pkl"


@pytest.mark.parametrize("dst,to", [("out.csv", "safetensors"), ("out.parquet", "safetensors"),
                                    ("out.vec", "parquet"), ("out", "onnx"), ("out.bin", "word2vec-text")])
def test_a_dst_with_another_formats_suffix_is_refused(tmp_path, dst, to):
    r = run_cli("convert", FIXTURE, tmp_path / dst, "--to", to)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{to} files end with" in r.stderr and "parquet: .parquet" in r.stderr and "word2vec-text: .vec, .txt" \
        in r.stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="files end with"):
        save(collab_model(), tmp_path / dst, format=to)


@pytest.mark.parametrize("dst,to", [("out.SAFETENSORS", "safetensors"), ("out.txt", "word2vec-text"),
                                    ("out.parquet", "parquet"), ("out.parquet", None)])
def test_a_dst_with_its_formats_suffix_is_written(tmp_path, dst, to):
    r = run_cli("convert", FIXTURE, tmp_path / dst, *(["--to", to] if to else []), "-q")
    assert r.returncode == 0, r.stderr


def test_convert_inspect_verify_through_the_cli(tmp_path):
    out = tmp_path / "o.parquet"
    r = run_cli("convert", FIXTURE, out, "-q")
    assert r.returncode == 0, r.stderr
    for f in (tmp_path / "o.userId.parquet", tmp_path / "o.title.parquet"):
        r = run_cli("inspect", f)
        assert r.returncode == 0 and "parquet" in r.stdout, r.stderr
        r = run_cli("verify", f, "--against", FIXTURE)
        assert r.returncode == 0, r.stderr
    r = run_cli("verify", out, "--against", FIXTURE)
    assert r.returncode == 0 and "2 table(s)" in r.stdout, r.stderr


# --- damaged files ---------------------------------------------------------------------------------

def _good(tmp_path: Path) -> tuple[Path, converter.EmbeddingModel]:
    m = collab_model().select(["userId"])
    out = tmp_path / "good.parquet"
    save(m, out)
    return out, m


def _rewrite(src: Path, dst: Path, change, meta: dict | None = None) -> Path:
    t = pq.read_table(src)
    kv = dict(pq.read_metadata(src).metadata) if meta is None else meta
    kv.pop(b"ARROW:schema", None)
    t = change(t)
    pq.write_table(t.replace_schema_metadata(kv), dst)
    return dst


def _manifest_with(src: Path, **changes) -> dict:
    mf = json.loads(pq.read_metadata(src).metadata[b"embconv.manifest"])
    mf["tables"][0].update(changes)
    return {b"embconv.manifest": json.dumps(mf).encode()}


def _set(t, name, array):
    return t.set_column(t.schema.get_field_index(name), name, array)


DAMAGE = {
    "no manifest": (lambda t: t, lambda src: {}, "no embconv.manifest"),
    "manifest not JSON": (lambda t: t, lambda src: {b"embconv.manifest": b"{nope"}, "not JSON"),
    "column missing": (lambda t: t.drop_columns(["is_unknown"]), None, "columns are"),
    "columns reordered": (lambda t: t.select(["token", "row", "vector", "bias", "is_unknown"]), None, "columns are"),
    "vector as a variable list": (lambda t: _set(t, "vector", t.column("vector").cast(pa.list_(pa.float32()))),
                                  None, "column 'vector' is"),
    "vector as float64": (lambda t: _set(t, "vector", t.column("vector").cast(pa.list_(pa.float64(), 6))), None,
                          "column 'vector' is"),
    "token as int": (lambda t: _set(t, "token", pa.array(range(t.num_rows), pa.int64())), None, "column 'token' is"),
    "row as int32": (lambda t: _set(t, "row", t.column("row").cast(pa.int32())), None, "column 'row' is"),
    "rows missing": (lambda t: t.slice(0, t.num_rows - 1), None, "the file has 3 rows, its manifest says 4"),
    "rows out of order": (lambda t: _set(t, "row", pa.array([0, 2, 1, 3], pa.int64())), None,
                          "column 'row' holds 2 at row 1"),
    "unknown row moved": (lambda t: _set(t, "is_unknown", pa.array([False, True, False, False])), None,
                          "is_unknown marks rows"),
    "dim differs from the manifest": (lambda t: t, lambda src: _manifest_with(src, dim=5), "the manifest says 5"),
    "bias without bias_key": (lambda t: t, lambda src: _manifest_with(src, bias_key=None), "bias"),
    "null vector": (lambda t: _set(t, "vector", pa.array([None, *t.column("vector").to_pylist()[1:]],
                                                         pa.list_(pa.float32(), 6))), None, "nulls"),
}

LAZY = {"null vector"}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_file_fails_in_one_clear_line(tmp_path, case):
    good, m = _good(tmp_path)
    change, meta, message = DAMAGE[case]
    bad = _rewrite(good, tmp_path / "bad.parquet", change, meta(good) if meta else None)
    with pytest.raises(UnreadableInputError, match=message) as e:
        verify_output(bad, m)  # reads back and compares (verification is lazy)
    assert "bad.parquet" in str(e.value)
    if case in LAZY:  # found when the vectors are read (verify), not when the file is opened (inspect)
        return
    r = run_cli("inspect", bad)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "bad.parquet" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("cut", ["footer", "half", "magic only"])
def test_a_truncated_file_fails_in_one_clear_line(tmp_path, cut):
    good, _ = _good(tmp_path)
    data = good.read_bytes()
    bad = tmp_path / "cut.parquet"
    bad.write_bytes({"footer": data[:-9], "half": data[: len(data) // 2], "magic only": b"PAR1"}[cut])
    with pytest.raises(UnreadableInputError, match="not a readable Parquet file") as e:
        read_output(bad)
    assert "cut.parquet" in str(e.value)
    r = run_cli("verify", bad, "--against", FIXTURE)
    assert r.returncode == 3 and r.stderr.count("\n") == 1, r.stderr


def test_a_changed_value_fails_verification(tmp_path):
    good, m = _good(tmp_path)
    vec = pq.read_table(good).column("vector").to_pylist()
    vec[2][3] += 1.0
    bad = _rewrite(good, tmp_path / "bad.parquet", lambda t: _set(t, "vector", pa.array(vec, pa.list_(pa.float32(), 6))))
    with pytest.raises(converter.errors.VerificationError, match="differ first at row 2"):
        verify_output(bad, m)


# --- streaming: several row groups, memory bounded by one group --------------------------------------

_BIG = r"""
import json, resource, sys
import numpy as np
import converter.writers.parquet as wp
from collections import OrderedDict
from converter.ir import EmbeddingModel, EmbeddingTable, ModelInfo, SourceInfo, Vocabulary
from converter.lazy import ChunkedStrings
from converter.saving import save
import pyarrow.parquet as pq

ROWS, DIM = int(sys.argv[2]), 64
wp.ROW_GROUP_BYTES = 4 << 20

class Generated:
    # rows made on demand: the table is never in memory
    shape = (ROWS, DIM)
    dtype = np.dtype(np.float32)
    def rows(self, a, b):
        b = min(b, ROWS)
        return ((np.arange(a * DIM, b * DIM) % 1009).astype(np.float32) / 7).reshape(-1, DIM)
    def to_numpy(self):
        raise AssertionError("the whole table was asked for")

vocab = Vocabulary(ChunkedStrings(ROWS, lambda a, b: [f"tok{i}" for i in range(a, b)]), unknown_index=0)
t = EmbeddingTable("big", "token", Generated(), vocab, weight_key="big.weight")
m = EmbeddingModel(OrderedDict(big=t), SourceInfo(path="/x", size=1, generation="fastai-2", artifact="export",
                   container="pickle", _sha256="0" * 64), ModelInfo(kind="text-lm"))
out = sys.argv[1]
save(m, out)  # write the row groups, read back, verify
md = pq.read_metadata(out)
print(json.dumps({"groups": md.num_row_groups, "rows": md.num_rows, "group_rows": md.row_group(0).num_rows,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _big(out: Path, rows: int) -> dict:
    p = subprocess.run([sys.executable, "-c", _BIG, str(out), str(rows)], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_a_big_table_streams_in_row_groups_with_bounded_memory(tmp_path):
    """400k rows x 64 (98 MiB of vectors) in 4 MiB row groups: the peak RSS of the whole save
    (write + read back + verify, in a fresh process) exceeds that of a 100k-row save (24 MiB,
    more than a verification chunk) by far less than the 73 MiB the tables differ by."""
    out = tmp_path / "big.parquet"
    small = _big(tmp_path / "small.parquet", 100_000)
    r = _big(out, 400_000)
    extra_mib = 300_000 * 64 * 4 / 2**20
    assert r["rows"] == 400_000 and r["groups"] >= 25, r  # ~4 MiB a group
    assert r["group_rows"] * 64 * 4 <= 4 << 20, r
    assert (r["peak_kib"] - small["peak_kib"]) / 1024 < extra_mib / 3, (r, small)
    back = read_output(out)
    t = back.tables["big"]
    assert t.vocab.strings[399_999] == "tok399999" and t.vocab.unknown_index == 0
    assert np.array_equal(t.weight_rows(123_456, 123_460),
                          ((np.arange(123_456 * 64, 123_460 * 64) % 1009).astype(np.float32) / 7).reshape(-1, 64))


def test_a_parquet_output_is_an_input_like_any_output(tmp_path):
    """Its manifest (container "parquet") fits the schema, and it converts on to another format."""
    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "schemas" / "manifest.schema.json").read_text())
    src = Path(__file__).parent / "fixtures" / "fastai2" / "collab_dot_export.pkl"
    files = converter.convert(src, tmp_path / "out.parquet")
    back = converter.load(files[0])
    assert back.source.container == "parquet"
    jsonschema.validate(back.manifest(), schema)
    again = converter.convert(files[0], tmp_path / "again.safetensors")
    converter.verify(again[0], files[0])

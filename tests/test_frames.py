"""``to_frame`` / ``to_frames`` on every fixture and real model with its truth: the table's weights
exactly (bitwise float32), the index its labels, bias and is_unknown right; and the data extra
named when pandas is missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import converter
from converter.errors import UsageError
from converter.ir import EmbeddingTable, Vocabulary
from converter.lazy import InMemory

from .conftest import FIXTURES, ROOT
from .test_similarity import ALL, IDS, load


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def check_frame(df: pd.DataFrame, t: EmbeddingTable, vector: str) -> None:
    assert len(df) == t.rows
    assert df.index.name == t.name
    if t.vocab is not None:
        assert list(df.index) == list(t.vocab.strings)
    else:
        assert isinstance(df.index, pd.RangeIndex) and list(df.index) == list(range(t.rows))
    if vector == "columns":
        dims = list(range(t.dim))
        assert list(df.columns[: t.dim]) == dims
        assert (df[dims].dtypes == np.float32).all()
        matrix = df[dims].to_numpy()
    else:
        assert df.columns[0] == "vector"
        cells = df["vector"].tolist()
        assert all(isinstance(c, np.ndarray) and c.dtype == np.float32 and c.shape == (t.dim,) for c in cells)
        matrix = np.stack(cells) if cells else np.empty((0, t.dim), dtype=np.float32)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(bits(matrix), bits(np.asarray(t.weight, dtype=np.float32)))
    extra = ["bias", "is_unknown"] if t.bias is not None else ["is_unknown"]
    assert list(df.columns[len(df.columns) - len(extra):]) == extra
    assert len(df.columns) == (t.dim if vector == "columns" else 1) + len(extra)
    if t.bias is not None:
        assert df["bias"].dtype == np.float32
        np.testing.assert_array_equal(bits(df["bias"].to_numpy()), bits(np.asarray(t.bias, dtype=np.float32)))
    assert df["is_unknown"].dtype == bool
    unknown = np.flatnonzero(df["is_unknown"].to_numpy()).tolist()
    expected = [t.vocab.unknown_index] if t.vocab is not None and t.vocab.unknown_index is not None else []
    assert unknown == expected


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
@pytest.mark.parametrize("vector", ["columns", "list"])
def test_frames_equal_tables(path, truth, vector):
    model = load(path, truth)
    frames = model.to_frames(vector=vector)
    assert list(frames) == list(model.tables)
    for name, t in model.tables.items():
        check_frame(frames[name], t, vector)
        check_frame(t.to_frame(vector=vector), t, vector)


def test_default_layout_is_columns():
    t = converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl").tables["userId"]
    df = t.to_frame()
    assert list(df.columns) == [0, 1, 2, 3, "bias", "is_unknown"]
    assert df.loc["130", [0, 1, 2, 3]].to_numpy().tolist() == t.lookup(130).tolist()
    assert bool(df.loc["#na#", "is_unknown"]) and int(df["is_unknown"].sum()) == 1


def test_duplicate_tokens_stay_duplicate_rows():
    t = converter.load(FIXTURES / "fastai2" / "text_lm_export.pkl").tables["token"]
    df = t.to_frame()
    fakes = [i for i, s in enumerate(t.vocab.strings) if s == "xxfake"]
    assert len(fakes) > 1 and len(df) == t.rows and not df.index.is_unique
    block = df.loc["xxfake", list(range(t.dim))].to_numpy()
    np.testing.assert_array_equal(bits(block), bits(t.weight[fakes]))


def test_read_back_output_and_float16(tmp_path):
    """A memory-mapped embconv output (lazy vocabulary) and a float16 source (widened exactly)."""
    model = converter.load(FIXTURES / "fastai2" / "text_lm_export.pkl")
    converter.save(model, tmp_path / "out.safetensors")
    back = converter.load(tmp_path / "out.safetensors")
    for name, t in back.tables.items():
        check_frame(t.to_frame(), t, "columns")
        pd.testing.assert_frame_equal(t.to_frame(), model.tables[name].to_frame())
    fp16 = converter.load(FIXTURES / "fastai2" / "collab_dot_fp16.pth").tables["user"]
    assert fp16.weight.dtype == np.float16
    df = fp16.to_frame()
    assert (df[list(range(fp16.dim))].to_numpy() == fp16.weight.astype(np.float32)).all()


def test_empty_and_bad_layout():
    t = EmbeddingTable("e", "item", InMemory(np.zeros((0, 3), dtype=np.float32)), Vocabulary([]))
    df = t.to_frame()
    assert df.shape == (0, 4) and df.index.name == "e"
    assert t.to_frame(vector="list").shape == (0, 2)
    with pytest.raises(ValueError, match="columns"):
        t.to_frame(vector="rows")


def test_without_pandas_names_the_extra(monkeypatch):
    model = converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas → ImportError
    with pytest.raises(UsageError, match=r"pip install 'embconv\[data\]'") as err:
        model.tables["userId"].to_frame()
    assert err.value.exit_code == 2 and "to_frame" in str(err.value)
    with pytest.raises(UsageError, match=r"embconv\[data\]"):
        model.to_frames()
    # similarity needs only numpy
    assert len(model.tables["userId"].most_similar("130", 3)) == 3


def test_import_converter_does_not_import_pandas():
    code = ("import sys, converter, converter.frames, converter.similarity; "
            "assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr

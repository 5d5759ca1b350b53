"""converter.encode / encode_file against real fastai's processed codes (tests/fixtures/encode)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

import converter  # noqa: E402
from converter.encoding import encode, encode_file, encode_report  # noqa: E402

FX = Path(__file__).parent / "fixtures" / "encode"
GENS = ["fastai1", "fastai2"]


def _fx(gen):
    d = FX / gen
    return d, json.loads((d / "truth.encode.json").read_text(encoding="utf-8")), converter.load(d / "tabular_export.pkl")


def _vectors(out, col, dim):
    return out[[f"{col}_{j}" for j in range(dim)]].to_numpy()


@pytest.mark.parametrize("gen", GENS)
def test_encode_equals_fastai_codes(gen):
    d, truth, model = _fx(gen)
    test = pd.read_csv(d / "test.csv")
    out, reports = encode_report(model, test)
    assert truth["cat_names"] == list(model.tables)
    for col in truth["cat_names"]:
        w = model.tables[col].weight
        assert model.tables[col].vocab.strings == truth["classes"][col]
        got = _vectors(out, col, w.shape[1])
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, w[np.array(truth["test_codes"][col])])
    by = {r.table: r for r in reports}
    assert by["age_na"].fill_missing and by["age_na"].column == "age"
    assert (by["city"].unseen, by["city"].missing) == (2, 1)          # 'Atlantis', 'berlin'; one NaN
    assert (by["n_kids"].unseen, by["n_kids"].missing) == (1, 1)      # 7; NaN (float column in the test file)
    assert (by["is_member"].unseen, by["is_member"].missing) == (0, 2)
    # fastai 2 keeps df_shrink's np.float32 categories: float64 0.1 is not np.float32(0.1) -> #na#
    assert by["discount"].unseen == (7 if gen == "fastai2" else 1)


@pytest.mark.parametrize("gen", GENS)
def test_pass_through_and_order(gen):
    d, truth, model = _fx(gen)
    test = pd.read_csv(d / "test.csv")
    out = encode(model, test)
    for c in ("id", "age", "income", "note"):
        pd.testing.assert_series_equal(out[c], test[c])
    cols = list(out.columns)
    assert cols[0] == "id" and cols[1] == "city_0"
    assert cols.index("age") + 1 == cols.index("age_na_0")             # FillMissing vectors follow age
    assert cols[-2:] == ["income", "note"]


@pytest.mark.parametrize("gen", GENS)
@pytest.mark.parametrize("src,dst", [("csv", "csv"), ("csv", "parquet"), ("parquet", "parquet"), ("parquet", "csv")])
def test_files_match_in_memory(gen, src, dst, tmp_path):
    d, truth, model = _fx(gen)
    test = pd.read_csv(d / "test.csv")
    expected = encode(model, test)
    data = d / "test.csv"
    if src == "parquet":
        data = tmp_path / "test.parquet"
        test.to_parquet(data, index=False)
    out = tmp_path / f"out.{dst}"
    report = encode_file(model, data, out, batch_rows=3)
    assert report.rows == len(test) and report.batches == 3
    back = pd.read_csv(out) if dst == "csv" else pd.read_parquet(out)
    assert list(back.columns) == list(expected.columns)
    vec = [c for c in expected.columns if expected[c].dtype == np.float32]
    np.testing.assert_array_equal(back[vec].to_numpy(np.float32), expected[vec].to_numpy())
    for c in ("id", "age", "income"):
        np.testing.assert_array_equal(back[c].to_numpy(float), test[c].to_numpy(float))
    assert [c.to_json()["unseen"] for c in report.columns] == [
        r.unseen for r in encode_report(model, test)[1]]


def test_streaming_small_batches_equal_one_batch(tmp_path):
    d, truth, model = _fx("fastai2")
    test = pd.read_csv(d / "test.csv")
    big = pd.concat([test] * 50, ignore_index=True)
    big.loc[390:, "n_kids"] = np.nan        # an int column with NaN only in a late batch
    src = tmp_path / "big.csv"
    big.to_csv(src, index=False)
    encode_file(model, src, tmp_path / "one.parquet", batch_rows=10_000)
    encode_file(model, src, tmp_path / "many.parquet", batch_rows=7)
    a, b = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "many.parquet")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, encode(model, pd.read_csv(src)), check_dtype=False)


_PEAK_SCRIPT = """
import resource, sys
import pyarrow.parquet
import converter
from converter.encoding import encode_file
fixture, n, src, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
model = converter.load(fixture + "/tabular_export.pkl")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = encode_file(model, src, out, batch_rows=20_000)
assert report.rows == n and report.batches == -(-n // 20_000)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


def test_memory_bounded_for_many_rows(tmp_path):
    """Encoding 8× the rows grows the peak by far less than the extra vectors (fresh processes; the
    datasets are made beforehand by this process)."""
    import subprocess
    import sys

    d = FX / "fastai1"
    test = pd.read_csv(d / "test.csv")
    grown = {}
    for n in (100_000, 800_000):
        test.iloc[np.arange(n) % len(test)].reset_index(drop=True).to_parquet(tmp_path / f"in{n}.parquet", index=False)
        run = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(d), str(n), str(tmp_path / f"in{n}.parquet"),
                              str(tmp_path / f"out{n}.parquet")], capture_output=True, text=True, check=True)
        grown[n] = int(run.stdout.split()[-1])
    extra_vectors = 700_000 * 18 * 4
    assert grown[800_000] - grown[100_000] < extra_vectors / 4, (grown, extra_vectors)


def test_unnamed_tables_need_a_mapping(tmp_path):
    d, truth, model = _fx("fastai2")
    test = pd.read_csv(d / "test.csv")
    model.rename_table("city", "cat_0")
    sub = model.select(["cat_0"])
    with pytest.raises(converter.UsageError, match="columns="):
        encode(sub, test.drop(columns=["age"]))
    out = encode(sub, test, columns={"cat_0": "city"})
    np.testing.assert_array_equal(_vectors(out, "city", 5),
                                  sub.tables["cat_0"].weight[np.array(truth["test_codes"]["city"])])
    assert list(encode(sub, test, columns=["cat_0=city"]).columns) == list(out.columns)
    with pytest.raises(converter.UsageError, match="no column"):
        encode(sub, test, columns={"cat_0": "town"})
    with pytest.raises(converter.UsageError, match="not a categorical table"):
        encode(sub, test, columns=["nope"])


def test_only_chosen_columns_and_bad_paths(tmp_path):
    d, truth, model = _fx("fastai1")
    test = pd.read_csv(d / "test.csv")
    out = encode(model, test, columns=["city"])
    assert "n_kids" in out.columns and "city" not in out.columns and "age_na_0" not in out.columns
    with pytest.raises(converter.UsageError, match=".csv or .parquet"):
        encode_file(model, d / "test.csv", tmp_path / "out.json")
    assert not list(tmp_path.iterdir())


def test_v2_category_dtype_uses_its_own_codes():
    d, truth, model = _fx("fastai2")
    test = pd.read_csv(d / "test.csv")
    # fastai 2's _apply_cats: a column already `category` maps by c.cat.codes + 1
    test["city"] = pd.Categorical(test["city"], categories=["Kraków", "São Paulo"])
    out = encode(model, test, columns=["city"])
    codes = test["city"].cat.codes.to_numpy() + 1
    np.testing.assert_array_equal(_vectors(out, "city", 5), model.tables["city"].weight[codes])


def test_import_does_not_load_pandas():
    import subprocess
    import sys

    code = "import sys, converter, converter.encoding; print('pandas' in sys.modules, 'pyarrow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == \
        ["False", "False"]


def test_the_encode_command_writes_what_the_library_encodes(tmp_path, capsys):
    """`embconv encode SRC DATA OUT --json` = converter.encode; OUT is never DATA; OUT needs --force."""
    import pandas as pd

    from converter.cli import main

    case = Path(__file__).parent / "fixtures" / "encode" / "fastai2"
    src, data, out = case / "tabular_export.pkl", case / "test.csv", tmp_path / "enc.parquet"
    assert main(["encode", str(src), str(data), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = converter.encode(src, pd.read_csv(data))
    got = pd.read_parquet(out)
    assert list(got.columns) == list(expected.columns) and report["rows"] == len(expected)
    vec = [c for c in expected.columns if c.startswith("city_")]
    assert np.array_equal(got[vec].to_numpy(np.float32), expected[vec].to_numpy(np.float32))
    assert main(["encode", str(src), str(data), str(out)]) == 5
    copy = tmp_path / "data.csv"
    copy.write_bytes(data.read_bytes())
    assert main(["encode", str(src), str(copy), str(copy), "--force"]) == 5
    assert copy.read_bytes() == data.read_bytes()

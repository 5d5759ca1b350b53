"""Training data is read by pandas itself: CSV cells get exactly the types pandas.read_csv gives
them, Parquet columns their stored types; problems are one clear error naming the file."""

from __future__ import annotations

import math
import sys

import pandas as pd
import pytest

from converter.errors import UnreadableInputError, UsageError
from converter.loaders.training_data import column_values, read_frame

TRICKY = ("id,mixed,flag,score,name,gap\n"
          "1,7,True,1.5, x,\n"
          "2,07,FALSE,N/A,y ,3\n"
          "3,7.0,true,nan,\"a,b\",\n"
          "4,1e3,False,-0.0,NULL,4\n")


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("column", ["id", "mixed", "flag", "score", "name", "gap"])
def test_csv_cells_are_typed_as_pandas_types_them(tmp_path, column):
    path = tmp_path / "data.csv"
    path.write_text(TRICKY, encoding="utf-8")
    expected = [None if pd.isna(v) else v for v in pd.read_csv(path)[column].tolist()]
    got = column_values(path, column)
    assert len(got) == len(expected) and all(_same(a, b) for a, b in zip(got, expected)), (got, expected)


def test_parquet_is_read_with_its_stored_types(tmp_path):
    df = pd.DataFrame({"user": [3, 1, 3], "city": ["a", None, "b"]})
    path = tmp_path / "data.parquet"
    df.to_parquet(path)
    assert column_values(path, "user") == [3, 1, 3]
    assert column_values(path, "city") == ["a", None, "b"]
    assert list(read_frame(path).columns) == ["user", "city"]


def test_a_missing_column_names_the_columns(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(TRICKY, encoding="utf-8")
    with pytest.raises(UsageError, match=r"no column 'userId' \(columns: id, mixed, flag"):
        column_values(path, "userId")


def test_bad_bytes_are_one_clear_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(UnreadableInputError, match="data.csv"):
        column_values(path, "a")


def test_without_pandas_the_error_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_text(TRICKY, encoding="utf-8")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(UsageError, match=r"pip install 'embconv\[data\]'"):
        column_values(path, "id")

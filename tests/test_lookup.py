"""``EmbeddingTable.lookup`` and ``Vocabulary.index``: strict by default (KeyError naming the token
and the table, with a hint for a numeric near form), ``unknown="na"`` for fastai's ``#na#`` row, and
the matching rules of ``Vocabulary`` (string forms first, then numbers by value; bools, genuine
strings and NaN stay themselves), on hand-built vocabularies and on real fastai 1 / 2 fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest

import converter
from converter import api
from converter.ir import EmbeddingTable, Vocabulary
from converter.lazy import ChunkedStrings, InMemory

from .conftest import FIXTURES


def table(tokens, unknown_index: int | None = 0, name: str = "x") -> EmbeddingTable:
    rows = len(tokens)
    w = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    return EmbeddingTable(name, "category", InMemory(w), Vocabulary(tokens, unknown_index=unknown_index))


def row_of(t: EmbeddingTable, token) -> int | None:
    assert t.vocab is not None
    return t.vocab.index(token)


# --- strictness -------------------------------------------------------------------------------

def test_unknown_token_raises_naming_token_and_table():
    t = table(["#na#", "a", "b"], name="city")
    with pytest.raises(KeyError, match=r"'typo' is not in table 'city'"):
        t.lookup("typo")
    with pytest.raises(KeyError, match="not in table 'city'"):
        t.lookup("")


def test_unknown_na_gives_the_unknown_row():
    t = table(["#na#", "a", "b"])
    assert np.array_equal(t.lookup("typo", unknown="na"), t.weight[0])
    assert np.array_equal(t.lookup("b", unknown="na"), t.weight[2])
    assert np.array_equal(t.lookup(float("nan"), unknown="na"), t.weight[0])


def test_unknown_na_without_unknown_row_raises():
    t = table(["a", "b"], unknown_index=None)
    with pytest.raises(KeyError, match="no unknown"):
        t.lookup("typo", unknown="na")
    with pytest.raises(KeyError, match="'typo' is not in table 'x'"):
        t.lookup("typo")
    assert np.array_equal(t.lookup("b", unknown="na"), t.weight[1])


def test_bad_unknown_value():
    t = table(["#na#", "a"])
    for bad in ("ignore", "NA", None, ""):
        with pytest.raises(ValueError, match="unknown="):
            t.lookup("a", unknown=bad)


def test_table_without_vocabulary():
    t = EmbeddingTable("plain", "category", InMemory(np.zeros((3, 2), dtype=np.float32)))
    with pytest.raises(KeyError, match="no vocabulary"):
        t.lookup("a")
    with pytest.raises(KeyError, match="no vocabulary"):
        t.lookup(1, unknown="na")


def test_na_token_itself_is_found():
    t = table(["#na#", "a"])
    assert row_of(t, "#na#") == 0
    assert np.array_equal(t.lookup("#na#"), t.weight[0])


def test_did_you_mean_numeric_near_form():
    t = table(["#na#", "1.0", "2.5"])
    with pytest.raises(KeyError) as e:
        t.lookup("1")
    assert e.value.args[0] == "'1' is not in table 'x' (did you mean '1.0'?)"
    ints = table(["#na#", 7, 8])
    with pytest.raises(KeyError, match=r"'007' is not in table 'x' \(did you mean '7'\?\)"):
        ints.lookup("007")
    v1 = table(["#na#", "1002"])
    with pytest.raises(KeyError, match=r"did you mean '1002'"):
        v1.lookup("1002.0")
    with pytest.raises(KeyError) as e:
        t.lookup("typo")
    assert "did you mean" not in e.value.args[0]


def test_message_shows_numpy_scalars_as_python_values():
    t = table(["#na#", 1, 2])
    with pytest.raises(KeyError) as e:
        t.lookup(np.int64(803))
    assert e.value.args[0] == "803 is not in table 'x'"


# --- matching rules -----------------------------------------------------------------------------

def test_int_vocabulary_forms():
    t = table(["#na#", 3, 7, 130])
    for q in (7, "7", np.int16(7), np.int64(7), np.uint8(7), 7.0, np.float32(7.0), np.float64(7.0), "7.0"):
        assert row_of(t, q) == 2, q
        assert np.array_equal(t.lookup(q), t.weight[2])
    for q in (7.5, "7.5", "007", "+7", " 7", "7 ", "7_0", 803.0, "0x7", True, np.bool_(True)):
        assert row_of(t, q) is None, q
        with pytest.raises(KeyError):
            t.lookup(q)


def test_float_vocabulary_forms():
    t = table(["#na#", 0.5, 7.0, np.float32(0.1)])
    for q in (7.0, 7, "7", "7.0", np.float32(7.0), np.int64(7)):
        assert row_of(t, q) == 2, q
    for q in (0.1, "0.1", np.float32(0.1), float(np.float32(0.1))):  # '0.1' is how numpy prints it
        assert row_of(t, q) == 3, q
    for q in (".5", "0.50", "07", "7.00", 7.5):
        assert row_of(t, q) is None, q


def test_fastai1_numeric_string_classes():
    t = table(["#na#", "1002", "1.5", "-3", "1e+16", "1.0"])
    for q in (1002, np.int64(1002), np.int32(1002), 1002.0, "1002"):
        assert row_of(t, q) == 1, q
    for q in (1.5, np.float32(1.5), np.float64(1.5), "1.5"):
        assert row_of(t, q) == 2, q
    assert row_of(t, -3) == 3 and row_of(t, -3.0) == 3
    assert row_of(t, 1e16) == 4 and row_of(t, 10**16) == 4
    assert row_of(t, 1) == 5  # a number finds the canonical string of an equal number
    for q in ("1002.0", "1.50", "1", "-3.0", "10000000000000000"):  # but strings match strings exactly
        assert row_of(t, q) is None, q


def test_genuine_strings_stay_exact():
    t = table(["#na#", "007", "7.50", "+1", "abc", " 8"])
    for q in (7, "7", 7.0, np.int64(7), 7.5, "7.5", 1, 8, "8"):
        assert row_of(t, q) is None, q
    assert row_of(t, "007") == 1 and row_of(t, "7.50") == 2 and row_of(t, "+1") == 3 and row_of(t, " 8") == 5


def test_bools_are_their_own_values():
    bools = table(["#na#", False, True])
    for q in (True, np.bool_(True), "True"):
        assert row_of(bools, q) == 2, q
    for q in (1, 1.0, "1", np.int64(1), 0, "0"):
        assert row_of(bools, q) is None, q
    ints = table(["#na#", 0, 1])
    for q in (True, False, np.bool_(True), "True"):
        assert row_of(ints, q) is None, q
    v1 = table(["#na#", "False", "True"])  # fastai 1 stores bool classes as strings
    assert row_of(v1, True) == 2 and row_of(v1, np.bool_(False)) == 1 and row_of(v1, 1) is None


def test_nan_matches_nothing():
    t = table(["#na#", 1.5, float("nan"), "nan"])
    for q in (float("nan"), np.float32("nan"), np.float64("nan")):
        assert row_of(t, q) is None, q
        assert np.array_equal(t.lookup(q, unknown="na"), t.weight[0])
    assert row_of(t, "nan") == 3  # the string 'nan' is a genuine string token
    only_nan = table(["#na#", float("nan")])
    assert row_of(only_nan, "nan") is None and row_of(only_nan, float("nan")) is None


def test_string_form_wins_then_first_row():
    t = table(["#na#", 1, "1.0", "a", "a", 1.0])
    assert row_of(t, 1.0) == 2  # rule 1: the string forms are equal
    assert row_of(t, 1) == 1
    assert row_of(t, "a") == 3  # duplicates: the first row


def test_read_back_vocabulary_holds_string_forms():
    strings = ["#na#", "7", "2.5", "True"]
    v = Vocabulary(ChunkedStrings(len(strings), lambda a, b: strings[a:b]), unknown_index=0)
    for q, row in ((7, 1), ("7", 1), (7.0, 1), (np.int64(7), 1), (2.5, 2), (np.float32(2.5), 2), (True, 3)):
        assert v.index(q) == row, q
    for q in ("7.0", "2.50", 1, "nan"):
        assert v.index(q) is None, q


def test_numeric_index_is_built_only_on_a_miss():
    v = Vocabulary(["#na#"] + [str(i) for i in range(1000)], unknown_index=0)
    assert v.index("17") == 18 and v.index(17) == 18 and v.index(np.int64(17)) == 18
    assert v.index("word") is None and v.index("17.0") is None  # strings match strings: no numbers needed
    assert v._numeric is None
    assert v.index(17.0) == 18
    assert v._numeric is not None


# --- real fixtures --------------------------------------------------------------------------------

def _fixture(rel: str) -> tuple[converter.EmbeddingModel, dict[str, list[str]]]:
    """The model and, per table name, the truth's tokens (string forms, row order)."""
    path = FIXTURES / rel
    model = converter.load(path)
    truth = json.loads((path.parent / f"truth.{path.name}.json").read_text())
    by_key = {t["source_key"]: t["vocab"] for t in truth["tables"] if t.get("vocab")}
    return model, {n: by_key[t.weight_key] for n, t in model.tables.items() if t.weight_key in by_key}


def _check_rows(t: EmbeddingTable, tokens: list[str], forms) -> None:
    """Every token (and each of ``forms(string)``) finds the truth's row, with that row's vector."""
    assert t.vocab is not None and len(t.vocab) == len(tokens)
    w = t.weight
    for row, s in enumerate(tokens):
        for q in (s, *forms(s)):
            assert t.vocab.index(q) == row, (t.name, q)
            assert np.array_equal(t.lookup(q), w[row]), (t.name, q)
            assert np.array_equal(t.lookup(q, unknown="na"), w[row]), (t.name, q)
    for bad in ("typo", "", "#NA#"):
        with pytest.raises(KeyError, match=f"not in table '{t.name}'"):
            t.lookup(bad)
        assert np.array_equal(t.lookup(bad, unknown="na"), w[t.vocab.unknown_index])


def _int_forms(s: str):
    if s == "#na#":
        return ()
    n = int(s)
    return (n, np.int16(n), np.int64(n), float(n), np.float64(n))


def _bool_forms(s: str):
    return () if s == "#na#" else ({"True": True, "False": False}[s], np.bool_(s == "True"))


def _no_forms(s: str):
    return ()


@pytest.mark.parametrize("gen", ["fastai1", "fastai2"])
def test_collab_dot_export(gen):
    model, truth = _fixture(f"{gen}/collab_dot_export.pkl")
    assert set(truth) == {"userId", "title"}
    u = model.tables["userId"]
    _check_rows(u, truth["userId"], _int_forms)
    _check_rows(model.tables["title"], truth["title"], _no_forms)
    with pytest.raises(KeyError, match=r"803\.0 is not in table 'userId'"):
        u.lookup(803.0)
    assert u.vocab is not None
    with pytest.raises(KeyError, match=r"did you mean '130'"):
        u.lookup("130.0" if gen == "fastai1" else "0130")
    if gen == "fastai2":  # numpy int classes: '130.0' parses to the int 130
        assert u.vocab.index("130.0") == truth["userId"].index("130")
    else:  # fastai 1: string classes match strings exactly
        assert u.vocab.index("130.0") is None
    assert u.vocab.index(True) is None


def test_fastai2_tabular_export():
    model, truth = _fixture("fastai2/tabular_export.pkl")
    _check_rows(model.tables["city"], truth["city"], _no_forms)
    _check_rows(model.tables["size"], truth["size"], _no_forms)
    _check_rows(model.tables["n_kids"], truth["n_kids"], _int_forms)
    for name in ("is_member", "age_na"):
        t = model.tables[name]
        _check_rows(t, truth[name], _bool_forms)
        assert t.vocab is not None and t.vocab.index(1) is None and t.vocab.index(0.0) is None
    city = model.tables["city"]
    assert city.vocab is not None
    assert city.vocab.index("padded") is None and city.vocab.index("  padded  ") == truth["city"].index("  padded  ")


@pytest.mark.parametrize("gen", ["fastai1", "fastai2"])
def test_float_column_classes(gen):
    """The encode fixtures have a float32 column (``discount``): fastai 1 holds ``'0.1'`` strings,
    fastai 2 numpy float32 scalars (printed ``0.1``)."""
    path = FIXTURES / "encode" / gen / "tabular_export.pkl"
    model = converter.load(path)
    classes = json.loads((path.parent / "truth.encode.json").read_text())["classes"]
    d = model.tables["discount"]

    def float_forms(s: str):
        return () if s == "#na#" else (float(s), np.float32(s), np.float64(s))

    _check_rows(d, classes["discount"], float_forms)
    _check_rows(model.tables["n_kids"], classes["n_kids"], _int_forms)
    _check_rows(model.tables["is_member"], classes["is_member"], _bool_forms)
    assert d.vocab is not None and d.vocab.index("0.10") is None and d.vocab.index(0.15) is None


def test_similarity_and_api_keep_matching(tmp_path):
    """``most_similar`` and ``converter.similar`` use the same rules (``'130'``, 130 and 130.0)."""
    path = FIXTURES / "fastai2" / "collab_dot_export.pkl"
    model = converter.load(path)
    u = model.tables["userId"]
    expected = u.most_similar("130", k=3)
    assert u.most_similar(130, k=3) == expected == u.most_similar(130.0, k=3)
    table_name, found = api.similar(path, 130, k=3)
    assert table_name == "userId" and found == expected
    with pytest.raises(KeyError):
        u.most_similar(803, k=3)


def test_lookup_after_round_trip(tmp_path):
    """A vocabulary read back from an output holds string forms; lookups by number still work."""
    src = FIXTURES / "fastai2" / "collab_dot_export.pkl"
    out = tmp_path / "m.safetensors"
    converter.convert(src, out)
    back = converter.load(out)
    orig = converter.load(src)
    u, b = orig.tables["userId"], back.tables["userId"]
    for q in (130, "130", np.int64(130), 130.0):
        assert np.array_equal(b.lookup(q), u.lookup(q))
    with pytest.raises(KeyError):
        b.lookup("typo")
    assert np.array_equal(b.lookup("typo", unknown="na"), u.weight[0])

"""``most_similar`` against a brute-force float64 reference on every fixture and real model with its
truth (the same top k, scores within 1e-5), and its rules: the unknown row and the query's own row
never come back, ties keep row order, zero norms give 0, unknown tokens are KeyErrors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import converter
from converter.errors import UsageError
from converter.ir import EmbeddingTable, Vocabulary
from converter.lazy import InMemory
from converter.similarity import Neighbour, most_similar, nearest, parse_token

from .conftest import FIXTURES, real_model_truths


def truths() -> list[tuple[Path, dict]]:
    """(file, truth) for every fixture (tests/fixtures/fastai*/truth.*.json) and real model."""
    out = []
    for truth_path in sorted(FIXTURES.glob("fastai*/truth.*.json")):
        truth = json.loads(truth_path.read_text())
        out.append((truth_path.parent / truth["file"], truth))
    return out + real_model_truths()


ALL = truths()
IDS = [f"{p.parent.name}/{p.name}" for p, _ in ALL]
LABELLED = [(p, t) for p, t in ALL if any(x.get("vocab") for x in t["tables"])]  # truth lists a vocabulary
LABELLED_IDS = [f"{p.parent.name}/{p.name}" for p, _ in LABELLED]


def load(path: Path, truth: dict) -> converter.EmbeddingModel:
    sidecars = {k: str(path.parent / spec) for k, spec in (truth.get("sidecars") or {}).items()}
    return converter.load(path, vocab=sidecars)


def table(weight: np.ndarray, tokens: list | None = None, unknown_index: int | None = None) -> EmbeddingTable:
    vocab = Vocabulary(tokens, unknown_index=unknown_index) if tokens is not None else None
    return EmbeddingTable("t", "item", InMemory(np.asarray(weight)), vocab)


def reference(t: EmbeddingTable, q: np.ndarray, excluded: set[int]) -> tuple[list[int], np.ndarray]:
    """(every eligible row, best first with ties by lower row; float64 cosine of every row)."""
    w = np.asarray(t.weight, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    norms = np.linalg.norm(w, axis=1)
    qn = float(np.linalg.norm(q))
    sims = np.zeros(len(w))
    ok = norms > 0
    if qn > 0:
        sims[ok] = (w[ok] @ q) / (norms[ok] * qn)
    rows = np.array([r for r in range(len(w)) if r not in excluded], dtype=np.int64)
    order = rows[np.lexsort((rows, -sims[rows]))] if len(rows) else rows
    return order.tolist(), sims


def assert_matches(got: list[Neighbour], t: EmbeddingTable, q: np.ndarray, excluded: set[int], k: int) -> None:
    order, sims = reference(t, q, excluded)
    expected = order[:k]
    got_rows = [n.row for n in got]
    assert len(got_rows) == len(expected)
    assert not excluded & set(got_rows)
    for n in got:
        assert isinstance(n.similarity, float)
        assert abs(n.similarity - sims[n.row]) <= 1e-5, (n, sims[n.row])
        expected_token = t.vocab.strings[n.row] if t.vocab is not None else n.row
        assert n.token == expected_token
    # The same rows in the same order, reordered only within exact float64 ties (and, at the k-th
    # place, any of the rows tied with it): wherever the rows differ, their scores are equal.
    got_a, exp_a = np.array(got_rows, dtype=np.int64), np.array(expected, dtype=np.int64)
    assert len(set(got_rows)) == len(got_rows)
    differ = got_a != exp_a
    assert (sims[got_a[differ]] == sims[exp_a[differ]]).all(), (got_rows, expected)


def first_rows(t: EmbeddingTable, limit: int = 40) -> list[int]:
    """Rows a token query can name (the first row of each label), at most ``limit`` spread out."""
    assert t.vocab is not None
    rows = sorted({t.vocab.index(s) for s in t.vocab.strings})  # type: ignore[type-var]
    if len(rows) > limit:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).astype(int)]
    return rows


@pytest.mark.parametrize("path,truth", LABELLED, ids=LABELLED_IDS)
def test_by_token_matches_brute_force(path, truth):
    model = load(path, truth)
    labelled = [t for t in model.tables.values() if t.vocab is not None]
    assert labelled
    for t in labelled:
        unknown = t.vocab.unknown_index
        for row in first_rows(t):
            token = t.vocab.tokens[row]
            excluded = {row} | ({unknown} if unknown is not None else set())
            q = np.asarray(t.weight[row], dtype=np.float64)
            for k in (1, 5, t.rows + 3):
                got = nearest(t, token, k)
                assert_matches(got, t, q, excluded, k)
                assert t.most_similar(token, k) == [(n.token, n.similarity) for n in got]
                assert len(got) == min(k, t.rows - len(excluded))


@pytest.mark.parametrize("path,truth", ALL, ids=IDS)
def test_by_vector_matches_brute_force(path, truth):
    rng = np.random.default_rng(0)
    model = load(path, truth)
    for t in model.tables.values():
        unknown = t.vocab.unknown_index if t.vocab is not None else None
        excluded = {unknown} if unknown is not None else set()
        queries = [rng.standard_normal(t.dim), np.asarray(t.weight[t.rows // 2], dtype=np.float64),
                   rng.standard_normal(t.dim).astype(np.float32).tolist()]
        for q in queries:
            for k in (3, t.rows + 1):
                got = nearest(t, q, k)
                assert_matches(got, t, np.asarray(q), excluded, k)
        # a vector query leaves its twin row in: it is the best match
        row = t.rows // 2
        if row != unknown and np.linalg.norm(np.asarray(t.weight[row], dtype=np.float64)) > 0:
            best = nearest(t, np.asarray(t.weight[row]), 1)[0]
            assert best.similarity == pytest.approx(1.0, abs=1e-6)


def test_unknown_row_and_query_row_never_returned():
    model = converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl")
    t = model.tables["userId"]
    assert t.vocab is not None and t.vocab.unknown_index == 0
    for token in t.vocab.tokens[1:]:
        got = t.most_similar(token, k=t.rows)
        labels = [lab for lab, _ in got]
        assert "#na#" not in labels and str(token) not in labels
        assert len(got) == t.rows - 2
    # even a query for the unknown row itself (its label is in the vocabulary)
    got = nearest(t, "#na#", t.rows)
    assert 0 not in [n.row for n in got] and len(got) == t.rows - 1


def test_k_larger_than_rows_and_k_zero():
    t = table(np.eye(3, dtype=np.float32), ["#na#", "a", "b"], unknown_index=0)
    assert [tok for tok, _ in t.most_similar("a", k=100)] == ["b"]
    assert t.most_similar("a", k=0) == []
    assert t.most_similar(np.ones(3), k=100) == [("a", pytest.approx(1 / np.sqrt(3))),
                                                  ("b", pytest.approx(1 / np.sqrt(3)))]
    with pytest.raises(ValueError):
        t.most_similar("a", k=-1)


def test_duplicate_tokens():
    """fastai's xxfake padding labels several rows: a query by it is its first row; the other rows
    that share the label are ordinary results."""
    model = converter.load(FIXTURES / "fastai2" / "text_lm_export.pkl")
    t = model.tables["token"]
    assert "xxfake" in t.vocab.duplicates()
    fakes = [i for i, s in enumerate(t.vocab.strings) if s == "xxfake"]
    got = nearest(t, "xxfake", t.rows)
    rows = [n.row for n in got]
    assert fakes[0] not in rows and set(fakes[1:]) <= set(rows)
    assert_matches(got, t, np.asarray(t.weight[fakes[0]], dtype=np.float64), {fakes[0], 0}, t.rows)
    # a synthetic table where the duplicates are identical rows: equal scores, lower row first
    w = np.array([[0, 0, 1], [1, 0, 0], [0.9, 0.1, 0], [0.9, 0.1, 0], [0.9, 0.1, 0]], dtype=np.float32)
    d = table(w, ["#na#", "q", "dup", "dup", "dup"], unknown_index=0)
    got = nearest(d, "q", 3)
    assert [n.row for n in got] == [2, 3, 4] and [n.token for n in got] == ["dup"] * 3
    assert got[0].similarity == got[1].similarity == got[2].similarity


def test_ties_keep_row_order_across_chunks_and_k():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5000, 8)).astype(np.float32)
    w[::7] = w[3]  # many exact ties, straddling every chunk and the k boundary
    t = table(w, [f"t{i}" for i in range(5000)])
    for k in (1, 10, 500, 714, 715, 800):
        whole = nearest(t, w[3] * 2, k, chunk_rows=10_000)
        for chunk_rows in (1, 7, 100, 1024):
            assert nearest(t, w[3] * 2, k, chunk_rows=chunk_rows) == whole
        assert_matches(whole, t, w[3].astype(np.float64), set(), k)
        tied = [n.row for n in whole if n.row % 7 == 0 or n.row == 3]
        assert tied == sorted(tied)


def test_zero_vectors_score_zero_not_nan():
    w = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [-1, 0, 0]], dtype=np.float32)
    t = table(w, ["#na#", "a", "zero", "b", "c"], unknown_index=0)
    assert t.most_similar("a", k=4) == [("zero", 0.0), ("b", 0.0), ("c", -1.0)]
    # a zero row as the query: everything scores 0, in row order
    assert t.most_similar("zero", k=10) == [("a", 0.0), ("b", 0.0), ("c", 0.0)]
    assert t.most_similar(np.zeros(3), k=10) == [("a", 0.0), ("zero", 0.0), ("b", 0.0), ("c", 0.0)]
    for _, s in t.most_similar("b", k=10):
        assert not np.isnan(s)


def test_non_finite_rows_rank_last():
    w = np.array([[1, 0], [np.nan, 1], [0.5, 0.5], [np.inf, 0], [-1, 0]], dtype=np.float32)
    t = table(w, ["a", "nan", "b", "inf", "c"])
    got = t.most_similar(np.array([1.0, 0.0]), k=5)
    assert [tok for tok, _ in got[:3]] == ["a", "b", "c"]
    assert {tok for tok, _ in got[3:]} == {"nan", "inf"} and all(np.isnan(s) for _, s in got[3:])
    with pytest.raises(ValueError, match="NaN"):
        t.most_similar(np.array([np.nan, 0.0]))


def test_unknown_token_is_a_key_error_naming_the_table():
    model = converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl")
    t = model.tables["userId"]
    with pytest.raises(KeyError, match="userId"):
        t.most_similar("no such user")
    unlabelled = converter.load(FIXTURES / "fastai2" / "collab_dot.pth").tables["user"]
    with pytest.raises(KeyError, match="user"):
        unlabelled.most_similar("3")
    assert len(unlabelled.most_similar(unlabelled.weight[3], k=2)) == 2
    assert unlabelled.most_similar(unlabelled.weight[3], k=1)[0][0] == 3  # the row number labels it


def test_vector_dim_must_match():
    t = table(np.eye(4, dtype=np.float32), list("abcd"))
    for bad in (np.ones(3), np.ones(5), np.ones((1, 4)), [1.0, 2.0]):
        with pytest.raises(ValueError, match="dim 4"):
            t.most_similar(bad)


def test_tokens_match_by_string_form():
    model = converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl")
    t = model.tables["userId"]
    assert isinstance(t.vocab.tokens[1], int)
    text = str(t.vocab.tokens[1])
    assert t.most_similar(text) == t.most_similar(t.vocab.tokens[1])
    assert parse_token(t, text) == 1
    with pytest.raises(UsageError, match="userId") as err:
        parse_token(t, "nobody")
    assert err.value.exit_code == 2
    unlabelled = converter.load(FIXTURES / "fastai2" / "collab_dot.pth").tables["user"]
    with pytest.raises(UsageError, match="no vocabulary"):
        parse_token(unlabelled, "3")
    bools = converter.load(FIXTURES / "fastai2" / "tabular_export.pkl").tables["is_member"]
    assert parse_token(bools, "True") == bools.vocab.tokens.index(True)


def test_float16_and_read_back_tables(tmp_path):
    """A float16 source and a memory-mapped embconv output (lazy vocabulary) give the same answer."""
    src = converter.load(FIXTURES / "fastai2" / "collab_dot_fp16.pth")
    t = src.tables["user"]
    q = np.asarray(t.weight[4], dtype=np.float64)
    assert_matches(nearest(t, q, 10), t, q, set(), 10)
    model = converter.load(FIXTURES / "fastai2" / "collab_dot_export.pkl")
    converter.save(model, tmp_path / "out.safetensors")
    back = converter.load(tmp_path / "out.safetensors")
    for name, orig in model.tables.items():
        for token in orig.vocab.strings[1:6]:
            assert back.tables[name].most_similar(token, 7) == orig.most_similar(token, 7)


def test_most_similar_module_function_is_the_method():
    t = converter.load(FIXTURES / "fastai2" / "tabular_export.pkl").tables["city"]
    assert most_similar(t, "Berlin", 3) == t.most_similar("Berlin", k=3)


def test_the_similar_command_prints_what_the_library_finds(tmp_path, capsys):
    """`embconv similar SRC TOKEN --json` finds the table holding TOKEN and lists table.most_similar."""
    from converter.cli import main

    src = Path(__file__).parent / "fixtures" / "fastai2" / "collab_dot_export.pkl"
    model = converter.load(src)
    expected = model.tables["title"].most_similar("Die Hard (1988)", k=4)
    assert main(["similar", str(src), "Die Hard (1988)", "-k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["table"] == "title"
    assert [(d["token"], d["similarity"]) for d in out["similar"]] == [(str(t), s) for t, s in expected]
    assert main(["similar", str(src), "not a title"]) == 2
    assert "in no table's vocabulary" in capsys.readouterr().err
    assert main(["similar", str(src), "130", "--table", "title"]) == 2

"""The way back from word2vec keys (issue 13, item 17): ``converter.load_keyed_vectors`` loads an
embconv ``.vec``/``.bin`` into gensim ``KeyedVectors`` under the original tokens — spaces, ``%``,
newlines, the empty token, unicode, lone surrogates and repeated tokens (``xxfake``) — and
``converter.decode_key`` undoes one key's escaping."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import converter
from converter.errors import UnreadableInputError, UsageError
from converter.saving import save
from tests._writer_models import TRICKY_TOKENS, model, table, tricky_model

pytest.importorskip("gensim")

FIXTURES = Path(__file__).parent / "fixtures"
V2_LM = FIXTURES / "fastai2" / "text_lm_export.pkl"


def _check(kv, t, drop: bool) -> None:
    """Row i of the file under its original token; kv[token] is the token's first row."""
    rows = list(range(t.rows))
    unk = t.vocab.unknown_index if t.vocab is not None else None
    if drop and unk is not None:
        rows.remove(unk)
    tokens = [t.vocab.strings[r] for r in rows] if t.vocab is not None else [str(r) for r in rows]
    assert list(kv.index_to_key) == tokens
    w = np.asarray(t.weight, dtype=np.float32)
    assert np.array_equal(kv.vectors.view(np.uint32), w[rows].view(np.uint32))
    for token in tokens:
        first = tokens.index(token)
        assert np.array_equal(kv[token].view(np.uint32), w[rows[first]].view(np.uint32)), (t.name, token)
        assert token in kv


@pytest.mark.parametrize("ext", [".vec", ".bin"])
@pytest.mark.parametrize("drop", [False, True])
def test_every_vector_under_its_original_token(tmp_path, ext, drop):
    m = tricky_model()
    save(m, tmp_path / f"m{ext}", allow_unlabelled=True, drop_unknown=drop)
    for name, t in m.tables.items():
        kv = converter.load_keyed_vectors(tmp_path / f"m.{name}{ext}")
        _check(kv, t, drop)
    words = converter.load_keyed_vectors(tmp_path / f"m.words{ext}")
    for token in ("new york", "line\nbreak", "", "caf\u00e9 \u6771\u4eac", "50%", "%25", "\ud800lone", "xxfake#2"):
        assert token in words.key_to_index, token
    assert words.index_to_key.count("xxfake") == 2  # both rows of the repeated token, under the token
    assert words.most_similar("new york", topn=3)  # gensim's own methods work on the decoded keys


def test_a_real_fastai_vocabulary_with_xxfake_padding(tmp_path):
    src = converter.load(V2_LM)
    (t,) = src.tables.values()
    assert list(t.vocab.strings).count("xxfake") > 1
    out = tmp_path / "lm.bin"
    converter.convert(V2_LM, out)
    _check(converter.load_keyed_vectors(out), t, drop=False)


def test_only_the_tokens_that_needed_it_change(tmp_path):
    tokens = ["#na#", "xxfake", "xxfake", "xxfake#2", "a%b", "%41"]
    m = model(table("t", len(tokens), 3, vocab=tokens))
    save(m, tmp_path / "t.vec")
    kv = converter.load_keyed_vectors(tmp_path / "t.vec")
    assert kv.index_to_key == tokens


def test_decode_key():
    assert converter.decode_key("new%20york") == "new york"
    assert converter.decode_key("50%25") == "50%"
    assert converter.decode_key("%") == ""
    assert converter.decode_key("line%0Abreak") == "line\nbreak"
    assert converter.decode_key("%ED%A0%80lone") == "\ud800lone"
    assert converter.decode_key("xxfake#2") == "xxfake#2"
    assert converter.decode_key("xxfake#3", renamed=True) == "xxfake"
    from converter.writers.tokens import escape

    for token in TRICKY_TOKENS:
        assert converter.decode_key(escape(token)) == token


def test_without_a_sidecar_or_gensim(tmp_path, monkeypatch):
    m = model(table("t", 3, 2, vocab=["#na#", "a b", "c"]))
    save(m, tmp_path / "t.vec")
    (tmp_path / "t.vec.manifest.json").unlink()
    with pytest.raises(UnreadableInputError, match="sidecar"):
        converter.load_keyed_vectors(tmp_path / "t.vec")
    with pytest.raises(UsageError, match="no such file"):
        converter.load_keyed_vectors(tmp_path / "missing.vec")
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(UsageError, match="pip install gensim"):
        converter.load_keyed_vectors(tmp_path / "t.vec")

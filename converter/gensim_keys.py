"""The way back from word2vec keys to the original tokens, for gensim users.

embconv writes word2vec keys so that gensim reads one unique key per row (writers/tokens.py):
``%``, whitespace, control characters and invalid Unicode are percent-encoded as UTF-8, the empty
token is written as ``%``, and a repeated token gets ``#2``, ``#3`` … — the rows so renamed are
listed in the sidecar ``F.manifest.json`` (``renamed_rows``, numbered as the source numbers them;
``dropped_rows`` the rows ``--drop-unknown`` left out). ``decode_key`` undoes the escaping of one
key; ``load_keyed_vectors`` loads a whole file into gensim with every row under its original token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UnreadableInputError, UsageError
from .writers import tokens as _tokens
from .writers.word2vec import BINARY, TEXT, read_sidecar, sidecar_path


def decode_key(key: str, renamed: bool = False) -> str:
    """The token a word2vec key written by embconv stands for: each run of ``%XX`` back to its
    UTF-8 bytes (a lone surrogate comes back as the lone surrogate it was), ``%`` alone to the
    empty token. ``renamed`` (the key's row is in the sidecar's ``renamed_rows``) also strips the
    ``#k`` that made a repeated token unique: ``decode_key("xxfake#2", renamed=True) == "xxfake"``,
    while a real token ``xxfake#2`` (not renamed) stays as it is."""
    if not isinstance(key, str):
        raise UsageError(f"decode_key wants a str key, got {type(key).__name__}")
    return _tokens.original_of(key, renamed)


def load_keyed_vectors(path: str | os.PathLike) -> Any:
    """Load an embconv word2vec file (``.vec``/``.txt`` text or ``.bin`` binary, with its sidecar
    ``path.manifest.json`` beside it) into a ``gensim.models.KeyedVectors`` whose keys are the
    original tokens.

    Row ``i`` of ``kv.vectors`` is row ``i`` of the file, and ``kv.index_to_key[i]`` is its original
    token, duplicates included (fastai's repeated ``xxfake`` appears once per row). ``kv[token]``
    is the token's first row — as gensim itself, and embconv's ONNX lookup, treat a repeated key.
    A table written without a vocabulary has its row numbers as keys (strings ``"0"``, ``"1"`` …).

    Needs gensim (``pip install gensim``; UsageError without it). UnreadableInputError when the
    sidecar is missing or does not describe the file (not an embconv output: load it with
    ``KeyedVectors.load_word2vec_format`` itself)."""
    p = Path(path)
    try:
        from gensim.models import KeyedVectors  # type: ignore[import-untyped]
    except ImportError:
        raise UsageError("load_keyed_vectors needs gensim: pip install gensim") from None
    if not p.is_file():
        raise UsageError("no such file", path=str(p))
    side = read_sidecar(p)
    if side is None:
        raise UnreadableInputError(f"no sidecar {sidecar_path(p).name} beside it: not an embconv word2vec file "
                                   "(or its sidecar was not kept with it); load it with "
                                   "KeyedVectors.load_word2vec_format", path=str(p))
    info = side.get("embconv.word2vec") if isinstance(side, dict) else None
    if not isinstance(info, dict) or info.get("format") not in (TEXT, BINARY):
        raise UnreadableInputError("sidecar's embconv.word2vec is malformed", path=str(p))
    if info.get("escaping", "percent-1") != "percent-1":
        raise UnreadableInputError(f"sidecar names key escaping {info.get('escaping')!r}, which this embconv "
                                   "does not know", path=str(p))
    dropped, renamed = info.get("dropped_rows", []), info.get("renamed_rows", [])
    if not (isinstance(dropped, list) and isinstance(renamed, list)
            and all(isinstance(r, int) and not isinstance(r, bool) for r in dropped + renamed)):
        raise UnreadableInputError("sidecar's dropped_rows / renamed_rows are not lists of row numbers", path=str(p))
    try:
        kv = KeyedVectors.load_word2vec_format(str(p), binary=info["format"] == BINARY)
    except (ValueError, UnicodeDecodeError, EOFError) as e:
        raise UnreadableInputError(f"gensim cannot read it: {e}", path=str(p)) from e
    keys = list(kv.index_to_key)
    renamed_set, gone = set(renamed), sorted(set(dropped))

    def source_row(i: int) -> int:  # the file's row i as the source numbers it
        for d in gone:
            if d <= i:
                i += 1
        return i

    if info.get("row_labels"):
        tokens = keys
    else:
        tokens = [decode_key(k, source_row(i) in renamed_set) for i, k in enumerate(keys)]
    first: dict[str, int] = {}
    for i, t in enumerate(tokens):
        first.setdefault(t, i)
    kv.index_to_key = tokens
    kv.key_to_index = first
    return kv


__all__ = ["decode_key", "load_keyed_vectors"]

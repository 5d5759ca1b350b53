"""How each fastai generation labels embedding rows (spec fastai-formats §3–7)."""

from __future__ import annotations

from typing import Any

from ..ir import Vocabulary

NA = "#na#"
UNKNOWN_TEXT_TOKENS = ("xxunk", "_unk_", "<unk>")


def categorical_vocab(tokens: list[Any] | None, source: str) -> Vocabulary | None:
    """v1/v2 categorical classes: row 0 is ``#na#`` (NaN and unseen values), the rest sorted
    training values — kept with their original types (v1 strings, v2 numpy scalars)."""
    if tokens is None:
        return None
    unknown = 0 if tokens and isinstance(tokens[0], str) and tokens[0] == NA else None
    return Vocabulary(tokens, unknown_index=unknown, source=source)


def text_vocab(itos: list[Any], source: str) -> Vocabulary:
    """Text vocabularies: unknown words map to ``xxunk`` (v1/v2) or ``_unk_`` (v0.7)."""
    unknown = None
    for tok in UNKNOWN_TEXT_TOKENS:
        if tok in itos:
            unknown = itos.index(tok)
            break
    return Vocabulary(itos, unknown_index=unknown, source=source)

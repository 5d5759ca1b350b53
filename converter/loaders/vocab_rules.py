"""How fastai labels rows, for the rules more than one generation shares (each generation's own
rules are in its module)."""

from __future__ import annotations

from typing import Any

from ..ir import Vocabulary
from .generations import NA, unknown_text_tokens


def categorical_vocab(tokens: list[Any] | None, source: str) -> Vocabulary | None:
    """Categorical classes as an export stores them: row 0 is ``#na#`` (NaN and unseen
    values), the rest sorted training values — kept with their original types (fastai 1
    strings, fastai 2 numpy scalars)."""
    if tokens is None:
        return None
    unknown = 0 if tokens and isinstance(tokens[0], str) and tokens[0] == NA else None
    return Vocabulary(tokens, unknown_index=unknown, source=source)


def text_vocab(itos: list[Any], source: str) -> Vocabulary:
    """A text vocabulary: unknown words map to the generation's unknown token (``xxunk`` …)."""
    unknown = None
    for tok in unknown_text_tokens():
        if tok in itos:
            unknown = itos.index(tok)
            break
    return Vocabulary(itos, unknown_index=unknown, source=source)

"""Vocabularies from beside the file (``--vocab TABLE=SPEC``), for files that carry none.

SPEC is one of: a pickled list (``itos.pkl``, read with the restricted unpickler), a text file
(one token a line), a JSON list, a CSV column (``ratings.csv:userId``, rebuilt the way the
generation that trained the model built it), or an ``export.pkl`` of the same learner."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import EmbconvError, UnreadableInputError, UsageError
from ..ir import EmbeddingModel, EmbeddingTable, Vocabulary
from ..pickle import open_model_file
from . import generations
from .generations import NA
from .text_lines import TextLines
from .training_data import column_values
from .vocab_rules import text_vocab

_PLACEHOLDER = re.compile(r"(cat|table)_\d+|user|item")


def parse_specs(specs: Any) -> dict[str, str]:
    """``{"table": "spec"}`` from a dict, or from ``["TABLE=SPEC", …]``."""
    if not specs:
        return {}
    if isinstance(specs, dict):
        return {str(k): str(v) for k, v in specs.items()}
    out: dict[str, str] = {}
    for item in specs:
        if "=" not in item:
            raise UsageError(f"--vocab wants TABLE=SPEC, got {item!r}")
        table, spec = item.split("=", 1)
        out[table.strip()] = spec.strip()
    return out


def find_table(model: EmbeddingModel, ref: str) -> EmbeddingTable:
    """A table by name, by weight key, or by weight key without ``.weight``."""
    for t in model.tables.values():
        if ref in (t.name, t.weight_key, t.weight_key.removesuffix(".weight")) or ref in t.tied_keys:
            return t
    names = ", ".join(model.tables) or "none"
    raise UsageError(f"--vocab names table {ref!r}, which is not in the file (tables: {names})")


def apply_sidecars(model: EmbeddingModel, specs: dict[str, str]) -> None:
    """Attach (and name) the vocabularies the user supplied. Sizes must fit the tables."""
    for ref, spec in specs.items():
        table = find_table(model, ref)
        vocab, column = load_sidecar(spec, table, model)
        if len(vocab) != table.rows:
            raise UnreadableInputError(
                f"--vocab {ref}={spec}: the vocabulary has {len(vocab)} entries but table "
                f"{table.name} has {table.rows} rows"
            )
        table.vocab = vocab
        model.drop_warnings("no-vocabulary", [table.name])
        if column and _PLACEHOLDER.fullmatch(table.name) and column not in model.tables:
            model.rename_table(table.name, column)


def load_sidecar(spec: str, table: EmbeddingTable, model: EmbeddingModel) -> tuple[Vocabulary, str | None]:
    """(vocabulary, CSV column name or None)."""
    path, column = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, column = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise UsageError(f"--vocab {spec}: no such file {path!r}")
    source = os.path.basename(spec)
    if column is not None:
        return column_vocab(path, column, table, model.source.generation), column
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return _pickled(path, table, model, source), None
    if path.endswith(".json") or head.lstrip()[:1] == b"[":
        try:
            with open(path, encoding="utf-8") as f:
                tokens = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise UnreadableInputError(f"{path}: not a JSON list ({e})") from None
        if not isinstance(tokens, list):
            raise UnreadableInputError(f"{path}: the JSON is not a list")
        return _vocab_for(table, tokens, f"sidecar:{source}"), None
    return _vocab_for(table, TextLines(path), f"sidecar:{source}"), None


def _vocab_for(table: EmbeddingTable, tokens: Sequence[Any], source: str) -> Vocabulary:
    if table.role == "token":
        return text_vocab(list(tokens), source)
    unknown = 0 if tokens and tokens[0] == NA else None
    return Vocabulary(tokens, unknown_index=unknown, source=source)


def _pickled(path: str, table: EmbeddingTable, model: EmbeddingModel, source: str) -> Vocabulary:
    with open_model_file(path) as mf:
        root = mf.root
        if isinstance(root, list):
            return _vocab_for(table, list(root), f"sidecar:{source}")
    # An export of the same learner: take the vocabulary of the matching table.
    from . import load  # local import: load() uses this module

    try:
        other = load(path)
    except EmbconvError as e:
        raise UnreadableInputError(f"--vocab {path}: {e.message}") from None
    for t in other.tables.values():
        if t.weight_key.removeprefix("module.") == table.weight_key.removeprefix("module.") and t.vocab is not None:
            v = t.vocab
            return Vocabulary(v.tokens, unknown_index=v.unknown_index, source=f"sidecar:{source} ({v.source})",
                              strings=v.strings)
    raise UnreadableInputError(f"--vocab {path}: no vocabulary for {table.weight_key} in that file")


def column_vocab(path: str, column: str, table: EmbeddingTable, generation: str) -> Vocabulary:
    """A CSV column's values labelled the way ``generation`` (the one that trained the model)
    numbered them (each generation's ``column_vocab`` rule)."""
    values = column_values(path, column)
    source = f"sidecar:{os.path.basename(path)}:{column} ({generation} rule)"
    return generations.get(generation).column_vocab(values, table.role, source)

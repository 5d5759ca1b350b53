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
WHOLE_MODEL = "*"  # the key of a spec that labels every table (``--vocab export.pkl``)


def parse_specs(specs: Any) -> dict[str, str]:
    """``{"table": "spec"}`` from a dict, from ``["TABLE=SPEC", …]``, or from a bare ``SPEC`` /
    ``["SPEC"]`` (an export of the same learner, for every table: key ``WHOLE_MODEL``)."""
    if not specs:
        return {}
    if isinstance(specs, (str, os.PathLike)):
        specs = [os.fspath(specs)]
    if isinstance(specs, dict):
        return {str(k): str(v) for k, v in specs.items()}
    out: dict[str, str] = {}
    for item in specs:
        item = os.fspath(item)
        if "=" not in item or os.path.isfile(item):
            if WHOLE_MODEL in out:
                raise UsageError(f"--vocab {item}: only one export can label every table")
            out[WHOLE_MODEL] = item
            continue
        table, spec = item.split("=", 1)
        out[table.strip()] = spec.strip()
    return out


def find_table(model: EmbeddingModel, ref: str) -> EmbeddingTable:
    """A table by name (or the placeholder it had), by weight key, or by weight key without
    ``.weight``."""
    if ref in model.tables:
        return model.tables[ref]
    for t in model.tables.values():
        if ref in (t.weight_key, t.weight_key.removesuffix(".weight")) or ref in t.tied_keys:
            return t
    names = ", ".join(model.tables) or "none"
    raise UsageError(f"--vocab names table {ref!r}, which is not in the file (tables: {names})")


def apply_sidecars(model: EmbeddingModel, specs: dict[str, str]) -> None:
    """Attach (and name) the vocabularies the user supplied. Sizes must fit the tables."""
    for ref, spec in specs.items():
        if ref == WHOLE_MODEL:
            apply_export(model, spec)
            continue
        table = find_table(model, ref)
        vocab, column = load_sidecar(spec, table, model)
        if len(vocab) != table.rows:
            raise UnreadableInputError(f"--vocab {ref}={spec}: {_size_mismatch(model, table, len(vocab), column)}")
        table.vocab = vocab
        model.drop_warnings("no-vocabulary", [table.name])
        if column and _PLACEHOLDER.fullmatch(table.name) and column not in model.tables:
            model.rename_table(table.name, column)


def _size_mismatch(model: EmbeddingModel, table: EmbeddingTable, n: int, column: str | None) -> str:
    msg = f"the vocabulary has {n:,} entries but table {table.name} has {table.rows:,} rows"
    fits = [t.name for t in model.tables.values() if t is not table and t.rows == n]
    if fits:
        return f"{msg}; it fits table {fits[0]} ({n:,} rows): is it that table's column?"
    if column is not None and n > table.rows and not generations.get(model.source.generation).vocab_from_full_data:
        return (f"{msg}: fastai fits the vocabulary on the training split only; rebuild it with --data FILE "
                "--split seed=S (the seed given to from_df) or valid_idx=A:B")
    return msg


def apply_export(model: EmbeddingModel, path: str) -> None:
    """Label every table from an export of the same learner: the two files must have the same
    tables (paired by weight key, or by role where the keys differ, e.g. ``encoder.weight`` of
    ``save_encoder`` and ``0.encoder.weight`` of the export) with the same row counts; anything else
    is another learner and is refused."""
    other = _load_export(path)
    pairs = pair_tables(model, other)
    if pairs is None:
        def shape(m: EmbeddingModel) -> str:
            return ", ".join(f"{t.name} {t.rows:,}×{t.dim}" for t in m.tables.values())
        raise UnreadableInputError(f"--vocab {path}: its tables ({shape(other)}) do not match this file's "
                                   f"({shape(model)}): an export of another learner")
    for _, theirs in pairs:
        if theirs.vocab is None:
            raise UnreadableInputError(f"--vocab {path}: it has no vocabulary for {theirs.weight_key} either")
    for table, theirs in pairs:
        v = theirs.vocab
        assert v is not None
        table.vocab = Vocabulary(v.tokens, unknown_index=v.unknown_index, strings=v.strings,
                                 source=f"sidecar:{os.path.basename(path)} ({v.source})")
        model.drop_warnings("no-vocabulary", [table.name])
    for table, theirs in pairs:
        if table.name != theirs.name and _PLACEHOLDER.fullmatch(table.name) and theirs.name not in model.tables:
            model.rename_table(table.name, theirs.name)
    dims = [t.name for t, o in pairs if t.dim != o.dim]
    if dims:
        model.warn("labels", f"--vocab {os.path.basename(path)}: its tables have other widths ({', '.join(dims)}): "
                   "a learner trained on the same data processing, not this one; its labels fit this file's row counts")


def pair_tables(model: EmbeddingModel, other: EmbeddingModel) -> list[tuple[EmbeddingTable, EmbeddingTable]] | None:
    """Each of ``model``'s tables with ``other``'s table of the same weight key (``module.``
    stripped) — or, failing that, of the same role when each file has one table of that role —
    with the same number of rows; None unless every table pairs, one to one."""
    if len(model.tables) != len(other.tables):
        return None
    def key(t: EmbeddingTable) -> str:
        return t.weight_key.removeprefix("module.")
    by_key = {key(t): t for t in other.tables.values()}
    pairs: list[tuple[EmbeddingTable, EmbeddingTable]] = []
    for t in model.tables.values():
        theirs = by_key.get(key(t))
        if theirs is None:
            same_role = [o for o in other.tables.values() if o.role == t.role]
            mine = [m for m in model.tables.values() if m.role == t.role]
            theirs = same_role[0] if len(same_role) == 1 and len(mine) == 1 else None
        if theirs is None or theirs.rows != t.rows:
            return None
        pairs.append((t, theirs))
    return pairs if len({id(o) for _, o in pairs}) == len(pairs) else None


def _load_export(path: str) -> EmbeddingModel:
    from . import load  # local import: load() uses this module

    if not os.path.isfile(path):
        raise UsageError(f"--vocab {path}: no such file")
    try:
        return load(path)
    except EmbconvError as e:
        raise UnreadableInputError(f"--vocab {path}: {e.message}") from None


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
    other = _load_export(path)
    pairs = pair_tables(model, other) or []
    for mine, theirs in pairs:
        if mine is table and theirs.vocab is not None:
            v = theirs.vocab
            return Vocabulary(v.tokens, unknown_index=v.unknown_index, source=f"sidecar:{source} ({v.source})",
                              strings=v.strings)
    if not pairs:
        raise UnreadableInputError(f"--vocab {path}: its tables do not match this file's: an export of another "
                                   "learner")
    raise UnreadableInputError(f"--vocab {path}: no vocabulary for {table.weight_key} in that file")


def column_vocab(path: str, column: str, table: EmbeddingTable, generation: str) -> Vocabulary:
    """A CSV column's values labelled the way ``generation`` (the one that trained the model)
    numbered them (each generation's ``column_vocab`` rule)."""
    values = column_values(path, column)
    source = f"sidecar:{os.path.basename(path)}:{column} ({generation} rule)"
    return generations.get(generation).column_vocab(values, table.role, source)

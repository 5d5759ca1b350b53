"""Assembling IR tables from a state dict and an architecture (generic: no fastai knowledge)."""

from __future__ import annotations

from collections import OrderedDict

from ..errors import UnreadableInputError
from ..ir import EmbeddingTable, ModelWarning, Vocabulary
from ..pickle import TensorRef
from .architectures import FLOATS, Architecture


def same_tensor(a: TensorRef, b: TensorRef) -> bool:
    """Two references to the very same values (tied weights): same storage, same geometry."""
    same_storage = a.storage is b.storage or (a.storage.key == b.storage.key and a.storage.dtype is b.storage.dtype
                                              and a.storage.numel == b.storage.numel)
    return same_storage and a.storage_offset == b.storage_offset and a.shape == b.shape and a.stride == b.stride


def build_tables(sd: OrderedDict[str, TensorRef], arch: Architecture, names: list[str | None],
                 vocabs: list[Vocabulary | None], warnings: list[ModelWarning]) -> OrderedDict[str, EmbeddingTable]:
    """One EmbeddingTable per spec. ``names``/``vocabs`` are indexed like ``arch.tables``."""
    tables: OrderedDict[str, EmbeddingTable] = OrderedDict()
    for i, spec in enumerate(arch.tables):
        weight = sd[spec.weight_key]
        if len(weight.shape) != 2:
            raise UnreadableInputError(f"{spec.weight_key} has shape {list(weight.shape)}, not rows × dim")
        if weight.dtype.name not in FLOATS:
            raise UnreadableInputError(f"{spec.weight_key} holds {weight.dtype.name}, not floats")
        bias = sd.get(spec.bias_key) if spec.bias_key else None
        if bias is not None and bias.numel != weight.shape[0]:
            warnings.append(ModelWarning(
                "bias-size", f"{spec.bias_key} has {bias.numel} values for {weight.shape[0]} rows; bias left out"))
            bias = None
        tied = [k for k, t in sd.items() if k != spec.weight_key and same_tensor(t, weight)]
        given = names[i] if i < len(names) else None
        name = given or spec.name
        base, n = name, 2
        while name in tables:
            name, n = f"{base}_{n}", n + 1
        vocab = vocabs[i] if i < len(vocabs) else None
        if vocab is not None and len(vocab) != weight.shape[0]:
            warnings.append(ModelWarning(
                "vocab-size", f"table {name}: the file's vocabulary has {len(vocab)} entries for {weight.shape[0]} "
                "rows; vocabulary left out rather than mislabel rows", name))
            vocab = None
        tables[name] = EmbeddingTable(
            name=name, role=spec.role, weight_source=weight, vocab=vocab, bias_source=bias,
            weight_key=spec.weight_key, bias_key=spec.bias_key if bias is not None else None,
            tied_keys=tied, source_dtype=weight.dtype.name,
        )
    return tables

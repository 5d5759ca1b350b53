"""In-memory IR models for the writer tests (no fastai, no files)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from converter.ir import EmbeddingModel, EmbeddingTable, ModelInfo, SourceInfo, Vocabulary
from converter.lazy import InMemory

TRICKY_TOKENS = ["#na#", "new york", "line\nbreak", "", "caf\u00e9 \u6771\u4eac", "xxfake", "xxfake", "xxfake#2",
                 "50%", "tab\there", "\ud800lone", " lead", "trail ", "%25", "nbsp\u00a0x", "\u2028", "ok"]


def source() -> SourceInfo:
    return SourceInfo(path="/nonexistent/export.pkl", size=123, generation="fastai-2", artifact="export",
                      container="pickle", model_class="fastai.collab.EmbeddingDotBias", _sha256="0" * 64)


def table(name: str, rows: int, dim: int, *, role: str = "category", dtype=np.float32, vocab: list | None = None,
          unknown_index: int | None = 0, bias: bool = False, seed: int = 0) -> EmbeddingTable:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, dim)) * 0.05).astype(dtype)
    b = (rng.standard_normal(rows) * 0.1).astype(dtype) if bias else None
    v = Vocabulary(vocab, unknown_index=unknown_index) if vocab is not None else None
    return EmbeddingTable(name=name, role=role, weight_source=InMemory(w), vocab=v,
                          bias_source=InMemory(b) if b is not None else None, weight_key=f"{name}.weight",
                          bias_key=f"{name}_bias.weight" if bias else None, source_dtype=str(np.dtype(dtype)))


def model(*tables: EmbeddingTable, kind: str = "tabular", y_range=None) -> EmbeddingModel:
    return EmbeddingModel(OrderedDict((t.name, t) for t in tables), source(), ModelInfo(kind=kind, y_range=y_range))


def tricky_model(dtype=np.float32) -> EmbeddingModel:
    """Tokens with every awkward case, ints/bools/floats, a table without vocabulary, fp16."""
    return model(
        table("words", len(TRICKY_TOKENS), 7, vocab=TRICKY_TOKENS, dtype=dtype, role="token", bias=True, seed=1),
        table("nums", 5, 3, vocab=["#na#", 1, 2.5, True, np.int64(7)], dtype=dtype, seed=2),
        table("plain", 4, 2, vocab=None, dtype=dtype, seed=3),
    )


def collab_model(y_range=(0.5, 5.5), unknown: bool = True) -> EmbeddingModel:
    users = ["#na#", "u1", "u2", "u3"] if unknown else ["u1", "u2", "u3"]
    items = ["#na#", "i1", "i2", "i3", "i4"] if unknown else ["i1", "i2", "i3", "i4"]
    unk = 0 if unknown else None
    return model(table("userId", len(users), 6, role="user", vocab=users, unknown_index=unk, bias=True, seed=4),
                 table("title", len(items), 6, role="item", vocab=items, unknown_index=unk, bias=True, seed=5),
                 kind="collab-dot", y_range=y_range)

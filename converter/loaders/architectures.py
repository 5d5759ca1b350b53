"""Which architecture a state dict belongs to, read from its key names alone.

What is generic lives here: the types, the shapes of architecture that several generations
share (dot-product collab, AWD-LSTM, indexed tabular embeddings) and the guess for unknown
state dicts. Each generation's module names its own keys and says which keys prove it
(spec fastai-formats §3.2–3.4, §4.4–4.6, §5.4–5.6)."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from ..ir import ModelWarning
from ..pickle import TensorRef
from .generations import first, registered

FLOATS = ("float32", "float16", "bfloat16", "float64")


@dataclass
class TableSpec:
    """One table to make: a default name, a role, the keys of its weight and bias."""

    name: str
    role: str
    weight_key: str
    bias_key: str | None = None
    slot: int = 0  # position among the model's categorical inputs (vocabulary matching)


@dataclass
class Architecture:
    kind: str  # manifest model.kind
    tables: list[TableSpec]
    generation_hint: str | None = None  # a generation the keys prove, or None
    is_encoder: bool = False
    guessed: bool = False
    notes: list[ModelWarning] = field(default_factory=list)


class Keys:
    """A state dict's key names as a pattern sees them: without DataParallel's ``module.``
    prefix (``full`` puts it back), with the tensors they name."""

    def __init__(self, sd: OrderedDict[str, TensorRef]) -> None:
        keys = list(sd)
        self.prefix = "module." if keys and all(k.startswith("module.") for k in keys) else ""
        self.names = {key[len(self.prefix):] for key in keys}
        self.sd = sd

    def has(self, key: str) -> bool:
        return key in self.names

    def full(self, key: str) -> str:
        return self.prefix + key

    def optional(self, key: str) -> str | None:
        """The full key when the state dict has it, else None."""
        return self.full(key) if self.has(key) else None

    def tensor(self, key: str) -> TensorRef | None:
        return self.sd.get(self.full(key))

    def indexed(self, pattern: str) -> list[int]:
        """The numbers N of the keys that fullmatch ``pattern`` (one group: N), sorted."""
        rx = re.compile(pattern)
        return sorted(int(m.group(1)) for k in self.names if (m := rx.fullmatch(k)))

    def any_match(self, pattern: str) -> bool:
        rx = re.compile(pattern)
        return any(rx.fullmatch(k) for k in self.names)


def recognise(sd: OrderedDict[str, TensorRef]) -> Architecture:
    """The architecture of a state dict (keys as ``state_dict()`` names them): the first
    registered generation whose key patterns match, with the generation its keys prove;
    otherwise a guess at which 2-D weights are embeddings."""
    keys = Keys(sd)
    for generation in registered():
        arch = generation.architectures(keys)
        if arch is not None:
            arch.generation_hint = first(lambda g: g.proves_keys(keys))
            return arch
    return _unknown(sd)


# --- shapes of architecture that generations share, each with its own key names ------------------

def dot_product(keys: Keys, user: str, item: str, user_bias: str, item_bias: str) -> Architecture | None:
    """Collaborative filtering by dot product: a user and an item matrix, maybe biases."""
    if not (keys.has(f"{user}.weight") and keys.has(f"{item}.weight")):
        return None
    return Architecture("collab-dot", [
        TableSpec("user", "user", keys.full(f"{user}.weight"), keys.optional(f"{user_bias}.weight"), 0),
        TableSpec("item", "item", keys.full(f"{item}.weight"), keys.optional(f"{item_bias}.weight"), 1),
    ])


def awd_lstm(keys: Keys, dropout_alias: str) -> Architecture | None:
    """An AWD-LSTM text model: the encoder weight plus its embedding-dropout alias (the tied
    copy), as a whole language model or classifier (``0.`` prefix) or an encoder alone."""
    for p in ("0.module.", "0.", ""):
        if keys.has(f"{p}encoder.weight") and keys.has(f"{p}{dropout_alias}"):
            bias = keys.full("1.decoder.bias") if p == "0." and keys.has("1.decoder.bias") else None
            if p == "":
                kind, is_encoder = "unknown", True
            elif keys.has("1.decoder.weight"):
                kind, is_encoder = "text-lm", False
            else:
                kind, is_encoder = "text-classifier", False
            return Architecture(kind, [TableSpec("token", "token", keys.full(f"{p}encoder.weight"), bias)],
                                is_encoder=is_encoder)
    return None


def indexed_embeddings(keys: Keys, stem: str) -> Architecture | None:
    """A tabular model: embeddings ``<stem>.0`` … ``<stem>.N-1``, one per categorical column."""
    idx = keys.indexed(rf"{re.escape(stem)}\.(\d+)\.weight")
    if not idx or idx != list(range(len(idx))):
        return None
    specs = [TableSpec(f"cat_{i}", "category", keys.full(f"{stem}.{i}.weight"), None, i) for i in idx]
    return Architecture("tabular", specs)


_EMBEDDING_WORDS = re.compile(r"(emb|encoder|factor|vocab|user|item|movie|token|word|latent)", re.I)
_NOT_EMBEDDING = re.compile(r"(^|\.)(lin|lins|linear|layers|fc|head|rnn|rnns|lstm|gru|conv|bn|bns|decoder|outp|out|classifier|attn)", re.I)


def _unknown(sd: OrderedDict[str, TensorRef]) -> Architecture:
    candidates = [key for key, t in sd.items() if len(t.shape) == 2 and t.dtype.name in FLOATS]
    named = [key for key in candidates if _EMBEDDING_WORDS.search(key) and not _NOT_EMBEDDING.search(key)]
    chosen = named or [key for key in candidates if key.endswith("weight") and not _NOT_EMBEDDING.search(key)]
    specs = []
    for i, key in enumerate(chosen):
        stem = key[: -len(".weight")] if key.endswith(".weight") else key
        specs.append(TableSpec(stem.replace(".", "_") or f"table_{i}", "category", key, None, i))
    arch = Architecture("unknown", specs, guessed=True)
    if specs:
        arch.notes.append(ModelWarning(
            "guessed-architecture",
            "not a fastai architecture embconv knows; guessed these 2-D weights are embeddings: "
            + ", ".join(s.weight_key for s in specs)))
    return arch

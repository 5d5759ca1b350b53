"""Which fastai architecture a state dict belongs to, read from its key names alone.

fastai knowledge lives here and in the generation loaders: the key patterns of every
generation's collab, tabular and AWD-LSTM models (spec fastai-formats §3.2–3.4, §4.4–4.6,
§5.4–5.6), and the hints they give about which generation wrote them."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from ..pickle import TensorRef

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
    notes: list[str] = field(default_factory=list)


def _strip_prefix(keys: list[str]) -> str:
    """'module.' when every key carries DataParallel's prefix."""
    if keys and all(k.startswith("module.") for k in keys):
        return "module."
    return ""


def _indexed(keys: set[str], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted(int(m.group(1)) for k in keys if (m := rx.fullmatch(k)))


def recognise(sd: OrderedDict[str, TensorRef]) -> Architecture:
    """The architecture of a state dict (keys as ``state_dict()`` names them)."""
    keys = list(sd)
    pre = _strip_prefix(keys)
    k = {key[len(pre):] for key in keys}

    def full(key: str | None) -> str | None:
        return None if key is None else pre + key

    def has(key: str) -> bool:
        return key in k

    # Collaborative filtering, dot product with biases.
    if has("u_weight.weight") and has("i_weight.weight"):
        return Architecture("collab-dot", [
            TableSpec("user", "user", full("u_weight.weight"), full("u_bias.weight") if has("u_bias.weight") else None, 0),
            TableSpec("item", "item", full("i_weight.weight"), full("i_bias.weight") if has("i_bias.weight") else None, 1),
        ])
    if has("u.weight") and (has("i.weight") or has("m.weight")):
        item = "i" if has("i.weight") else "m"
        ib = "ib" if item == "i" else "mb"
        return Architecture("collab-dot", [
            TableSpec("user", "user", full("u.weight"), full("ub.weight") if has("ub.weight") else None, 0),
            TableSpec("item", "item", full(f"{item}.weight"), full(f"{ib}.weight") if has(f"{ib}.weight") else None, 1),
        ], generation_hint="fastai-0.7")

    # AWD-LSTM text models: encoder weight plus its embedding-dropout alias.
    for p in ("0.module.", "0.", ""):
        if has(f"{p}encoder.weight") and (has(f"{p}encoder_dp.emb.weight") or has(f"{p}encoder_with_dropout.embed.weight")):
            v07 = has(f"{p}encoder_with_dropout.embed.weight")
            bias = "1.decoder.bias" if p == "0." and has("1.decoder.bias") else None
            if p == "":
                kind, is_encoder = "unknown", True
            elif has("1.decoder.weight"):
                kind, is_encoder = "text-lm", False
            else:
                kind, is_encoder = "text-classifier", False
            hint = "fastai-0.7" if v07 else None
            if not v07 and any(key.endswith("module.weight_hh_l0") for key in k):
                hint = "fastai-1"  # v2 (after April 2020) dropped the WeightDropout copy
            return Architecture(kind, [TableSpec("token", "token", full(f"{p}encoder.weight"), full(bias))],
                                generation_hint=hint, is_encoder=is_encoder)

    # Tabular / collab-NN (v1, v2): embeds.N; tabular v0.7: embs.N.
    for pattern, hint in ((r"embeds\.(\d+)\.weight", None), (r"embs\.(\d+)\.weight", "fastai-0.7")):
        idx = _indexed(k, pattern)
        if idx and idx == list(range(len(idx))):
            stem = pattern.split("\\")[0]
            specs = [TableSpec(f"cat_{i}", "category", full(f"{stem}.{i}.weight"), None, i) for i in idx]
            if hint is None:
                if any(re.fullmatch(r"layers\.\d+\.\d+\.weight", key) for key in k):
                    hint = "fastai-2"
                elif any(re.fullmatch(r"layers\.\d+\.weight", key) for key in k):
                    hint = "fastai-1"
            arch = Architecture("tabular", specs, generation_hint=hint)
            n_cont = sd.get(full("bn_cont.weight"))
            if len(idx) == 2 and n_cont is not None and n_cont.shape == (0,):
                # EmbeddingNN is a TabularModel with no continuous inputs and two embeddings.
                arch.kind, arch.guessed = "collab-nn", True
                specs[0].name, specs[0].role = "user", "user"
                specs[1].name, specs[1].role = "item", "item"
                arch.notes.append("two embeddings and no continuous inputs: read as a collab EmbeddingNN")
            return arch

    return _unknown(sd)


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
        arch.notes.append(
            "not a fastai architecture embconv knows; guessed these 2-D weights are embeddings: "
            + ", ".join(s.weight_key for s in specs)
        )
    return arch

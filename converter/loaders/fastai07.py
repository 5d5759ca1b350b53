"""fastai 0.7 (2018): ``.h5`` state dicts written by torch ≤ 0.3, with no vocabulary and no
y_range in the file (spec fastai-formats §3).

Its own key names: ``u``/``i`` (or ``m``) collab matrices with ``ub``/``ib`` biases, the
``embs.N`` embeddings of ``MixedInputModel`` and the AWD-LSTM's
``encoder_with_dropout.embed`` alias. Its files date themselves: torch ≤ 0.3 wrote the legacy
container and rebuilt tensors with ``_rebuild_tensor`` (later torch: ``_rebuild_tensor_v2``).
Vocabularies come from the training data: collab ids in order of first appearance
(``col.unique()``, no reserved row); tabular categories as pandas' sorted categories with codes
+ 1, so row 0 is NaN/unseen (labelled ``#na#``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..ir import Vocabulary
from ..pickle import ModelFile
from .architectures import Architecture, Keys, awd_lstm, dot_product, indexed_embeddings
from .generations import NA, Generation, Rebuilt, is_nan, register, sorted_vocab


def architectures(keys: Keys) -> Architecture | None:
    if keys.has("u.weight") and (keys.has("i.weight") or keys.has("m.weight")):
        item = "i" if keys.has("i.weight") else "m"
        return dot_product(keys, "u", item, "ub", f"{item}b")
    return awd_lstm(keys, "encoder_with_dropout.embed.weight") or indexed_embeddings(keys, "embs")


def proves_torch(mf: ModelFile) -> bool:
    rebuilds = {u.name for u in mf.globals if u.module == "torch._utils"}
    return mf.container == "torch-legacy" and "_rebuild_tensor" in rebuilds and "_rebuild_tensor_v2" not in rebuilds


def column_vocab(values: Sequence[Any], role: str, source: str) -> Vocabulary:
    if role in ("user", "item"):
        seen: dict[Any, None] = {}
        for v in values:  # pandas unique() keeps NaN as a value too
            seen.setdefault(float("nan") if is_nan(v) else v, None)
        return Vocabulary(list(seen), unknown_index=None, source=source)
    return sorted_vocab(values, role, source)


def rebuild_column(values: Any, role: str, source: str) -> Rebuilt:
    """From the full data: ``CollabFilterDataset.proc_col`` numbers ids by ``col.unique()`` (first
    appearance, no reserved row); the lessons' tabular columns are ``astype('category')`` of the
    full frame, codes + 1 (row 0 NaN/unseen)."""
    import pandas as pd

    if role in ("user", "item"):
        uniq = values.unique()
        return Rebuilt(Vocabulary(list(uniq), unknown_index=None, source=source), pd.Index(uniq), 0)
    categories = values.astype("category").cat.as_ordered().cat.categories
    return Rebuilt(Vocabulary([NA, *categories.tolist()], unknown_index=0, source=source), categories, 1)


GENERATION = register(Generation(
    name="fastai-0.7",
    label="fastai 0.7",
    column_vocab=column_vocab,
    architectures=architectures,
    proves_keys=lambda keys: architectures(keys) is not None,
    proves_torch=proves_torch,
    unknown_text_token="_unk_",
    no_vocab_hint=" (fastai 0.7 never saved one)",
    y_range_where="fastai 0.7 keeps it outside the file (min/max of the ratings)",
    rebuild_column=rebuild_column,
    vocab_from_full_data=True,
    na_tables=False,
))

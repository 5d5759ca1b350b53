"""fastai 1 (1.0.x): ``export.pkl`` is a dict of learner state with the model pickled whole
and the data processors (vocabularies) beside it (spec fastai-formats §4.3); ``learn.save``
files are ``{'model', 'opt'}`` with torch's optimizer state (``param_groups``).

The key names fastai 1 introduced, and fastai 2 kept: ``u_weight``/``i_weight`` collab
matrices (EmbeddingDotBias), ``embeds.N`` tabular embeddings (TabularModel; EmbeddingNN is one
with two embeddings and no continuous inputs), the AWD-LSTM's ``encoder_dp.emb`` alias. Its
own: ``layers.N`` linear layers and the WeightDropout copy ``module.weight_hh_l0``. torch 0.4 –
1.5 (before fastai 2 existed) wrote the legacy container with ``_rebuild_tensor_v2``.
Categorical vocabularies are ``#na#`` then the sorted training values (classes are kept as
strings)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import EmbeddingModel, EmbeddingTable, ModelWarning, Vocabulary
from ..pickle import GlobalStub, ModelFile, ObjectStub
from .architectures import Architecture, Keys, awd_lstm, dot_product, indexed_embeddings
from .detected import Detected
from .generations import (
    NA,
    Generation,
    InferenceCategories,
    Rebuilt,
    categorical_rows,
    file_root,
    register,
    sorted_vocab,
    vocab_categories,
)
from .graph import as_list, class_tail, module_state_dict, pair_value
from .splits import numpy_permutation
from .vocab_rules import categorical_vocab, text_vocab


def detect(root: Any) -> Detected | None:
    if not (isinstance(root, dict) and isinstance(root.get("model"), ObjectStub) and isinstance(root.get("data"), dict)
            and "cls" in root):
        return None
    model: ObjectStub = root["model"]
    data: dict = root["data"]
    det = Detected("fastai-1", "export", module_state_dict(model), model_class=model.class_name)
    learner = root["cls"].qualname if isinstance(root["cls"], GlobalStub) else None
    for proc in as_list(data.get("x_proc")) or []:
        if not isinstance(proc, ObjectStub):
            continue
        attrs = proc.attrs
        classes = attrs.get("classes")
        if isinstance(classes, dict):
            names = [str(n) for n in (as_list(attrs.get("cat_names")) or list(classes))]
            det.cat_names = names
            det.cat_vocabs = [categorical_vocab(as_list(classes.get(n)), "export.pkl data.x_proc classes")
                              if n in classes else None for n in names]
        if class_tail(proc) == "NumericalizeProcessor":
            vocab = attrs.get("vocab")
            itos = as_list(vocab.attrs.get("itos")) if isinstance(vocab, ObjectStub) else as_list(vocab)
            if itos is not None:
                det.text_vocab = text_vocab(itos, "export.pkl data.x_proc NumericalizeProcessor vocab.itos")
    inner = model
    if class_tail(model) in ("DataParallel", "DistributedDataParallel"):
        inner = model.attrs.get("_modules", {}).get("module", model)
    det.y_range = pair_value(inner.attrs.get("y_range")) if isinstance(inner, ObjectStub) else None
    if (learner and learner.endswith("CollabLearner")) or class_tail(inner) == "EmbeddingNN":
        det.kind_hint = "collab"
    return det


def architectures(keys: Keys) -> Architecture | None:
    """The architectures named as fastai 1 named them (fastai 2 kept the names)."""
    arch = (dot_product(keys, "u_weight", "i_weight", "u_bias", "i_bias") or awd_lstm(keys, "encoder_dp.emb.weight")
            or indexed_embeddings(keys, "embeds"))
    if arch is not None and arch.kind == "tabular" and len(arch.tables) == 2:
        n_cont = keys.tensor("bn_cont.weight")
        if n_cont is not None and n_cont.shape == (0,):
            # EmbeddingNN is a TabularModel with no continuous inputs and two embeddings.
            arch.kind, arch.guessed = "collab-nn", True
            user, item = arch.tables
            user.name = user.role = "user"
            item.name = item.role = "item"
            arch.notes.append(ModelWarning("read-as-collab-nn",
                                           "two embeddings and no continuous inputs: read as a collab EmbeddingNN"))
    return arch


def proves_keys(keys: Keys) -> bool:
    return keys.any_match(r"layers\.\d+\.weight") or any(k.endswith("module.weight_hh_l0") for k in keys.names)


def proves_torch(mf: ModelFile) -> bool:
    rebuilds = {u.name for u in mf.globals if u.module == "torch._utils"}
    return mf.container == "torch-legacy" and ("_rebuild_tensor_v2" in rebuilds or "_rebuild_tensor" not in rebuilds)


# ---- inference (converter.encode) ---------------------------------------------------------------
# ``TabularProcessor.process``: ``Categorify.apply_test`` is ``pd.Categorical(df[n],
# categories=self.categories[n])`` — the training categories as a pandas Index of the column's own
# dtype — and the codes are ``cat.codes + 1`` (NaN and unseen → 0, ``#na#``). ``classes`` (what the
# loader labels rows with) are those categories turned into numpy strings, so the typed ones are
# read from ``x_proc[0].procs`` Categorify ``categories``. ``FillMissing.apply_test`` adds
# ``<cont>_na = isnull(<cont>)`` for every cont column in ``na_dict`` (when ``add_col``).


def _procs(model: EmbeddingModel) -> dict[str, ObjectStub]:
    root = file_root(model)
    if not (isinstance(root, dict) and isinstance(root.get("data"), dict)):
        return {}
    out: dict[str, ObjectStub] = {}
    for proc in as_list(root["data"].get("x_proc")) or []:
        if isinstance(proc, ObjectStub):
            for p in as_list(proc.attrs.get("procs")) or []:
                if isinstance(p, ObjectStub):
                    out.setdefault(class_tail(p), p)
    return out


def _index_values(index: Any) -> np.ndarray | None:
    """The data of a pickled pandas Index (``_new_Index(cls, {'data': array, …})``)."""
    if isinstance(index, ObjectStub):
        for arg in index.args or ():
            if isinstance(arg, dict) and isinstance(arg.get("data"), np.ndarray):
                return arg["data"]
        data = index.attrs.get("data") or index.attrs.get("_data")
        if isinstance(data, np.ndarray):
            return data
    return None


def inference_categories(model: EmbeddingModel, table: EmbeddingTable) -> InferenceCategories | None:
    cats = vocab_categories(table)
    if cats is None or table.vocab is None or not table.vocab.source.startswith("export.pkl"):
        return cats
    categorify = _procs(model).get("Categorify")
    found = categorify.attrs.get("categories") if categorify is not None else None
    values = _index_values(found.get(table.name)) if isinstance(found, dict) else None
    if values is None or values.ndim != 1 or len(values) + cats.offset != len(table.vocab):
        return cats  # the string classes, compared by string form
    return InferenceCategories(values, cats.offset, cats.unknown)


def fill_missing(model: EmbeddingModel) -> dict[str, str] | None:
    fm = _procs(model).get("FillMissing")
    if fm is None:
        return None
    na_dict = fm.attrs.get("na_dict")
    if not isinstance(na_dict, dict) or fm.attrs.get("add_col", True) is False:
        return {}
    return {f"{n}_na": str(n) for n in na_dict}


# ---- labels rebuilt from the training data (spec fastai-formats §11) ----------------------------
# ``split_by_rand_pct(valid_pct, seed)`` (what ``CollabDataBunch.from_df`` calls):
# ``np.random.seed(seed); rand_idx = np.random.permutation(n)``; the first ``int(valid_pct * n)``
# are the validation rows, the rest (in ascending order) the training rows. ``Categorify.apply_train``
# runs ``astype('category').cat.as_ordered()`` on the training rows, and the processor keeps
# ``classes = np.concatenate([['#na#'], categories])``: numeric categories become numpy strings
# ('7', '1.5', 'True'), object categories keep their values. ``FillMissing.apply_train`` adds
# ``<cont>_na`` (``isnull``) to cat_names for each cont column with a NaN in the training rows.


def random_train_rows(n: int, seed: int, valid_pct: float) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    keep[numpy_permutation(n, seed)[:int(valid_pct * n)]] = False
    return np.flatnonzero(keep)


def rebuild_column(train: Any, role: str, source: str) -> Rebuilt:
    import pandas as pd

    categories = train.astype("category").cat.as_ordered().cat.categories
    if pd.api.types.is_object_dtype(categories.dtype) or pd.api.types.is_string_dtype(categories.dtype):
        classes = [NA, *categories.tolist()]
    else:
        classes = [NA, *np.asarray(categories.values).astype(str).tolist()]
    return Rebuilt(Vocabulary(classes, unknown_index=0, source=source), categories, 1)


GENERATION = register(Generation(
    name="fastai-1",
    label="fastai 1.x",
    column_vocab=sorted_vocab,
    detect_export=detect,
    architectures=architectures,
    proves_keys=proves_keys,
    proves_optimizer=lambda opt: "param_groups" in opt,
    proves_torch=proves_torch,
    unknown_text_token="xxunk",
    inference_categories=inference_categories,
    category_rows=categorical_rows,
    fill_missing=fill_missing,
    random_train_rows=random_train_rows,
    rebuild_column=rebuild_column,
))

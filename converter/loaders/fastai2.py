"""fastai 2 (2.x) and the ``fastai2`` preview (2019–2020, classes under ``fastai2.``):
``export.pkl`` is the whole pickled ``Learner`` with emptied DataLoaders; vocabularies sit in
``Categorify``/``CategoryMap``, ``Numericalize`` and, for collab dot models, ``model.classes``
(spec fastai-formats §5.3–5.7). ``learn.save`` files carry fastai's own optimizer state
(``hypers``). Both kept fastai 1's key names (see ``fastai1.py``); fastai 2's own are the
``layers.N.M`` blocks (LinBnDrop). Categorical vocabularies are ``#na#`` then the sorted
training values (classes kept as numpy scalars)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import EmbeddingModel, EmbeddingTable, Vocabulary
from ..pickle import ObjectStub
from .architectures import Keys
from .detected import Detected
from .generations import (
    NA,
    Generation,
    Rebuilt,
    file_root,
    own_codes_rows,
    register,
    sorted_vocab,
    typed_categories,
)
from .graph import as_list, class_tail, find_stubs, module_state_dict, named_modules, pair_value, scalar_value
from .splits import torch_randperm
from .vocab_rules import categorical_vocab, text_vocab


def _generation(class_name: str) -> str | None:
    if class_name.startswith("fastai2."):
        return "fastai2-preview"
    if class_name.startswith("fastai."):
        return "fastai-2"
    return None


def detect(root: Any, wanted: str) -> Detected | None:
    """The Detected of a pickled Learner of generation ``wanted`` (fastai-2 or fastai2-preview)."""
    if not isinstance(root, ObjectStub) or not class_tail(root).endswith("Learner"):
        return None
    generation = _generation(root.class_name)
    model = root.attrs.get("model")
    if generation != wanted or not isinstance(model, ObjectStub):
        return None
    det = Detected(generation, "export", module_state_dict(model), model_class=model.class_name)
    dls = root.attrs.get("dls")

    classes = model.attrs.get("classes")  # EmbeddingDotBias.from_classes keeps {col: CategoryMap}
    if isinstance(classes, dict) and classes:
        det.cat_names = [str(k) for k in classes]
        det.cat_vocabs = [categorical_vocab(as_list(v), "export.pkl model.classes") for v in classes.values()]
    else:
        cats = find_stubs(dls, ["Categorify"]) if dls is not None else []
        if cats:
            cmap = cats[0].attrs.get("classes")
            if isinstance(cmap, dict):
                order = None
                for to in find_stubs(dls, ["TabularPandas", "TabularCollab"]):
                    order = as_list(to.attrs.get("cat_names"))
                    if order:
                        break
                names = [str(n) for n in (order or list(cmap))]
                det.cat_names = names
                det.cat_vocabs = [categorical_vocab(as_list(cmap.get(n)), "export.pkl dls Categorify.classes")
                                  if n in cmap else None for n in names]
    nums = find_stubs(dls, ["Numericalize"]) if dls is not None else []
    for num in nums:
        vocab = as_list(num.attrs.get("vocab"))
        if vocab:
            det.text_vocab = text_vocab(vocab, "export.pkl dls Numericalize.vocab")
            break

    det.y_range = pair_value(model.attrs.get("y_range"))
    if det.y_range is None:
        for _, mod in named_modules(model):
            if class_tail(mod) == "SigmoidRange":
                lo, hi = scalar_value(mod.attrs.get("low")), scalar_value(mod.attrs.get("high"))
                if lo is not None and hi is not None:
                    det.y_range = (lo, hi)
    if class_tail(model) == "EmbeddingNN" or class_tail(root) == "CollabLearner":
        det.kind_hint = "collab"
    return det


def proves_keys(keys: Keys) -> bool:
    return keys.any_match(r"layers\.\d+\.\d+\.weight")


# ---- inference (converter.encode) ---------------------------------------------------------------
# ``Categorify.encodes`` → ``_apply_cats(voc, 1, c)``: ``pd.Categorical(c, categories=voc[1:]).codes
# + 1`` for an ordinary column, ``c.cat.codes + 1`` for a column that already is pandas ``category``
# (its own categories, not the training ones). The categories are the CategoryMap's items, typed as
# ``df_shrink`` left them (``np.int8``, ``np.float32`` …): a float64 0.1 does not match
# ``np.float32(0.1)``, so it maps to ``#na#`` (real fastai 2.8.12 does so; see
# tests/fixtures/encode). ``test_dl`` builds ``TabularPandas.new(reduce_memory=False)``: the data is
# not shrunk. ``FillMissing.encodes`` sets ``<cont>_na = isnull(<cont>)`` for every cont column
# in ``na_dict`` (when ``add_col``).


def fill_missing(model: EmbeddingModel) -> dict[str, str] | None:
    root = file_root(model)
    dls = root.attrs.get("dls") if isinstance(root, ObjectStub) else None
    stubs = find_stubs(dls, ["FillMissing"]) if dls is not None else []
    if not stubs:
        return None
    na_dict = stubs[0].attrs.get("na_dict")
    if not isinstance(na_dict, dict) or stubs[0].attrs.get("add_col", True) is False:
        return {}
    return {f"{n}_na": str(n) for n in na_dict}


def inference_categories(model: EmbeddingModel, table: EmbeddingTable) -> Any:
    return typed_categories(table)


# ---- labels rebuilt from the training data (spec fastai-formats §11) ----------------------------
# ``RandomSplitter(valid_pct, seed)``: ``torch.manual_seed(seed); rand_idx = torch.randperm(n)``;
# training rows ``rand_idx[int(valid_pct * n):]``. ``TabularPandas`` / ``TabularCollab`` (the
# preview's too) run ``df_shrink`` on the FULL frame first (``reduce_memory=True``): object/str
# columns become ``category`` (so they keep every value of the frame, validation-only ones
# included), ints the smallest int type that holds them, floats float32 when they fit.
# ``Categorify.setups`` runs on the training rows: ``CategoryMap(col, sort=True, add_na=True)`` is
# ``#na#`` + a category column's own categories in their order, else its sorted non-NaN unique
# values (numpy scalars of the shrunk dtype). FillMissing adds ``<cont>_na`` for each cont column
# with a NaN in the training rows (classes ``#na#, False, True``).


def random_train_rows(n: int, seed: int, valid_pct: float) -> Any:
    return torch_randperm(n, seed)[int(valid_pct * n):]


_EXCLUDED = ("category", "datetime64[ns]", "bool")
_NUMERIC = (("int", (np.int8, np.int16, np.int32, np.int64)), ("uint", (np.uint8, np.uint16, np.uint32, np.uint64)),
            ("float", (np.float32, np.float64, np.longdouble)))


def df_shrink(frame: Any) -> Any:
    """fastai's ``df_shrink(df)`` (``obj2cat=True``, ``int2uint=False``): the first dtype of the
    column's kind whose range holds its min and max; object and string columns → category."""
    new: dict[Any, Any] = {}
    for column, dtype in frame.dtypes.items():
        name = dtype.name
        if name in _EXCLUDED:
            continue
        if name.startswith(("object", "str")):
            new[column] = "category"
            continue
        kinds = [types for kind, types in _NUMERIC if name.startswith(kind)]
        if not kinds:
            continue
        lo, hi = frame[column].min(), frame[column].max()
        for t in kinds[0]:
            info: Any = np.iinfo(t) if np.issubdtype(t, np.integer) else np.finfo(t)  # type: ignore[type-var]
            if info.min <= lo and info.max >= hi:
                if np.dtype(t) != dtype:
                    new[column] = np.dtype(t)
                break
    return frame.astype(new) if new else frame


def rebuild_column(train: Any, role: str, source: str) -> Rebuilt:
    import pandas as pd

    if isinstance(train.dtype, pd.CategoricalDtype):
        items = list(train.cat.categories)
    else:
        items = sorted(o for o in train.unique() if o == o)
    return Rebuilt(Vocabulary([NA, *items], unknown_index=0, source=source), pd.Index(items, dtype=object), 1)


# What the preview and fastai 2 share: vocabularies, inference and the rebuild from training data.
_SHARED: dict[str, Any] = dict(
    column_vocab=sorted_vocab,
    unknown_text_token="xxunk",
    inference_categories=inference_categories,
    category_rows=own_codes_rows,
    fill_missing=fill_missing,
    random_train_rows=random_train_rows,
    prepare_data=df_shrink,
    rebuild_column=rebuild_column,
)

PREVIEW = register(Generation(
    name="fastai2-preview",
    label="the fastai2 preview",
    detect_export=lambda root: detect(root, "fastai2-preview"),
    **_SHARED,
))

GENERATION = register(Generation(
    name="fastai-2",
    label="fastai 2.x",
    detect_export=lambda root: detect(root, "fastai-2"),
    proves_keys=proves_keys,
    proves_optimizer=lambda opt: "hypers" in opt,
    **_SHARED,
))

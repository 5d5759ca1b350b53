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

from ..ir import ModelWarning
from ..pickle import GlobalStub, ModelFile, ObjectStub
from .architectures import Architecture, Keys, awd_lstm, dot_product, indexed_embeddings
from .detected import Detected
from .generations import Generation, register, sorted_vocab
from .graph import as_list, class_tail, module_state_dict, pair_value
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
))

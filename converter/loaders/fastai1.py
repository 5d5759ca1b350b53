"""fastai v1 (1.0.x) ``export.pkl``: a dict of learner state with the model pickled whole and
the data processors (vocabularies) beside it (spec fastai-formats §4.3)."""

from __future__ import annotations

from typing import Any

from ..pickle import GlobalStub, ObjectStub
from .detected import Detected
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

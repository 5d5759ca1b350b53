"""``learn.save`` files (``{'model', 'opt'}``), ``save_encoder`` files and bare state dicts.

They carry no vocabulary. The generation is read from what the file proves, asking each
registered generation in turn (see ``generations.py``): the optimizer state's shape, the key
names, and the container and tensor-rebuild function, which date the torch that wrote it."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..ir import ModelWarning
from ..pickle import ModelFile, TensorRef
from .architectures import recognise
from .detected import Detected
from .generations import first
from .graph import tensors_of


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, TensorRef) for v in obj.values())


def detect(mf: ModelFile) -> Detected | None:
    root = mf.root
    if isinstance(root, dict) and "model" in root and _is_state_dict(root["model"]):
        opt = root.get("opt")
        generation = "unknown"
        if isinstance(opt, dict):
            generation = first(lambda g: g.proves_optimizer(opt)) or "unknown"
        sd = OrderedDict(root["model"])
        det = Detected(generation, "save", sd)
        return _refine(det, mf)
    if _is_state_dict(root):
        det = Detected("unknown", "state-dict", OrderedDict(root))
        return _refine(det, mf)
    return None


def _refine(det: Detected, mf: ModelFile) -> Detected:
    arch = recognise(det.state_dict)
    if arch.is_encoder:
        det.artifact = "encoder"
    if det.generation == "unknown":
        det.generation = arch.generation_hint or first(lambda g: g.proves_torch(mf)) or "unknown"
    if det.generation == "unknown":
        det.notes.append(ModelWarning("unknown-generation",
                                      "a bare state dict does not say which fastai generation wrote it (v1 or v2)"))
    return det


def fallback(mf: ModelFile) -> Detected | None:
    """Any other pickle with tensors: every tensor, for the unknown-architecture guess."""
    sd = tensors_of(mf.root)
    if not sd:
        return None
    det = Detected("unknown", "state-dict", sd)
    det.notes.append(ModelWarning("not-fastai", "not a fastai learner, save or state dict embconv recognises"))
    return det

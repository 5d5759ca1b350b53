"""``learn.save`` files (``{'model', 'opt'}``), ``save_encoder`` files and bare state dicts.

They carry no vocabulary. The generation is read from what the file proves: the optimizer
state's shape (v1: torch's ``param_groups``; v2: fastai's ``hypers``), the key names, and the
container and tensor-rebuild function, which date the torch that wrote it (fastai 0.7 pinned
torch < 0.4, whose files rebuild tensors with ``_rebuild_tensor``; fastai 2 needs torch >= 1.6,
whose default container is zip)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..pickle import ModelFile, TensorRef
from .architectures import recognise
from .detected import Detected
from .graph import tensors_of


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, TensorRef) for v in obj.values())


def detect(mf: ModelFile) -> Detected | None:
    root = mf.root
    if isinstance(root, dict) and "model" in root and _is_state_dict(root["model"]):
        opt = root.get("opt")
        generation = "unknown"
        if isinstance(opt, dict):
            if "hypers" in opt:
                generation = "fastai-2"
            elif "param_groups" in opt:
                generation = "fastai-1"
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
        det.generation = arch.generation_hint or _generation_from_torch(mf) or "unknown"
    if det.generation == "unknown":
        det.notes.append("a bare state dict does not say which fastai generation wrote it (v1 or v2)")
    return det


def _generation_from_torch(mf: ModelFile) -> str | None:
    rebuilds = {u.name for u in mf.globals if u.module == "torch._utils"}
    if mf.container == "torch-legacy":
        if "_rebuild_tensor" in rebuilds and "_rebuild_tensor_v2" not in rebuilds:
            return "fastai-0.7"  # torch <= 0.3
        return "fastai-1"  # torch 0.4 – 1.5: before fastai 2 existed
    return None


def fallback(mf: ModelFile) -> Detected | None:
    """Any other pickle with tensors: every tensor, for the unknown-architecture guess."""
    sd = tensors_of(mf.root)
    if not sd:
        return None
    det = Detected("unknown", "state-dict", sd)
    det.notes.append("not a fastai learner, save or state dict embconv recognises")
    return det

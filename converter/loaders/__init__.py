"""Loaders: recognise what a file's object graph is and build the IR from it.

All fastai knowledge lives in this package, one module per generation (``fastai07.py``,
``fastai1.py``, ``fastai2.py`` with the preview), each registering a ``Generation``
(``generations.py``). The user never says which generation wrote a file: ``load`` asks every
registered generation whether the file is its export, then reads a ``learn.save`` /
``save_encoder`` / bare state dict, and finally any pickle with tensors."""

from __future__ import annotations

import os
from typing import Any

from ..errors import UnreadableInputError
from ..ir import EmbeddingModel, ModelInfo, ModelWarning, SourceInfo, Vocabulary
from ..pickle import ModelFile, open_model_file
from . import fastai07, fastai1, fastai2, generations, state_dict  # noqa: F401  (registration order: oldest first)
from .architectures import Architecture, recognise
from .detected import Detected
from .rebuild import TrainingData, apply_training_data
from .tables import build_tables
from .vocab_sources import apply_sidecars, parse_specs

__all__ = ["TrainingData", "load", "load_model_file"]


def load(path: str | os.PathLike, vocab: Any = None, data: TrainingData | None = None) -> EmbeddingModel:
    """Read a fastai file of any generation into an ``EmbeddingModel``.

    ``vocab`` supplies vocabularies the file lacks: ``{"user": "ratings.csv:userId"}``,
    ``["user=ratings.csv:userId"]`` or an export of the same learner for every table (see
    ``vocab_sources``). ``data`` rebuilds them from the training data (see ``rebuild``). Weights
    stay lazy (memory-mapped)."""
    specs = parse_specs(vocab)
    mf = open_model_file(path)
    try:
        model = load_model_file(mf)
        if data is not None:
            apply_training_data(model, data)
        apply_sidecars(model, specs)
    except UnreadableInputError as e:
        mf.close()
        raise type(e)(e.message, path=e.path or mf.path) from None
    except Exception:
        mf.close()
        raise
    return model


def _detect(mf: ModelFile) -> Detected:
    for generation in generations.registered():
        det = generation.detect_export(mf.root)
        if det is not None:
            return det
    for detect in (state_dict.detect, state_dict.fallback):
        det = detect(mf)
        if det is not None:
            return det
    raise UnreadableInputError("no tensors in this file: not a model")


def load_model_file(mf: ModelFile) -> EmbeddingModel:
    """The IR of an opened file (without sidecar vocabularies)."""
    det = _detect(mf)
    arch = recognise(det.state_dict)
    _apply_kind_hint(det, arch)
    warnings = [*det.notes, *arch.notes, *(ModelWarning("container", w) for w in mf.warnings)]
    names, vocabs = _labels(det, arch)
    tables = build_tables(det.state_dict, arch, names, vocabs, warnings)
    if not tables:
        raise UnreadableInputError("found no embedding tables in this file")
    generation = generations.get(det.generation)
    for t in tables.values():
        if t.vocab is None:
            warnings.append(ModelWarning(
                "no-vocabulary", f"table {t.name} has no vocabulary in the file{generation.no_vocab_hint}: rows are "
                f"numbered; supply one with --vocab {t.name}=SPEC", t.name))
        elif dups := t.vocab.duplicates():
            shown = ", ".join(repr(d) for d in dups[:3])
            warnings.append(ModelWarning(
                "duplicate-tokens", f"table {t.name}: {len(dups)} token(s) label several rows ({shown}); "
                "each row is kept, word2vec output disambiguates them", t.name))
        if t.source_dtype != "float32":
            warnings.append(ModelWarning(
                "stored-dtype", f"table {t.name} is stored as {t.source_dtype}; outputs are float32 unless asked",
                t.name))
    if arch.kind == "collab-dot" and det.y_range is None:
        warnings.append(ModelWarning(
            "no-y-range", f"no y_range in this file ({generation.y_range_where}): the ONNX rating output is the "
            "raw score unless you pass --y-range LO,HI"))
    model_class = det.model_class
    source = SourceInfo(path=mf.path, size=mf.size, generation=det.generation, artifact=det.artifact,
                        container=mf.container, model_class=model_class)
    model = EmbeddingModel(tables, source, ModelInfo(kind=arch.kind, y_range=det.y_range), warnings)
    model._file = mf  # type: ignore[attr-defined]  # keeps the memory map open with the model
    return model


def _apply_kind_hint(det: Detected, arch: Architecture) -> None:
    if det.kind_hint == "collab" and arch.kind == "tabular" and len(arch.tables) == 2:
        arch.kind = "collab-nn"
        for spec, role in zip(arch.tables, ("user", "item")):
            spec.name = spec.role = role
    elif arch.kind == "collab-nn" and arch.guessed and det.artifact == "export" and det.kind_hint != "collab":
        arch.kind = "tabular"  # the export says it is a tabular learner with two categories
        for i, spec in enumerate(arch.tables):
            spec.name, spec.role = f"cat_{i}", "category"
        arch.notes.clear()


def _labels(det: Detected, arch: Architecture) -> tuple[list[str | None], list[Vocabulary | None]]:
    names: list[str | None] = []
    vocabs: list[Vocabulary | None] = []
    for spec in arch.tables:
        if spec.role == "token":
            names.append(None)
            vocabs.append(det.text_vocab)
            continue
        i = spec.slot
        names.append(det.cat_names[i] if det.cat_names and i < len(det.cat_names) else None)
        vocabs.append(det.cat_vocabs[i] if det.cat_vocabs and i < len(det.cat_vocabs) else None)
    return names, vocabs



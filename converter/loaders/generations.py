"""The registry of fastai generations. Each generation's module (``fastai07.py``, ``fastai1.py``,
``fastai2.py``) describes itself with a ``Generation`` and registers it; the loader and the
state-dict reader only ever iterate over the registry, so what one generation knows lives in
its own module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ir import GENERATIONS, Vocabulary

if TYPE_CHECKING:
    from ..pickle import ModelFile
    from .architectures import Architecture, Keys
    from .detected import Detected

NA = "#na#"  # fastai's label for the row of missing and unseen values


@dataclass(frozen=True)
class Generation:
    """What embconv knows of one fastai generation.

    * ``name``: the manifest's ``source.generation``; ``label``: how a person calls it.
    * ``detect_export(root)``: the ``Detected`` of a file this generation exported (the root of
      its object graph), or None.
    * ``architectures(keys)``: the Architecture of a state dict whose key names follow a
      pattern this generation introduced, or None.
    * ``proves_keys(keys)``, ``proves_optimizer(opt)``, ``proves_torch(file)``: True when the
      key names, the ``learn.save`` optimizer state, or the torch that wrote the file (container,
      tensor-rebuild function) prove that this generation wrote it.
      A generation leaves out what it does not know: the defaults find nothing and prove nothing.
    * ``column_vocab(values, role, source)``: a training-data column's values labelled the way
      this generation numbered them (``values`` typed as pandas reads a CSV, None for NaN).
    * ``unknown_text_token``: the token unknown words map to in its text vocabularies.
    * ``no_vocab_hint`` / ``y_range_where``: what to tell a user whose file lacks a vocabulary /
      a y_range."""

    name: str
    label: str
    column_vocab: Callable[[Sequence[Any], str, str], Vocabulary]
    detect_export: Callable[[Any], Detected | None] = lambda root: None
    architectures: Callable[[Keys], Architecture | None] = lambda keys: None
    proves_keys: Callable[[Keys], bool] = lambda keys: False
    proves_optimizer: Callable[[dict], bool] = lambda opt: False
    proves_torch: Callable[[ModelFile], bool] = lambda mf: False
    unknown_text_token: str | None = None
    no_vocab_hint: str = ""
    y_range_where: str = "only exports store it"


_REGISTRY: dict[str, Generation] = {}


def register(generation: Generation) -> Generation:
    """Add a generation (its name must be one of the manifest's); registration order is the
    order in which the generations are asked."""
    if generation.name not in GENERATIONS:
        raise ValueError(f"{generation.name!r} is not a generation the manifest knows")
    _REGISTRY[generation.name] = generation
    return generation


def registered() -> list[Generation]:
    """Every registered generation, in registration order."""
    return list(_REGISTRY.values())


def get(name: str) -> Generation:
    """The generation called ``name``; ``unknown`` (and any name not registered) gets the
    generic description."""
    return _REGISTRY.get(name) or _unknown(name)


def first(test: Callable[[Generation], bool]) -> str | None:
    """The name of the first registered generation for which ``test`` is true, or None."""
    for g in _REGISTRY.values():
        if test(g):
            return g.name
    return None


def sorted_vocab(values: Sequence[Any], role: str, source: str) -> Vocabulary:
    """``#na#`` (NaN and unseen values) then the sorted distinct values: how fastai 1 and 2
    number a column (and so the rule for a file that does not say which of them wrote it)."""
    present = {v for v in values if not is_nan(v)}
    return Vocabulary([NA, *sorted(present, key=sort_key)], unknown_index=0, source=source)


def is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def sort_key(v: Any) -> tuple:
    # pandas sorts one dtype per column; mixed columns fall back to their string order.
    if isinstance(v, bool):
        return (0, int(v), "")
    if isinstance(v, (int, float)):
        return (0, v, "")
    return (1, 0, str(v))


def _unknown(name: str) -> Generation:
    label = "unknown (not stated in the file)" if name == "unknown" else name
    return Generation(name, label, column_vocab=sorted_vocab)


def unknown_text_tokens() -> list[str]:
    """The tokens unknown words may map to in a text vocabulary, the newest generation's first."""
    tokens = [g.unknown_text_token for g in reversed(_REGISTRY.values()) if g.unknown_text_token]
    return [*dict.fromkeys(tokens), "<unk>"]

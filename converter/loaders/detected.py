"""What a generation loader found in a file, before tables are assembled."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ..ir import ModelWarning, Vocabulary
from ..pickle import TensorRef


@dataclass
class Detected:
    generation: str
    artifact: str
    state_dict: OrderedDict[str, TensorRef]
    model_class: str | None = None
    # Categorical inputs in embedding order (tabular, collab): column names and vocabularies.
    cat_names: list[str] | None = None
    cat_vocabs: list[Vocabulary | None] | None = None
    text_vocab: Vocabulary | None = None
    y_range: tuple[float, float] | None = None
    kind_hint: str | None = None
    notes: list[ModelWarning] = field(default_factory=list)
